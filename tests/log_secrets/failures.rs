//! Failures are logged once, by the layer that answers them, with their cause; converting an
//! error logs nothing, and the cause never reaches the client.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use tower::ServiceExt;
use wxrest::{ApiError, BackendError};

use crate::captured_logs::CapturedLogs;

const CAUSE: &str = "connection refused by db.internal:5432";

fn failing() -> Router {
    Router::new().route(
        "/goods",
        get(|| async { Err::<(), _>(ApiError::from(BackendError::Other(CAUSE.into()))) }),
    )
}

async fn call(app: Router) -> (u16, String) {
    let response = app
        .oneshot(Request::get("/goods").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "current_thread")]
async fn a_backend_failure_is_logged_once_by_drf_fallbacks_with_its_cause() {
    let (logs, _guard) = CapturedLogs::install();
    let app = failing().layer(axum::middleware::from_fn(wxrest::fallbacks::drf_fallbacks));
    let (status, body) = call(app).await;
    assert_eq!(status, 503);
    assert!(
        !body.contains(CAUSE),
        "the cause reached the client: {body}"
    );
    let text = logs.text();
    assert_eq!(text.matches(CAUSE).count(), 1, "logged once:\n{text}");
    assert!(
        text.contains("request failed") && text.contains("ERROR"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn converting_an_error_logs_nothing() {
    let (logs, _guard) = CapturedLogs::install();
    let (status, body) = call(failing()).await;
    assert_eq!(status, 503);
    assert!(!body.contains(CAUSE), "{body}");
    assert_eq!(logs.text(), "", "a conversion logged");
}
