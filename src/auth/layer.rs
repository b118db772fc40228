//! [`AuthLayer`] and its service (documented in the `auth` module).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use tower::{Layer, Service};

use super::authenticator::{Authenticator, JwtAuthenticator};
use super::error::AuthError;
use super::identity::{AuthState, Identity, reject};
use super::permission::{AllowAny, Permission, RequestContext};
use super::tokens::TokenService;
use crate::error::ApiError;

/// The layer. Cheap to clone.
#[derive(Clone)]
pub struct AuthLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    authenticators: Vec<Arc<dyn Authenticator>>,
    permission: Arc<dyn Permission>,
}

impl Default for AuthLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authenticators", &self.config.authenticators.len())
            .finish()
    }
}

impl AuthLayer {
    /// No authenticators, [`AllowAny`].
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                authenticators: Vec::new(),
                permission: Arc::new(AllowAny),
            }),
        }
    }

    /// Appends an authenticator (DRF's `authentication_classes`, in order).
    #[must_use]
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        Arc::make_mut(&mut self.config)
            .authenticators
            .push(Arc::new(authenticator));
        self
    }

    /// Sets the permission (DRF's `permission_classes`; compose several with
    /// [`PermissionExt`](super::PermissionExt)).
    #[must_use]
    pub fn permission(mut self, permission: impl Permission) -> Self {
        Arc::make_mut(&mut self.config).permission = Arc::new(permission);
        self
    }
}

/// The common case: one [`JwtAuthenticator`].
///
/// ```
/// use wxrest::auth::{IsAuthenticated, JwtAuthLayer, JwtConfig};
/// let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
/// let layer = JwtAuthLayer::new(jwt).permission(IsAuthenticated);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct JwtAuthLayer;

impl JwtAuthLayer {
    /// An [`AuthLayer`] with a JWT authenticator reading the `Authorization` header.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(tokens: impl Into<TokenService>) -> AuthLayer {
        AuthLayer::new().authenticator(JwtAuthenticator::new(tokens))
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around yours.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
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
        // The ready service goes with the request; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let config = self.config.clone();
        ResponseFuture::new(
            Box::pin(async move { config.decide(parts).await }),
            body,
            inner,
        )
    }
}

impl Config {
    async fn decide(&self, mut parts: Parts) -> Result<Parts, ApiError> {
        // An outer auth layer may have authenticated the request already: this one then only
        // applies its permission (authenticate once for the app, permissions per route).
        let outer = parts.extensions.get::<AuthState>().cloned();
        let inherited = outer.is_some() && self.authenticators.is_empty();
        let challenge = self
            .authenticators
            .first()
            .and_then(|a| a.challenge(&parts))
            .or_else(|| outer.and_then(|state| state.challenge));
        let mut found: Option<Identity> = None;
        if parts.extensions.get::<Identity>().is_none() {
            for authenticator in &self.authenticators {
                match authenticator.authenticate(&parts).await {
                    Ok(None) => continue,
                    Ok(Some(identity)) => {
                        found = Some(identity);
                        break;
                    }
                    Err(err) => {
                        log_failure(&err);
                        return Err(reject(challenge.as_ref(), err));
                    }
                }
            }
        }
        {
            let identity = found
                .as_ref()
                .or_else(|| parts.extensions.get::<Identity>());
            if identity.is_some_and(|i| !i.is_active) {
                return Err(reject(challenge.as_ref(), AuthError::UserInactive));
            }
            let ctx = RequestContext::new(&parts, identity);
            if let Err(denied) = self.permission.check(&ctx) {
                let err = match identity {
                    None => AuthError::NotAuthenticated,
                    Some(_) => AuthError::PermissionDenied(denied.message),
                };
                return Err(reject(challenge.as_ref(), err));
            }
        }
        if !inherited {
            parts.extensions.insert(AuthState { challenge });
        }
        if let Some(identity) = found {
            // Fills `user_id` in the request span when the app's trace layer declares it.
            tracing::Span::current().record("user_id", identity.user_id);
            parts.extensions.insert(identity);
        }
        Ok(parts)
    }
}

/// The counter of refused requests, labelled `reason` (the [`AuthError::code`]:
/// `not_authenticated`, `token_expired`, `token_invalid`, `token_revoked`,
/// `permission_denied`, `service_unavailable`, ...). Counted where every authentication or
/// permission failure becomes a response (this layer, the [`Identity`] extractor and the
/// viewsets' permission checks), through the `metrics` facade: free until the application
/// installs a recorder (e.g. a Prometheus exporter).
pub const AUTH_FAILURES_METRIC: &str = "wxrest_auth_failures_total";

fn log_failure(err: &AuthError) {
    tracing::debug!(code = err.code(), reason = %err, "authentication failed");
}

/// The response future of [`AuthService`]: authenticate, then call the inner service.
pub type ResponseFuture<S, B> = crate::gate::GateFuture<S, B>;
