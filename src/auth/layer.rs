//! [`AuthLayer`] and its service (documented in the `auth` module).

use std::sync::Arc;

use http::HeaderValue;
use http::request::Parts;
use tower::Layer;

use super::authenticator::{Authenticator, JwtAuthenticator};
use super::error::AuthError;
use super::identity::{AuthState, Identity, reject};
use super::permission::{AllowAny, Permission, RequestContext};
use super::tokens::TokenService;
use crate::error::ApiError;
use crate::gate::{Decide, Decision, Gate};

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
    type Service = Gate<AuthLayer, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate::new(self.clone(), inner)
    }
}

/// Authenticators in order, then the permission. Decided at once when every authenticator
/// that answers can answer without waiting (no credentials, a token verified before); the
/// first one that must wait (a first sight of a token, a password) continues asynchronously.
impl Decide for AuthLayer {
    fn decide(&self, parts: Parts) -> Decision {
        let config = &self.config;
        if parts.extensions.get::<Identity>().is_none() {
            for (index, authenticator) in config.authenticators.iter().enumerate() {
                match authenticator.authenticate_now(&parts) {
                    Some(Ok(None)) => continue,
                    Some(Ok(Some(identity))) => {
                        return Decision::Ready(config.admit(parts, Some(identity)));
                    }
                    Some(Err(err)) => return Decision::Ready(Err(config.refuse(&parts, err))),
                    None => {
                        let config = config.clone();
                        return Decision::Later(Box::pin(async move {
                            config.authenticate_from(index, parts).await
                        }));
                    }
                }
            }
        }
        Decision::Ready(config.admit(parts, None))
    }
}

impl Config {
    /// Runs the authenticators from `start` on, waiting for each, then [`admit`](Self::admit).
    async fn authenticate_from(
        self: Arc<Self>,
        start: usize,
        parts: Parts,
    ) -> Result<Parts, ApiError> {
        let mut found = None;
        for authenticator in &self.authenticators[start..] {
            match authenticator.authenticate(&parts).await {
                Ok(None) => continue,
                Ok(Some(identity)) => {
                    found = Some(identity);
                    break;
                }
                Err(err) => return Err(self.refuse(&parts, err)),
            }
        }
        self.admit(parts, found)
    }

    /// The permission decides on the identity found (or the one an outer layer inserted);
    /// admitted, the head carries the identity and what a later 401 needs.
    fn admit(&self, mut parts: Parts, found: Option<Identity>) -> Result<Parts, ApiError> {
        {
            let identity = found
                .as_ref()
                .or_else(|| parts.extensions.get::<Identity>());
            if identity.is_some_and(|i| !i.is_active) {
                return Err(self.reject(&parts, AuthError::UserInactive));
            }
            let ctx = RequestContext::new(&parts, identity);
            if let Err(denied) = self.permission.check(&ctx) {
                let err = match identity {
                    None => AuthError::NotAuthenticated,
                    Some(_) => AuthError::PermissionDenied(denied.message),
                };
                return Err(self.reject(&parts, err));
            }
        }
        // An outer auth layer may have authenticated the request already: this one then only
        // applied its permission (authenticate once for the app, permissions per route).
        let inherited =
            self.authenticators.is_empty() && parts.extensions.get::<AuthState>().is_some();
        if !inherited {
            let challenge = self.challenge(&parts);
            parts.extensions.insert(AuthState { challenge });
        }
        if let Some(identity) = found {
            // Fills `user_id` in the request span when the app's trace layer declares it.
            tracing::Span::current().record("user_id", identity.user_id);
            parts.extensions.insert(identity);
        }
        Ok(parts)
    }

    /// The `WWW-Authenticate` value of a 401: the first authenticator's, else an outer layer's.
    fn challenge(&self, parts: &Parts) -> Option<HeaderValue> {
        self.authenticators
            .first()
            .and_then(|a| a.challenge(parts))
            .or_else(|| {
                parts
                    .extensions
                    .get::<AuthState>()
                    .and_then(|state| state.challenge.clone())
            })
    }

    /// An authenticator's error, logged, as the response.
    fn refuse(&self, parts: &Parts, err: AuthError) -> ApiError {
        log_failure(&err);
        self.reject(parts, err)
    }

    fn reject(&self, parts: &Parts, err: AuthError) -> ApiError {
        reject(self.challenge(parts).as_ref(), err)
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
