//! The auth layer as a specification: DRF's authentication and permission semantics through
//! `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use crate::auth_fixtures::*;
use crate::oneshot::*;
use axum::Router;
use axum::body::Body;
use axum::routing;
use http::request::Parts;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use wxrest::auth::*;

async fn whoami(user: Option<Identity>) -> axum::Json<Value> {
    axum::Json(json!({ "user": user.map(|u| u.username) }))
}

/// An authenticator for the matrix's "inactive" row: `X-Test-User: inactive`.
fn inactive_authenticator() -> impl Authenticator {
    |parts: &Parts| {
        let wanted = parts.headers.get("x-test-user").cloned();
        async move {
            Ok(wanted.filter(|v| v == "inactive").map(|_| {
                let mut id = Identity::new(99, "sleepy", Scheme::Custom("test"));
                id.is_active = false;
                id
            }))
        }
    }
}

fn app(tokens: &TokenService, permission: impl Permission) -> Router {
    Router::new()
        .route("/r", routing::get(whoami).post(whoami))
        .layer(
            AuthLayer::new()
                .authenticator(JwtAuthenticator::new(tokens.clone()))
                .authenticator(inactive_authenticator())
                .permission(permission),
        )
}

fn tokens() -> TokenService {
    TokenService::new(jwt()).with_users(MemoryUsers::with([
        (user(1, "alice"), "pw-alice"),
        (staff(2, "boss"), "pw-boss"),
        (inactive(3, "gone"), "pw-gone"),
    ]))
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Anonymous,
    User,
    Staff,
    Inactive,
}

async fn request(
    app: &Router,
    tokens: &TokenService,
    who: Who,
    method: &str,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri("/r");
    match who {
        Who::Anonymous => {}
        Who::User | Who::Staff => {
            let u = if matches!(who, Who::User) {
                user(1, "alice")
            } else {
                staff(2, "boss")
            };
            let pair = tokens.issue(&u).await.unwrap();
            b = b.header("authorization", format!("JWT {}", pair.token));
        }
        Who::Inactive => b = b.header("x-test-user", "inactive"),
    }
    let (status, _, body) = send(app, b.body(Body::empty()).unwrap()).await;
    (status, body)
}

async fn assert_matrix(permission: impl Permission + Clone, expected: [(Who, [u16; 2]); 4]) {
    let tokens = tokens();
    let app = app(&tokens, permission);
    for (who, statuses) in expected {
        for (method, want) in ["GET", "POST"].into_iter().zip(statuses) {
            let (status, body) = request(&app, &tokens, who, method).await;
            assert_eq!(status.as_u16(), want, "{who:?} {method}: {body}");
            match want {
                401 if matches!(who, Who::Inactive) => assert_eq!(
                    body,
                    json!({"detail": "User inactive or deleted.", "code": "user_inactive"})
                ),
                401 => assert_eq!(
                    body,
                    json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"})
                ),
                403 => assert_eq!(
                    body,
                    json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"})
                ),
                _ => assert!(body["user"].is_string() || body["user"].is_null(), "{body}"),
            }
        }
    }
}

#[tokio::test]
async fn allow_any_admits_everyone_but_inactive_users() {
    assert_matrix(
        AllowAny,
        [
            (Who::Anonymous, [200, 200]),
            (Who::User, [200, 200]),
            (Who::Staff, [200, 200]),
            (Who::Inactive, [401, 401]),
        ],
    )
    .await;
}

#[tokio::test]
async fn is_authenticated_gives_anonymous_401() {
    assert_matrix(
        IsAuthenticated,
        [
            (Who::Anonymous, [401, 401]),
            (Who::User, [200, 200]),
            (Who::Staff, [200, 200]),
            (Who::Inactive, [401, 401]),
        ],
    )
    .await;
}

#[tokio::test]
async fn is_admin_user_gives_users_403_and_staff_200() {
    assert_matrix(
        IsAdminUser,
        [
            (Who::Anonymous, [401, 401]),
            (Who::User, [403, 403]),
            (Who::Staff, [200, 200]),
            (Who::Inactive, [401, 401]),
        ],
    )
    .await;
}

#[tokio::test]
async fn authenticated_or_read_only_lets_anonymous_read_only() {
    assert_matrix(
        IsAuthenticatedOrReadOnly,
        [
            (Who::Anonymous, [200, 401]),
            (Who::User, [200, 200]),
            (Who::Staff, [200, 200]),
            (Who::Inactive, [401, 401]),
        ],
    )
    .await;
}

