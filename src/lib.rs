//! # wxrest
//!
//! Django REST Framework's authentication, permissions and viewsets, rebuilt as
//! tower/axum middleware for WeChat mini-program backends.
//!
//! * [`auth`]: the [`AuthLayer`](auth::AuthLayer) with ordered authenticators (JWT, Basic, your
//!   own), composable permissions, DRF's 401/403 semantics and token endpoints. Always there.
//! * `wechat` (feature `wechat`): `code -> openid` login against WeChat (or the bundled fake),
//!   the access_token, and `encryptedData` decryption.
//! * `db` and `user` (features `sqlite`, `postgres`, `mysql`): one pool type over SQLite,
//!   PostgreSQL and MySQL, and the user store.
//! * `viewset` (feature `viewset`): DRF's `ModelViewSet` over a SQL table.
//! * `throttle` (feature `throttle`): DRF's anonymous, per-user and scoped rate limits.
//! * `openapi` (feature `openapi`): an OpenAPI 3.1 document of the viewsets and token
//!   endpoints, and a docs page.
//! * `pay` (feature `pay`): WeChat Pay API v3 for mini-programs.
//! * `server` (feature `server`): serving with header deadlines and a connection bound.
//! * [`gate`]: the middleware shape the auth and throttle layers share (decide on the request
//!   head, then answer or call the inner service), for gates of your own.
//!
//! `default-features = false` leaves the auth core; the default features turn on every part.
//!
//! ```
//! use axum::{routing::get, Router};
//! use wxrest::prelude::*;
//!
//! async fn me(user: Identity) -> String {
//!     format!("hello {}", user.username)
//! }
//!
//! let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(JwtAuthLayer::new(jwt).permission(IsAuthenticated));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(all(
    any(feature = "wechat", feature = "pay"),
    not(any(feature = "rustls", feature = "native-tls"))
))]
compile_error!(
    "wxrest: the `wechat` and `pay` features need a TLS backend to reach WeChat: \
     add the feature `rustls` (rustls on ring) or `native-tls` (the system's TLS)"
);

pub mod auth;
pub mod client;
#[cfg(feature = "db")]
#[cfg_attr(docsrs, doc(cfg(feature = "db")))]
pub mod db;
pub mod dev;
mod error;
pub mod fallbacks;
pub mod gate;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
pub mod parsers;
#[cfg(feature = "pay")]
#[cfg_attr(docsrs, doc(cfg(feature = "pay")))]
pub mod pay;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "throttle")]
#[cfg_attr(docsrs, doc(cfg(feature = "throttle")))]
pub mod throttle;
#[cfg(any(feature = "wechat", feature = "pay"))]
mod upstream;
#[cfg(feature = "db")]
#[cfg_attr(docsrs, doc(cfg(feature = "db")))]
pub mod user;
pub mod validation;
#[cfg(feature = "viewset")]
#[cfg_attr(docsrs, doc(cfg(feature = "viewset")))]
pub mod viewset;
#[cfg(feature = "wechat")]
#[cfg_attr(docsrs, doc(cfg(feature = "wechat")))]
pub mod wechat;

pub use error::{ApiError, BackendError, ErrorCause, NULL_CHARACTERS};

/// The attribute for implementing this crate's async traits ([`UserLookup`](auth::UserLookup),
/// [`Authenticator`](auth::Authenticator), the stores): re-exported so an app needs no
/// `async-trait` dependency of its own.
///
/// ```
/// use wxrest::async_trait;
/// use wxrest::BackendError;
/// use wxrest::auth::{AuthUser, UserLookup};
///
/// struct NoUsers;
///
/// #[async_trait]
/// impl UserLookup for NoUsers {
///     async fn by_id(&self, _: i64) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
///     async fn by_username(&self, _: &str) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
///     async fn verify_password(&self, _: &str, _: &str) -> Result<Option<AuthUser>, BackendError> {
///         Ok(None)
///     }
///     async fn bump_token_version(&self, _: i64) -> Result<Option<i64>, BackendError> { Ok(None) }
/// }
/// ```
pub use async_trait::async_trait;

/// The names most applications need, in one import.
pub mod prelude {
    pub use crate::auth::{
        AllowAny, AuthLayer, Authenticator, BasicAuthenticator, Identity, IsAdminUser,
        IsAuthenticated, IsAuthenticatedOrReadOnly, JwtAuthLayer, JwtAuthenticator, JwtConfig,
        Permission, PermissionExt, TokenService,
    };
    pub use crate::error::ApiError;
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
