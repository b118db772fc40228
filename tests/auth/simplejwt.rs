//! Moving off Django with djangorestframework-simplejwt: tokens Django minted with the same
//! `SECRET_KEY` keep working, with the user, staff and active state read from the user store;
//! simplejwt refresh tokens refresh (without rotation) until logout, logout-all or
//! deactivation end them; a logout holds until the token's own `exp`, on memory and Redis.

use std::sync::Arc;

use std::time::Duration;

use crate::auth_fixtures::{MemoryUsers, now, staff, user};
use crate::databases::{redis_url, unique_prefix};
use crate::oneshot::{get, post_json, send};
use axum::{Router, routing};
use serde_json::{Value, json};
use wxrest::auth::{
    IsAdminUser, IsAuthenticated, JwtAuthLayer, JwtConfig, MemoryRevocationStore,
    RedisRevocationStore, RevocationStore, TokenService, token_routes,
};

/// Django's `SECRET_KEY` (simplejwt signs with it by default).
const SECRET_KEY: &str = "django-insecure-0123456789abcdefghijklmnopqrstuvwxyz!@";

/// A token exactly as simplejwt's `AccessToken`/`RefreshToken` writes it (default settings
/// unless `user_id_claim`/`token_type_claim` say otherwise).
fn simplejwt_token(kind: &str, user_id: i64, names: (&str, &str)) -> String {
    let lifetime = if kind == "access" { 300 } else { 86_400 };
    simplejwt_token_for(kind, user_id, names, lifetime)
}

/// [`simplejwt_token`] living `lifetime` seconds.
fn simplejwt_token_for(kind: &str, user_id: i64, names: (&str, &str), lifetime: i64) -> String {
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
    site_on(jwt, Arc::new(MemoryRevocationStore::new()))
}

fn site_on(jwt: JwtConfig, store: Arc<dyn RevocationStore>) -> Site {
    let users = Arc::new(MemoryUsers::with([
        (user(1, "alice"), "pw-alice"),
        (staff(2, "boss"), "pw-boss"),
    ]));
    let tokens = TokenService::new(jwt)
        .with_users(users.clone())
        .with_store(store);
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

/// The same site on each revocation store: memory, and Redis when `WXREST_TEST_REDIS` is set.
fn sites(jwt: JwtConfig, test: &str) -> Vec<(&'static str, Site)> {
    let mut sites = vec![(
        "memory",
        site_on(jwt.clone(), Arc::new(MemoryRevocationStore::new())),
    )];
    if let Some(url) = redis_url() {
        let store = RedisRevocationStore::open(&url)
            .unwrap()
            .prefix(unique_prefix(test));
        sites.push(("redis", site_on(jwt, Arc::new(store))));
    }
    sites
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

    /// `POST /auth/logout-all/` with `token`: its status.
    async fn logout_all(&self, token: &str) -> u16 {
        let auth = format!("Bearer {token}");
        let request = post_json("/auth/logout-all/", Some(&auth), json!({}));
        send(&self.app, request).await.0.as_u16()
    }

    async fn logout(&self, token: &str) -> u16 {
        self.logout_with(token, json!({})).await.0
    }

    async fn logout_with(&self, token: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = send(
            &self.app,
            post_json("/auth/logout/", Some(&format!("Bearer {token}")), body),
        )
        .await;
        (status.as_u16(), body)
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
    assert_eq!(site.logout_all(&ours).await, 200);
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

#[tokio::test]
async fn logout_with_a_simplejwt_refresh_token_in_the_body_ends_it() {
    for (store, site) in sites(JwtConfig::hs256(SECRET_KEY).unwrap(), "dj-logout-body") {
        let django_refresh = refresh(1);
        assert_eq!(site.refresh(&django_refresh).await.0, 200, "{store}");
        let (status, body) = site
            .logout_with(&access(1), json!({"refresh": django_refresh}))
            .await;
        assert_eq!(status, 200, "{store}: {body}");
        assert_eq!(
            site.refresh(&django_refresh).await,
            (
                401,
                json!({"detail": "Token has been revoked.", "code": "token_revoked"})
            ),
            "{store}"
        );
        // Another refresh token of the same user is another session.
        assert_eq!(site.refresh(&refresh(1)).await.0, 200, "{store}");
    }
}

#[tokio::test]
async fn a_logged_out_simplejwt_refresh_token_stays_revoked_past_an_access_lifetime() {
    // Our access tokens live 1 s here; Django's refresh token a day.
    let jwt = JwtConfig::hs256(SECRET_KEY)
        .unwrap()
        .access_lifetime(Duration::from_secs(1));
    for (store, site) in sites(jwt, "dj-logout-exp") {
        let (by_access, in_body) = (refresh(1), refresh(1));
        let (_, body) = site.refresh(&by_access).await;
        let ours = body["access"].as_str().unwrap().to_owned();
        // One ended by logging out with an access token issued from it, one named in the body.
        assert_eq!(site.logout(&ours).await, 200, "{store}");
        let (status, _) = site
            .logout_with(&access(1), json!({"refresh": in_body}))
            .await;
        assert_eq!(status, 200, "{store}");
        // Past any access token's life (and a marker kept that long), both stay revoked.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for r in [&by_access, &in_body] {
            assert_eq!(site.refresh(r).await.1["code"], "token_revoked", "{store}");
        }
    }
}

#[tokio::test]
async fn a_logged_out_simplejwt_access_token_stays_revoked_until_its_exp() {
    // Django's access tokens outlive ours (5 minutes against 1 second).
    let jwt = JwtConfig::hs256(SECRET_KEY)
        .unwrap()
        .access_lifetime(Duration::from_secs(1));
    for (store, site) in sites(jwt, "dj-access-exp") {
        let django_access = access(1);
        assert_eq!(site.logout(&django_access).await, 200, "{store}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            site.get("/me", &django_access).await.1["code"],
            "token_revoked",
            "{store}"
        );
    }
}

#[tokio::test]
async fn a_simplejwt_token_outliving_the_store_is_not_revocable_and_says_so() {
    // Our refresh lifetime is 7 days; this refresh token lives 30.
    let site = site();
    let long = simplejwt_token_for("refresh", 1, ("user_id", "token_type"), 30 * 86_400);
    let django_access = access(1);
    let (status, body) = site
        .logout_with(&django_access, json!({"refresh": long}))
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({
                "detail": "This token cannot be revoked before it expires; log out on every device to end it.",
                "code": "token_not_revocable"
            })
        )
    );
    // Nothing was revoked: no half-done logout.
    assert_eq!(site.get("/me", &django_access).await.0, 200);
    // Logging out everywhere ends it.
    let (_, body) = site.refresh(&long).await;
    let ours = body["access"].as_str().unwrap().to_owned();
    assert_eq!(site.logout_all(&ours).await, 200);
    assert_eq!(site.refresh(&long).await.1["code"], "token_revoked");
}
