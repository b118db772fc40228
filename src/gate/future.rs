//! The response future of [`Gate`](super::Gate).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request};
use pin_project_lite::pin_project;
use tower::Service;

use crate::auth::BoxFuture;
use crate::error::ApiError;

pin_project! {
    /// The response future of [`Gate`](super::Gate): the inner service's response, a refusal,
    /// or a decision still pending followed by the inner call. No box beyond a pending
    /// decision's own.
    pub struct ResponseFuture<S, B>
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
            decision: BoxFuture<'static, Result<Parts, ApiError>>,
            body: Option<B>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            fut: S::Future,
            extra: Option<HeaderMap>,
        },
        Refused {
            refusal: Option<ApiError>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// The inner service was called at once; `extra` headers go on its response.
    pub(super) fn calling(fut: S::Future, extra: Option<HeaderMap>) -> Self {
        Self {
            state: State::Calling { fut, extra },
        }
    }

    /// Refused at once.
    pub(super) fn refused(refusal: ApiError) -> Self {
        Self {
            state: State::Refused {
                refusal: Some(refusal),
            },
        }
    }

    /// Decides with `decision`, then sends the head it returns, with `body`, to `inner` (a
    /// ready service).
    pub(super) fn deciding(
        decision: BoxFuture<'static, Result<Parts, ApiError>>,
        body: B,
        inner: S,
    ) -> Self {
        Self {
            state: State::Deciding {
                decision,
                body: Some(body),
                inner: Some(inner),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
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
                StateProj::Deciding {
                    decision,
                    body,
                    inner,
                } => {
                    let mut parts = match ready!(decision.as_mut().poll(cx)) {
                        Ok(parts) => parts,
                        Err(err) => return Poll::Ready(Ok(err.into_response())),
                    };
                    let (Some(body), Some(mut inner)) = (body.take(), inner.take()) else {
                        return Poll::Ready(Ok(ApiError::unavailable().into_response()));
                    };
                    let extra = super::ResponseHeaders::take(&mut parts);
                    let fut = inner.call(Request::from_parts(parts, body));
                    this.state.set(State::Calling { fut, extra });
                }
                StateProj::Calling { fut, extra } => {
                    let mut response = ready!(fut.poll(cx))?;
                    if let Some(extra) = extra.take() {
                        response.headers_mut().extend(extra);
                    }
                    return Poll::Ready(Ok(response.map(Body::new)));
                }
                StateProj::Refused { refusal } => {
                    let response = refusal
                        .take()
                        .unwrap_or_else(ApiError::unavailable)
                        .into_response();
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