#[tokio::test]
async fn composed_permissions_follow_and_or_not() {
    // Staff, or anyone reading.
    let read_or_staff = IsAdminUser.or(|req: &RequestContext<'_>| req.is_safe_method());
    assert_matrix(
        IsAuthenticated.and(read_or_staff),
        [
            (Who::Anonymous, [401, 401]),
            (Who::User, [200, 403]),
            (Who::Staff, [200, 200]),
            (Who::Inactive, [401, 401]),
        ],
    )
    .await;
    // Not staff: users yes, staff no.
    assert_matrix(
        IsAuthenticated.and(IsAdminUser.not()),
        [
            (Who::Anonymous, [401, 401]),
            (Who::User, [200, 200]),
            (Who::Staff, [403, 403]),
            (Who::Inactive, [401, 401]),
        ],
    )
    .await;
}

#[tokio::test]
async fn first_failing_permission_gives_its_message() {
    let tokens = tokens();
    let app = app(
        &tokens,
        IsAuthenticated
            .and(IsAdminUser.with_message("Staff only."))
            .and((|_: &RequestContext<'_>| false).with_message("Never.")),
    );
    let (status, body) = request(&app, &tokens, Who::User, "GET").await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"detail": "Staff only.", "code": "permission_denied"})
    );
}

#[tokio::test]
async fn anonymous_401_carries_www_authenticate_matching_the_prefix() {
    let tokens = tokens();
    let app = app(&tokens, IsAuthenticated);
    let (status, headers, _) = send(&app, get("/r", None)).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "JWT realm=\"api\"");
    let (status, headers, _) = send(&app, get("/r", Some("Bearer not.a.token"))).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"api\"");
}

#[tokio::test]
async fn without_a_challenge_not_authenticated_is_403_as_in_drf() {
    let app = Router::new().route("/r", routing::get(whoami)).layer(
        AuthLayer::new()
            .authenticator(inactive_authenticator())
            .permission(IsAuthenticated),
    );
    let (status, headers, body) = send(&app, get("/r", None)).await;
    assert_eq!(status, 403);
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(body["code"], "not_authenticated");
}

async fn status_and_body(header: &[u8]) -> (StatusCode, Value) {
    let tokens = tokens();
    let app = app(&tokens, AllowAny);
    let req = Request::get("/r")
        .header(
            "authorization",
            http::HeaderValue::from_bytes(header).unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    (status, body)
}

#[tokio::test]
async fn malformed_authorization_headers_get_drf_messages() {
    let cases: &[(&[u8], u16, &str)] = &[
        (
            b"JWT",
            401,
            "Invalid Authorization header. No credentials provided.",
        ),
        (
            b"Bearer   ",
            401,
            "Invalid Authorization header. No credentials provided.",
        ),
        (
            b"JWT a b",
            401,
            "Invalid Authorization header. Credentials string should not contain spaces.",
        ),
        (b"JWT abc", 401, "Error decoding signature."),
        (b"JWT a.b.c", 401, "Error decoding signature."),
        (b"JWT a.b", 401, "Error decoding signature."),
        (b"jwt e30.e30.e30.e30", 401, "Error decoding signature."),
        (b"JWT \xff\xfe.x.y", 401, "Error decoding signature."),
    ];
    for (header, status, detail) in cases {
        let (got, body) = status_and_body(header).await;
        assert_eq!(
            got.as_u16(),
            *status,
            "{:?}: {body}",
            String::from_utf8_lossy(header)
        );
        assert_eq!(
            body["detail"],
            *detail,
            "{:?}",
            String::from_utf8_lossy(header)
        );
    }
}

#[tokio::test]
async fn unknown_prefixes_and_empty_headers_are_not_ours() {
    for header in [&b"Token abc"[..], b"", b"Basic dXNlcjpwYXNz", b"JWTabc"] {
        let (status, body) = status_and_body(header).await;
        assert_eq!(status, 200, "{:?}: {body}", String::from_utf8_lossy(header));
        assert_eq!(body["user"], Value::Null);
    }
}

#[tokio::test]
async fn prefixes_are_case_insensitive_and_whitespace_tolerant() {
    let tokens = tokens();
    let app = app(&tokens, IsAuthenticated);
    let pair = tokens.issue(&user(1, "alice")).await.unwrap();
    for prefix in ["JWT", "jwt", "Bearer", "BEARER"] {
        let header = format!("{prefix}   {}  ", pair.token);
        let (status, _, body) = send(&app, get("/r", Some(&header))).await;
        assert_eq!(status, 200, "{prefix}: {body}");
        assert_eq!(body["user"], "alice");
    }
}

/// An access token's claims for alice (user 1), expiring at `exp`.
fn claims(exp: i64) -> Claims {
    Claims {
        jti: Some("j1".into()),
        token_type: Some(TokenType::Access),
        ver: Some(0),
        ..legacy_claims("alice", exp, None)
    }
}

async fn protected(token: &str) -> (StatusCode, Value) {
    let tokens = tokens();
    let app = app(&tokens, IsAuthenticated);
    let (status, _, body) = send(&app, get("/r", Some(&format!("JWT {token}")))).await;
    (status, body)
}

#[tokio::test]
async fn expired_token_gets_401_with_drf_detail() {
    let token = jwt().encode(&claims(now() - 10)).unwrap();
    let (status, body) = protected(&token).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"detail": "Signature has expired.", "code": "token_expired"})
    );
}

