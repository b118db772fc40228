//! What the auth layer needs to know about user accounts ([`AuthUser`], [`UserLookup`]).

use async_trait::async_trait;

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
    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        (**self).bump_token_version(id).await
    }
}

/// A check run before each password login is tried, e.g. a limit per username
/// ([`UsernameThrottle`]): an `Err` answers the request instead, before any password is
/// hashed.
///
#[cfg_attr(
    feature = "throttle",
    doc = "[`UsernameThrottle`]: crate::throttle::UsernameThrottle"
)]
#[cfg_attr(not(feature = "throttle"), doc = "[`UsernameThrottle`]: crate")]
///
/// ```
/// use async_trait::async_trait;
/// use wxrest::ApiError;
/// use wxrest::auth::LoginAttempts;
///
/// /// Refuses logins to the account `root` outright.
/// struct NoRoot;
///
/// #[async_trait]
/// impl LoginAttempts for NoRoot {
///     async fn attempt(&self, username: &str) -> Result<(), ApiError> {
///         if username == "root" {
///             return Err(ApiError::bad_request("invalid", "Unable to log in with provided credentials."));
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait LoginAttempts: Send + Sync + 'static {
    /// Called with the username of each password login before it is checked.
    async fn attempt(&self, username: &str) -> Result<(), crate::error::ApiError>;
}
