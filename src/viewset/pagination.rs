//! DRF's pagination classes: page number (`{count, next, previous, results}`), limit/offset,
//! and cursor (keyset) pagination for large tables. `next`/`previous` are absolute URLs that
//! keep the request's other query parameters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// How a list is cut into pages.
#[derive(Debug, Clone)]
pub enum Pagination {
    /// `?page=2&page_size=20`.
    PageNumber(PageNumber),
    /// `?limit=20&offset=40`.
    LimitOffset(LimitOffset),
    /// `?cursor=...`: stable pages over a fixed ordering, no COUNT.
    Cursor(CursorPagination),
    /// The whole list as a JSON array.
    None,
}

impl Pagination {
    /// The query parameters this style reads, besides filters.
    pub(crate) fn parameters(&self) -> &'static [&'static str] {
        match self {
            Pagination::PageNumber(_) => &["search", "ordering", "page", "page_size"],
            Pagination::LimitOffset(_) => &["search", "ordering", "limit", "offset"],
            Pagination::Cursor(_) => &["search", "ordering", "cursor"],
            Pagination::None => &["search", "ordering"],
        }
    }
}

impl From<PageNumber> for Pagination {
    fn from(p: PageNumber) -> Self {
        Pagination::PageNumber(p)
    }
}

impl From<LimitOffset> for Pagination {
    fn from(p: LimitOffset) -> Self {
        Pagination::LimitOffset(p)
    }
}

impl From<CursorPagination> for Pagination {
    fn from(p: CursorPagination) -> Self {
        Pagination::Cursor(p)
    }
}

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
    pub(crate) fn page_size(&self, param: Option<&str>) -> u64 {
        positive(param).map_or(self.size, |n| n.min(self.max))
    }
}

/// DRF's `LimitOffsetPagination`.
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
}

/// Keyset pagination on one orderable field (plus the primary key as tie-breaker).
#[derive(Debug, Clone)]
pub struct CursorPagination {
    pub(crate) size: u64,
    pub(crate) field: &'static str,
    pub(crate) descending: bool,
}

impl CursorPagination {
    /// Pages of `size` ordered by `ordering` (`"-created_at"`, `"id"`, ...).
    pub fn new(size: u64, ordering: &'static str) -> Self {
        let (field, descending) = match ordering.strip_prefix('-') {
            Some(f) => (f, true),
            None => (ordering, false),
        };
        Self {
            size: size.max(1),
            field,
            descending,
        }
    }
}

/// A decoded cursor: the boundary row's field value and id, and the direction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Cursor {
    pub v: Value,
    pub id: i64,
    pub r: bool,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(raw: &str) -> Result<Self, ApiError> {
        URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(invalid_cursor)
    }
}

pub(crate) fn invalid_page() -> ApiError {
    ApiError::new(http::StatusCode::NOT_FOUND, "not_found", "Invalid page.")
}

pub(crate) fn invalid_cursor() -> ApiError {
    ApiError::new(http::StatusCode::NOT_FOUND, "not_found", "Invalid cursor")
}

/// A strictly positive integer parameter, or `None`.
pub(crate) fn positive(param: Option<&str>) -> Option<u64> {
    param
        .and_then(|p| p.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
}

/// The request's absolute URL with its recognised `params` and `changes` applied (`None`
/// removes a key): a page never hands out parameters the list ignored.
pub(crate) fn page_url(
    parts: &Parts,
    params: &[(String, String)],
    changes: &[(&str, Option<String>)],
) -> String {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .or_else(|| parts.uri.scheme_str())
        .unwrap_or("http");
    let mut pairs: Vec<(String, String)> = params.to_vec();
    for (key, value) in changes {
        pairs.retain(|(k, _)| k != key);
        if let Some(v) = value {
            pairs.push(((*key).to_owned(), v.clone()));
        }
    }
    let mut url = format!("{scheme}://{host}{}", parts.uri.path());
    if !pairs.is_empty() {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        url.push('?');
        url.push_str(&query);
    }
    url
}
