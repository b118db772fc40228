//! Token lifecycle over the token endpoints: obtain, refresh (rotation and drf-jwt style),
//! verify, logout, logout everywhere; djangorestframework-jwt tokens; Redis revocation.

use std::sync::Arc;

use crate::auth_fixtures::*;
use crate::databases::{redis_url, unique_prefix};
use crate::oneshot::*;
use axum::Router;
use axum::routing;
use serde_json::{Value, json};
use wxrest::auth::*;

struct Fixture {
    app: Router,
    tokens: TokenService,
    users: Arc<MemoryUsers>,
}

fn fixture_with(tokens: TokenService, users: Arc<MemoryUsers>) -> Fixture {
    let protected = Router::new()
        .route(
            "/me",
            routing::get(|u: Identity| async move { axum::Json(json!({"user": u.username})) }),
        )
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated));
    let app = Router::new()
        .nest("/auth", token_routes(tokens.clone()))
        .merge(protected);
    Fixture { app, tokens, users }
}

fn fixture() -> Fixture {
    let users = Arc::new(MemoryUsers::with([
        (user(1, "alice"), "pw-alice"),
        (staff(2, "boss"), "pw-boss"),
        (inactive(3, "gone"), "pw-gone"),
    ]));
    let tokens = TokenService::new(jwt()).with_users(users.clone());
    fixture_with(tokens, users)
}

impl Fixture {
    async fn post(&self, uri: &str, auth: Option<&str>, body: Value) -> (u16, Value) {
        let (s, _, b) = send(&self.app, post_json(uri, auth, body)).await;
        (s.as_u16(), b)
    }

    async fn me(&self, token: &str) -> (u16, Value) {
        let (s, _, b) = send(&self.app, get("/me", Some(&format!("JWT {token}")))).await;
        (s.as_u16(), b)
    }

    async fn login(&self, username: &str, password: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/auth/token/",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["token"].as_str().unwrap().to_owned(),
            body["refresh"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test]
async fn obtain_gives_a_token_that_passes_the_layer() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    assert_eq!(f.me(&token).await, (200, json!({"user": "alice"})));
}

#[tokio::test]
async fn obtain_answers_with_and_without_trailing_slash() {
    let f = fixture();
    let (status, _) = f
        .post(
            "/auth/token",
            None,
            json!({"username": "alice", "password": "pw-alice"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn obtain_with_wrong_password_or_inactive_user_is_400_non_field_errors() {
    let f = fixture();
    for (u, p) in [("alice", "nope"), ("nobody", "x"), ("gone", "pw-gone")] {
        let (status, body) = f
            .post("/auth/token/", None, json!({"username": u, "password": p}))
            .await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"non_field_errors": ["Unable to log in with provided credentials."]})
        );
    }
}

#[tokio::test]
async fn obtain_with_missing_fields_lists_each_field() {
    let f = fixture();
    let (status, body) = f.post("/auth/token/", None, json!({"username": ""})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"username": ["This field may not be blank."], "password": ["This field is required."]})
    );
}

#[tokio::test]
async fn malformed_json_and_wrong_media_type_get_drf_errors() {
    let f = fixture();
    let req = http::Request::post("/auth/token/")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"username\": "))
        .unwrap();
    let (status, _, body) = send(&f.app, req).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{body}"
    );
    let req = http::Request::post("/auth/token/")
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("username=alice"))
        .unwrap();
    let (status, _, body) = send(&f.app, req).await;
    assert_eq!(status, 415);
    assert_eq!(
        body["detail"],
        "Unsupported media type \"text/plain\" in request."
    );
    // Form posts are parsed, as DRF's FormParser does.
    let req = http::Request::post("/auth/token/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from("username=alice&password=pw-alice"))
        .unwrap();
    assert_eq!(send(&f.app, req).await.0, 200);
}

