//! DRF's `LimitOffsetPagination`: `?limit=20&offset=40`, `{count, next, previous, results}`.

use super::{ListQuery, Page, positive, unless_default};
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

    /// The limit honoured for `param`.
    fn limit(&self, param: Option<&str>) -> u64 {
        positive(param).map_or(self.default, |l| l.min(self.max))
    }

    /// The offset read from `param` (0 when absent or malformed).
    fn offset(param: Option<&str>) -> u64 {
        param
            .and_then(|o| o.trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// `limit` (as honoured) and `offset` canonically.
    pub(super) fn canonical(&self, key: &str, value: String) -> Option<String> {
        match key {
            "limit" => unless_default(self.limit(Some(&value)), self.default),
            "offset" => unless_default(Self::offset(Some(&value)), 0),
            _ => None,
        }
    }

    /// COUNT, then `limit` rows from `offset`.
    pub(super) async fn paginate(&self, query: &ListQuery<'_>) -> Result<Page, ApiError> {
        let count = query.count().await?;
        let limit = self.limit(query.param("limit"));
        let offset = Self::offset(query.param("offset"));
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
