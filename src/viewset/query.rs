//! From query parameters to parameterised SQL: filters, `?search=`, `?ordering=`, and the
//! SELECT/COUNT/INSERT/UPDATE/DELETE statements of a viewset.
//!
//! Identifiers come only from the model's [`Schema`]; every value is a bind parameter.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::pagination::Pagination;
use super::schema::{Field, Kind, Lookup, Schema};
use crate::db::{Dialect, SqlValue};
use crate::error::ApiError;

/// A WHERE clause under construction: SQL fragments joined with AND, and their binds.
#[derive(Debug, Clone, Default)]
pub struct Where {
    parts: Vec<String>,
    /// The values bound by the fragments, in order.
    pub binds: Vec<SqlValue>,
}

impl Where {
    /// The next placeholder.
    pub fn param(&mut self, dialect: Dialect, value: SqlValue) -> String {
        self.binds.push(value);
        dialect.placeholder(self.binds.len())
    }

    /// Adds a condition.
    pub fn push(&mut self, sql: String) {
        self.parts.push(sql);
    }

    /// `WHERE a AND b` or the empty string.
    pub fn sql(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }
}

/// Parameters that are not filters.
pub const RESERVED: [&str; 7] = [
    "search",
    "ordering",
    "page",
    "page_size",
    "limit",
    "offset",
    "cursor",
];

/// Parses a text query value into a value of `field`'s kind, with django-filter's messages.
pub fn parse_param(field: &Field, raw: &str) -> Result<SqlValue, &'static str> {
    let raw = raw.trim();
    match field.kind {
        Kind::Int => raw
            .parse()
            .map(SqlValue::Int)
            .map_err(|_| "Enter a number."),
        Kind::Text if raw.contains('\0') => Err(crate::error::NULL_CHARACTERS),
        Kind::Text => Ok(SqlValue::Text(raw.to_owned())),
        Kind::Bool => parse_bool_text(raw)
            .map(SqlValue::Bool)
            .ok_or("Select a valid choice. That choice is not one of the available choices."),
        Kind::Timestamp => parse_time(raw)
            .map(SqlValue::Int)
            .ok_or("Enter a valid date/time."),
    }
}

/// DRF's boolean spellings.
pub fn parse_bool_text(raw: &str) -> Option<bool> {
    match raw {
        "t" | "T" | "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On"
        | "ON" | "1" => Some(true),
        "f" | "F" | "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off"
        | "Off" | "OFF" | "0" => Some(false),
        _ => None,
    }
}

/// RFC 3339, a date (midnight UTC), or unix seconds.
pub fn parse_time(raw: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    }
    raw.parse::<i64>().ok()
}

/// Unix seconds as RFC 3339 (`2026-11-26T21:00:00Z`).
pub fn format_time(secs: i64) -> Value {
    match Utc.timestamp_opt(secs, 0).single() {
        Some(t) => Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => Value::Null,
    }
}