#[tokio::test]
async fn refresh_rotates_the_pair() {
    let f = fixture();
    let (_, refresh) = f.login("alice", "pw-alice").await;
    let (status, body) = f
        .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(status, 200, "{body}");
    let next = body["refresh"].as_str().unwrap();
    assert_ne!(next, refresh);
    assert_eq!(f.me(body["token"].as_str().unwrap()).await.0, 200);
    let (status, _) = f
        .post("/auth/token/refresh/", None, json!({"refresh": next}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reused_refresh_token_revokes_its_family() {
    let f = fixture();
    let (_, first) = f.login("alice", "pw-alice").await;
    let (_, body) = f
        .post("/auth/token/refresh/", None, json!({"refresh": first}))
        .await;
    let second = body["refresh"].as_str().unwrap().to_owned();
    // The stolen first token comes back.
    let (status, body) = f
        .post("/auth/token/refresh/", None, json!({"refresh": first}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"detail": "Token has been revoked.", "code": "token_revoked"})
    );
    // The legitimate holder's newer token is dead too: the whole family is.
    let (status, body) = f
        .post("/auth/token/refresh/", None, json!({"refresh": second}))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (401, json!("token_revoked"))
    );
    // Another login (another family) is unaffected.
    let (_, other) = f.login("alice", "pw-alice").await;
    assert_eq!(
        f.post("/auth/token/refresh/", None, json!({"refresh": other}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_have_one_winner() {
    let f = Arc::new(fixture());
    let (_, refresh) = f.login("alice", "pw-alice").await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let f = f.clone();
            let refresh = refresh.clone();
            tokio::spawn(async move {
                f.post("/auth/token/refresh/", None, json!({"refresh": refresh}))
                    .await
                    .0
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 401, "{status}");
        ok += usize::from(status == 200);
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn refresh_rechecks_the_user() {
    let f = fixture();
    let (_, refresh) = f.login("alice", "pw-alice").await;
    f.users.set_active(1, false);
    let (status, body) = f
        .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "user_inactive");
    let (_, refresh) = f.login("boss", "pw-boss").await;
    f.users.remove(2);
    let (status, _) = f
        .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn access_token_cannot_refresh_with_the_refresh_field() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    let (status, body) = f
        .post("/auth/token/refresh/", None, json!({"refresh": token}))
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (401, json!("Token has wrong type."))
    );
}

#[tokio::test]
async fn drf_style_refresh_keeps_orig_iat() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    let (status, body) = f
        .post("/auth/token/refresh/", None, json!({"token": token}))
        .await;
    assert_eq!(status, 200, "{body}");
    let new = body["token"].as_str().unwrap();
    assert_eq!(f.me(new).await.0, 200);
    let old = f.tokens.jwt().decode(&token).unwrap();
    let renewed = f.tokens.jwt().decode(new).unwrap();
    assert_eq!(renewed.orig_iat, old.orig_iat);
    assert_ne!(renewed.jti, old.jti);
}

#[tokio::test]
async fn drf_style_refresh_errors_are_non_field_errors() {
    let f = fixture();
    let jwt = f.tokens.jwt().clone();
    let week = 7 * 24 * 3600;
    let cases = [
        (
            legacy_claims("alice", now() + 60, None),
            "orig_iat field is required.",
        ),
        (
            legacy_claims("alice", now() + 60, Some(now() - week - 10)),
            "Refresh has expired.",
        ),
        (
            legacy_claims("alice", now() - 60, Some(now())),
            "Signature has expired.",
        ),
        (
            legacy_claims("gone", now() + 60, Some(now())),
            "User account is disabled.",
        ),
    ];
    for (claims, message) in cases {
        let token = jwt.encode(&claims).unwrap();
        let (status, body) = f
            .post("/auth/token/refresh/", None, json!({"token": token}))
            .await;
        assert_eq!(status, 400, "{message}");
        assert_eq!(body, json!({"non_field_errors": [message]}));
    }
    let (status, body) = f.post("/auth/token/refresh/", None, json!({})).await;
    assert_eq!(
        (status, body),
        (400, json!({"refresh": ["This field is required."]}))
    );
}

#[tokio::test]
async fn verify_answers_the_token_or_non_field_errors() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    assert_eq!(
        f.post("/auth/token/verify/", None, json!({"token": token}))
            .await,
        (200, json!({"token": token}))
    );
    assert_eq!(
        f.post("/auth/token/verify/", None, json!({"token": "x.y.z"}))
            .await,
        (
            400,
            json!({"non_field_errors": ["Error decoding signature."]})
        )
    );
    let ghost = f
        .tokens
        .jwt()
        .encode(&legacy_claims("ghost", now() + 60, None))
        .unwrap();
    assert_eq!(
        f.post("/auth/token/verify/", None, json!({"token": ghost}))
            .await,
        (400, json!({"non_field_errors": ["User doesn't exist."]}))
    );
}

#[tokio::test]
async fn logout_revokes_the_token_and_its_refresh_family() {
    let f = fixture();
    let (token, refresh) = f.login("alice", "pw-alice").await;
    let auth = format!("JWT {token}");
    let (status, _) = f
        .post("/auth/logout/", Some(&auth), json!({"refresh": refresh}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        f.me(&token).await,
        (
            401,
            json!({"detail": "Token has been revoked.", "code": "token_revoked"})
        )
    );
    let (status, _) = f
        .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(status, 401);
    // Logging out needs a token.
    assert_eq!(f.post("/auth/logout/", None, json!({})).await.0, 401);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_only() {
    let f = fixture();
    let (phone, phone_refresh) = f.login("alice", "pw-alice").await;
    let (tablet, _) = f.login("alice", "pw-alice").await;
    let (boss, _) = f.login("boss", "pw-boss").await;
    let (status, _) = f
        .post(
            "/auth/logout-all/",
            Some(&format!("JWT {tablet}")),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(f.me(&phone).await.1["code"], "token_revoked");
    assert_eq!(f.me(&tablet).await.1["code"], "token_revoked");
    assert_eq!(
        f.post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": phone_refresh})
        )
        .await
        .0,
        401
    );
    assert_eq!(f.me(&boss).await.0, 200);
    // A new login works again.
    let (fresh, _) = f.login("alice", "pw-alice").await;
    assert_eq!(f.me(&fresh).await.0, 200);
}

#[tokio::test]
async fn deactivation_ends_tokens_at_once() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    assert_eq!(f.me(&token).await.0, 200);
    f.users.set_active(1, false);
    f.tokens.user_changed(1).await.unwrap();
    assert_eq!(f.me(&token).await.0, 401);
}

#[derive(serde::Deserialize)]
struct Vectors {
    secret: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    token: String,
    accepted: bool,
}

fn drf_fixture(users: MemoryUsers) -> (Fixture, Vectors) {
    let vectors: Vectors =
        serde_json::from_str(include_str!("../fixtures/drf-vectors.json")).unwrap();
    let users = Arc::new(users);
    let jwt = JwtConfig::hs256(&vectors.secret)
        .unwrap()
        .header_prefixes(["JWT"]);
    let tokens = TokenService::new(jwt).with_users(users.clone());
    (fixture_with(tokens, users), vectors)
}

#[tokio::test]
async fn tokens_minted_by_djangorestframework_jwt_are_accepted() {
    let (f, vectors) = drf_fixture(MemoryUsers::with([
        (user(1, "oX1fz5Xa9mXk0EqVn0Qd3TtT9gVQ"), "x"),
        (user(42, "alice"), "x"),
        (user(7, "bob"), "x"),
    ]));
    let expected_errors = [
        ("drf_jwt_expired", "Signature has expired."),
        ("drf_jwt_wrong_secret", "Error decoding signature."),
        ("alg_none", "Incorrect authentication credentials."),
    ];
    assert!(vectors.cases.len() >= 6);
    for case in &vectors.cases {
        let (status, body) = f.me(&case.token).await;
        if case.accepted {
            assert_eq!(status, 200, "{}: {body}", case.name);
        } else {
            assert_eq!(status, 401, "{}: {body}", case.name);
            let want = expected_errors
                .iter()
                .find(|(n, _)| *n == case.name)
                .map(|(_, d)| *d);
            if let Some(detail) = want {
                assert_eq!(body["detail"], detail, "{}", case.name);
            }
        }
    }
}

#[tokio::test]
async fn drf_tokens_resolve_users_by_username() {
    let (f, vectors) = drf_fixture(MemoryUsers::with([(inactive(42, "alice"), "x")]));
    let token = |name: &str| {
        vectors
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .token
            .clone()
    };
    // alice is inactive: DRF's message.
    assert_eq!(
        f.me(&token("drf_jwt_valid_no_orig_iat")).await,
        (
            401,
            json!({"detail": "User account is disabled.", "code": "user_inactive"})
        )
    );
    // bob does not exist: drf-jwt says "Invalid signature.", never a 500.
    assert_eq!(
        f.me(&token("drf_jwt_string_user_id")).await,
        (
            401,
            json!({"detail": "Invalid signature.", "code": "token_invalid"})
        )
    );
}

#[tokio::test]
async fn redis_revocations_are_shared_between_instances() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("shared-logout");
    let users = Arc::new(MemoryUsers::with([(user(1, "alice"), "pw-alice")]));
    let instance = |users: Arc<MemoryUsers>| {
        let store = RedisRevocationStore::open(&url)
            .unwrap()
            .prefix(prefix.clone());
        fixture_with(
            TokenService::new(jwt())
                .with_users(users.clone())
                .with_store(store),
            users,
        )
    };
    let a = instance(users.clone());
    let b = instance(users.clone());
    let (token, refresh) = a.login("alice", "pw-alice").await;
    assert_eq!(b.me(&token).await.0, 200);
    // Logout on A, honoured by B at once.
    a.post("/auth/logout/", Some(&format!("JWT {token}")), json!({}))
        .await;
    assert_eq!(b.me(&token).await.1["code"], "token_revoked");
    // The logout ended the whole session: its refresh token too, on either instance.
    assert_eq!(
        b.post("/auth/token/refresh/", None, json!({"refresh": refresh}))
            .await
            .0,
        401
    );
    // Rotation on A, reuse on B revokes the family everywhere.
    let (_, refresh) = a.login("alice", "pw-alice").await;
    let (_, body) = a
        .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    let next = body["refresh"].as_str().unwrap().to_owned();
    assert_eq!(
        b.post("/auth/token/refresh/", None, json!({"refresh": refresh}))
            .await
            .0,
        401
    );
    assert_eq!(
        a.post("/auth/token/refresh/", None, json!({"refresh": next}))
            .await
            .0,
        401
    );
    // Logout everywhere on B ends A's fresh session.
    let (fresh, _) = a.login("alice", "pw-alice").await;
    assert_eq!(b.me(&fresh).await.0, 200);
    b.post(
        "/auth/logout-all/",
        Some(&format!("JWT {fresh}")),
        json!({}),
    )
    .await;
    assert_eq!(a.me(&fresh).await.1["code"], "token_revoked");
}

/// 50 concurrent presentations of one refresh token: exactly one rotates, the rest are reuses
/// that end the session.
async fn rotation_is_atomic(store: Arc<dyn RevocationStore>) {
    let exp = now() + 600;
    store.start_family("one-session", exp).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rotate_family("one-session", 0, exp, exp)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Rotation::Rotated).count(),
        1
    );
    assert!(store.access_state("one-session", 1).await.unwrap().revoked);
}

#[tokio::test]
async fn memory_rotation_is_atomic() {
    rotation_is_atomic(Arc::new(MemoryRevocationStore::new())).await;
}

#[tokio::test]
async fn redis_rotation_is_atomic() {
    let Some(url) = redis_url() else { return };
    let store = RedisRevocationStore::open(&url)
        .unwrap()
        .prefix(unique_prefix("rotate"));
    rotation_is_atomic(Arc::new(store)).await;
}

#[tokio::test]
async fn redis_down_fails_closed_with_503() {
    let store = RedisRevocationStore::open("redis://127.0.0.1:1/").unwrap();
    let users = Arc::new(MemoryUsers::with([(user(1, "alice"), "pw-alice")]));
    let tokens = TokenService::new(jwt())
        .with_users(users.clone())
        .with_store(store);
    let f = fixture_with(tokens.clone(), users);
    // Issued while Redis was up (by an instance sharing the secret).
    let pair = TokenService::new(jwt())
        .issue(&user(1, "alice"))
        .await
        .unwrap();
    let (status, body) = f.me(&pair.token).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "service_unavailable");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
}

