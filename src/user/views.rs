//! The caller's own profile routes ([`profile_routes`]).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{ProfileUpdate, User, UserStore};
use crate::auth::{Identity, IsAuthenticated, JwtAuthLayer, TokenService};
use crate::error::ApiError;
use crate::parsers::JsonBody;

/// The profile endpoints as a router, authenticated with `tokens`: the caller's own profile,
/// `GET /me/` and `PATCH /me/` (with and without the trailing slash).
///
/// | route | body | answer |
/// |---|---|---|
/// | `GET /me/` | | the caller's [`User`] JSON; 404 when the account is gone |
/// | `PATCH /me/` | any of `nickname`, `avatar_url`, `gender`, `country`, `province`, `city`, `language` (or `nickName`, `avatarUrl`) | the updated user; 400 with DRF field errors |
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::Router;
/// use wxrest::auth::{JwtConfig, TokenService};
/// use wxrest::db::Db;
/// use wxrest::user::{UserStore, profile_routes};
///
/// let users = UserStore::setup(Db::connect("sqlite::memory:").await?).await?;
/// let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!")?)
///     .with_users(users.clone());
/// let app: Router = Router::new().nest("/users", profile_routes(users, tokens));
/// # Ok(())
/// # }
/// ```
pub fn profile_routes(users: UserStore, tokens: TokenService) -> Router {
    Router::new()
        .route("/me", get(me).patch(update_me))
        .route("/me/", get(me).patch(update_me))
        .route_layer(JwtAuthLayer::new(tokens).permission(IsAuthenticated))
        .with_state(users)
}

async fn me(State(users): State<UserStore>, identity: Identity) -> Result<Json<User>, ApiError> {
    users
        .get(identity.user_id)
        .await?
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

async fn update_me(
    State(users): State<UserStore>,
    identity: Identity,
    JsonBody(data): JsonBody,
) -> Result<Json<User>, ApiError> {
    let update = ProfileUpdate::from_json(&data)?;
    let user = users
        .update_profile(identity.user_id, &update)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::debug!(user_id = user.id, "profile updated");
    Ok(Json(user))
}
