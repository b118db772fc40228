//! [`AuthError`] and its DRF-shaped response.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::error::{ApiError, BackendError};

/// Why a request could not be authenticated or was not permitted, with
/// djangorestframework(-jwt)'s messages.
///
/// Each variant's `Display` is the exact `detail` DRF sends; [`AuthError::code`] is the stable
/// code a client acts on. It renders itself (`IntoResponse`) as DRF's `{"detail", "code"}`.
///
/// ```
/// use axum::response::IntoResponse;
/// use wxrest::auth::AuthError;
///
/// assert_eq!(AuthError::NotAuthenticated.to_string(), "Authentication credentials were not provided.");
/// assert_eq!(AuthError::NotAuthenticated.into_response().status(), 401);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials, and the view needs them (401).
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    /// `exp` is in the past (401, `token_expired`: the client refreshes).
    #[error("Signature has expired.")]
    TokenExpired,
    /// The token is not a JWT or its signature does not match (401).
    #[error("Error decoding signature.")]
    DecodeError,
    /// Wrong algorithm, issuer, audience or `nbf` (401).
    #[error("Incorrect authentication credentials.")]
    InvalidToken,
    /// The claims are not the expected ones (401).
    #[error("Invalid payload.")]
    InvalidPayload,
    /// A refresh token presented as an access token, or the reverse (401).
    #[error("Token has wrong type.")]
    WrongTokenType,
    /// The token's user does not exist (djangorestframework-jwt's message) (401).
    #[error("Invalid signature.")]
    UnknownUser,
    /// The token's user is inactive (401).
    #[error("User account is disabled.")]
    UserDisabled,
    /// An authenticator returned an inactive or deleted user (401).
    #[error("User inactive or deleted.")]
    UserInactive,
    /// Logged out, logged out everywhere, or a reused refresh token (401, `token_revoked`).
    #[error("Token has been revoked.")]
    TokenRevoked,
    /// A logout asked to end a token whose end lies beyond what the revocation store keeps
    /// (its `exp` later than the configured refresh lifetime allows, or expiry not verified):
    /// 400, `token_not_revocable`; log out everywhere to end it.
    #[error("This token cannot be revoked before it expires; log out on every device to end it.")]
    NotRevocable,
    /// A request authenticated by a cookie changes state without proof that it came from the
    /// site's own script (a JSON body or an `X-CSRFToken`/`X-Requested-With` header): 403,
    /// `csrf_failed`, as DRF's `SessionAuthentication`.
    #[error(
        "CSRF Failed: a cookie-authenticated request that changes state needs a JSON body or an X-CSRFToken or X-Requested-With header."
    )]
    CsrfFailed,
    /// `Authorization: JWT` with nothing after it (401).
    #[error("Invalid Authorization header. No credentials provided.")]
    NoCredentials,
    /// `Authorization: JWT a b` (401).
    #[error("Invalid Authorization header. Credentials string should not contain spaces.")]
    CredentialsWithSpaces,
    /// `Authorization: Basic` with nothing after it (401).
    #[error("Invalid basic header. No credentials provided.")]
    BasicNoCredentials,
    /// `Authorization: Basic a b` (401).
    #[error("Invalid basic header. Credentials string should not contain spaces.")]
    BasicWithSpaces,
    /// Basic credentials that are not base64 of `user:password` (401).
    #[error("Invalid basic header. Credentials not correctly base64 encoded.")]
    BasicNotBase64,
    /// Wrong username or password (401).
    #[error("Invalid username/password.")]
    InvalidCredentials,
    /// Authenticated, but the permission says no (403).
    #[error("{}", .0.as_deref().unwrap_or("You do not have permission to perform this action."))]
    PermissionDenied(Option<Cow<'static, str>>),
    /// This process has no private key to sign tokens with (500).
    #[error("Tokens cannot be issued by this server.")]
    CannotIssue,
    /// A backend (database, Redis) needed to decide failed (503). Fails closed.
    #[error("Authentication is temporarily unavailable.")]
    Unavailable(#[source] BackendError),
    /// Too many password checks are running (503 with `Retry-After`): the bound on password
    /// hashing is full; the client waits and tries again.
    #[error("Too many password checks are running, try again in a moment.")]
    Busy {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// Too many attempts from this client or on this account (429 `throttled` with
    /// `Retry-After`, DRF's throttle message): the login lock-out, or the client's share of the
    /// password hashing bound in use.
    #[error("Request was throttled.")]
    Throttled {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// Your own authenticator's failure, with its own message and code (401).
    #[error("{detail}")]
    Custom {
        /// The `code`.
        code: &'static str,
        /// The `detail`.
        detail: Cow<'static, str>,
    },
}

impl AuthError {
    /// The stable code a client can act on.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::NotAuthenticated => "not_authenticated",
            AuthError::TokenExpired => "token_expired",
            AuthError::DecodeError
            | AuthError::InvalidToken
            | AuthError::InvalidPayload
            | AuthError::WrongTokenType
            | AuthError::UnknownUser => "token_invalid",
            AuthError::UserDisabled | AuthError::UserInactive => "user_inactive",
            AuthError::TokenRevoked => "token_revoked",
            AuthError::NotRevocable => "token_not_revocable",
            AuthError::CsrfFailed => "csrf_failed",
            AuthError::NoCredentials
            | AuthError::CredentialsWithSpaces
            | AuthError::BasicNoCredentials
            | AuthError::BasicWithSpaces
            | AuthError::BasicNotBase64 => "authentication_failed",
            AuthError::InvalidCredentials => "authentication_failed",
            AuthError::PermissionDenied(_) => "permission_denied",
            AuthError::CannotIssue => "server_error",
            AuthError::Unavailable(_) => "service_unavailable",
            AuthError::Busy { .. } => "password_checks_busy",
            AuthError::Throttled { .. } => "throttled",
            AuthError::Custom { code, .. } => code,
        }
    }

    /// The HTTP status DRF answers with (401 may become 403 when no authenticator can send a
    /// `WWW-Authenticate` challenge, as in DRF).
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::PermissionDenied(_) | AuthError::CsrfFailed => StatusCode::FORBIDDEN,
            AuthError::NotRevocable => StatusCode::BAD_REQUEST,
            AuthError::CannotIssue => StatusCode::INTERNAL_SERVER_ERROR,
            AuthError::Unavailable(_) | AuthError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<BackendError> for AuthError {
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::Busy { retry_after } => AuthError::Busy { retry_after },
            BackendError::ClientBusy { retry_after } => AuthError::Throttled { retry_after },
            other => AuthError::Unavailable(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        if let AuthError::Throttled { retry_after } = err {
            return ApiError::throttled(retry_after);
        }
        let mut error = ApiError::new(err.status(), err.code(), err.to_string());
        match &err {
            AuthError::Unavailable(source) => {
                error = error.with_cause(format_args!("authentication backend failure: {source}"));
            }
            AuthError::CannotIssue => error = error.with_cause("token issue failed"),
            _ => {}
        }
        match err {
            AuthError::Busy { retry_after } => error.with_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(retry_after.as_secs().max(1)),
            ),
            _ => error,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