// --- one session per login, whatever way its tokens were refreshed ---

impl Fixture {
    /// djangorestframework-jwt's refresh of an access token: the new token, or the status.
    async fn legacy_refresh(&self, token: &str) -> Result<String, u16> {
        let (status, body) = self
            .post("/auth/token/refresh/", None, json!({"token": token}))
            .await;
        match status {
            200 => Ok(body["token"].as_str().unwrap().to_owned()),
            other => Err(other),
        }
    }

    async fn rotate(&self, refresh: &str) -> Result<String, u16> {
        let (status, body) = self
            .post("/auth/token/refresh/", None, json!({"refresh": refresh}))
            .await;
        match status {
            200 => Ok(body["refresh"].as_str().unwrap().to_owned()),
            other => Err(other),
        }
    }
}

#[tokio::test]
async fn logout_ends_tokens_forked_by_legacy_refresh() {
    let f = fixture();
    let (token, refresh) = f.login("alice", "pw-alice").await;
    let forked = f.legacy_refresh(&token).await.unwrap();
    let forked_again = f.legacy_refresh(&forked).await.unwrap();
    f.post("/auth/logout/", Some(&format!("JWT {token}")), json!({}))
        .await;
    for t in [&token, &forked, &forked_again] {
        assert_eq!(f.me(t).await.1["code"], "token_revoked");
        assert!(
            f.legacy_refresh(t).await.is_err(),
            "a logged-out token refreshed"
        );
    }
    assert_eq!(f.rotate(&refresh).await, Err(401));
}

