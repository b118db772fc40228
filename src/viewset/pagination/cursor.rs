//! DRF's `CursorPagination`: keyset pages on one field plus the primary key, `?cursor=...`,
//! `{next, previous, results}` without a COUNT.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Head, ListQuery, Page};
use crate::db::SqlValue;
use crate::error::ApiError;
use crate::viewset::query::parse_time;
use crate::viewset::schema::Kind;

/// Keyset pagination on one orderable field (plus the primary key as tie-breaker).
///
/// ```
/// use wxrest::viewset::CursorPagination;
/// let pages = CursorPagination::new(20, "-created_at");
/// # let _ = pages;
/// ```
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

    /// `cursor` decoded and encoded again (a cursor that does not decode is kept, to be
    /// refused).
    pub(super) fn canonical(&self, key: &str, value: String) -> Option<String> {
        match key {
            "cursor" => Some(Cursor::decode(&value).map_or(value, |c| c.encode())),
            _ => None,
        }
    }

    /// The rows after (or, for a `previous` cursor, before) the cursor's boundary row.
    pub(super) async fn paginate(&self, query: &ListQuery<'_>) -> Result<Page, ApiError> {
        let schema = &query.table.schema;
        let d = query.table.dialect;
        let field = schema.get(self.field).ok_or_else(invalid_cursor)?;
        let cursor = query.param("cursor").map(Cursor::decode).transpose()?;
        let reverse = cursor.as_ref().is_some_and(|c| c.r);
        let mut clause = query.clause.clone();
        if let Some(c) = &cursor {
            let value = match (field.kind, &c.v) {
                (Kind::Int, Value::Number(n)) => n.as_i64().map(SqlValue::Int),
                (Kind::Timestamp, Value::String(s)) => parse_time(s).map(SqlValue::Int),
                (Kind::Text, Value::String(s)) => Some(SqlValue::Text(s.clone())),
                _ => None,
            }
            .ok_or_else(invalid_cursor)?;
            // Forward on an ascending order means "greater than the boundary".
            let greater = self.descending == reverse;
            let op = if greater { ">" } else { "<" };
            let col = d.quote_ident(self.field);
            let id = d.quote_ident("id");
            let v1 = clause.param(d, value.clone());
            let v2 = clause.param(d, value);
            let i = clause.param(d, SqlValue::Int(c.id));
            clause.push(format!(
                "({col} {op} {v1} OR ({col} = {v2} AND {id} {op} {i}))"
            ));
        }
        let ordering = [(self.field, self.descending), ("id", self.descending)];
        let limit = format!(" LIMIT {}", self.size + 1);
        let mut rows = query.rows(&clause, &ordering, reverse, &limit).await?;
        let more = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        if reverse {
            rows.reverse();
        }
        let boundary = |m: &Map<String, Value>, r: bool| {
            Cursor {
                v: m.get(self.field).cloned().unwrap_or(Value::Null),
                id: m.get("id").and_then(Value::as_i64).unwrap_or(0),
                r,
            }
            .encode()
        };
        let has_next = if reverse { cursor.is_some() } else { more };
        let has_previous = if reverse { more } else { cursor.is_some() };
        let next = rows
            .last()
            .filter(|_| has_next)
            .map(|m| query.url(&[("cursor", Some(boundary(m, false)))]));
        let previous = rows
            .first()
            .filter(|_| has_previous)
            .map(|m| query.url(&[("cursor", Some(boundary(m, true)))]));
        Ok(Page {
            head: Head {
                envelope: true,
                count: None,
                next,
                previous,
            },
            rows,
        })
    }

    #[cfg(feature = "openapi")]
    pub(super) fn openapi_parameters(&self) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::openapi::query_param(
            "cursor",
            "The `next` or `previous` link's cursor.",
            crate::openapi::string(),
        )]
    }
}

/// A decoded cursor: the boundary row's field value and id, and the direction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    v: Value,
    id: i64,
    r: bool,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> Result<Self, ApiError> {
        URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(invalid_cursor)
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::new(http::StatusCode::NOT_FOUND, "not_found", "Invalid cursor")
}
