//! DRF's pagination classes, each owning its paging and its OpenAPI description as DRF's
//! `paginate_queryset` / `get_paginated_response_schema` do: page number
//! (`{count, next, previous, results}`), limit/offset, cursor (keyset) pagination for large
//! tables, or none (a bare array). `next`/`previous` are absolute URLs that keep the request's
//! other recognised query parameters.
//!
//! The list handler builds a [`ListQuery`] (scope, filters, search, ordering) and hands it to
//! [`Pagination::paginate`]; the answer is a [`Page`] of JSON rows the handler renders.

mod cursor;
mod limit_offset;
mod page_number;

use http::request::Parts;
use serde_json::{Map, Value};

pub use cursor::CursorPagination;
pub use limit_offset::LimitOffset;
pub use page_number::PageNumber;

use super::query::{Where, order_sql, row_to_json};
use super::rows::Table;
use crate::db::Db;
use crate::db::bind_all;
use crate::error::{ApiError, BackendError};

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
    /// The canonical spelling of paging parameter `key` (what a cached page is keyed on and
    /// links carry): `None` when this style does not read `key` or `value` means the default
    /// (`page=1`, `offset=0`, a page size equal to the default), so every spelling of one page
    /// is one key. A value the style refuses is kept as sent, to be refused when it is read.
    pub(crate) fn canonical(&self, key: &str, value: String) -> Option<String> {
        match self {
            Pagination::PageNumber(p) => p.canonical(key, value),
            Pagination::LimitOffset(p) => p.canonical(key, value),
            Pagination::Cursor(p) => p.canonical(key, value),
            Pagination::None => None,
        }
    }

    /// The field a cursor pages on (a cached page depends on it).
    pub(crate) fn cursor_field(&self) -> Option<&'static str> {
        match self {
            Pagination::Cursor(p) => Some(p.field),
            _ => None,
        }
    }

    /// The page `query` asks for.
    pub(crate) async fn paginate(&self, query: &ListQuery<'_>) -> Result<Page, ApiError> {
        match self {
            Pagination::None => Ok(Page {
                rows: query
                    .rows(&query.clause, &query.ordering, false, "")
                    .await?,
                head: Page::empty(self).head,
            }),
            Pagination::PageNumber(p) => p.paginate(query).await,
            Pagination::LimitOffset(p) => p.paginate(query).await,
            Pagination::Cursor(p) => p.paginate(query).await,
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

/// What a list reads, before paging: the table, the WHERE clause (scope, filters, search),
/// the ordering, and the request for the links.
pub(crate) struct ListQuery<'a> {
    pub db: &'a Db,
    pub table: &'a Table,
    pub clause: Where,
    pub ordering: Vec<(&'static str, bool)>,
    /// The recognised parameters, sorted.
    pub params: &'a [(String, String)],
    pub parts: &'a Parts,
}

impl ListQuery<'_> {
    /// A recognised parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `SELECT COUNT(*)` of the clause.
    pub async fn count(&self) -> Result<u64, ApiError> {
        let sql = format!(
            "SELECT COUNT(*) FROM {}{}",
            self.table.table,
            self.clause.sql()
        );
        let n: i64 = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &self.clause.binds)
            .fetch_one(self.db.pool())
            .await
            .and_then(|row| sqlx::Row::try_get(&row, 0))
            .map_err(BackendError::from)?;
        Ok(n.max(0) as u64)
    }

    /// The rows of `clause` in `ordering` (reversed for backward cursor pages), then `limit`
    /// (` LIMIT n OFFSET m` or empty), as JSON by the schema.
    pub async fn rows(
        &self,
        clause: &Where,
        ordering: &[(&str, bool)],
        reverse: bool,
        limit: &str,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        let d = self.table.dialect;
        let sql = format!(
            "SELECT {} FROM {}{}{}{limit}",
            self.table.select,
            self.table.table,
            clause.sql(),
            order_sql(d, ordering, reverse),
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clause.binds)
            .fetch_all(self.db.pool())
            .await
            .map_err(BackendError::from)?;
        rows.iter()
            .map(|r| row_to_json(&self.table.schema, r))
            .collect::<Result<_, _>>()
            .map_err(|e| BackendError::from(e).into())
    }

    /// This request's link (origin-relative) with `changes` applied to its recognised
    /// parameters.
    pub fn url(&self, changes: &[(&str, Option<String>)]) -> String {
        page_link(self.parts, self.params, changes)
    }
}

/// One page of a list: its envelope and its rows.
#[derive(Debug)]
pub(crate) struct Page {
    pub head: Head,
    pub rows: Vec<Map<String, Value>>,
}

/// What a page says besides its rows: whether it has an envelope, the count and the links.
/// The links are origin-relative (`/goods/?page=2`): the origin (`https://shop.example`) is the
/// request's own and is put in front when the page is rendered ([`render`](Self::render)), so a
/// cached page serves every host and scheme with its own links, and a `Host` header can neither
/// make new cache entries nor reach another caller's links.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// `{count, next, previous, results}` (with `count` only where the style counts) or a bare
    /// array.
    pub envelope: bool,
    pub count: Option<u64>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

impl Page {
    /// No rows: what a scoped list shows an anonymous caller.
    pub fn empty(pagination: &Pagination) -> Self {
        Self {
            head: Head {
                envelope: !matches!(pagination, Pagination::None),
                count: match pagination {
                    Pagination::PageNumber(_) | Pagination::LimitOffset(_) => Some(0),
                    _ => None,
                },
                next: None,
                previous: None,
            },
            rows: Vec::new(),
        }
    }

