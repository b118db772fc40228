//! Authentication and permissions, DRF style, as tower middleware.
//!
//! | DRF | wxrest |
//! |---|---|
//! | `authentication_classes` | [`AuthLayer::authenticator`] ([`JwtAuthenticator`], [`BasicAuthenticator`], closures) |
//! | `permission_classes` | [`AuthLayer::permission`] ([`IsAuthenticated`], [`IsAdminUser`], ..., [`PermissionExt`]) |
//! | `request.user` | the [`Identity`] extractor |
//! | `obtain_jwt_token`, `refresh_jwt_token`, `verify_jwt_token` | [`token_routes`] |
//! | drf-spectacular's schema | [`token_routes_openapi`], [`openapi`] |
//!
//! This module knows nothing of databases, WeChat or viewsets: user accounts reach it through
//! the [`UserLookup`] trait (the [`UserStore`] implements it on SQL), shared state through
//! [`RevocationStore`].
//!
//! # The layer
//!
//! Authenticators run in order until one answers; the identity goes into the request
//! extensions (extract it with [`Identity`]); then the permission decides.
//! An invalid credential is a 401 even on an `AllowAny` route (DRF authenticates every request
//! first); a denied anonymous request is a 401 with `WWW-Authenticate`; a denied
//! authenticated one is a 403.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use wxrest::auth::{IsAdminUser, IsAuthenticated, JwtAuthLayer, JwtConfig};
//!
//! let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
//! let app: Router = Router::new()
//!     .route("/goods", get(|| async { "goods" }))
//!     .route_layer(JwtAuthLayer::new(jwt.clone()).permission(IsAuthenticated))
//!     .merge(
//!         Router::new()
//!             .route("/admin/goods", post(|| async { "created" }))
//!             .route_layer(JwtAuthLayer::new(jwt).permission(IsAdminUser)),
//!     );
//! ```
//!
//! It works on any tower service over `http` requests, not only axum's:
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, service_fn};
//! use wxrest::auth::{IsAuthenticated, JwtAuthLayer, JwtConfig};
//!
//! let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(jwt).permission(IsAuthenticated))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("secret")))
//!     }));
//! # let _ = svc;
//! ```
//!
//! # Authenticators
//!
//! As DRF's `authentication_classes`, each authenticator looks at a request and answers
//! "not mine" (`Ok(None)`: the next one tries), an [`Identity`], or an error (401, stop).
//!
//! Ready ones: [`JwtAuthenticator`] (tokens from the `Authorization` header with `JWT` or
//! `Bearer`, another header, a cookie, or a query parameter) and [`BasicAuthenticator`]. Your
//! own: implement [`Authenticator`], or pass a closure.
//!
//! ```
//! use http::request::Parts;
//! use wxrest::auth::{AuthError, AuthLayer, Identity, Scheme};
//!
//! // An API key for a back-office job, as a closure.
//! let api_key = |parts: &Parts| {
//!     let key = parts.headers.get("x-api-key").cloned();
//!     async move {
//!         match key {
//!             None => Ok(None),
//!             Some(k) if k == "s3cr3t-key" => Ok(Some(Identity::new(0, "cron", Scheme::Custom("api-key")))),
//!             Some(_) => Err(AuthError::InvalidCredentials),
//!         }
//!     }
//! };
//! let layer = AuthLayer::new().authenticator(api_key);
//! # let _ = layer;
//! ```
//!
//! # Who made the request
//!
//! The layer inserts an [`Identity`]; handlers extract it (`Option<Identity>` where anonymous
//! requests are allowed):
//!
//! ```
//! use axum::{routing::get, Router};
//! use wxrest::auth::Identity;
//!
//! async fn me(user: Identity) -> String {
//!     format!("{} (staff: {})", user.username, user.is_staff)
//! }
//! async fn greet(user: Option<Identity>) -> String {
//!     user.map_or("hello, stranger".into(), |u| format!("hello, {}", u.username))
//! }
//! let app: Router = Router::new().route("/me", get(me)).route("/hi", get(greet));
//! ```
//!
//! # Tokens and sessions
//!
//! [`JwtConfig`] pins one algorithm and its keys. Tokens carry djangorestframework-jwt's claims
//! (`user_id`, `username`, `exp`, `email`, `orig_iat`), so tokens minted by a Django backend with
//! the same secret keep working, plus ours: `jti` (a unique id), `token_type` (`access` or
//! `refresh`), `ver` (the user's token version), `fam` (the session) and `gen` (a refresh
//! token's generation).
//!
//! ```
//! use std::time::Duration;
//! use wxrest::auth::JwtConfig;
//!
//! let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!")
//!     .unwrap()
//!     .access_lifetime(Duration::from_secs(15 * 60))
//!     .header_prefixes(["JWT", "Bearer"]);
//! assert!(JwtConfig::hs256("too short").is_err());
//! # let _ = jwt;
//! ```
//!
//! [`TokenService`] issues, authenticates, refreshes and revokes tokens; it is the one object
//! the layer, the token endpoints and the WeChat login share. Sessions end early through a
//! [`RevocationStore`] (see there: rotation with reuse detection, logout, "log out
//! everywhere"):
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use wxrest::auth::{AuthUser, JwtConfig, TokenService};
//!
//! let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap());
//! let alice = AuthUser {
//!     id: 1, username: "alice".into(), email: String::new(), is_staff: false,
//!     is_superuser: false, is_active: true, token_version: 0,
//! };
//! let pair = tokens.issue(&alice).await.unwrap();
//! let who = tokens.authenticate(&pair.token).await.unwrap();
//! assert_eq!(who.username, "alice");
//!
//! // Rotation: the refresh token buys one new pair, once.
//! let (next, _) = tokens.refresh(&pair.refresh).await.unwrap();
//! assert!(tokens.refresh(&pair.refresh).await.is_err());
//! // The reuse ended the whole session: the newest tokens too.
//! assert!(tokens.refresh(&next.refresh).await.is_err());
//! assert!(tokens.authenticate(&next.token).await.is_err());
//! # });
//! ```
//!
#![cfg_attr(not(feature = "openapi"), doc = "[`token_routes_openapi`]: crate")]
#![cfg_attr(feature = "openapi", doc = "[`openapi`]: crate::openapi")]
#![cfg_attr(not(feature = "openapi"), doc = "[`openapi`]: crate")]
#![cfg_attr(feature = "db", doc = "[`UserStore`]: crate::user::UserStore")]
#![cfg_attr(not(feature = "db"), doc = "[`UserStore`]: crate")]

