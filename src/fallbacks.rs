//! Middleware that gives the framework's own failures DRF's JSON: [`drf_fallbacks`] for the
//! bodiless 404/405/413/415/... that routing and limits answer, and [`catch_panic`] for a
//! panicking handler.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::error::{ApiError, ErrorCause};

/// Middleware giving the framework's own bodiless failures DRF's JSON: 405
/// `{"detail": "Method \"PUT\" not allowed."}` (keeping `Allow`), and a JSON body on any other
/// empty 4xx/5xx (404 from routing, 413 from a body limit, 408 from a timeout, ...).
///
/// It is also where failures are logged: a response carrying an [`ErrorCause`] (the database
/// error behind a 503, WeChat's answer behind a 502) is logged once here, at `error` level for
/// 5xx and `warn` otherwise, inside the request's span. Error conversions never log.
///
/// ```
/// use axum::{middleware, routing::get, Router};
///
/// let app: Router = Router::new()
///     .route("/goods", get(|| async { "goods" }))
///     .layer(middleware::from_fn(wxrest::fallbacks::drf_fallbacks));
/// ```
pub async fn drf_fallbacks(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    if let Some(cause) = response.extensions().get::<ErrorCause>() {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), cause = %cause, "request failed");
        } else {
            tracing::warn!(status = status.as_u16(), cause = %cause, "request failed");
        }
    }
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
        s if s.is_server_error() => ApiError::new(s, "server_error", ApiError::SERVER_ERROR_DETAIL),
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
///     .layer(middleware::from_fn(wxrest::fallbacks::drf_fallbacks))
///     // ... body limit, auth, throttle, CORS, tracing ...
///     .layer(wxrest::fallbacks::catch_panic());
/// ```
pub fn catch_panic() -> tower_http::catch_panic::CatchPanicLayer<PanicResponse> {
    fn respond(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
        tracing::error!("a request handler panicked");
        ApiError::server_error().into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(respond as PanicResponse)
}
