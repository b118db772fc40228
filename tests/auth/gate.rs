//! The gate the auth and throttle layers share: a decision ready at once calls the inner
//! service directly (no clone of it, no box), a decision that must wait takes the inner
//! service along, and a refusal answers without calling it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};
use wxrest::BackendError;

use crate::auth_fixtures;
use wxrest::auth::{IsAuthenticated, JwtAuthLayer, TokenService};
use wxrest::gate::{Decide, Decision, Gate};
use wxrest::throttle::{Hit, MemoryRateStore, RateStore, ThrottleLayer};

/// An inner service that counts its clones and its calls.
#[derive(Default)]
struct Counts {
    clones: AtomicUsize,
    calls: AtomicUsize,
}

struct Counted(Arc<Counts>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.clones.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

impl Service<Request<Body>> for Counted {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(Response::new(Body::from("inner"))) })
    }
}

fn counted() -> (Counted, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    (Counted(counts.clone()), counts)
}

/// Sends `req` through one service instance (as a server connection does) and returns the
/// status.
async fn send<S>(svc: &mut S, req: Request<Body>) -> StatusCode
where
    S: Service<Request<Body>, Response = axum::response::Response, Error = Infallible>,
{
    svc.ready().await.unwrap().call(req).await.unwrap().status()
}

fn request(auth: Option<&str>) -> Request<Body> {
    let mut req = Request::get("/goods");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.body(Body::empty()).unwrap()
}

/// The gate's answer: through, or 403 `closed`.
fn verdict(open: bool, parts: Parts) -> Result<Parts, wxrest::ApiError> {
    if open {
        Ok(parts)
    } else {
        Err(wxrest::ApiError::new(
            StatusCode::FORBIDDEN,
            "closed",
            "Closed.",
        ))
    }
}

/// Decides at once.
#[derive(Clone)]
struct Now(bool);

impl Decide for Now {
    fn decide(&self, parts: Parts) -> Decision {
        Decision::Ready(verdict(self.0, parts))
    }
}

/// Decides after a wait.
#[derive(Clone)]
struct Later(bool);

impl Decide for Later {
    fn decide(&self, parts: Parts) -> Decision {
        let open = self.0;
        Decision::Later(Box::pin(async move {
            tokio::task::yield_now().await;
            verdict(open, parts)
        }))
    }
}

/// Three open requests through one gate: the inner service's (calls, clones).
async fn three_through(decide: impl Decide + Clone) -> (usize, usize) {
    let (inner, counts) = counted();
    let mut gate = Gate::new(decide, inner);
    for _ in 0..3 {
        assert_eq!(send(&mut gate, request(None)).await, StatusCode::OK);
    }
    (
        counts.calls.load(Ordering::SeqCst),
        counts.clones.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn a_ready_decision_calls_the_inner_service_without_cloning_it() {
    assert_eq!(three_through(Now(true)).await, (3, 0));
}

#[tokio::test]
async fn a_decision_that_waits_takes_a_ready_clone_along() {
    assert_eq!(three_through(Later(true)).await, (3, 3));
}

#[tokio::test]
async fn refusals_answer_without_calling_the_inner_service() {
    for refused in [
        Gate::new(Now(false), counted().0)
            .oneshot(request(None))
            .await
            .unwrap(),
        Gate::new(Later(false), counted().0)
            .oneshot(request(None))
            .await
            .unwrap(),
    ] {
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(refused.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "closed");
    }
    let (inner, counts) = counted();
    let mut gate = Gate::new(Now(false), inner);
    assert_eq!(send(&mut gate, request(None)).await, StatusCode::FORBIDDEN);
    assert_eq!(counts.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_auth_layer_waits_for_a_new_token_and_decides_a_seen_one_at_once() {
    let tokens = TokenService::new(auth_fixtures::jwt());
    let token = format!(
        "JWT {}",
        tokens
            .issue(&auth_fixtures::user(1, "alice"))
            .await
            .unwrap()
            .token
    );
    let (inner, counts) = counted();
    let mut svc = JwtAuthLayer::new(tokens)
        .permission(IsAuthenticated)
        .layer(inner);
    // First sight: verified asynchronously (the revocation store may be remote).
    assert_eq!(send(&mut svc, request(Some(&token))).await, StatusCode::OK);
    assert_eq!(counts.clones.load(Ordering::SeqCst), 1);
    // Seen and unchanged since: decided at once.
    for _ in 0..3 {
        assert_eq!(send(&mut svc, request(Some(&token))).await, StatusCode::OK);
    }
    assert_eq!(counts.clones.load(Ordering::SeqCst), 1);
    assert_eq!(counts.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn the_auth_layer_refuses_at_once_with_drf_bodies() {
    let (inner, counts) = counted();
    let mut svc = JwtAuthLayer::new(auth_fixtures::jwt())
        .permission(IsAuthenticated)
        .layer(inner);
    let anonymous = svc
        .ready()
        .await
        .unwrap()
        .call(request(None))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "JWT realm=\"api\"");
    let spaces = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("JWT a b")))
        .await
        .unwrap();
    assert_eq!(spaces.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(counts.calls.load(Ordering::SeqCst), 0);
    assert_eq!(counts.clones.load(Ordering::SeqCst), 0);
}

/// Counts in memory like `MemoryRateStore`, but only through the asynchronous `hit` (as a
/// remote store does).
struct Remote(MemoryRateStore);

#[async_trait]
impl RateStore for Remote {
    async fn hit(&self, key: &str, period: Duration) -> Result<Hit, BackendError> {
        self.0.hit(key, period).await
    }

    async fn peek(&self, key: &str) -> Result<Option<Hit>, BackendError> {
        self.0.peek(key).await
    }
}

#[tokio::test]
async fn the_throttle_counts_in_memory_at_once_and_in_a_remote_store_asynchronously() {
    let rate = "2/min".parse().unwrap();
    for (store, clones_per_request) in [
        (Arc::new(MemoryRateStore::new()) as Arc<dyn RateStore>, 0),
        (
            Arc::new(Remote(MemoryRateStore::new())) as Arc<dyn RateStore>,
            1,
        ),
    ] {
        let (inner, counts) = counted();
        let mut svc = ThrottleLayer::new(store).anon(rate).layer(inner);
        assert_eq!(send(&mut svc, request(None)).await, StatusCode::OK);
        assert_eq!(send(&mut svc, request(None)).await, StatusCode::OK);
        assert_eq!(
            send(&mut svc, request(None)).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(counts.calls.load(Ordering::SeqCst), 2);
        assert_eq!(counts.clones.load(Ordering::SeqCst), 3 * clones_per_request);
    }
}
