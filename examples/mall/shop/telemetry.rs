//! What operators see of a running mall: request ids (`X-Request-Id`, taken from the request
//! when it carries a sane one, else generated, echoed in the response and put in the request's
//! log span) and Prometheus metrics on `GET /metrics`.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route` (the route template, `unmatched` for 404s), `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route` |
//! | `wxrest_auth_failures_total` | counter | `reason` (the error `code`) |
//! | `wxrest_wechat_errors_total` | counter | `kind` |
//!
//! One Prometheus recorder serves the whole process (the `metrics` facade has one global
//! recorder), so several shops built in one process (the tests) share it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Requests served, by method, route template and status.
pub const REQUESTS_METRIC: &str = "http_requests_total";

/// Request latency in seconds, by method and route template.
pub const LATENCY_METRIC: &str = "http_request_duration_seconds";

/// Latency buckets: from 5 ms (a cached read) to 10 s (a WeChat call at its deadline).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Longest client-provided request id kept; longer ones are replaced by a generated id.
const MAX_REQUEST_ID_LEN: usize = 128;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use.
///
/// When another recorder is already installed (an embedding application's), the mall keeps a
/// private one: `/metrics` then shows nothing, and a warning says why.
pub fn prometheus() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| match builder().install_recorder() {
            Ok(handle) => handle,
            Err(err) => {
                tracing::warn!(error = %err, "a metrics recorder is already installed; /metrics will be empty");
                builder().build_recorder().handle()
            }
        })
        .clone()
}

fn builder() -> PrometheusBuilder {
    // Only an empty bucket list is refused.
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(LATENCY_METRIC.into()), &LATENCY_BUCKETS)
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "latency buckets refused; using summaries");
            PrometheusBuilder::new()
        })
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics_view(
    axum::extract::State(handle): axum::extract::State<PrometheusHandle>,
) -> Response {
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// Counts every routed request and records its latency. Add it with `Router::layer`, which
/// runs it after routing, so the route template ([`MatchedPath`]) is known: labels stay few
/// whatever paths clients send.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        REQUESTS_METRIC,
        "method" => method,
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(LATENCY_METRIC, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Drops a client-provided `X-Request-Id` that is too long or not printable ASCII, so the
/// request-id layer generates one instead: a client cannot put arbitrary text in our logs.
pub async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let acceptable = req.headers().get(REQUEST_ID).is_none_or(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes.iter().all(|b| b.is_ascii_graphic())
    });
    if !acceptable {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// The request id of `req` for its log span (set by the request-id layer).
pub fn request_id_of<B>(req: &http::Request<B>) -> &str {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