#[tokio::test]
async fn leeway_accepts_recently_expired_tokens() {
    let config = jwt().leeway(std::time::Duration::from_secs(60));
    let token = config.encode(&claims(now() - 10)).unwrap();
    assert!(TokenService::new(config).authenticate(&token).await.is_ok());
}

#[tokio::test]
async fn token_signed_with_another_secret_is_a_decoding_error() {
    let other = JwtConfig::hs256("another-secret-0123456789abcdef012345").unwrap();
    let token = other.encode(&claims(now() + 60)).unwrap();
    let (status, body) = protected(&token).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"detail": "Error decoding signature.", "code": "token_invalid"})
    );
}

fn forge(header: Value, payload: Value, signature: &str) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(header.to_string()),
        e.encode(payload.to_string()),
        signature
    )
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let token = forge(
        json!({"typ": "JWT", "alg": "none"}),
        json!({"user_id": 1, "username": "alice", "exp": now() + 60, "token_type": "access"}),
        "",
    );
    let (status, body) = protected(&token).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "Incorrect authentication credentials.");
}

#[tokio::test]
async fn another_algorithm_with_the_same_secret_is_rejected() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims(now() + 60),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let (status, body) = protected(&token).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "Incorrect authentication credentials.");
}

#[tokio::test]
async fn hs256_token_against_an_rs256_config_is_rejected() {
    let public = std::fs::read("tests/fixtures/rsa_public.pem").unwrap();
    let private = std::fs::read("tests/fixtures/rsa_private.pem").unwrap();
    let rs = JwtConfig::rs256(&public, Some(&private)).unwrap();
    // The classic confusion: the public key used as an HMAC secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(now() + 60),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    let service = TokenService::new(rs.clone());
    assert!(matches!(
        service.authenticate(&forged).await,
        Err(AuthError::InvalidToken)
    ));
    // A genuine RS256 token passes.
    let genuine = rs.encode(&claims(now() + 60)).unwrap();
    assert_eq!(
        service.authenticate(&genuine).await.unwrap().username,
        "alice"
    );
}

#[tokio::test]
async fn es256_tokens_round_trip() {
    let public = std::fs::read("tests/fixtures/ec_public.pem").unwrap();
    let private = std::fs::read("tests/fixtures/ec_private.pem").unwrap();
    let es = JwtConfig::es256(&public, Some(&private)).unwrap();
    let token = es.encode(&claims(now() + 60)).unwrap();
    assert_eq!(es.decode(&token).unwrap().username, "alice");
    let verify_only = JwtConfig::es256(&public, None).unwrap();
    assert!(verify_only.decode(&token).is_ok());
    assert!(matches!(
        verify_only.encode(&claims(now())),
        Err(AuthError::CannotIssue)
    ));
}

