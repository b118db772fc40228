//! [`Gate`]: middleware that decides on a request's head before the inner service sees it,
//! written once for the crate's layers ([`AuthLayer`](crate::auth::AuthLayer) authenticates and
//! checks permissions, [`ThrottleLayer`] counts hits).
//!
//! A [`Decide`] looks at the head and answers with a [`Decision`]: [`Ready`](Decision::Ready)
//! when it knows at once (a token verified before, a counter in memory), or
//! [`Later`](Decision::Later) with a future when it must wait (a database, Redis). A ready
//! decision costs no allocation and no clone of the inner service; the response future
//! ([`future::ResponseFuture`]) is a pin-projected state machine, as tower-http's.
//!
//! A gate of your own: refuse writes while the shop is in maintenance.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use http::{Request, Response, StatusCode, request::Parts};
//! use tower::{ServiceExt, service_fn};
//! use wxrest::ApiError;
//! use wxrest::gate::{Decide, Decision, Gate};
//!
//! #[derive(Clone)]
//! struct ReadOnly(Arc<AtomicBool>);
//!
//! impl Decide for ReadOnly {
//!     fn decide(&self, parts: Parts) -> Decision {
//!         if self.0.load(Ordering::Relaxed) && parts.method != http::Method::GET {
//!             let busy = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "maintenance", "Back soon.");
//!             return Decision::Ready(Err(busy));
//!         }
//!         Decision::Ready(Ok(parts))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let inner = service_fn(|_req: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("done")))
//! });
//! let gate = Gate::new(ReadOnly(Arc::new(AtomicBool::new(true))), inner);
//! let post = Request::post("/orders").body(String::new()).unwrap();
//! assert_eq!(gate.oneshot(post).await.unwrap().status(), 503);
//! # });
//! ```
//!
#![cfg_attr(
    feature = "throttle",
    doc = "[`ThrottleLayer`]: crate::throttle::ThrottleLayer"
)]
#![cfg_attr(not(feature = "throttle"), doc = "[`ThrottleLayer`]: crate")]

pub mod future;

use std::task::{Context, Poll};

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request};
use tower::Service;

use crate::auth::BoxFuture;
use crate::error::ApiError;
use future::ResponseFuture;

/// Headers a [`Decide`] of this crate wants on the inner service's response (the throttle's
/// `RateLimit` fields): put in the request's extensions, taken out by the [`Gate`] before the
/// inner service sees the request, and appended to its response.
#[derive(Clone, Debug)]
pub(crate) struct ResponseHeaders(pub(crate) HeaderMap);

impl ResponseHeaders {
    /// Takes the headers out of `parts`, if a decision put some there.
    pub(crate) fn take(parts: &mut Parts) -> Option<HeaderMap> {
        parts.extensions.remove::<ResponseHeaders>().map(|h| h.0)
    }
}

/// What a [`Decide`] answers: the head to go on with (possibly enriched, e.g. with an
/// [`Identity`](crate::auth::Identity)), or the error to answer with.
// The head moves through by value: boxing it would allocate on every request.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Decided at once: no allocation, the inner service is called directly.
    Ready(Result<Parts, ApiError>),
    /// Decided once the future completes (I/O: a database, Redis).
    Later(BoxFuture<'static, Result<Parts, ApiError>>),
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Ready(Ok(_)) => f.write_str("Decision::Ready(Ok(..))"),
            Decision::Ready(Err(err)) => write!(f, "Decision::Ready(Err({err:?}))"),
            Decision::Later(_) => f.write_str("Decision::Later(..)"),
        }
    }
}

/// Decides on a request head: the behaviour a [`Gate`] runs (tower-http's
/// `ValidateRequest` idea, with an asynchronous way out).
///
/// See the [module docs](self) for an example.
pub trait Decide: Send + Sync + 'static {
    /// Lets the request through (with its head), refuses it, or decides later.
    fn decide(&self, parts: Parts) -> Decision;
}

/// The service of a gating layer: runs `D` on each request's head, then either answers with
/// its refusal or calls `S`.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{Layer, service_fn};
/// use wxrest::auth::{IsAuthenticated, JwtAuthLayer, JwtConfig};
/// use wxrest::gate::Gate;
///
/// let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
/// let inner = service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::from("secret")))
/// });
/// let svc: Gate<_, _> = JwtAuthLayer::new(jwt).permission(IsAuthenticated).layer(inner);
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct Gate<D, S> {
    decide: D,
    inner: S,
}

impl<D, S> Gate<D, S> {
    /// Gates `inner` with `decide`.
    pub fn new(decide: D, inner: S) -> Self {
        Self { decide, inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<D, S, ReqBody, ResBody> Service<Request<ReqBody>> for Gate<D, S>
where
    D: Decide,
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        match self.decide.decide(parts) {
            Decision::Ready(Ok(mut parts)) => {
                let extra = ResponseHeaders::take(&mut parts);
                ResponseFuture::calling(self.inner.call(Request::from_parts(parts, body)), extra)
            }
            Decision::Ready(Err(refusal)) => ResponseFuture::refused(refusal),
            Decision::Later(decision) => {
                // The ready service goes with the request; a fresh clone stays for the next call.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::deciding(decision, body, inner)
            }
        }
    }
}
