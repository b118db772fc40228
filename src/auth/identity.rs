//! [`Identity`] (documented in the `auth` module).

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::HeaderValue;
use http::request::Parts;

use super::account::AuthUser;
use super::error::AuthError;
use super::jwt::Claims;
use crate::error::ApiError;

/// How an identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A token of ours (access token).
    Jwt,
    /// A djangorestframework-jwt token (no `token_type`).
    LegacyJwt,
    /// HTTP Basic.
    Basic,
    /// Your own authenticator.
    Custom(&'static str),
}

/// An authenticated user, as the permissions and handlers see it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user's primary key.
    pub user_id: i64,
    /// The username.
    pub username: String,
    /// Django's `is_staff`.
    pub is_staff: bool,
    /// Django's `is_superuser`.
    pub is_superuser: bool,
    /// Inactive identities are refused by the auth layer.
    pub is_active: bool,
    /// How the identity was established.
    pub scheme: Scheme,
    /// The verified claims, when a token established it.
    pub claims: Option<Arc<Claims>>,
}

impl Identity {
    /// An identity from an account row.
    pub fn from_user(user: &AuthUser, scheme: Scheme) -> Self {
        Self {
            user_id: user.id,
            username: user.username.clone(),
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            is_active: user.is_active,
            scheme,
            claims: None,
        }
    }

    /// An identity for a user id and name (for custom authenticators).
    ///
    /// ```
    /// use wxrest::auth::{Identity, Scheme};
    /// let service = Identity::new(7, "cron", Scheme::Custom("api-key"));
    /// assert!(service.is_active && !service.is_staff);
    /// ```
    pub fn new(user_id: i64, username: impl Into<String>, scheme: Scheme) -> Self {
        Self {
            user_id,
            username: username.into(),
            is_staff: false,
            is_superuser: false,
            is_active: true,
            scheme,
            claims: None,
        }
    }

    /// Sets `is_staff`.
    #[must_use]
    pub fn staff(mut self, is_staff: bool) -> Self {
        self.is_staff = is_staff;
        self
    }
}

/// What the auth layer learned about a request, kept in its extensions for later permission
/// checks (viewsets) to answer DRF's 401-or-403 question.
#[derive(Debug, Clone, Default)]
pub struct AuthState {
    /// The `WWW-Authenticate` value for a 401; `None` makes "not authenticated" a 403, as DRF.
    pub challenge: Option<HeaderValue>,
}

impl AuthState {
    /// The response for `err`, with the challenge header on 401s (DRF's exception handler).
    pub fn reject(&self, err: AuthError) -> ApiError {
        reject(self.challenge.as_ref(), err)
    }
}

pub(crate) fn reject(challenge: Option<&HeaderValue>, err: AuthError) -> ApiError {
    metrics::counter!(super::layer::AUTH_FAILURES_METRIC, "reason" => err.code()).increment(1);
    let api = ApiError::from(err);
    if api.status() != http::StatusCode::UNAUTHORIZED {
        return api;
    }
    match challenge {
        Some(value) => api.with_header(http::header::WWW_AUTHENTICATE, value.clone()),
        None => ApiError::new(
            http::StatusCode::FORBIDDEN,
            api.code().to_owned(),
            api.detail().unwrap_or_default().to_owned(),
        ),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(identity) => Ok(identity.clone()),
            None => {
                let state = parts
                    .extensions
                    .get::<AuthState>()
                    .cloned()
                    .unwrap_or_default();
                Err(state.reject(AuthError::NotAuthenticated))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}