#[tokio::test]
async fn truncated_and_tampered_tokens_are_rejected() {
    let token = jwt().encode(&claims(now() + 60)).unwrap();
    let truncated = &token[..token.len() - 4];
    assert_eq!(
        protected(truncated).await.1["detail"],
        "Error decoding signature."
    );
    // Claims changed after signing (made staff).
    let mut parts: Vec<&str> = token.split('.').collect();
    let tampered_payload = {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c: Value = serde_json::from_slice(&e.decode(parts[1]).unwrap()).unwrap();
        c["is_staff"] = json!(true);
        e.encode(c.to_string())
    };
    parts[1] = &tampered_payload;
    let (status, body) = protected(&parts.join(".")).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "Error decoding signature.");
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let strict = jwt().issuer("mall").audience("miniapp");
    let service = TokenService::new(strict.clone());
    let pair = service.issue(&user(1, "alice")).await.unwrap();
    assert!(service.authenticate(&pair.token).await.is_ok());
    let plain = jwt().encode(&claims(now() + 60)).unwrap();
    assert!(matches!(
        service.authenticate(&plain).await,
        Err(AuthError::InvalidToken)
    ));
    let other = TokenService::new(jwt().issuer("mall").audience("web"));
    let theirs = other.issue(&user(1, "alice")).await.unwrap();
    assert!(matches!(
        service.authenticate(&theirs.token).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn not_yet_valid_tokens_are_rejected() {
    #[derive(serde::Serialize)]
    struct WithNbf {
        #[serde(flatten)]
        claims: Claims,
        nbf: i64,
    }
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &WithNbf {
            claims: claims(now() + 600),
            nbf: now() + 300,
        },
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        protected(&token).await.1["detail"],
        "Incorrect authentication credentials."
    );
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let tokens = tokens();
    let app = app(&tokens, IsAuthenticated);
    let pair = tokens.issue(&user(1, "alice")).await.unwrap();
    let (status, _, body) = send(&app, get("/r", Some(&format!("JWT {}", pair.refresh)))).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"detail": "Token has wrong type.", "code": "token_invalid"})
    );
}

#[tokio::test]
async fn secrets_shorter_than_32_bytes_are_refused_at_start_up() {
    assert!(matches!(
        JwtConfig::hs256("short"),
        Err(ConfigError::SecretTooShort(5))
    ));
    assert!(JwtConfig::hs256([7u8; 32]).is_ok());
    assert!(
        jwt()
            .access_lifetime(std::time::Duration::from_secs(5))
            .check()
            .is_err()
    );
    assert!(jwt().check().is_ok());
}

#[tokio::test]
async fn invalid_token_on_an_allow_any_route_is_still_401() {
    let (status, body) = status_and_body(b"JWT garbage").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "token_invalid");
}

#[tokio::test]
async fn token_sources_are_tried_in_order() {
    let tokens = tokens();
    let pair = tokens.issue(&user(1, "alice")).await.unwrap();
    let layer = AuthLayer::new()
        .authenticator(JwtAuthenticator::new(tokens.clone()).sources([
            TokenSource::Authorization,
            TokenSource::header("x-token"),
            TokenSource::Cookie("jwt".into()),
            TokenSource::Query("token".into()),
        ]))
        .permission(IsAuthenticated);
    let app = Router::new().route("/r", routing::get(whoami)).layer(layer);
    let requests = [
        Request::get("/r")
            .header("x-token", &pair.token)
            .body(Body::empty())
            .unwrap(),
        Request::get("/r")
            .header("cookie", format!("theme=dark; jwt={}", pair.token))
            .body(Body::empty())
            .unwrap(),
        Request::get(format!("/r?a=1&token={}", pair.token))
            .body(Body::empty())
            .unwrap(),
    ];
    for req in requests {
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"], "alice");
    }
    // The query source is off unless listed.
    let default = app_default(&tokens);
    let req = Request::get(format!("/r?token={}", pair.token))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&default, req).await.0, 401);
}

fn app_default(tokens: &TokenService) -> Router {
    Router::new()
        .route("/r", routing::get(whoami))
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated))
}