/// Adds the filters found in `params` to `clause`. Unknown parameters and lookups that the
/// model does not allow are ignored; empty values are ignored (django-filter); malformed values
/// are 400 `{"param": ["message"]}`.
pub fn add_filters(
    schema: &Schema,
    dialect: Dialect,
    params: &[(String, String)],
    clause: &mut Where,
) -> Result<(), ApiError> {
    let mut errors: Vec<(String, String)> = Vec::new();
    for (key, raw) in params {
        if RESERVED.contains(&key.as_str()) || raw.trim().is_empty() {
            continue;
        }
        let Some((field, lookup)) = filter_target(schema, key) else {
            continue;
        };
        let column = dialect.quote_ident(field.name);
        let condition = match lookup {
            Lookup::IsNull => match parse_bool_text(raw.trim()) {
                Some(true) => format!("{column} IS NULL"),
                Some(false) => format!("{column} IS NOT NULL"),
                None => {
                    errors.push((key.clone(), "Enter a valid boolean.".into()));
                    continue;
                }
            },
            Lookup::IContains if raw.contains('\0') => {
                errors.push((key.clone(), crate::error::NULL_CHARACTERS.into()));
                continue;
            }
            Lookup::IContains => {
                let p = clause.param(dialect, SqlValue::Text(Dialect::contains_pattern(raw)));
                dialect.contains_ci(&column, &p)
            }
            Lookup::In => {
                let mut values = Vec::new();
                for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match parse_param(field, item) {
                        Ok(v) => values.push(v),
                        Err(msg) => {
                            errors.push((key.clone(), msg.into()));
                            values.clear();
                            break;
                        }
                    }
                }
                if values.is_empty() {
                    continue;
                }
                let list: Vec<String> = values
                    .into_iter()
                    .map(|v| clause.param(dialect, v))
                    .collect();
                format!("{column} IN ({})", list.join(", "))
            }
            _ => match parse_param(field, raw) {
                Ok(value) => {
                    let op = match lookup {
                        Lookup::Gt => ">",
                        Lookup::Gte => ">=",
                        Lookup::Lt => "<",
                        Lookup::Lte => "<=",
                        _ => "=",
                    };
                    let p = clause.param(dialect, value);
                    format!("{column} {op} {p}")
                }
                Err(msg) => {
                    errors.push((key.clone(), msg.into()));
                    continue;
                }
            },
        };
        clause.push(condition);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The most terms `?search=` takes: each term costs a condition per search field.
pub const MAX_SEARCH_TERMS: usize = 20;

/// The longest search term, in characters: databases refuse huge `LIKE` patterns (SQLite stops
/// at 50,000 bytes), and no sane search is longer.
pub const MAX_SEARCH_TERM_CHARS: usize = 1000;

/// DRF's `SearchFilter`: terms split on whitespace and commas, each term must match at least
/// one search field (case-insensitive contains), terms AND-ed.
///
/// More than [`MAX_SEARCH_TERMS`] terms, or a term longer than [`MAX_SEARCH_TERM_CHARS`], is a
/// 400 `{"search": [...]}` instead of a query the database would refuse.
pub fn add_search(
    schema: &Schema,
    dialect: Dialect,
    search: &str,
    clause: &mut Where,
) -> Result<(), ApiError> {
    let fields: Vec<&Field> = schema.fields.iter().filter(|f| f.search).collect();
    if fields.is_empty() {
        return Ok(());
    }
    for term in search_terms(search)? {
        let any: Vec<String> = fields
            .iter()
            .map(|f| {
                let p = clause.param(dialect, SqlValue::Text(Dialect::contains_pattern(&term)));
                dialect.contains_ci(&dialect.quote_ident(f.name), &p)
            })
            .collect();
        clause.push(format!("({})", any.join(" OR ")));
    }
    Ok(())
}

/// The terms of `?search=`: split on whitespace and commas, NUL characters dropped; a 400
/// past [`MAX_SEARCH_TERMS`] or [`MAX_SEARCH_TERM_CHARS`].
fn search_terms(search: &str) -> Result<Vec<String>, ApiError> {
    let cleaned = search.replace('\0', "").replace(',', " ");
    let terms: Vec<String> = cleaned.split_whitespace().map(str::to_owned).collect();
    if terms.len() > MAX_SEARCH_TERMS {
        return Err(ApiError::validation([(
            "search",
            format!("Ensure this field has no more than {MAX_SEARCH_TERMS} terms."),
        )]));
    }
    if terms
        .iter()
        .any(|t| t.chars().count() > MAX_SEARCH_TERM_CHARS)
    {
        return Err(ApiError::validation([(
            "search",
            format!("Ensure each term has no more than {MAX_SEARCH_TERM_CHARS} characters."),
        )]));
    }
    Ok(terms)
}

/// DRF's `OrderingFilter`: whitelisted terms of `?ordering=`, else the default; the primary
/// key last as a tie-breaker. Returns `(field, descending)` pairs.
pub fn ordering(schema: &Schema, param: Option<&str>) -> Vec<(&'static str, bool)> {
    let mut out = param.map_or_else(Vec::new, |p| ordering_terms(schema, p));
    if out.is_empty() {
        out = schema
            .default_ordering
            .iter()
            .filter_map(|t| {
                let (name, desc) = match t.strip_prefix('-') {
                    Some(rest) => (rest, true),
                    None => (t.as_str(), false),
                };
                schema.get(name).map(|f| (f.name, desc))
            })
            .collect();
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(name, _)| seen.insert(*name));
    if !out.iter().any(|(name, _)| *name == "id") {
        let desc = out.first().is_some_and(|(_, d)| *d);
        out.push(("id", desc));
    }
    out
}

/// The whitelisted terms of `?ordering=`, each field once (its first mention wins).
fn ordering_terms(schema: &Schema, param: &str) -> Vec<(&'static str, bool)> {
    let mut terms: Vec<(&'static str, bool)> = Vec::new();
    for term in param.split(',') {
        let term = term.trim();
        let (name, desc) = match term.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (term, false),
        };
        if let Some(f) = schema.get(name).filter(|f| f.order)
            && !terms.iter().any(|(seen, _)| *seen == f.name)
        {
            terms.push((f.name, desc));
        }
    }
    terms
}

/// `ORDER BY` for `ordering`, optionally reversed (backward cursor pages).
pub fn order_sql(dialect: Dialect, ordering: &[(&str, bool)], reverse: bool) -> String {
    let terms: Vec<String> = ordering
        .iter()
        .map(|(name, desc)| {
            let desc = *desc != reverse;
            format!(
                "{} {}",
                dialect.quote_ident(name),
                if desc { "DESC" } else { "ASC" }
            )
        })
        .collect();
    format!(" ORDER BY {}", terms.join(", "))
}

/// The select list of a schema's columns.
pub fn select_list(schema: &Schema, dialect: Dialect) -> String {
    schema
        .fields
        .iter()
        .map(|f| match f.kind {
            Kind::Bool => dialect.select_bool(f.name),
            _ => dialect.quote_ident(f.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a row selected by [`select_list`] into JSON by the schema: columns by position (the
/// select list's order), not looked up by name.
pub fn row_to_json(schema: &Schema, row: &AnyRow) -> Result<Map<String, Value>, sqlx::Error> {
    let mut map = Map::with_capacity(schema.fields.len());
    for (i, f) in schema.fields.iter().enumerate() {
        let value = match f.kind {
            Kind::Int => row
                .try_get::<Option<i64>, _>(i)?
                .map_or(Value::Null, Value::from),
            Kind::Text => row
                .try_get::<Option<String>, _>(i)?
                .map_or(Value::Null, Value::from),
            Kind::Timestamp => row
                .try_get::<Option<i64>, _>(i)?
                .map_or(Value::Null, format_time),
            Kind::Bool => match row.try_get::<Option<bool>, _>(i) {
                Ok(b) => b.map_or(Value::Null, Value::from),
                Err(sqlx::Error::ColumnDecode { .. }) => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, |i| Value::from(i != 0)),
                Err(e) => return Err(e),
            },
        };
        map.insert(f.name.to_owned(), value);
    }
    Ok(map)
}

/// The field and lookup a filter parameter names (`price__gte` -> price, Gte), if the schema
/// allows it.
fn filter_target<'s>(schema: &'s Schema, key: &str) -> Option<(&'s Field, Lookup)> {
    let (name, lookup) = match key.rsplit_once("__") {
        Some((name, suffix)) => (name, Lookup::from_suffix(suffix)?),
        None => (key, Lookup::Exact),
    };
    schema
        .get(name)
        .filter(|f| f.lookups.contains(&lookup))
        .map(|f| (f, lookup))
}

/// The parameters a list recognises (its pagination's, `search`, `ordering`, and the schema's
/// filters with a value), each in its canonical spelling and sorted by name: what a cached
/// page is keyed on and what `next`/`previous` links carry. Anything else a client sends
/// changes nothing, and no two spellings of one query make two keys: numbers, booleans and
/// times as parsed (`page=02` is `page=2`; `page=01` is no `page` at all), `__in`
/// lists sorted without repeats, search terms sorted without repeats, ordering as whitelisted,
/// defaults dropped. A value the list refuses is kept as sent, to be refused (400 or 404) when
/// read; nothing refused is cached.
pub(crate) fn recognised(
    schema: &Schema,
    pagination: &Pagination,
    params: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = params
        .into_iter()
        .filter_map(|(key, value)| {
            let value = match key.as_str() {
                "search" => canonical_search(schema, value),
                "ordering" => canonical_ordering(schema, &value),
                k if RESERVED.contains(&k) => pagination.canonical(k, value),
                k => canonical_filter(schema, k, value),
            }?;
            Some((key, value))
        })
        .collect();
    kept.sort();
    kept
}

/// `?search=`'s terms sorted without repeats (they are AND-ed); `None` when nothing is
/// searched.
fn canonical_search(schema: &Schema, value: String) -> Option<String> {
    if !schema.fields.iter().any(|f| f.search) {
        return None;
    }
    match search_terms(&value) {
        Ok(mut terms) => {
            terms.sort_unstable();
            terms.dedup();
            (!terms.is_empty()).then(|| terms.join(" "))
        }
        Err(_) => Some(value),
    }
}

/// `?ordering=`'s whitelisted terms; `None` when none is (the default ordering applies).
fn canonical_ordering(schema: &Schema, value: &str) -> Option<String> {
    let terms = ordering_terms(schema, value);
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|(name, desc)| format!("{}{name}", if *desc { "-" } else { "" }))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A filter's value as [`add_filters`] reads it; `None` when `key` is no filter of the model or
/// the value is empty (ignored).
fn canonical_filter(schema: &Schema, key: &str, value: String) -> Option<String> {
    if value.trim().is_empty() {
        return None;
    }
    let (field, lookup) = filter_target(schema, key)?;
    Some(match lookup {
        Lookup::IsNull => parse_bool_text(value.trim()).map_or(value, |b| b.to_string()),
        // The pattern is the value as sent.
        Lookup::IContains => value,
        Lookup::In => {
            let mut items = Vec::new();
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match canonical_value(field, item) {
                    Some(item) => items.push(item),
                    None => return Some(value),
                }
            }
            items.sort_unstable();
            items.dedup();
            if items.is_empty() {
                return None;
            }
            items.join(",")
        }
        _ => canonical_value(field, &value).unwrap_or(value),
    })
}

/// One value of `field` as parsed, spelled so that it parses back to itself.
fn canonical_value(field: &Field, raw: &str) -> Option<String> {
    Some(match parse_param(field, raw).ok()? {
        SqlValue::Int(secs) if field.kind == Kind::Timestamp => match format_time(secs) {
            Value::String(t) if parse_time(&t) == Some(secs) => t,
            _ => secs.to_string(),
        },
        SqlValue::Int(n) => n.to_string(),
        SqlValue::Text(t) => t,
        SqlValue::Bool(b) => b.to_string(),
        _ => return None,
    })
}

/// The columns whose values decide which rows a list with the recognised `params` shows, and in
/// which order: its filters' fields, the search fields when it searches, its ordering (the
/// default one when none is asked, and `id`). A cached page depends on their versions.
pub(crate) fn dependencies(schema: &Schema, params: &[(String, String)]) -> Vec<&'static str> {
    let mut columns: Vec<&'static str> = Vec::new();
    let mut ordering_param = None;
    for (key, value) in params {
        match key.as_str() {
            "search" => columns.extend(schema.fields.iter().filter(|f| f.search).map(|f| f.name)),
            "ordering" => ordering_param = Some(value.as_str()),
            k if RESERVED.contains(&k) => {}
            k => columns.extend(filter_target(schema, k).map(|(f, _)| f.name)),
        }
    }
    columns.extend(ordering(schema, ordering_param).into_iter().map(|(n, _)| n));
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// Query parameters as pairs, later duplicates winning for single-valued lookups.
pub fn params(query: Option<&str>) -> Vec<(String, String)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match seen.get(k.as_ref()) {
            Some(&i) => out[i].1 = v.into_owned(),
            None => {
                seen.insert(k.clone().into_owned(), out.len());
                out.push((k.into_owned(), v.into_owned()));
            }
        }
    }
    out
}