#[tokio::test]
async fn logging_out_with_a_forked_token_ends_the_original_too() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    let forked = f.legacy_refresh(&token).await.unwrap();
    f.post("/auth/logout/", Some(&format!("JWT {forked}")), json!({}))
        .await;
    assert_eq!(f.me(&token).await.1["code"], "token_revoked");
}

#[tokio::test]
async fn refresh_reuse_ends_the_attackers_legacy_refreshed_tokens() {
    let f = fixture();
    let (token, stolen_refresh) = f.login("alice", "pw-alice").await;
    // The attacker holds the access token and the refresh token; forks an access token.
    let attackers = f.legacy_refresh(&token).await.unwrap();
    // The owner rotates; the attacker then replays the old refresh token: a reuse.
    let owners_refresh = f.rotate(&stolen_refresh).await.unwrap();
    assert_eq!(f.rotate(&stolen_refresh).await, Err(401));
    // Everything of that login is over, the attacker's fork included.
    assert_eq!(f.me(&attackers).await.1["code"], "token_revoked");
    assert!(f.legacy_refresh(&attackers).await.is_err());
    assert_eq!(f.rotate(&owners_refresh).await, Err(401));
    // Another login of the same user is another session, untouched.
    let (other, _) = f.login("alice", "pw-alice").await;
    assert_eq!(f.me(&other).await.0, 200);
}

