//! The values bound into dynamically built statements, one enum for every part that writes SQL
//! (the user store, the viewset SQL builder).

use serde_json::Value;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A bound SQL value.
///
/// ```
/// use wxrest::db::{SqlType, SqlValue};
///
/// assert_eq!(SqlValue::Int(250).to_json(), serde_json::json!(250));
/// assert_eq!(SqlValue::from(None::<String>), SqlValue::Null(SqlType::Text));
/// assert_eq!(SqlValue::Null(SqlType::Int).to_json(), serde_json::Value::Null);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// An integer (also timestamps, in unix seconds).
    Int(i64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// NULL of a column type (PostgreSQL wants typed parameters).
    Null(SqlType),
}

/// The type of a NULL parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `BIGINT` (also timestamps).
    Int,
    /// Text.
    Text,
    /// A boolean.
    Bool,
}

impl SqlValue {
    /// The JSON form, as the validated data handed to hooks.
    pub fn to_json(&self) -> Value {
        match self {
            SqlValue::Int(i) => Value::from(*i),
            SqlValue::Text(s) => Value::from(s.clone()),
            SqlValue::Bool(b) => Value::from(*b),
            SqlValue::Null(_) => Value::Null,
        }
    }
}

impl From<Option<String>> for SqlValue {
    /// Text, or a text NULL.
    fn from(text: Option<String>) -> Self {
        text.map_or(SqlValue::Null(SqlType::Text), SqlValue::Text)
    }
}

/// Binds `values` in order.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    values: &[SqlValue],
) -> Query<'q, Any, AnyArguments> {
    for value in values {
        query = match value {
            SqlValue::Int(i) => query.bind(*i),
            SqlValue::Text(s) => query.bind(s.clone()),
            SqlValue::Bool(b) => query.bind(*b),
            SqlValue::Null(SqlType::Text) => query.bind(None::<String>),
            SqlValue::Null(SqlType::Bool) => query.bind(None::<bool>),
            SqlValue::Null(SqlType::Int) => query.bind(None::<i64>),
        };
    }
    query
}
