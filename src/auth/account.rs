//! What the auth layer needs to know about user accounts ([`AuthUser`], [`UserLookup`]).

use std::net::IpAddr;

use async_trait::async_trait;
use http::request::Parts;

use super::error::AuthError;
use crate::error::BackendError;

/// The account facts authentication and permissions rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// Primary key.
    pub id: i64,
    /// Django's `username` (for WeChat users, the openid or a name derived from it).
    pub username: String,
    /// E-mail, empty when unknown (drf-jwt puts it in tokens).
    pub email: String,
    /// Django's `is_staff`: passes [`IsAdminUser`](crate::auth::IsAdminUser).
    pub is_staff: bool,
    /// Django's `is_superuser`.
    pub is_superuser: bool,
    /// Inactive users cannot authenticate.
    pub is_active: bool,
    /// Incremented to end every token issued before ("log out everywhere", deactivation).
    pub token_version: i64,
}

/// Access to user accounts for authentication.
///
/// The auth module knows nothing about databases: token endpoints, Basic authentication and
/// djangorestframework-jwt compatible tokens reach users through this trait. The
/// [`UserStore`] implements it on SQL; tests and other apps can implement it on anything.
///
/// ```
/// use async_trait::async_trait;
/// use wxrest::BackendError;
/// use wxrest::auth::{AuthUser, UserLookup};
///
/// struct OneUser(AuthUser);
///
/// #[async_trait]
/// impl UserLookup for OneUser {
///     async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
///         Ok((self.0.id == id).then(|| self.0.clone()))
///     }
///     async fn by_username(&self, name: &str) -> Result<Option<AuthUser>, BackendError> {
///         Ok((self.0.username == name).then(|| self.0.clone()))
///     }
///     async fn verify_password(&self, name: &str, password: &str)
///         -> Result<Option<AuthUser>, BackendError> {
///         Ok((self.0.username == name && password == "let-me-in").then(|| self.0.clone()))
///     }
///     async fn bump_token_version(&self, _id: i64) -> Result<Option<i64>, BackendError> {
///         Ok(None)
///     }
/// }
/// ```
///
#[cfg_attr(feature = "db", doc = "[`UserStore`]: crate::user::UserStore")]
#[cfg_attr(not(feature = "db"), doc = "[`UserStore`]: crate")]
#[async_trait]
pub trait UserLookup: Send + Sync + 'static {
    /// The user with this primary key.
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError>;

    /// The user with this username (Django's `get_by_natural_key`).
    async fn by_username(&self, username: &str) -> Result<Option<AuthUser>, BackendError>;

    /// The user if `password` is theirs. Implementations must take the same time whether or not
    /// the user exists, and must return inactive users too (the caller decides).
    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AuthUser>, BackendError>;

    /// [`verify_password`](Self::verify_password) for a request from `client` (its address,
    /// `None` when unknown): a lookup that bounds password work per client (the
    /// user store's share of the hashing bound per client) answers
    /// [`BackendError::ClientBusy`] when this client already has its share in use. The token
    /// view and [`BasicAuthenticator`](crate::auth::BasicAuthenticator) call this one; the
    /// default ignores `client`.
    async fn verify_password_from(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<AuthUser>, BackendError> {
        let _ = client;
        self.verify_password(username, password).await
    }

    /// Increments the user's token version, returning the new one (`None`: no such user).
    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError>;
}

#[async_trait]
impl<T: UserLookup + ?Sized> UserLookup for std::sync::Arc<T> {
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
        (**self).by_id(id).await
    }
    async fn by_username(&self, username: &str) -> Result<Option<AuthUser>, BackendError> {
        (**self).by_username(username).await
    }
    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AuthUser>, BackendError> {
        (**self).verify_password(username, password).await
    }
    async fn verify_password_from(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<AuthUser>, BackendError> {
        (**self)
            .verify_password_from(username, password, client)
            .await
    }
    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        (**self).bump_token_version(id).await
    }
}

/// The lock-out around password checks (django-axes' role): asked before each password login
/// is checked (`POST /token/`, `Authorization: Basic`), told of each that failed. An `Err`
/// from [`attempt`](Self::attempt) answers the request instead, before any password is hashed.
/// [`UsernameThrottle`] is the ready one.
///
#[cfg_attr(
    feature = "throttle",
    doc = "[`UsernameThrottle`]: crate::throttle::UsernameThrottle"
)]
#[cfg_attr(not(feature = "throttle"), doc = "[`UsernameThrottle`]: crate")]
///
/// ```
/// use async_trait::async_trait;
/// use wxrest::auth::{AuthError, Login, LoginAttempts};
///
/// /// Refuses password logins to the account `root` outright.
/// struct NoRoot;
///
/// #[async_trait]
/// impl LoginAttempts for NoRoot {
///     async fn attempt(&self, login: &Login<'_>) -> Result<(), AuthError> {
///         if login.username == "root" {
///             return Err(AuthError::InvalidCredentials);
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait LoginAttempts: Send + Sync + 'static {
    /// The address the login in `parts` comes from, as this check counts clients (the
    /// default: the socket's peer; `wxrest::throttle::UsernameThrottle` honours its trusted
    /// proxies). The same address is the client whose share of the password hashing bound the
    /// check uses.
    fn client(&self, parts: &Parts) -> Option<IpAddr> {
        crate::client::client_addr(parts, 0)
    }

    /// Called before the password of `login` is checked.
    async fn attempt(&self, login: &Login<'_>) -> Result<(), AuthError>;

    /// Called after the password of `login` did not match (or the user does not exist).
    /// Only failures are reported: a correct password, a busy hashing bound or a refused
    /// attempt are not.
    async fn failed(&self, login: &Login<'_>) {
        let _ = login;
    }
}

/// A shared check (`Arc<dyn LoginAttempts>` or `Arc<T>`) is a check too: one lock-out for
/// the token view and the Basic authenticator.
#[async_trait]
impl<T: LoginAttempts + ?Sized> LoginAttempts for std::sync::Arc<T> {
    fn client(&self, parts: &Parts) -> Option<IpAddr> {
        (**self).client(parts)
    }
    async fn attempt(&self, login: &Login<'_>) -> Result<(), AuthError> {
        (**self).attempt(login).await
    }
    async fn failed(&self, login: &Login<'_>) {
        (**self).failed(login).await
    }
}

/// One password login, as [`LoginAttempts`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The username tried, exactly as sent.
    pub username: &'a str,
    /// The client's address ([`LoginAttempts::client`]); `None` when the request has none.
    pub client: Option<IpAddr>,
}

/// Checks `password` for `username` through the lock-out `attempts`: asks it first, reports a
/// mismatch after, and verifies under the client's share of the hashing bound. The user whose
/// password it is (inactive ones too), `None` when it did not match.
pub(crate) async fn check_password(
    users: &dyn UserLookup,
    attempts: Option<&dyn LoginAttempts>,
    parts: &Parts,
    username: &str,
    password: &str,
) -> Result<Option<AuthUser>, AuthError> {
    let client = match attempts {
        Some(attempts) => attempts.client(parts),
        None => crate::client::client_addr(parts, 0),
    };
    let login = Login { username, client };
    if let Some(attempts) = attempts {
        attempts.attempt(&login).await?;
    }
    let user = users
        .verify_password_from(username, password, client)
        .await?;
    if user.is_none()
        && let Some(attempts) = attempts
    {
        attempts.failed(&login).await;
    }
    Ok(user)
}
