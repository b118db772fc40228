//! Request bodies the DRF way: JSON or form data into a field map, with DRF's error shapes
//! (`JSON parse error - ...`, 415 for other media types, 413 past the body limit). Read the
//! fields with [`validation::Fields`](crate::validation::Fields).
//!
//! ```
//! use axum::{Json, routing::post, Router};
//! use serde_json::{Map, Value};
//! use wxrest::parsers::JsonBody;
//!
//! // `{"a": 1}` and `a=1` (form data) both arrive as an object; other media types get 415.
//! async fn echo(JsonBody(data): JsonBody) -> Json<Map<String, Value>> {
//!     Json(data)
//! }
//! let app: Router = Router::new().route("/echo", post(echo));
//! ```

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::ApiError;

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
