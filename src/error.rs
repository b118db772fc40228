//! The shared error response, [`ApiError`]: a DRF-shaped JSON body with a stable `code`, which
//! every part's own error type converts into beside its definition (`auth::AuthError`,
//! `wechat::WxError`, ...). This module depends on no part of the crate.
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
#[non_exhaustive]
pub enum BackendError {
    /// The SQL database failed.
    #[cfg(feature = "db")]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[cfg(feature = "redis")]
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
    /// This client already has its share of bounded work (password hashing) in progress; a
    /// retry after `retry_after` may succeed, other clients are served meanwhile.
    #[error("this client's share is in use, retry after {}s", .retry_after.as_secs())]
    ClientBusy {
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
    cause: Option<ErrorCause>,
}

/// Why a request failed on the server's side (the database error behind a 503, WeChat's
/// answer behind a 502): kept for the log, never for the client.
///
/// [`ApiError::with_cause`] attaches one; rendering the error puts it in the response's
/// extensions, where the layer that logs failures finds it
/// ([`drf_fallbacks`](crate::fallbacks::drf_fallbacks) does; so can your own). Converting an
/// error never logs, as axum's error-handling example advises: the layer does, once.
///
/// ```
/// use axum::response::IntoResponse;
/// use wxrest::{ApiError, ErrorCause};
///
/// let response = ApiError::unavailable().with_cause("database error: pool timed out").into_response();
/// let cause = response.extensions().get::<ErrorCause>().unwrap();
/// assert_eq!(cause.to_string(), "database error: pool timed out");
/// ```
#[derive(Debug, Clone)]
pub struct ErrorCause(std::sync::Arc<str>);

impl std::fmt::Display for ErrorCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
            cause: None,
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
            cause: None,
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

    /// 500 `{"detail": "A server error occurred.", "code": "server_error"}`: what a client sees
    /// of our own failures (the cause goes to the logs, never the body).
    ///
    /// ```
    /// let err = wxrest::ApiError::server_error();
    /// assert_eq!(err.status(), 500);
    /// assert_eq!(err.detail(), Some("A server error occurred."));
    /// ```
    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            Self::SERVER_ERROR_DETAIL,
        )
    }

    /// DRF's `APIException.default_detail`: the detail of [`server_error`](Self::server_error),
    /// for errors of our own that keep a code of their own.
    pub const SERVER_ERROR_DETAIL: &'static str = "A server error occurred.";

    /// 503 `{"detail": "Service temporarily unavailable, try again later.", "code": "service_unavailable"}`.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service temporarily unavailable, try again later.",
        )
    }

    /// DRF's 429: `{"detail": "Request was throttled. Expected available in N seconds.",
    /// "code": "throttled"}` with `Retry-After: N` (`wait` rounded up to whole seconds, at
    /// least 1).
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = wxrest::ApiError::throttled(Duration::from_millis(2500));
    /// assert_eq!(err.status(), 429);
    /// assert_eq!(err.detail(), Some("Request was throttled. Expected available in 3 seconds."));
    /// ```
    pub fn throttled(wait: std::time::Duration) -> Self {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let unit = if secs == 1 { "second" } else { "seconds" };
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("Request was throttled. Expected available in {secs} {unit}."),
        )
        .with_header(http::header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// Adds a response header (e.g. `WWW-Authenticate`, `Retry-After`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Keeps `cause` for the log (see [`ErrorCause`]); the client's body does not change.
    ///
    /// ```
    /// let err = wxrest::ApiError::server_error().with_cause("signing key unreadable");
    /// assert_eq!(err.cause().map(ToString::to_string).as_deref(), Some("signing key unreadable"));
    /// assert_eq!(err.detail(), Some("A server error occurred."));
    /// ```
    #[must_use]
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(ErrorCause(cause.to_string().into()));
        self
    }

    /// The cause kept for the log, if any.
    pub fn cause(&self) -> Option<&ErrorCause> {
        self.cause.as_ref()
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
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        // PostgreSQL refuses NUL in text (SQLSTATE 22021): the client's input, not an outage.
        // Parsers reject it with the field named first; this covers any path they miss.
        #[cfg(feature = "db")]
        if let BackendError::Database(sqlx::Error::Database(db)) = &err
            && db.code().as_deref() == Some("22021")
        {
            return ApiError::bad_request("invalid", NULL_CHARACTERS);
        }
        if let BackendError::ClientBusy { retry_after } = err {
            return ApiError::throttled(retry_after);
        }
        ApiError::unavailable().with_cause(err)
    }
}

/// DRF's message for a text value containing a NUL character.
pub const NULL_CHARACTERS: &str = "Null characters are not allowed.";