    /// `{count, next, previous, results}`.
    pub fn counted(
        count: u64,
        next: Option<String>,
        previous: Option<String>,
        rows: Vec<Map<String, Value>>,
    ) -> Self {
        Self {
            head: Head {
                envelope: true,
                count: Some(count),
                next,
                previous,
            },
            rows,
        }
    }
}

impl Head {
    /// The JSON before the results' items, with links under `origin`:
    /// `{"count":N,"next":..,"previous":..,"results":[` or `[`. The body is this, the rendered
    /// rows joined by `,`, then [`tail`](Self::tail).
    pub fn render(&self, origin: &str) -> Vec<u8> {
        if !self.envelope {
            return b"[".to_vec();
        }
        let mut head = Vec::with_capacity(128);
        head.push(b'{');
        if let Some(count) = self.count {
            head.extend_from_slice(format!("\"count\":{count},").as_bytes());
        }
        for (name, link) in [("next", &self.next), ("previous", &self.previous)] {
            head.extend_from_slice(format!("\"{name}\":").as_bytes());
            let url = link.as_ref().map(|link| format!("{origin}{link}"));
            // A String or null always serialises.
            head.extend_from_slice(&serde_json::to_vec(&url).unwrap_or_default());
            head.push(b',');
        }
        head.extend_from_slice(b"\"results\":[");
        head
    }

    /// The JSON after the results' items.
    pub fn tail(&self) -> &'static [u8] {
        if self.envelope { b"]}" } else { b"]" }
    }

    /// The bytes this head takes in a cache.
    pub fn weight(&self) -> usize {
        let link = |l: &Option<String>| l.as_ref().map_or(0, String::len);
        std::mem::size_of::<Self>() + link(&self.next) + link(&self.previous)
    }
}

pub(crate) fn invalid_page() -> ApiError {
    ApiError::new(http::StatusCode::NOT_FOUND, "not_found", "Invalid page.")
}

/// `n`, or `None` when it is `default`: the canonical spelling of a paging number.
fn unless_default(n: u64, default: u64) -> Option<String> {
    (n != default).then(|| n.to_string())
}

/// A strictly positive integer parameter, or `None`.
pub(crate) fn positive(param: Option<&str>) -> Option<u64> {
    param
        .and_then(|p| p.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
}

/// The request's path with its recognised `params` and `changes` applied (`None` removes a
/// key), relative to the origin: a page never hands out parameters the list ignored.
pub(crate) fn page_link(
    parts: &Parts,
    params: &[(String, String)],
    changes: &[(&str, Option<String>)],
) -> String {
    let mut pairs: Vec<(String, String)> = params.to_vec();
    for (key, value) in changes {
        pairs.retain(|(k, _)| k != key);
        if let Some(v) = value {
            pairs.push(((*key).to_owned(), v.clone()));
        }
    }
    let mut link = parts.uri.path().to_owned();
    if !pairs.is_empty() {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        link.push('?');
        link.push_str(&query);
    }
    link
}

/// The origin a page's links are under: `X-Forwarded-Proto` (`http` or `https` only) or the
/// URI's scheme, then `Host` or the URI's authority (`http://localhost` without either).
pub(crate) fn origin(parts: &Parts) -> String {
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
    format!("{scheme}://{host}")
}

/// The OpenAPI side: each style's query parameters and page envelope.
#[cfg(feature = "openapi")]
mod schema {
    use utoipa::openapi::path::Parameter;
    use utoipa::openapi::schema::{
        ArrayBuilder, ObjectBuilder, Schema as JsonSchema, SchemaFormat, SchemaType, Type,
    };
    use utoipa::openapi::{RefOr, Response};

    use super::Pagination;
    use crate::openapi::{integer, json_response, schema_ref};

    impl Pagination {
        /// The query parameters this style adds to a list's.
        pub(crate) fn openapi_parameters(&self) -> Vec<Parameter> {
            match self {
                Pagination::PageNumber(p) => p.openapi_parameters(),
                Pagination::LimitOffset(p) => p.openapi_parameters(),
                Pagination::Cursor(p) => p.openapi_parameters(),
                Pagination::None => Vec::new(),
            }
        }

        /// The list's answer for items of component `model` and, for paginated styles, the
        /// envelope component.
        pub(crate) fn openapi_response(
            &self,
            model: &str,
        ) -> (Response, Option<(String, RefOr<JsonSchema>)>) {
            let page = |name: String, with_count: bool, description: &str| {
                (
                    json_response(description, schema_ref(&name)),
                    Some((name, envelope(model, with_count).into())),
                )
            };
            match self {
                Pagination::None => (json_response("Every object.", items(model)), None),
                Pagination::Cursor(_) => page(
                    format!("Cursor{model}List"),
                    false,
                    "A page: `{next, previous, results}`.",
                ),
                Pagination::PageNumber(_) | Pagination::LimitOffset(_) => page(
                    format!("Paginated{model}List"),
                    true,
                    "A page: `{count, next, previous, results}`.",
                ),
            }
        }
    }

    fn items(model: &str) -> ArrayBuilder {
        ArrayBuilder::new().items(schema_ref(model))
    }

    /// `{count?, next, previous, results}`.
    fn envelope(model: &str, with_count: bool) -> ObjectBuilder {
        let url = || {
            ObjectBuilder::new()
                .schema_type(
                    [Type::String, Type::Null]
                        .into_iter()
                        .collect::<SchemaType>(),
                )
                .format(Some(SchemaFormat::Custom("uri".into())))
        };
        let mut object = ObjectBuilder::new();
        if with_count {
            object = object
                .property("count", integer().minimum(Some(0)))
                .required("count");
        }
        object
            .property("next", url())
            .property("previous", url())
            .property("results", items(model))
            .required("next")
            .required("previous")
            .required("results")
    }
}
