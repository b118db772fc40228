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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{OnceLock, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, header};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

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

/// Counts every routed request and records its latency: [`Track`] around each route. Add it
/// with `Router::layer`, which runs it after routing, so the route template ([`MatchedPath`])
/// is known: labels stay few whatever paths clients send.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

/// The service of [`TrackLayer`]: no clone of the inner service, no box, and (after a
/// route's first request with a method and status) no allocation: the metric handles are
/// looked up once and kept in [`Handles`].
#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S, B, ResBody> Service<http::Request<B>> for Track<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.method());
        let route = req.extensions().get::<MatchedPath>().cloned();
        TrackFuture {
            inner: self.inner.call(req),
            start: Instant::now(),
            method,
            route,
        }
    }
}

pin_project! {
    /// The response future of [`Track`]: records when the response is ready.
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
    }
}

impl<F, ResBody, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            Handles::global().record(
                this.method,
                route,
                response.status().as_u16(),
                this.start.elapsed(),
            );
        }
        Poll::Ready(result)
    }
}

/// The request counters and latency histograms in use, by route, method and status: the
/// `metrics` facade would build a labelled key (allocations) and look it up in the registry
/// on every request; here that happens once per combination. Bounded: routes are templates,
/// methods and statuses few.
#[derive(Default)]
pub struct Handles {
    by_route: RwLock<HashMap<String, RouteHandles>>,
}

#[derive(Default)]
struct RouteHandles {
    requests: Vec<(&'static str, u16, Counter)>,
    latency: Vec<(&'static str, Histogram)>,
}

impl RouteHandles {
    fn get(&self, method: &str, status: u16) -> Option<(&Counter, &Histogram)> {
        let counter = self
            .requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, c)| c)?;
        let histogram = self
            .latency
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, h)| h)?;
        Some((counter, histogram))
    }
}

impl Handles {
    /// The process's handles (one recorder per process, as the `metrics` facade).
    pub fn global() -> &'static Handles {
        static HANDLES: OnceLock<Handles> = OnceLock::new();
        HANDLES.get_or_init(Handles::default)
    }

    fn record(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        if RECORDER.get().is_none() {
            // No recorder of ours yet (no `/metrics`): the facade's would be a no-op, and a
            // handle taken now would stay one.
            return;
        }
        let seconds = elapsed.as_secs_f64();
        {
            let by_route = self.by_route.read().unwrap_or_else(|e| e.into_inner());
            if let Some((counter, histogram)) =
                by_route.get(route).and_then(|r| r.get(method, status))
            {
                counter.increment(1);
                histogram.record(seconds);
                return;
            }
        }
        let mut by_route = self.by_route.write().unwrap_or_else(|e| e.into_inner());
        let handles = by_route.entry(route.to_owned()).or_default();
        if !handles
            .requests
            .iter()
            .any(|(m, s, _)| *m == method && *s == status)
        {
            let counter = metrics::counter!(
                REQUESTS_METRIC,
                "method" => method,
                "route" => route.to_owned(),
                "status" => status.to_string()
            );
            handles.requests.push((method, status, counter));
        }
        if !handles.latency.iter().any(|(m, _)| *m == method) {
            let histogram = metrics::histogram!(LATENCY_METRIC, "method" => method, "route" => route.to_owned());
            handles.latency.push((method, histogram));
        }
        if let Some((counter, histogram)) = handles.get(method, status) {
            counter.increment(1);
            histogram.record(seconds);
        }
    }
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
/// A plain request map (`tower::util::MapRequestLayer`): nothing cloned or boxed.
pub fn sanitize_request_id<B>(mut req: http::Request<B>) -> http::Request<B> {
    let acceptable = req.headers().get(REQUEST_ID).is_none_or(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes.iter().all(|b| b.is_ascii_graphic())
    });
    if !acceptable {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// The request id of `req` for its log span (set by the request-id layer).
pub fn request_id_of<B>(req: &http::Request<B>) -> &str {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
