//! Input validation driven by the [`Schema`], with DRF's serializer messages.
//!
//! Create needs every writable field without a default; update (PUT) needs every writable
//! field without a default or `null` allowed; partial update (PATCH) checks only the fields
//! given. Unknown and read-only fields are ignored.

use serde_json::{Map, Value};

use super::query::{parse_bool_text, parse_time};
use super::schema::{Field, Kind, Schema};
use crate::db::SqlValue;
use crate::error::ApiError;
use crate::validation::{FieldError, FieldErrors};

/// Which write is being validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Partial,
}

/// Validated input: column values in schema order.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    /// `(field, value)` pairs ready to bind.
    pub values: Vec<(&'static str, SqlValue)>,
}

impl Validated {
    /// A value by field name.
    pub fn get(&self, name: &str) -> Option<&SqlValue> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// An integer value by field name.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(SqlValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// Sets (or replaces) a value.
    pub fn set(&mut self, name: &'static str, value: SqlValue) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        self.values
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_json()))
            .collect()
    }
}

/// Validates `data` for `mode`; 400 with every field's errors.
pub fn validate(
    schema: &Schema,
    data: &Map<String, Value>,
    mode: Mode,
) -> Result<Validated, ApiError> {
    let mut out = Validated::default();
    let mut errors = FieldErrors::new();
    for field in schema.fields.iter().filter(|f| !f.read_only) {
        match data.get(field.name) {
            Some(value) => match convert(field, value) {
                Ok(v) => out.values.push((field.name, v)),
                Err(error) => errors.add(field.name, error),
            },
            None => match mode {
                Mode::Partial => {}
                Mode::Create => match (&field.default, field.nullable) {
                    (Some(default), _) => match convert(field, default) {
                        Ok(v) => out.values.push((field.name, v)),
                        Err(error) => errors.add(field.name, error),
                    },
                    (None, true) => out
                        .values
                        .push((field.name, SqlValue::Null(field.kind.into()))),
                    (None, false) => errors.add(field.name, FieldError::Required),
                },
                Mode::Update => {
                    if field.default.is_none() && !field.nullable {
                        errors.add(field.name, FieldError::Required);
                    }
                }
            },
        }
    }
    errors.finish()?;
    Ok(out)
}

fn convert(field: &Field, value: &Value) -> Result<SqlValue, FieldError> {
    if value.is_null() {
        return if field.nullable {
            Ok(SqlValue::Null(field.kind.into()))
        } else {
            Err(FieldError::Null)
        };
    }
    let converted = match field.kind {
        Kind::Int => {
            let n = match value {
                Value::Number(n) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                }),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            let n = n.ok_or(FieldError::NotAnInteger)?;
            if let Some(min) = field.min
                && n < min
            {
                return Err(FieldError::MinValue(min));
            }
            if let Some(max) = field.max
                && n > max
            {
                return Err(FieldError::MaxValue(max));
            }
            SqlValue::Int(n)
        }
        Kind::Text => {
            let s = match value {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => return Err(FieldError::NotAString),
            };
            if s.is_empty() && !field.allow_blank {
                return Err(FieldError::Blank);
            }
            let len = s.chars().count();
            if let Some(max) = field.max_length
                && len > max
            {
                return Err(FieldError::MaxLength(max));
            }
            if let Some(min) = field.min_length
                && len < min
            {
                return Err(FieldError::MinLength(min));
            }
            if s.contains('\0') {
                return Err(FieldError::NullCharacters);
            }
            SqlValue::Text(s)
        }
        Kind::Bool => {
            let b = match value {
                Value::Bool(b) => Some(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(1) => Some(true),
                    Some(0) => Some(false),
                    _ => None,
                },
                Value::String(s) => parse_bool_text(s.trim()),
                _ => None,
            };
            SqlValue::Bool(b.ok_or(FieldError::NotABoolean)?)
        }
        Kind::Timestamp => {
            let t = match value {
                Value::String(s) => parse_time(s.trim()),
                Value::Number(n) => n.as_i64(),
                _ => None,
            };
            SqlValue::Int(t.ok_or(FieldError::NotADatetime)?)
        }
    };
    if let Some(choices) = &field.choices
        && !choices.contains(&converted.to_json())
    {
        return Err(FieldError::InvalidChoice(display(value)));
    }
    Ok(converted)
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
