//! DRF's `PageNumberPagination`: `?page=2&page_size=20`, `{count, next, previous, results}`.

use super::{ListQuery, Page, invalid_page, positive, unless_default};
use crate::error::ApiError;

/// DRF's `PageNumberPagination`, with `page_size` as a client-settable, capped parameter.
///
/// ```
/// use wxrest::viewset::PageNumber;
/// let pages = PageNumber::size(10).max(100);
/// # let _ = pages;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PageNumber {
    pub(crate) size: u64,
    pub(crate) max: u64,
}

impl PageNumber {
    /// Pages of `size` items (clients may ask for up to `size` unless [`max`](Self::max)).
    pub fn size(size: u64) -> Self {
        let size = size.max(1);
        Self { size, max: size }
    }

    /// The largest `?page_size=` honoured.
    #[must_use]
    pub fn max(mut self, max: u64) -> Self {
        self.max = max.max(self.size);
        self
    }

    /// The page size for a request.
    fn page_size(&self, param: Option<&str>) -> u64 {
        positive(param).map_or(self.size, |n| n.min(self.max))
    }

    /// `page` (`1` is the default, `last` stays) and `page_size` (as honoured) canonically.
    pub(super) fn canonical(&self, key: &str, value: String) -> Option<String> {
        match key {
            "page" if value == "last" => Some(value),
            "page" => match positive(Some(&value)) {
                Some(page) => unless_default(page, 1),
                None => Some(value),
            },
            "page_size" => unless_default(self.page_size(Some(&value)), self.size),
            _ => None,
        }
    }

    /// COUNT, then the page; `?page=last` is the last one, a page past it is 404.
    pub(super) async fn paginate(&self, query: &ListQuery<'_>) -> Result<Page, ApiError> {
        let count = query.count().await?;
        let size = self.page_size(query.param("page_size"));
        let pages = count.div_ceil(size).max(1);
        let page = match query.param("page") {
            None => 1,
            Some("last") => pages,
            Some(raw) => positive(Some(raw)).ok_or_else(invalid_page)?,
        };
        if page > pages {
            return Err(invalid_page());
        }
        let limit = format!(" LIMIT {size} OFFSET {}", (page - 1) * size);
        let rows = query
            .rows(&query.clause, &query.ordering, false, &limit)
            .await?;
        let next = (page < pages).then(|| query.url(&[("page", Some((page + 1).to_string()))]));
        let previous = match page {
            1 => None,
            2 => Some(query.url(&[("page", None)])),
            _ => Some(query.url(&[("page", Some((page - 1).to_string()))])),
        };
        Ok(Page::counted(count, next, previous, rows))
    }

    #[cfg(feature = "openapi")]
    pub(super) fn openapi_parameters(&self) -> Vec<utoipa::openapi::path::Parameter> {
        use crate::openapi::{integer, query_param};
        vec![
            query_param(
                "page",
                "The page number, from 1 (`last` for the last page).",
                integer().minimum(Some(1)),
            ),
            query_param(
                "page_size",
                format!(
                    "Objects per page (default {}, at most {}).",
                    self.size, self.max
                ),
                integer().minimum(Some(1)).maximum(Some(self.max)),
            ),
        ]
    }
}