#[tokio::test]
async fn rotations_keep_one_record_per_session() {
    let store = MemoryRevocationStore::new();
    let tokens = TokenService::new(jwt()).with_store(store.clone());
    let mut refresh = Vec::new();
    for id in 1..=8 {
        refresh.push(tokens.issue(&user(id, "alice")).await.unwrap().refresh);
    }
    for _ in 0..200 {
        for r in &mut refresh {
            *r = tokens.refresh(r).await.unwrap().0.refresh;
        }
    }
    assert_eq!(store.session_count(), (8, 0));
}

#[tokio::test]
async fn a_session_the_store_no_longer_knows_cannot_refresh() {
    // The store was restarted (or dropped the session for room): fail closed.
    let (first, second) = (MemoryRevocationStore::new(), MemoryRevocationStore::new());
    let pair = TokenService::new(jwt())
        .with_store(first)
        .issue(&user(1, "alice"))
        .await
        .unwrap();
    let restarted = TokenService::new(jwt()).with_store(second);
    assert!(matches!(
        restarted.refresh(&pair.refresh).await,
        Err(AuthError::TokenRevoked)
    ));
    // Its unexpired access token is still honoured: nothing says it was revoked.
    assert!(restarted.authenticate(&pair.token).await.is_ok());
}

#[tokio::test]
async fn a_full_store_drops_sessions_rather_than_forgetting_reuse() {
    let store = MemoryRevocationStore::with_limits(4, std::time::Duration::from_secs(30));
    let tokens = TokenService::new(jwt()).with_store(store.clone());
    let mut pairs = Vec::new();
    for id in 1..=50 {
        pairs.push(tokens.issue(&user(id, "u")).await.unwrap());
    }
    let (live, _) = store.session_count();
    assert!(live <= 4, "{live} sessions kept");
    // Whatever was dropped, no refresh token works twice.
    for pair in &pairs {
        if tokens.refresh(&pair.refresh).await.is_ok() {
            assert!(tokens.refresh(&pair.refresh).await.is_err());
        }
    }
}

