//! Errors as HTTP responses: the one place where every typed error of the crate becomes a
//! DRF-shaped JSON body.
//!
//! Every response body carries DRF's `detail` (or DRF's field map for validation errors) and a
//! stable machine-readable `code` a client can act on:
//!
//! ```
//! use axum::response::IntoResponse;
//! use wxrest::ApiError;
//!
//! let response = ApiError::not_found().into_response();
//! assert_eq!(response.status(), 404);
//! ```

use std::borrow::Cow;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

/// A failure of infrastructure the request depends on (database, Redis, ...).
///
/// Its `Display` never includes connection strings or secrets; the source error is kept for
/// logs and is never put in a response body.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The SQL database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Another backend failed.
    #[error("{0}")]
    Other(String),
    /// Bounded work the request needs (password hashing) is at capacity; a retry after
    /// `retry_after` may succeed.
    #[error("at capacity, retry after {}s", .retry_after.as_secs())]
    Busy {
        /// How long to wait before retrying.
        retry_after: std::time::Duration,
    },
}

/// An error rendered as a DRF-shaped JSON response.
///
/// Build one from any typed error of the crate (`From` impls), or directly:
///
/// ```
/// use http::StatusCode;
/// use wxrest::ApiError;
///
/// let err = ApiError::new(StatusCode::CONFLICT, "out_of_stock", "Not enough stock.");
/// assert_eq!(err.status(), StatusCode::CONFLICT);
/// assert_eq!(err.code(), "out_of_stock");
/// ```
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    body: Body,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
enum Body {
    Detail(Cow<'static, str>),
    Fields(Map<String, Value>),
}

impl ApiError {
    /// An error with a `{"detail": ..., "code": ...}` body.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            body: Body::Detail(detail.into()),
            headers: Vec::new(),
        }
    }

    /// A 400 validation error with DRF's field map body: `{"field": ["message", ...]}`.
    ///
    /// ```
    /// use wxrest::ApiError;
    /// let err = ApiError::validation([("code", "This field is required.")]);
    /// assert_eq!(err.status(), 400);
    /// ```
    pub fn validation<K, M>(errors: impl IntoIterator<Item = (K, M)>) -> Self
    where
        K: Into<String>,
        M: Into<String>,
    {
        let mut map = Map::new();
        for (field, message) in errors {
            let entry = map
                .entry(field.into())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(Value::String(message.into()));
            }
        }
        Self::fields(map)
    }

    /// A 400 validation error from an already-built field map.
    pub fn fields(map: Map<String, Value>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: Cow::Borrowed("invalid"),
            body: Body::Fields(map),
            headers: Vec::new(),
        }
    }

    /// 404 `{"detail": "Not found.", "code": "not_found"}`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    /// 400 with a custom detail and code.
    pub fn bad_request(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 503 `{"detail": "Service temporarily unavailable, try again later.", "code": "service_unavailable"}`.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service temporarily unavailable, try again later.",
        )
    }

    /// Adds a response header (e.g. `WWW-Authenticate`, `Retry-After`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The `detail` message, if this is not a field-map error.
    pub fn detail(&self) -> Option<&str> {
        match &self.body {
            Body::Detail(d) => Some(d),
            Body::Fields(_) => None,
        }
    }

    /// The JSON body this error renders to.
    pub fn body(&self) -> Value {
        match &self.body {
            Body::Detail(detail) => json!({ "detail": detail, "code": self.code }),
            Body::Fields(map) => Value::Object(map.clone()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.body {
            Body::Detail(d) => write!(f, "{} {}: {}", self.status.as_u16(), self.code, d),
            Body::Fields(m) => write!(
                f,
                "{} {}: {}",
                self.status.as_u16(),
                self.code,
                Value::Object(m.clone())
            ),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        tracing::error!(error = %err, "backend failure");
        ApiError::unavailable()
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(err: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match &err {
            AuthError::Unavailable(source) => {
                tracing::error!(error = %source, "authentication backend failure");
            }
            AuthError::CannotIssue => tracing::error!("token issue failed"),
            _ => {}
        }
        ApiError::new(err.status(), err.code(), err.to_string())
    }
}

impl IntoResponse for crate::auth::AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<crate::wechat::WxError> for ApiError {
    fn from(err: crate::wechat::WxError) -> Self {
        use crate::wechat::WxError as E;
        const UNAVAILABLE: &str = "WeChat is temporarily unavailable, try again later.";
        const INVALID_DATA: &str = "The encrypted data from WeChat is invalid.";
        match err {
            E::InvalidCode => {
                Self::bad_request("wechat_code_invalid", "Invalid WeChat login code.")
            }
            E::CodeUsed => Self::bad_request(
                "wechat_code_used",
                "This WeChat login code has already been used.",
            ),
            E::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "wechat_rate_limited",
                "Too many WeChat login attempts, try again later.",
            ),
            E::HighRisk => Self::new(
                StatusCode::FORBIDDEN,
                "wechat_high_risk",
                "WeChat blocked this account for risk control.",
            ),
            E::Busy | E::Timeout => {
                tracing::warn!(error = %err, "WeChat unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "wechat_unavailable",
                    UNAVAILABLE,
                )
            }
            E::Decrypt => Self::bad_request(
                "session_key_stale",
                "The WeChat session has expired; call wx.login() again.",
            ),
            E::WatermarkMismatch | E::SignatureMismatch | E::InvalidInput(_) => {
                Self::bad_request("invalid_encrypted_data", INVALID_DATA)
            }
            // Transport, Malformed, Api, InvalidCredential, Config: our side or WeChat's is
            // broken; the detail (never holding secrets) goes to the log, not the client.
            other => {
                tracing::warn!(error = %other, "WeChat call failed");
                Self::new(StatusCode::BAD_GATEWAY, "wechat_unavailable", UNAVAILABLE)
            }
        }
    }
}

/// Middleware giving the framework's own bodiless failures DRF's JSON: 405
/// `{"detail": "Method \"PUT\" not allowed."}` (keeping `Allow`), and a JSON body on any other
/// empty 4xx/5xx (404 from routing, 413 from a body limit, 408 from a timeout, ...).
///
/// ```
/// use axum::{middleware, routing::get, Router};
///
/// let app: Router = Router::new()
///     .route("/goods", get(|| async { "goods" }))
///     .layer(middleware::from_fn(wxrest::error::drf_fallbacks));
/// ```
pub async fn drf_fallbacks(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let empty = http_body::Body::size_hint(response.body()).exact() == Some(0);
    if !empty {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            format!("Method \"{method}\" not allowed."),
        ),
        StatusCode::NOT_FOUND => ApiError::not_found(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "Request body is too large.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "Unsupported media type in request.",
        ),
        StatusCode::REQUEST_TIMEOUT => {
            ApiError::new(status, "request_timeout", "The request took too long.")
        }
        s if s.is_server_error() => ApiError::new(s, "server_error", "A server error occurred."),
        s => ApiError::new(
            s,
            "error",
            s.canonical_reason().unwrap_or("Request failed.").to_owned() + ".",
        ),
    };
    let rendered = error.into_response();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, rendered.into_body())
}

/// The response [`catch_panic`] gives a panicking handler.
pub type PanicResponse = fn(Box<dyn std::any::Any + Send + 'static>) -> Response;

/// A `CatchPanicLayer` answering a panic with DRF's 500
/// `{"detail": "A server error occurred.", "code": "server_error"}`: never the panic message,
/// which may hold internals (it is not logged either, for the same reason).
///
/// Put it outermost and [`drf_fallbacks`] innermost, so every failure of the stack is JSON:
///
/// ```
/// use axum::{middleware, routing::get, Router};
///
/// let app: Router = Router::new()
///     .route("/goods", get(|| async { "goods" }))
///     .layer(middleware::from_fn(wxrest::error::drf_fallbacks))
///     // ... body limit, auth, throttle, CORS, tracing ...
///     .layer(wxrest::error::catch_panic());
/// ```
pub fn catch_panic() -> tower_http::catch_panic::CatchPanicLayer<PanicResponse> {
    fn respond(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
        tracing::error!("a request handler panicked");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "A server error occurred.",
        )
        .into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(respond as PanicResponse)
}
