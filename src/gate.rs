//! The response future shared by the crate's middleware: decide on the request head
//! asynchronously (authenticate, count a hit), then either answer with the decision's error or
//! call the inner service. Pin-projected: no box beyond the decision itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use pin_project_lite::pin_project;
use tower::Service;

use crate::error::ApiError;

/// A decision on a request head: the (possibly enriched) head to go on with, or the answer.
pub(crate) type Decision = Pin<Box<dyn Future<Output = Result<Parts, ApiError>> + Send>>;

pin_project! {
    /// The response future of the crate's layers ([`AuthService`](crate::auth::AuthService),
    /// [`Throttle`](crate::throttle::Throttle)): decide, then call the inner service.
    pub struct GateFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Deciding {
            fut: Decision,
            body: Option<B>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            fut: S::Future,
        },
    }
}

impl<S, B> GateFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// Decides with `fut`, then sends the head it returns, with `body`, to `inner` (a ready
    /// service).
    pub(crate) fn new(fut: Decision, body: B, inner: S) -> Self {
        Self {
            state: State::Deciding {
                fut,
                body: Some(body),
                inner: Some(inner),
            },
        }
    }
}

impl<S, B, ResBody> Future for GateFuture<S, B>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Deciding { fut, body, inner } => {
                    let parts = match ready!(fut.as_mut().poll(cx)) {
                        Ok(parts) => parts,
                        Err(err) => return Poll::Ready(Ok(err.into_response())),
                    };
                    let (Some(body), Some(mut inner)) = (body.take(), inner.take()) else {
                        return Poll::Ready(Ok(ApiError::unavailable().into_response()));
                    };
                    let fut = inner.call(Request::from_parts(parts, body));
                    this.state.set(State::Calling { fut });
                }
                StateProj::Calling { fut } => {
                    let response = ready!(fut.poll(cx))?;
                    return Poll::Ready(Ok(response.map(Body::new)));
                }
            }
        }
    }
}