/// [`fixture`] on each revocation store: memory, and Redis when `WXREST_TEST_REDIS` is set.
fn fixtures(test: &str) -> Vec<(&'static str, Fixture)> {
    let users = || {
        Arc::new(MemoryUsers::with([
            (user(1, "alice"), "pw-alice"),
            (staff(2, "boss"), "pw-boss"),
        ]))
    };
    let mut fixtures = vec![("memory", fixture())];
    if let Some(url) = redis_url() {
        let users = users();
        let store = RedisRevocationStore::open(&url)
            .unwrap()
            .prefix(unique_prefix(test));
        let tokens = TokenService::new(jwt())
            .with_users(users.clone())
            .with_store(store);
        fixtures.push(("redis", fixture_with(tokens, users)));
    }
    fixtures
}

#[tokio::test]
async fn logout_ends_a_drf_jwt_token_and_the_tokens_refreshed_from_it() {
    for (store, f) in fixtures("drf-logout") {
        let token = jwt()
            .encode(&legacy_claims("alice", now() + 300, Some(now())))
            .unwrap();
        let refreshed = f.legacy_refresh(&token).await.unwrap();
        let (status, body) = f
            .post("/auth/logout/", Some(&format!("JWT {token}")), json!({}))
            .await;
        assert_eq!(status, 200, "{store}: {body}");
        for t in [&token, &refreshed] {
            assert_eq!(f.me(t).await.1["code"], "token_revoked", "{store}");
            assert!(f.legacy_refresh(t).await.is_err(), "{store}");
        }
        // Another login of the same user (another `orig_iat`) is untouched.
        let other = jwt()
            .encode(&legacy_claims("alice", now() + 300, Some(now() - 60)))
            .unwrap();
        assert_eq!(f.me(&other).await.0, 200, "{store}");
    }
}

#[tokio::test]
async fn logout_ends_a_drf_jwt_token_that_cannot_be_refreshed() {
    for (store, f) in fixtures("drf-logout-no-orig-iat") {
        let token = jwt()
            .encode(&legacy_claims("alice", now() + 300, None))
            .unwrap();
        f.post("/auth/logout/", Some(&format!("JWT {token}")), json!({}))
            .await;
        assert_eq!(f.me(&token).await.1["code"], "token_revoked", "{store}");
    }
}

