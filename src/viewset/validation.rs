//! Input validation driven by the [`Schema`], with DRF's serializer messages.
//!
//! Create needs every writable field without a default; update (PUT) needs every writable
//! field without a default or `null` allowed; partial update (PATCH) checks only the fields
//! given. Unknown and read-only fields are ignored.

use serde_json::{Map, Value};

use super::query::{SqlValue, parse_bool_text, parse_time};
use super::schema::{Field, Kind, Schema};
use crate::error::ApiError;

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
    let mut errors: Vec<(String, String)> = Vec::new();
    for field in schema.fields.iter().filter(|f| !f.read_only) {
        match data.get(field.name) {
            Some(value) => match convert(field, value) {
                Ok(v) => out.values.push((field.name, v)),
                Err(msg) => errors.push((field.name.to_owned(), msg)),
            },
            None => match mode {
                Mode::Partial => {}
                Mode::Create => match (&field.default, field.nullable) {
                    (Some(default), _) => match convert(field, default) {
                        Ok(v) => out.values.push((field.name, v)),
                        Err(msg) => errors.push((field.name.to_owned(), msg)),
                    },
                    (None, true) => out.values.push((field.name, SqlValue::Null(field.kind))),
                    (None, false) => {
                        errors.push((field.name.to_owned(), "This field is required.".into()))
                    }
                },
                Mode::Update => {
                    if field.default.is_none() && !field.nullable {
                        errors.push((field.name.to_owned(), "This field is required.".into()));
                    }
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::validation(errors))
    }
}

fn convert(field: &Field, value: &Value) -> Result<SqlValue, String> {
    if value.is_null() {
        return if field.nullable {
            Ok(SqlValue::Null(field.kind))
        } else {
            Err("This field may not be null.".into())
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
            let n = n.ok_or("A valid integer is required.")?;
            if let Some(min) = field.min
                && n < min
            {
                return Err(format!(
                    "Ensure this value is greater than or equal to {min}."
                ));
            }
            if let Some(max) = field.max
                && n > max
            {
                return Err(format!("Ensure this value is less than or equal to {max}."));
            }
            SqlValue::Int(n)
        }
        Kind::Text => {
            let s = match value {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => return Err("Not a valid string.".into()),
            };
            if s.is_empty() && !field.allow_blank {
                return Err("This field may not be blank.".into());
            }
            let len = s.chars().count();
            if let Some(max) = field.max_length
                && len > max
            {
                return Err(format!(
                    "Ensure this field has no more than {max} characters."
                ));
            }
            if let Some(min) = field.min_length
                && len < min
            {
                return Err(format!("Ensure this field has at least {min} characters."));
            }
            if s.contains('\0') {
                return Err("Null characters are not allowed.".into());
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
            SqlValue::Bool(b.ok_or("Must be a valid boolean.")?)
        }
        Kind::Timestamp => {
            let t = match value {
                Value::String(s) => parse_time(s.trim()),
                Value::Number(n) => n.as_i64(),
                _ => None,
            };
            SqlValue::Int(t.ok_or(
                "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            )?)
        }
    };
    if let Some(choices) = &field.choices
        && !choices.contains(&converted.to_json())
    {
        return Err(format!("\"{}\" is not a valid choice.", display(value)));
    }
    Ok(converted)
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
