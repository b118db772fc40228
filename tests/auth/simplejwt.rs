//! Moving off Django with djangorestframework-simplejwt: tokens Django minted with the same
//! `SECRET_KEY` keep working, with the user, staff and active state read from the user store;
//! simplejwt refresh tokens refresh (without rotation) until logout, logout-all or
//! deactivation end them.

use std::sync::Arc;

use crate::auth_fixtures::{MemoryUsers, now, staff, user};
use crate::oneshot::{get, post_json, send};
use axum::{Router, routing};
use serde_json::{Value, json};
use wxrest::auth::{
    IsAdminUser, IsAuthenticated, JwtAuthLayer, JwtConfig, TokenService, token_routes,
};

/// Django's `SECRET_KEY` (simplejwt signs with it by default).
const SECRET_KEY: &str = "django-insecure-0123456789abcdefghijklmnopqrstuvwxyz!@";

/// A token exactly as simplejwt's `AccessToken`/`RefreshToken` writes it (default settings
/// unless `user_id_claim`/`token_type_claim` say otherwise).
fn simplejwt_token(kind: &str, user_id: i64, names: (&str, &str)) -> String {
    let lifetime = if kind == "access" { 300 } else { 86_400 };
    let mut claims = serde_json::Map::new();
    claims.insert(names.1.into(), json!(kind));
    claims.insert("exp".into(), json!(now() + lifetime));
    claims.insert("iat".into(), json!(now()));
    claims.insert(
        "jti".into(),
        json!(uuid::Uuid::new_v4().simple().to_string()),
    );
    claims.insert(names.0.into(), json!(user_id));
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Value::Object(claims),
        &jsonwebtoken::EncodingKey::from_secret(SECRET_KEY.as_bytes()),
    )
    .unwrap()
}

fn access(user_id: i64) -> String {
    simplejwt_token("access", user_id, ("user_id", "token_type"))
}

fn refresh(user_id: i64) -> String {
    simplejwt_token("refresh", user_id, ("user_id", "token_type"))
}

struct Site {
    app: Router,
    users: Arc<MemoryUsers>,
}

fn site_with(jwt: JwtConfig) -> Site {
    let users = Arc::new(MemoryUsers::with([
        (user(1, "alice"), "pw-alice"),
        (staff(2, "boss"), "pw-boss"),
    ]));
    let tokens = TokenService::new(jwt).with_users(users.clone());
    let me = routing::get(|u: wxrest::auth::Identity| async move {
        axum::Json(json!({"user": u.username, "staff": u.is_staff}))
    });
    let app = Router::new()
        .nest("/auth", token_routes(tokens.clone()))
        .merge(
            Router::new()
                .route("/me", me.clone())
                .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated)),
        )
        .merge(
            Router::new()
                .route("/staff", me)
                .layer(JwtAuthLayer::new(tokens).permission(IsAdminUser)),
        );
    Site { app, users }
}

fn site() -> Site {
    site_with(JwtConfig::hs256(SECRET_KEY).unwrap())
}

impl Site {
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = send(&self.app, get(path, Some(&format!("Bearer {token}")))).await;
        (status.as_u16(), body)
    }

    async fn refresh(&self, refresh: &str) -> (u16, Value) {
        let (status, _, body) = send(
            &self.app,
            post_json("/auth/token/refresh/", None, json!({"refresh": refresh})),
        )
        .await;
        (status.as_u16(), body)
    }

    async fn logout(&self, token: &str) -> u16 {
        let (status, _, _) = send(
            &self.app,
            post_json("/auth/logout/", Some(&format!("Bearer {token}")), json!({})),
        )
        .await;
        status.as_u16()
    }
}

#[tokio::test]
async fn a_simplejwt_access_token_authenticates_its_user() {
    let site = site();
    assert_eq!(
        site.get("/me", &access(1)).await,
        (200, json!({"user": "alice", "staff": false}))
    );
}

#[tokio::test]
async fn staff_rights_come_from_the_user_store_not_the_token() {
    let site = site();
    assert_eq!(
        site.get("/staff", &access(2)).await,
        (200, json!({"user": "boss", "staff": true}))
    );
    let (status, body) = site.get("/staff", &access(1)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("permission_denied"))
    );
}

#[tokio::test]
async fn a_deactivated_or_missing_user_is_401() {
    let site = site();
    let token = access(1);
    site.users.set_active(1, false);
    let (status, body) = site.get("/me", &token).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = site.get("/me", &access(99)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (401, json!("token_invalid"))
    );
}

#[tokio::test]
async fn a_refresh_token_is_never_an_access_token() {
    let site = site();
    let (status, body) = site.get("/me", &refresh(1)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (401, json!("token_invalid"))
    );
}

#[tokio::test]
async fn a_simplejwt_refresh_token_refreshes_without_rotating() {
    let site = site();
    let django_refresh = refresh(1);
    for _ in 0..3 {
        let (status, body) = site.refresh(&django_refresh).await;
        assert_eq!(status, 200, "{body}");
        // simplejwt clients read `access`, ours `token`: both, the same token.
        assert_eq!(body["access"], body["token"]);
        assert_eq!(body["refresh"], json!(django_refresh));
        let access = body["access"].as_str().unwrap();
        assert_eq!(site.get("/me", access).await.0, 200);
    }
}

#[tokio::test]
async fn logout_ends_a_simplejwt_refresh_token_and_its_access_tokens() {
    let site = site();
    let django_refresh = refresh(1);
    let (_, body) = site.refresh(&django_refresh).await;
    let ours = body["access"].as_str().unwrap().to_owned();
    assert_eq!(site.logout(&ours).await, 200);
    assert_eq!(site.get("/me", &ours).await.1["code"], "token_revoked");
    assert_eq!(
        site.refresh(&django_refresh).await.1["code"],
        "token_revoked"
    );
    // A Django access token logs out on its own.
    let django_access = access(1);
    assert_eq!(site.logout(&django_access).await, 200);
    assert_eq!(
        site.get("/me", &django_access).await.1["code"],
        "token_revoked"
    );
}

#[tokio::test]
async fn logout_all_and_deactivation_end_tokens_minted_by_django() {
    let site = site();
    let (django_access, django_refresh) = (access(1), refresh(1));
    let (_, body) = site.refresh(&refresh(1)).await;
    let ours = body["access"].as_str().unwrap().to_owned();
    let (status, _, _) = send(
        &site.app,
        post_json(
            "/auth/logout-all/",
            Some(&format!("Bearer {ours}")),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        site.get("/me", &django_access).await.1["code"],
        "token_revoked"
    );
    assert_eq!(
        site.refresh(&django_refresh).await.1["code"],
        "token_revoked"
    );
    // Deactivation, for another user.
    let boss_refresh = refresh(2);
    site.users.set_active(2, false);
    assert_eq!(site.refresh(&boss_refresh).await.0, 401);
}

#[tokio::test]
async fn custom_claim_names_are_read_as_configured() {
    let site = site_with(
        JwtConfig::hs256(SECRET_KEY)
            .unwrap()
            .simplejwt_claims("uid", "typ"),
    );
    let token = simplejwt_token("access", 2, ("uid", "typ"));
    assert_eq!(
        site.get("/staff", &token).await,
        (200, json!({"user": "boss", "staff": true}))
    );
    let django_refresh = simplejwt_token("refresh", 1, ("uid", "typ"));
    assert_eq!(site.refresh(&django_refresh).await.0, 200);
    // Our own tokens still work under the custom names.
    let (_, body) = site.refresh(&django_refresh).await;
    assert_eq!(
        site.get("/me", body["token"].as_str().unwrap()).await.0,
        200
    );
}
