//! Token endpoints, speaking djangorestframework-jwt's shapes and ours. Mount them where you
//! like (usually under `/auth`); every route answers with and without the trailing slash.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /token/` | `{"username", "password"}` | `{"token", "refresh"}`; 400 `non_field_errors` |
//! | `POST /token/refresh/` | `{"refresh"}` (rotation) | `{"token", "refresh"}`; 401 with `code` |
//! | `POST /token/refresh/` | `{"token"}` (drf-jwt) | `{"token"}`; 400 `non_field_errors` |
//! | `POST /token/verify/` | `{"token"}` | `{"token"}`; 400 `non_field_errors` |
//! | `POST /logout/` | `{"refresh"?}` + token | ends this token (and the refresh family) |
//! | `POST /logout-all/` | token | ends every token of the user |
//!
//! ```
//! use axum::Router;
//! use wxrest::auth::{JwtConfig, TokenService, token_routes};
//!
//! let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap());
//! let app: Router = Router::new().nest("/auth", token_routes(tokens));
//! ```

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::AuthError;
use super::identity::Identity;
use super::layer::JwtAuthLayer;
use super::permission::IsAuthenticated;
use super::tokens::{LegacyRefreshError, TokenService};
use crate::error::ApiError;
use crate::parsers::{Fields, JsonBody};

/// The token endpoints as a router (see the module docs for the routes).
pub fn token_routes(tokens: TokenService) -> Router {
    let authenticated = Router::new()
        .route("/logout", post(logout))
        .route("/logout/", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/logout-all/", post(logout_all))
        .route_layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated));
    Router::new()
        .route("/token", post(obtain))
        .route("/token/", post(obtain))
        .route("/token/refresh", post(refresh))
        .route("/token/refresh/", post(refresh))
        .route("/token/verify", post(verify))
        .route("/token/verify/", post(verify))
        .merge(authenticated)
        .with_state(tokens)
}

fn non_field(message: impl Into<String>) -> ApiError {
    ApiError::validation([("non_field_errors", message.into())])
}

async fn obtain(
    State(tokens): State<TokenService>,
    JsonBody(data): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::new(&data);
    let username = fields.required_str("username");
    let password = fields.required_str("password");
    fields.finish()?;
    let users = tokens
        .users()
        .ok_or_else(|| ApiError::from(AuthError::CannotIssue))?;
    let user = users
        .verify_password(&username, &password)
        .await
        .map_err(AuthError::from)?
        .filter(|u| u.is_active)
        .ok_or_else(|| non_field("Unable to log in with provided credentials."))?;
    let pair = tokens.issue(&user).await?;
    Ok(Json(
        json!({ "token": pair.token, "refresh": pair.refresh }),
    ))
}

async fn refresh(
    State(tokens): State<TokenService>,
    JsonBody(data): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::new(&data);
    if let Some(refresh) = fields.optional_str("refresh") {
        fields.finish()?;
        let (pair, _) = tokens.refresh(&refresh).await?;
        return Ok(Json(
            json!({ "token": pair.token, "refresh": pair.refresh }),
        ));
    }
    if data.contains_key("token") {
        let token = fields.required_str("token");
        fields.finish()?;
        return match tokens.refresh_legacy(&token).await {
            Ok(token) => Ok(Json(json!({ "token": token }))),
            Err(LegacyRefreshError::Auth(AuthError::Unavailable(e))) => {
                Err(AuthError::Unavailable(e).into())
            }
            Err(e) => Err(non_field(e.to_string())),
        };
    }
    Err(ApiError::validation([(
        "refresh",
        "This field is required.",
    )]))
}

async fn verify(
    State(tokens): State<TokenService>,
    JsonBody(data): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::new(&data);
    let token = fields.required_str("token");
    fields.finish()?;
    match tokens.authenticate(&token).await {
        Ok(_) => Ok(Json(json!({ "token": token }))),
        Err(AuthError::Unavailable(e)) => Err(AuthError::Unavailable(e).into()),
        Err(AuthError::UnknownUser) => Err(non_field("User doesn't exist.")),
        Err(e) => Err(non_field(e.to_string())),
    }
}

async fn logout(
    State(tokens): State<TokenService>,
    identity: Identity,
    JsonBody(data): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::new(&data);
    let refresh = fields.optional_str("refresh");
    fields.finish()?;
    tokens.revoke(&identity, refresh.as_deref()).await?;
    Ok(Json(json!({ "detail": "Successfully logged out." })))
}

async fn logout_all(
    State(tokens): State<TokenService>,
    identity: Identity,
) -> Result<Json<Value>, ApiError> {
    tokens.logout_all(identity.user_id).await?;
    Ok(Json(json!({ "detail": "Logged out on every device." })))
}
