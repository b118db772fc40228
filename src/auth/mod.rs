//! Authentication and permissions, DRF style, as tower middleware.
//!
//! | DRF | wxrest |
//! |---|---|
//! | `authentication_classes` | [`AuthLayer::authenticator`] ([`JwtAuthenticator`], [`BasicAuthenticator`], closures) |
//! | `permission_classes` | [`AuthLayer::permission`] ([`IsAuthenticated`], [`IsAdminUser`], ..., [`PermissionExt`]) |
//! | `request.user` | the [`Identity`] extractor |
//! | `obtain_jwt_token`, `refresh_jwt_token`, `verify_jwt_token` | [`token_routes`] |
//! | drf-spectacular's schema | [`token_routes_openapi`], [`crate::openapi`] |

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

pub use account::{AuthUser, LoginAttempts, UserLookup};
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
