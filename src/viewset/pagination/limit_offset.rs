//! DRF's `LimitOffsetPagination`: `?limit=20&offset=40`, `{count, next, previous, results}`.

use super::{ListQuery, Page, positive};
use crate::error::ApiError;

/// DRF's `LimitOffsetPagination`.
///
/// ```
/// use wxrest::viewset::LimitOffset;
/// let pages = LimitOffset::new(20, 100);
/// # let _ = pages;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LimitOffset {
    pub(crate) default: u64,
    pub(crate) max: u64,
}

impl LimitOffset {
    /// `limit` defaults to `default`, capped at `max`.
    pub fn new(default: u64, max: u64) -> Self {
        let default = default.max(1);
        Self {
            default,
            max: max.max(default),
        }
    }

    /// COUNT, then `limit` rows from `offset`.
    pub(super) async fn paginate(&self, query: &ListQuery<'_>) -> Result<Page, ApiError> {
        let count = query.count().await?;
        let limit = positive(query.param("limit")).map_or(self.default, |l| l.min(self.max));
        let offset = query
            .param("offset")
            .and_then(|o| o.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let rows = query
            .rows(
                &query.clause,
                &query.ordering,
                false,
                &format!(" LIMIT {limit} OFFSET {offset}"),
            )
            .await?;
        let limit_s = || Some(limit.to_string());
        let next = (offset.saturating_add(limit) < count).then(|| {
            query.url(&[
                ("limit", limit_s()),
                ("offset", Some((offset + limit).to_string())),
            ])
        });
        let previous = match offset {
            0 => None,
            o if o <= limit => Some(query.url(&[("limit", limit_s()), ("offset", None)])),
            o => Some(query.url(&[
                ("limit", limit_s()),
                ("offset", Some((o - limit).to_string())),
            ])),
        };
        Ok(Page::counted(count, next, previous, rows))
    }

    #[cfg(feature = "openapi")]
    pub(super) fn openapi_parameters(&self) -> Vec<utoipa::openapi::path::Parameter> {
        use crate::openapi::{integer, query_param};
        vec![
            query_param(
                "limit",
                format!(
                    "Objects per page (default {}, at most {}).",
                    self.default, self.max
                ),
                integer().minimum(Some(1)).maximum(Some(self.max)),
            ),
            query_param("offset", "Objects to skip.", integer().minimum(Some(0))),
        ]
    }
}