mod account;
mod authenticator;
mod error;
mod identity;
mod jwt;
mod layer;
mod permission;
mod revocation;
mod tokens;
mod views;

pub use account::{AuthUser, Login, LoginAttempts, UserLookup};
pub use authenticator::{
    AuthResult, Authenticator, BasicAuthenticator, BoxFuture, JwtAuthenticator, TokenSource,
};
pub use error::AuthError;
pub use identity::{AuthState, Identity, Scheme};
pub use jwt::{
    Claims, ConfigError, JwtConfig, MIN_SECRET_LEN, TokenPair, TokenType, UserIdClaim,
    VERIFIED_CACHE_CAPACITY,
};
pub use layer::{AUTH_FAILURES_METRIC, AuthLayer, JwtAuthLayer};
pub use permission::{
    AllowAny, And, Denied, IsAdminUser, IsAuthenticated, IsAuthenticatedOrReadOnly, Not,
    ObjectPermission, Or, Permission, PermissionExt, RequestContext, WithMessage,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use revocation::RedisRevocationStore;
pub use revocation::{
    AccessState, DEFAULT_MAX_SESSIONS, DEFAULT_VERSION_TTL, MemoryRevocationStore, RevocationStore,
    Rotation,
};
pub use tokens::{LegacyRefreshError, PASSED_TTL, TokenService};
pub use views::token_routes;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub use views::token_routes_openapi;