#[tokio::test]
async fn basic_authentication_follows_drf() {
    let users = Arc::new(MemoryUsers::with([
        (user(1, "alice"), "pw-alice"),
        (inactive(3, "gone"), "pw-gone"),
    ]));
    let app = Router::new().route("/r", routing::get(whoami)).layer(
        AuthLayer::new()
            .authenticator(BasicAuthenticator::shared(users))
            .permission(IsAuthenticated),
    );
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases = [
        (format!("Basic {}", b64("alice:pw-alice")), 200, ""),
        (
            format!("Basic {}", b64("alice:wrong")),
            401,
            "Invalid username/password.",
        ),
        (
            format!("Basic {}", b64("gone:pw-gone")),
            401,
            "User inactive or deleted.",
        ),
        (
            "Basic".to_string(),
            401,
            "Invalid basic header. No credentials provided.",
        ),
        (
            "Basic a b".to_string(),
            401,
            "Invalid basic header. Credentials string should not contain spaces.",
        ),
        (
            "Basic %%%".to_string(),
            401,
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
        (
            format!("Basic {}", b64("no-colon")),
            401,
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
    ];
    for (header, status, detail) in cases {
        let (got, headers, body) = send(&app, get("/r", Some(&header))).await;
        assert_eq!(got.as_u16(), status, "{header}: {body}");
        if status == 401 {
            assert_eq!(body["detail"], detail);
            assert_eq!(headers["www-authenticate"], "Basic realm=\"api\"");
        }
    }
}

#[tokio::test]
async fn closure_authenticator_errors_stop_the_chain() {
    let api_key = |parts: &Parts| {
        let key = parts.headers.get("x-api-key").cloned();
        async move {
            match key {
                None => Ok(None),
                Some(k) if k == "good" => {
                    Ok(Some(Identity::new(5, "robot", Scheme::Custom("key"))))
                }
                Some(_) => Err(AuthError::Custom {
                    code: "bad_key",
                    detail: "Bad API key.".into(),
                }),
            }
        }
    };
    let tokens = tokens();
    let app = Router::new().route("/r", routing::get(whoami)).layer(
        AuthLayer::new()
            .authenticator(api_key)
            .authenticator(JwtAuthenticator::new(tokens.clone()))
            .permission(IsAuthenticated),
    );
    let good = Request::get("/r")
        .header("x-api-key", "good")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, good).await.2["user"], "robot");
    let bad = Request::get("/r")
        .header("x-api-key", "bad")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, bad).await;
    // The first authenticator has no challenge: DRF answers 403.
    assert_eq!(status, 403);
    assert_eq!(body, json!({"detail": "Bad API key.", "code": "bad_key"}));
    // No key: the JWT authenticator is next.
    let pair = tokens.issue(&user(1, "alice")).await.unwrap();
    let jwt_req = get("/r", Some(&format!("JWT {}", pair.token)));
    assert_eq!(send(&app, jwt_req).await.2["user"], "alice");
}

#[tokio::test]
async fn object_permissions_are_checked_by_handlers() {
    struct Cart {
        owner: i64,
    }
    let owner_only = IsAuthenticated.and(ObjectPermission::new(|req, cart: &Cart| {
        req.user_id() == Some(cart.owner)
    }));
    let tokens = tokens();
    let alice = tokens
        .authenticate(&tokens.issue(&user(1, "alice")).await.unwrap().token)
        .await
        .unwrap();
    let parts = Request::get("/cart/1").body(()).unwrap().into_parts().0;
    let ctx = RequestContext::new(&parts, Some(&alice));
    assert!(owner_only.check(&ctx).is_ok());
    assert!(owner_only.check_object(&ctx, &Cart { owner: 1 }).is_ok());
    assert!(owner_only.check_object(&ctx, &Cart { owner: 2 }).is_err());
    // Another type of object is denied, never silently allowed.
    assert!(owner_only.check_object(&ctx, &"not a cart").is_err());
}

#[tokio::test]
async fn layer_works_on_a_plain_tower_service() {
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let tokens = tokens();
    let svc = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated))
        .service(service_fn(|req: Request<Body>| async move {
            let who = req
                .extensions()
                .get::<Identity>()
                .map(|i| i.username.clone());
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(
                who.unwrap_or_default(),
            )))
        }));
    let denied = svc.clone().oneshot(get("/", None)).await.unwrap();
    assert_eq!(denied.status(), 401);
    let pair = tokens.issue(&user(1, "alice")).await.unwrap();
    let ok = svc
        .oneshot(get("/", Some(&format!("Bearer {}", pair.token))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body = http_body_util::BodyExt::collect(ok.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"alice");
}

#[tokio::test]
async fn an_inner_layer_reuses_the_outer_layers_identity() {
    let tokens = tokens();
    let app = Router::new()
        .route("/open", routing::get(whoami))
        .merge(
            Router::new()
                .route("/staff", routing::get(whoami))
                .route_layer(AuthLayer::new().permission(IsAdminUser)),
        )
        .layer(JwtAuthLayer::new(tokens.clone()));
    let user_token = format!(
        "JWT {}",
        tokens.issue(&user(1, "alice")).await.unwrap().token
    );
    let staff_token = format!(
        "JWT {}",
        tokens.issue(&staff(2, "boss")).await.unwrap().token
    );
    assert_eq!(
        send(&app, get("/open", Some(&user_token))).await.2["user"],
        "alice"
    );
    assert_eq!(send(&app, get("/staff", Some(&staff_token))).await.0, 200);
    assert_eq!(send(&app, get("/staff", Some(&user_token))).await.0, 403);
    let (status, headers, _) = send(&app, get("/staff", None)).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "JWT realm=\"api\"");
}