#[tokio::test]
async fn a_drf_jwt_token_outliving_the_store_is_not_revocable_and_says_so() {
    let (f, vectors) = drf_fixture(MemoryUsers::with([(
        user(1, "oX1fz5Xa9mXk0EqVn0Qd3TtT9gVQ"),
        "x",
    )]));
    // Expires in 2099: no marker is kept that long.
    let case = vectors
        .cases
        .iter()
        .find(|c| c.name == "drf_jwt_valid_openid_username")
        .unwrap();
    let (status, body) = f
        .post(
            "/auth/logout/",
            Some(&format!("JWT {}", case.token)),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "token_not_revocable");
    assert_eq!(f.me(&case.token).await.0, 200);
    // Logging out everywhere ends it.
    f.post(
        "/auth/logout-all/",
        Some(&format!("JWT {}", case.token)),
        json!({}),
    )
    .await;
    assert_eq!(f.me(&case.token).await.1["code"], "token_revoked");
}

#[tokio::test]
async fn logout_ends_a_token_of_ours_minted_outside_a_session() {
    for (store, f) in fixtures("outside-session") {
        let mut claims = legacy_claims("alice", now() + 300, None);
        claims.token_type = Some(TokenType::Access);
        claims.ver = Some(0);
        claims.jti = Some("minted-by-another-service".into());
        let token = jwt().encode(&claims).unwrap();
        assert_eq!(f.me(&token).await.0, 200, "{store}");
        f.post("/auth/logout/", Some(&format!("JWT {token}")), json!({}))
            .await;
        assert_eq!(f.me(&token).await.1["code"], "token_revoked", "{store}");
    }
}

#[tokio::test]
async fn legacy_refresh_of_our_token_needs_its_session_alive() {
    // The session was dropped (a restarted store, eviction): its refresh token is refused,
    // and so is stretching its access token with the drf-jwt refresh.
    let pair = TokenService::new(jwt())
        .with_store(MemoryRevocationStore::new())
        .issue(&user(1, "alice"))
        .await
        .unwrap();
    let f = fixture();
    assert_eq!(f.me(&pair.token).await.0, 200);
    assert_eq!(
        f.post("/auth/token/refresh/", None, json!({"token": pair.token}))
            .await,
        (
            400,
            json!({"non_field_errors": ["Token has been revoked."]})
        )
    );
    // A live session's access token still refreshes the drf-jwt way.
    let (token, _) = f.login("alice", "pw-alice").await;
    assert!(f.legacy_refresh(&token).await.is_ok());
}

/// A route that takes the token from the `Authorization` header or the `jwt` cookie.
fn cookie_app(tokens: &TokenService) -> Router {
    let whoami = |u: Identity| async move { axum::Json(json!({"user": u.username})) };
    Router::new()
        .route(
            "/orders",
            routing::get(whoami).post(whoami).put(whoami).delete(whoami),
        )
        .layer(
            AuthLayer::new()
                .authenticator(JwtAuthenticator::new(tokens.clone()).sources([
                    TokenSource::Authorization,
                    TokenSource::Cookie("jwt".into()),
                ]))
                .permission(IsAuthenticated),
        )
}

