//! The token endpoints (documented on [`token_routes`]).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::account::check_password;
use super::error::AuthError;
use super::identity::Identity;
use super::layer::JwtAuthLayer;
use super::permission::IsAuthenticated;
use super::tokens::{LegacyRefreshError, TokenService};
use crate::error::ApiError;
use crate::parsers::JsonBody;
use crate::validation::{FieldError, Fields};

/// The token endpoints as a router, speaking djangorestframework-jwt's shapes and ours. Mount
/// them where you like (usually under `/auth`); every route answers with and without the
/// trailing slash.
///
/// | route | body | answer |
/// |---|---|---|
/// | `POST /token/` | `{"username", "password"}` | `{"token", "refresh"}`; 400 `non_field_errors` |
/// | `POST /token/refresh/` | `{"refresh"}` (ours rotate; djangorestframework-simplejwt's are reused) | `{"access", "token", "refresh"}`; 401 with `code` |
/// | `POST /token/refresh/` | `{"token"}` (drf-jwt) | `{"token"}`; 400 `non_field_errors` |
/// | `POST /token/verify/` | `{"token"}` | `{"token"}`; 400 `non_field_errors` |
/// | `POST /logout/` | `{"refresh"?}` + token | ends this token's session and `refresh`'s (any kind: [`TokenService::revoke`]); 400 `token_not_revocable` |
/// | `POST /logout-all/` | token | ends every token of the user |
///
/// ```
/// use axum::Router;
/// use wxrest::auth::{JwtConfig, TokenService, token_routes};
///
/// let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap());
/// let app: Router = Router::new().nest("/auth", token_routes(tokens));
/// ```
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
    parts: http::request::Parts,
    JsonBody(data): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::new(&data);
    let username = fields.required_str("username");
    let password = fields.required_str("password");
    fields.finish()?;
    let users = tokens
        .users()
        .ok_or_else(|| ApiError::from(AuthError::CannotIssue))?;
    let attempts = tokens.login_attempts().map(|a| &**a);
    let user = check_password(&**users, attempts, &parts, &username, &password)
        .await?
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
        // `access` for djangorestframework-simplejwt clients, `token` for ours.
        return Ok(Json(
            json!({ "access": pair.token, "token": pair.token, "refresh": pair.refresh }),
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
    Err(FieldError::Required.for_field("refresh"))
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

/// The OpenAPI 3.1 fragment of [`token_routes`] mounted at `prefix` (e.g. `/auth`): each
/// endpoint at its trailing-slash form (both forms answer), its body, answers and errors.
///
/// ```
/// use wxrest::auth::token_routes_openapi;
/// use wxrest::openapi::ApiDoc;
///
/// let doc = ApiDoc::new("Mall API", "1.0.0").merge(token_routes_openapi("/auth")).build();
/// assert!(doc.paths.paths.contains_key("/auth/token/refresh/"));
/// ```
///
/// Needs feature `openapi`.
#[cfg(feature = "openapi")]
pub fn token_routes_openapi(prefix: &str) -> utoipa::openapi::OpenApi {
    use crate::openapi::{
        components, error_response, json_body, json_response, jwt_requirement, schema_ref, string,
    };
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder};
    use utoipa::openapi::{OpenApiBuilder, PathItem, PathsBuilder, Tag};

    const TAG: &str = "auth";
    let prefix = prefix.trim_end_matches('/');
    let token = || string().description(Some("A JWT access token."));
    let refresh = || string().description(Some("A refresh token (single use: rotation)."));
    let object = |fields: &[(&str, bool)]| {
        fields
            .iter()
            .fold(ObjectBuilder::new(), |o, (name, required)| {
                let schema = if *name == "refresh" {
                    refresh()
                } else if *name == "token" {
                    token()
                } else {
                    string()
                };
                let o = o.property(*name, schema);
                if *required { o.required(*name) } else { o }
            })
    };
    let detail = || {
        ObjectBuilder::new()
            .property("detail", string())
            .required("detail")
    };
    let op = |id: &str, summary: &str| {
        OperationBuilder::new()
            .operation_id(Some(id))
            .tag(TAG)
            .summary(Some(summary))
            .description(Some("Answers with and without the trailing slash."))
    };
    let schemas = vec![
        (
            "TokenObtain".to_owned(),
            object(&[("username", true), ("password", true)]).into(),
        ),
        (
            "TokenPair".to_owned(),
            object(&[("token", true), ("refresh", true)]).into(),
        ),
        (
            "TokenRefresh".to_owned(),
            AnyOfBuilder::new()
                .description(Some(
                    "Ours: `{\"refresh\"}`, answered by a new pair (the refresh token is used \
                     up). djangorestframework-jwt's: `{\"token\"}`, answered by `{\"token\"}`.",
                ))
                .item(object(&[("refresh", true)]))
                .item(object(&[("token", true)]))
                .into(),
        ),
        (
            "TokenRefreshed".to_owned(),
            object(&[("token", true), ("refresh", false)]).into(),
        ),
        ("Token".to_owned(), object(&[("token", true)]).into()),
        ("Logout".to_owned(), object(&[("refresh", false)]).into()),
        ("Detail".to_owned(), detail().into()),
    ];

    let obtain = op("auth_token_obtain", "Log in with a username and password")
        .request_body(Some(json_body(schema_ref("TokenObtain"), true)))
        .response("200", json_response("Tokens.", schema_ref("TokenPair")))
        .response(
            "400",
            json_response(
                "`{\"non_field_errors\": [\"Unable to log in with provided credentials.\"]}` or \
                 missing fields.",
                schema_ref("ValidationError"),
            ),
        );
    let refresh_op = op(
        "auth_token_refresh",
        "Exchange a refresh token (or a drf-jwt token)",
    )
    .request_body(Some(json_body(schema_ref("TokenRefresh"), true)))
    .response(
        "200",
        json_response("New tokens.", schema_ref("TokenRefreshed")),
    )
    .response("400", error_response(400).1)
    .response(
        "401",
        json_response(
            "The refresh token is invalid, expired or used up (`token_revoked`: log in again).",
            schema_ref("Error"),
        ),
    );
    let verify = op("auth_token_verify", "Check a token")
        .request_body(Some(json_body(schema_ref("Token"), true)))
        .response(
            "200",
            json_response("The token is valid.", schema_ref("Token")),
        )
        .response(
            "400",
            json_response(
                "`{\"non_field_errors\": [\"Error decoding signature.\"]}` and the like.",
                schema_ref("ValidationError"),
            ),
        );
    let logout = op(
        "auth_logout",
        "End this token (and its refresh token's family)",
    )
    .security(jwt_requirement())
    .request_body(Some(json_body(schema_ref("Logout"), false)))
    .response("200", json_response("Logged out.", schema_ref("Detail")))
    .response(
        "400",
        json_response(
            "Invalid fields, or `token_not_revocable`: the token outlives what the server \
             remembers (log out everywhere instead); nothing was revoked.",
            schema_ref("Error"),
        ),
    )
    .response("401", error_response(401).1);
    let logout_all = op("auth_logout_all", "End every token of the caller")
        .security(jwt_requirement())
        .response(
            "200",
            json_response("Logged out everywhere.", schema_ref("Detail")),
        )
        .response("401", error_response(401).1);

    let paths = PathsBuilder::new()
        .path(
            format!("{prefix}/token/"),
            PathItem::new(HttpMethod::Post, obtain.build()),
        )
        .path(
            format!("{prefix}/token/refresh/"),
            PathItem::new(HttpMethod::Post, refresh_op.build()),
        )
        .path(
            format!("{prefix}/token/verify/"),
            PathItem::new(HttpMethod::Post, verify.build()),
        )
        .path(
            format!("{prefix}/logout/"),
            PathItem::new(HttpMethod::Post, logout.build()),
        )
        .path(
            format!("{prefix}/logout-all/"),
            PathItem::new(HttpMethod::Post, logout_all.build()),
        );
    OpenApiBuilder::new()
        .paths(paths)
        .components(Some(components(schemas)))
        .tags(Some([Tag::new(TAG)]))
        .build()
}
