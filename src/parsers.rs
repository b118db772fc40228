//! Request bodies the DRF way: JSON or form data into a field map, with DRF's error shapes
//! (`JSON parse error - ...`, 415 for other media types, 413 past the body limit), and
//! [`Fields`], a small serializer-style reader that collects `{"field": ["message"]}` errors.
//!
//! ```
//! use axum::{Json, routing::post, Router};
//! use serde_json::{json, Value};
//! use wxrest::ApiError;
//! use wxrest::parsers::{Fields, JsonBody};
//!
//! async fn login(JsonBody(data): JsonBody) -> Result<Json<Value>, ApiError> {
//!     let mut fields = Fields::new(&data);
//!     let username = fields.required_str("username");
//!     let password = fields.required_str("password");
//!     fields.finish()?; // 400 {"username": ["This field is required."]} ...
//!     Ok(Json(json!({ "user": username, "len": password.len() })))
//! }
//! let app: Router = Router::new().route("/login", post(login));
//! ```

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::ApiError;

use crate::error::NULL_CHARACTERS;

/// A request body as a JSON object (`application/json`, `application/x-www-form-urlencoded`,
/// or an empty body as `{}`).
#[derive(Debug, Clone, Default)]
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_owned());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Request body is too large.",
                )
            } else {
                ApiError::bad_request("parse_error", "Could not read the request body.")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Map::new()));
        }
        let media = content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if media == "application/x-www-form-urlencoded" {
            let map = form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            return Ok(JsonBody(map));
        }
        if !(media == "application/json" || media.ends_with("+json")) {
            let shown = content_type.unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Unsupported media type \"{shown}\" in request."),
            ));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonBody(map)),
            Ok(other) => Err(ApiError::validation([(
                "non_field_errors",
                format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    json_type_name(&other)
                ),
            )])),
            Err(e) => Err(ApiError::bad_request(
                "parse_error",
                format!("JSON parse error - {e}"),
            )),
        }
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Reads fields from a body and collects DRF-shaped errors.
#[derive(Debug)]
pub struct Fields<'a> {
    data: &'a Map<String, Value>,
    errors: Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Self {
            data,
            errors: Map::new(),
        }
    }

    /// Records `message` against `field`.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let entry = self
            .errors
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(message.into()));
        }
    }

    /// A required, non-blank string (`""` and a missing field are errors). Numbers are taken
    /// as their text, as DRF's `CharField` does.
    pub fn required_str(&mut self, field: &str) -> String {
        match self.data.get(field) {
            None | Some(Value::Null) => {
                let msg = if self.data.contains_key(field) {
                    "This field may not be null."
                } else {
                    "This field is required."
                };
                self.error(field, msg);
                String::new()
            }
            Some(value) => match self.string(field, value) {
                Some(s) if s.trim().is_empty() => {
                    self.error(field, "This field may not be blank.");
                    String::new()
                }
                Some(s) => s,
                None => String::new(),
            },
        }
    }

    /// An optional string (`None` when absent or null).
    pub fn optional_str(&mut self, field: &str) -> Option<String> {
        match self.data.get(field) {
            None | Some(Value::Null) => None,
            Some(value) => self.string(field, value),
        }
    }

    /// An optional object.
    pub fn optional_object(&mut self, field: &str) -> Option<&'a Map<String, Value>> {
        match self.data.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                self.error(field, "Expected a dictionary of items.");
                None
            }
        }
    }

    fn string(&mut self, field: &str, value: &Value) -> Option<String> {
        match value {
            // DRF's `ProhibitNullCharactersValidator`: no database stores them as text.
            Value::String(s) if s.contains('\0') => {
                self.error(field, NULL_CHARACTERS);
                None
            }
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.error(field, "Not a valid string.");
                None
            }
        }
    }

    /// `Ok` when no error was recorded, else the 400 with every error.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(self.errors))
        }
    }
}