fn cookie_request(
    method: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<axum::body::Body> {
    let mut b = http::Request::builder().method(method).uri("/orders");
    if let Some(token) = cookie {
        b = b.header("cookie", format!("jwt={token}"));
    }
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(axum::body::Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn a_cookie_authenticated_form_post_fails_csrf() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    let app = cookie_app(&f.tokens);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for (method, headers) in [
        ("POST", &form[..]),
        ("DELETE", &[][..]),
        ("PUT", &[("content-type", "text/plain")][..]),
    ] {
        let (status, _, body) =
            send(&app, cookie_request(method, Some(&token), headers, "a=1")).await;
        assert_eq!(status, 403, "{method}");
        assert_eq!(body["code"], "csrf_failed", "{method}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("CSRF Failed: "),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_cookie_authenticated_request_passes_with_json_or_a_csrf_header() {
    let f = fixture();
    let (token, _) = f.login("alice", "pw-alice").await;
    let app = cookie_app(&f.tokens);
    let form = ("content-type", "application/x-www-form-urlencoded");
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("GET", vec![]),
        (
            "POST",
            vec![("content-type", "application/json; charset=utf-8")],
        ),
        (
            "POST",
            vec![("content-type", "application/merge-patch+json")],
        ),
        ("POST", vec![form, ("x-csrftoken", "anything")]),
        ("DELETE", vec![("x-requested-with", "XMLHttpRequest")]),
    ];
    for (method, headers) in cases {
        let (status, _, body) =
            send(&app, cookie_request(method, Some(&token), &headers, "{}")).await;
        assert_eq!(
            (status.as_u16(), body["user"].clone()),
            (200, json!("alice")),
            "{method} {headers:?}"
        );
    }
    // A token in the Authorization header is not sent by the browser on its own: no check.
    let auth = format!("JWT {token}");
    let headers = [form, ("authorization", auth.as_str())];
    let (status, _, _) = send(&app, cookie_request("POST", None, &headers, "a=1")).await;
    assert_eq!(status, 200);
}

/// Each revocation store trusting cached token versions for one second.
fn stores_with_short_version_ttl(test: &str) -> Vec<(&'static str, Arc<dyn RevocationStore>)> {
    let ttl = std::time::Duration::from_secs(1);
    let mut stores: Vec<(&'static str, Arc<dyn RevocationStore>)> = vec![(
        "memory",
        Arc::new(MemoryRevocationStore::with_limits(1000, ttl)),
    )];
    if let Some(url) = redis_url() {
        let store = RedisRevocationStore::open(&url)
            .unwrap()
            .prefix(unique_prefix(test))
            .version_ttl(ttl);
        stores.push(("redis", Arc::new(store)));
    }
    stores
}

#[tokio::test]
async fn staff_rights_withdrawn_in_the_database_end_the_token_within_the_version_ttl() {
    for (store, revocations) in stores_with_short_version_ttl("staff-direct") {
        let users = Arc::new(MemoryUsers::with([(staff(2, "boss"), "pw-boss")]));
        let tokens = TokenService::new(jwt())
            .with_users(users.clone())
            .with_store(revocations)
            .recheck_after(std::time::Duration::from_secs(1));
        let admin = Router::new()
            .route(
                "/admin",
                routing::get(|u: Identity| async move { axum::Json(json!({"user": u.username})) }),
            )
            .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAdminUser));
        let token = tokens.issue(&staff(2, "boss")).await.unwrap().token;
        let auth = format!("JWT {token}");
        assert_eq!(
            send(&admin, get("/admin", Some(&auth))).await.0,
            200,
            "{store}"
        );
        // A Django admin sharing the database withdraws the rights; nothing tells us.
        users.set_staff_directly(2, false);
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let (status, _, body) = send(&admin, get("/admin", Some(&auth))).await;
        assert_eq!(
            (status.as_u16(), body["code"].clone()),
            (401, json!("token_revoked")),
            "{store}"
        );
        // A new login carries the rights the database grants now.
        let now_boss = users.by_id(2).await.unwrap().unwrap();
        let fresh = tokens.issue(&now_boss).await.unwrap().token;
        let (status, _, _) = send(&admin, get("/admin", Some(&format!("JWT {fresh}")))).await;
        assert_eq!(status, 403, "{store}");
    }
}

#[tokio::test]
async fn a_version_read_before_a_change_is_not_cached_after_it() {
    for (store, revocations) in stores_with_short_version_ttl("version-race") {
        // A request read version 3 from the database; the user is deactivated (version 4)
        // and the cache told to forget; then the request's stale fill arrives.
        revocations.fill_token_version(7, 3).await.unwrap();
        revocations.forget_token_version(7).await.unwrap();
        revocations.fill_token_version(7, 3).await.unwrap();
        let state = revocations.access_state("any", 7).await.unwrap();
        assert_eq!(
            state.token_version, None,
            "{store}: the stale version came back"
        );
        // An explicit set (a bump through the crate) is cached.
        revocations.set_token_version(7, 4).await.unwrap();
        let state = revocations.access_state("any", 7).await.unwrap();
        assert_eq!(state.token_version, Some(4), "{store}");
    }
}
