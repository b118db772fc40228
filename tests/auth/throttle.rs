//! Throttling as DRF's throttle classes do it: per client IP, per user, named scopes, 429 with
//! DRF's body and `Retry-After`, windows that reset, and counters shared through Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth_fixtures::{MemoryUsers, jwt, user};
use crate::databases::{redis_url, unique_prefix};
use crate::oneshot::{post_json, send};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::{Router, routing};
use base64::Engine;
use http::Request;
use http::request::Parts;
use serde_json::{Value, json};
use wxrest::auth::{
    AuthLayer, BasicAuthenticator, Identity, IsAuthenticated, Scheme, TokenService, token_routes,
};
use wxrest::throttle::{
    MemoryRateStore, Rate, RateStore, RedisRateStore, ThrottleLayer, UsernameThrottle,
};

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

/// `X-User: 7` authenticates as user 7 (a cheap stand-in for JWT).
fn header_users() -> AuthLayer {
    AuthLayer::new().authenticator(|parts: &Parts| {
        let id = parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        async move { Ok(id.map(|id| Identity::new(id, format!("u{id}"), Scheme::Custom("test")))) }
    })
}

fn app(throttle: ThrottleLayer) -> Router {
    Router::new()
        .route("/goods", routing::get(|| async { "goods" }))
        .route("/login", routing::post(|| async { "token" }))
        .layer(throttle)
        .layer(header_users())
}

fn request(method: &str, path: &str, ip: &str, user: Option<i64>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(id) = user {
        req = req.header("x-user", id.to_string());
    }
    let mut req = req.body(Body::empty()).unwrap();
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

async fn statuses(app: &Router, n: usize, make: impl Fn() -> Request<Body>) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send(app, make()).await.0.as_u16());
    }
    out
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_client_ip() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("3/min")));
    let one = statuses(&app, 4, || request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(one, [200, 200, 200, 429]);
    // Another IP has its own allowance; users are not anonymous.
    assert_eq!(
        send(&app, request("GET", "/goods", "10.0.0.2", None))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, request("GET", "/goods", "10.0.0.1", Some(1)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn users_are_limited_per_user_whatever_their_ip() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).user(rate("2/min")));
    assert_eq!(
        send(&app, request("GET", "/goods", "10.0.0.1", Some(7)))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, request("GET", "/goods", "10.0.0.2", Some(7)))
            .await
            .0,
        200
    );
    let (status, _, body) = send(&app, request("GET", "/goods", "10.0.0.3", Some(7))).await;
    assert_eq!(
        (status.as_u16(), body["code"].clone()),
        (429, json!("throttled"))
    );
    // Another user on the same IP is unaffected.
    assert_eq!(
        send(&app, request("GET", "/goods", "10.0.0.1", Some(8)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn throttled_requests_get_drfs_429_body_and_retry_after() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("1/min")));
    send(&app, request("GET", "/goods", "10.0.0.1", None)).await;
    let (status, headers, body) = send(&app, request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(
        body,
        json!({
            "detail": format!("Request was throttled. Expected available in {retry} seconds."),
            "code": "throttled",
        })
    );
}

/// The `RateLimit` field's parts: (rule, requests left, seconds until the window ends).
fn ratelimit(headers: &http::HeaderMap) -> (String, u64, u64) {
    let field = headers["ratelimit"].to_str().unwrap();
    let mut parts = field.split(';');
    let name = parts.next().unwrap().trim_matches('"').to_owned();
    let (mut r, mut t) = (None, None);
    for param in parts {
        match param.split_once('=').unwrap() {
            ("r", v) => r = Some(v.parse().unwrap()),
            ("t", v) => t = Some(v.parse().unwrap()),
            other => panic!("unexpected parameter {other:?} in {field}"),
        }
    }
    (name, r.unwrap(), t.unwrap())
}

fn policy(headers: &http::HeaderMap) -> &str {
    headers["ratelimit-policy"].to_str().unwrap()
}

#[tokio::test]
async fn counted_responses_carry_ratelimit_and_ratelimit_policy() {
    let throttle = ThrottleLayer::new(MemoryRateStore::new())
        .anon(rate("3/min"))
        .scope("login", rate("2/min"), is_login);
    let app = app(throttle);
    let (status, headers, _) = send(&app, request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(status, 200);
    assert_eq!(policy(&headers), r#""anon";q=3;w=60"#);
    let (name, left, reset) = ratelimit(&headers);
    assert_eq!((name.as_str(), left), ("anon", 2));
    assert!((1..=60).contains(&reset), "t={reset}");
    // The login route counts under both rules: the policy lists both, `RateLimit` names the
    // one with fewer requests left.
    let (_, headers, _) = send(&app, request("POST", "/login", "10.0.0.1", None)).await;
    assert_eq!(policy(&headers), r#""anon";q=3;w=60, "login";q=2;w=60"#);
    assert_eq!(ratelimit(&headers).1, 1); // anon: 1 left (its 2nd hit), login: 1 left
    let (_, headers, _) = send(&app, request("POST", "/login", "10.0.1.1", None)).await;
    let (name, left, _) = ratelimit(&headers);
    assert_eq!((name.as_str(), left), ("login", 1));
}

#[tokio::test]
async fn a_throttled_response_says_nothing_is_left_until_retry_after() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("1/min")));
    let (_, first, _) = send(&app, request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(ratelimit(&first).1, 0);
    let (status, headers, _) = send(&app, request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    let (name, left, reset) = ratelimit(&headers);
    assert_eq!((name.as_str(), left, reset), ("anon", 0, retry));
    assert_eq!(policy(&headers), r#""anon";q=1;w=60"#);
}

#[tokio::test]
async fn routes_no_rule_counts_carry_no_ratelimit_fields() {
    // A user request under an `anon`-only layer is not counted.
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("1/min")));
    let (status, headers, _) = send(&app, request("GET", "/goods", "10.0.0.1", Some(7))).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("ratelimit"));
    assert!(!headers.contains_key("ratelimit-policy"));
}

#[tokio::test]
async fn the_window_resets_after_its_period() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("2/second")));
    let make = || request("GET", "/goods", "10.0.0.1", None);
    assert_eq!(statuses(&app, 3, make).await, [200, 200, 429]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(statuses(&app, 3, make).await, [200, 200, 429]);
}

fn is_login(parts: &Parts) -> bool {
    parts.uri.path() == "/login"
}

#[tokio::test]
async fn a_named_scope_is_stricter_than_the_default() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new())
        .anon(rate("10/min"))
        .scope("login", rate("2/min"), is_login));
    let logins = statuses(&app, 3, || request("POST", "/login", "10.0.0.1", None)).await;
    assert_eq!(logins, [200, 200, 429]);
    // The scope's limit is its own: browsing goes on under the anonymous rate.
    let (status, _, body) = send(&app, request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, Value::String("goods".into()))
    );
}

/// A request through our proxy at 192.168.0.1, which appended `client` to whatever
/// `X-Forwarded-For` the client sent (`forged`), as nginx's `$proxy_add_x_forwarded_for` does.
fn through_proxy(forged: Option<&str>, client: &str) -> Request<Body> {
    let mut req = request("GET", "/goods", "192.168.0.1", None);
    let header = match forged {
        Some(forged) => format!("{forged}, {client}"),
        None => client.to_owned(),
    };
    req.headers_mut()
        .insert("x-forwarded-for", header.parse().unwrap());
    req
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_proxies_are_configured() {
    let untrusted = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("1/min")));
    assert_eq!(
        send(&untrusted, through_proxy(None, "1.1.1.1")).await.0,
        200
    );
    // A client cannot mint itself a fresh allowance with a forged header.
    assert_eq!(
        send(&untrusted, through_proxy(None, "2.2.2.2")).await.0,
        429
    );
}

#[tokio::test]
async fn with_one_proxy_the_rightmost_forwarded_address_is_the_client() {
    let trusted = app(ThrottleLayer::new(MemoryRateStore::new())
        .anon(rate("1/min"))
        .num_proxies(1));
    assert_eq!(send(&trusted, through_proxy(None, "1.1.1.1")).await.0, 200);
    assert_eq!(send(&trusted, through_proxy(None, "2.2.2.2")).await.0, 200);
    assert_eq!(send(&trusted, through_proxy(None, "1.1.1.1")).await.0, 429);
    // Addresses the client put in front of the proxy's own entry change nothing.
    for forged in ["3.3.3.3", "4.4.4.4, 5.5.5.5", "not-an-ip"] {
        assert_eq!(
            send(&trusted, through_proxy(Some(forged), "1.1.1.1"))
                .await
                .0,
            429,
            "{forged}"
        );
    }
}

#[tokio::test]
async fn with_two_proxies_the_second_address_from_the_right_is_the_client() {
    let trusted = app(ThrottleLayer::new(MemoryRateStore::new())
        .anon(rate("1/min"))
        .num_proxies(2));
    // The edge proxy appended the client, the inner one appended the edge (10.0.0.9).
    let hops =
        |forged: &str, client: &str| through_proxy(Some(forged), &format!("{client}, 10.0.0.9"));
    assert_eq!(send(&trusted, hops("7.7.7.7", "1.1.1.1")).await.0, 200);
    assert_eq!(send(&trusted, hops("8.8.8.8", "1.1.1.1")).await.0, 429);
    assert_eq!(send(&trusted, hops("7.7.7.7", "2.2.2.2")).await.0, 200);
}

#[tokio::test]
async fn a_client_scope_counts_per_address_whatever_token_is_attached() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new())
        .user(rate("100/min"))
        .client_scope("login", rate("2/min"), is_login));
    // Five different users' tokens from one address share the address's two logins.
    let mut seen = Vec::new();
    for user in 1..=5 {
        seen.push(
            send(&app, request("POST", "/login", "10.0.0.1", Some(user)))
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(seen, [200, 200, 429, 429, 429]);
    // Another address has its own.
    assert_eq!(
        send(&app, request("POST", "/login", "10.0.0.2", Some(1)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn two_layers_sharing_one_redis_store_hold_the_limit_together() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("throttle-shared");
    let layer = || {
        ThrottleLayer::new(RedisRateStore::open(&url).unwrap().prefix(prefix.clone()))
            .anon(rate("3/min"))
    };
    let (a, b) = (app(layer()), app(layer()));
    let mut seen = Vec::new();
    for app in [&a, &b, &a, &b] {
        seen.push(
            send(app, request("GET", "/goods", "10.0.0.1", None))
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(seen, [200, 200, 200, 429]);
    let (_, headers, body) = send(&a, request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(body["code"], "throttled");
    assert!(headers.contains_key("retry-after"));
    // Counted in Redis (a decision made later), the fields are the same.
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(ratelimit(&headers), ("anon".into(), 0, retry));
    let (status, headers, _) = send(&b, request("GET", "/goods", "10.0.0.9", None)).await;
    assert_eq!(status, 200);
    assert_eq!(ratelimit(&headers).1, 2);
    assert_eq!(policy(&headers), r#""anon";q=3;w=60"#);
}

#[tokio::test]
async fn redis_windows_expire() {
    let Some(url) = redis_url() else { return };
    let store = RedisRateStore::open(&url)
        .unwrap()
        .prefix(unique_prefix("throttle-expire"));
    let period = Duration::from_millis(300);
    assert_eq!(store.hit("k", period).await.unwrap().count, 1);
    let second = store.hit("k", period).await.unwrap();
    assert_eq!(second.count, 2);
    assert!(second.resets_in <= period);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.hit("k", period).await.unwrap().count, 1);
}

#[tokio::test]
async fn an_unreachable_redis_fails_open() {
    // Nothing listens on port 1: every hit fails, and throttling lets requests through.
    let store = RedisRateStore::open("redis://127.0.0.1:1").unwrap();
    let app = app(ThrottleLayer::new(store).anon(rate("1/min")));
    let seen = statuses(&app, 3, || request("GET", "/goods", "10.0.0.1", None)).await;
    assert_eq!(seen, [200, 200, 200]);
}

/// A password login from `ip`.
fn login(name: &str, password: &str, ip: &str) -> Request<Body> {
    let mut req = post_json(
        "/auth/token/",
        None,
        json!({"username": name, "password": password}),
    );
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

/// The token routes for alice (`right-password`) and bob (`pw`), with `lockout` on logins.
fn token_app(lockout: UsernameThrottle) -> Router {
    let users = MemoryUsers::with([(user(1, "alice"), "right-password"), (user(2, "bob"), "pw")]);
    let tokens = TokenService::new(jwt())
        .with_users(users)
        .with_login_attempts(lockout);
    Router::new().nest("/auth", token_routes(tokens))
}

/// Each lock-out test on the memory store and, when `WXREST_TEST_REDIS` is set, on Redis.
fn stores(test: &str) -> Vec<(&'static str, Arc<dyn RateStore>)> {
    let mut stores: Vec<(&'static str, Arc<dyn RateStore>)> =
        vec![("memory", Arc::new(MemoryRateStore::new()))];
    if let Some(url) = redis_url() {
        let redis = RedisRateStore::open(&url)
            .unwrap()
            .prefix(unique_prefix(test));
        stores.push(("redis", Arc::new(redis)));
    }
    stores
}

async fn login_statuses(app: &Router, logins: &[(&str, &str, &str)]) -> Vec<u16> {
    let mut seen = Vec::new();
    for (name, password, ip) in logins {
        seen.push(send(app, login(name, password, ip)).await.0.as_u16());
    }
    seen
}

#[tokio::test]
async fn a_guesser_locks_out_only_its_own_address_not_the_accounts_owner() {
    for (label, store) in stores("lockout-pair") {
        let app = token_app(UsernameThrottle::new(store, rate("3/min")));
        let guesses = [("alice", "guess", "10.0.0.1"); 3];
        assert_eq!(
            login_statuses(&app, &guesses).await,
            [400, 400, 400],
            "{label}"
        );
        // The guesser is refused before any password is checked, even with the right one.
        let (status, headers, body) =
            send(&app, login("alice", "right-password", "10.0.0.1")).await;
        assert_eq!(status, 429, "{label}: {body}");
        assert_eq!(body["code"], "throttled");
        assert!(headers.contains_key("retry-after"));
        // The owner, from their own address, logs in.
        assert_eq!(
            send(&app, login("alice", "right-password", "10.0.0.2"))
                .await
                .0,
            200,
            "{label}"
        );
        // The guesser's other accounts are not locked by this pair.
        assert_eq!(
            send(&app, login("bob", "pw", "10.0.0.1")).await.0,
            200,
            "{label}"
        );
    }
}

#[tokio::test]
async fn correct_passwords_are_never_counted() {
    for (label, store) in stores("lockout-success") {
        let app =
            token_app(UsernameThrottle::new(store, rate("2/min")).per_username(rate("2/min")));
        let logins = [("alice", "right-password", "10.0.0.1"); 6];
        assert_eq!(login_statuses(&app, &logins).await, [200; 6], "{label}");
        // Failures still are: two, and the pair is locked.
        let guesses = [("alice", "guess", "10.0.0.1"); 3];
        assert_eq!(
            login_statuses(&app, &guesses).await,
            [400, 400, 429],
            "{label}"
        );
    }
}

#[tokio::test]
async fn guesses_spread_over_many_addresses_hit_the_per_username_ceiling() {
    for (label, store) in stores("lockout-username") {
        let app =
            token_app(UsernameThrottle::new(store, rate("3/min")).per_username(rate("4/min")));
        let guesses = [
            ("alice", "g", "10.0.1.1"),
            ("alice", "g", "10.0.1.2"),
            ("alice", "g", "10.0.1.3"),
            ("alice", "g", "10.0.1.4"),
        ];
        assert_eq!(login_statuses(&app, &guesses).await, [400; 4], "{label}");
        // Over the account's ceiling, every address waits, the owner's too.
        let (status, _, body) = send(&app, login("alice", "right-password", "10.0.1.9")).await;
        assert_eq!(
            (status.as_u16(), &body["code"]),
            (429, &json!("throttled")),
            "{label}"
        );
        assert_eq!(
            send(&app, login("bob", "pw", "10.0.1.9")).await.0,
            200,
            "{label}"
        );
        // Huge usernames are counted like any other (by digest), not refused with a 500.
        let long = "x".repeat(100_000);
        assert_eq!(
            send(&app, login(&long, "p", "10.0.1.5")).await.0,
            400,
            "{label}"
        );
    }
}

#[tokio::test]
async fn one_address_trying_many_usernames_hits_the_per_client_ceiling() {
    for (label, store) in stores("lockout-client") {
        let app = token_app(UsernameThrottle::new(store, rate("3/min")).per_client(rate("3/min")));
        let spray = [
            ("carol", "g", "10.0.2.1"),
            ("dave", "g", "10.0.2.1"),
            ("erin", "g", "10.0.2.1"),
            ("frank", "g", "10.0.2.1"),
        ];
        assert_eq!(
            login_statuses(&app, &spray).await,
            [400, 400, 400, 429],
            "{label}"
        );
        assert_eq!(
            send(&app, login("alice", "right-password", "10.0.2.2"))
                .await
                .0,
            200
        );
    }
}

#[tokio::test]
async fn ipv6_guessers_count_by_their_64_prefix() {
    let app = token_app(UsernameThrottle::new(MemoryRateStore::new(), rate("2/min")));
    // Each guess from a new address in one /64: one client.
    let guesses = [
        ("alice", "g", "[2001:db8:1:2::1]"),
        ("alice", "g", "[2001:db8:1:2::2]"),
        ("alice", "g", "[2001:db8:1:2::3]"),
    ];
    let mut seen = Vec::new();
    for (name, password, ip) in guesses {
        let mut req = post_json(
            "/auth/token/",
            None,
            json!({"username": name, "password": password}),
        );
        let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        seen.push(send(&app, req).await.0.as_u16());
    }
    assert_eq!(seen, [400, 400, 429]);
}

#[tokio::test]
async fn the_lockout_finds_the_client_behind_trusted_proxies() {
    let app =
        token_app(UsernameThrottle::new(MemoryRateStore::new(), rate("1/min")).num_proxies(1));
    let through_proxy = |client: &str, password: &str| {
        let mut req = login("alice", password, "192.168.0.1");
        req.headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        req
    };
    assert_eq!(send(&app, through_proxy("1.1.1.1", "guess")).await.0, 400);
    assert_eq!(send(&app, through_proxy("1.1.1.1", "guess")).await.0, 429);
    // Another client behind the same proxy is not the guesser.
    assert_eq!(
        send(&app, through_proxy("2.2.2.2", "right-password"))
            .await
            .0,
        200
    );
}

/// `GET /me` behind Basic authentication for alice and bob, with `lockout` on its password
/// checks, inside an anonymous throttle of `anon`.
fn basic_app(lockout: Option<UsernameThrottle>, anon: Rate) -> Router {
    let users = MemoryUsers::with([(user(1, "alice"), "right-password"), (user(2, "bob"), "pw")]);
    let mut basic = BasicAuthenticator::new(users);
    if let Some(lockout) = lockout {
        basic = basic.login_attempts(lockout);
    }
    Router::new()
        .route(
            "/me",
            routing::get(|user: Identity| async move { user.username }),
        )
        .layer(ThrottleLayer::new(MemoryRateStore::new()).anon(anon))
        .layer(
            AuthLayer::new()
                .authenticator(basic)
                .permission(IsAuthenticated),
        )
}

fn basic(name: &str, password: &str, ip: &str) -> Request<Body> {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    let mut req = Request::get("/me")
        .header("authorization", format!("Basic {credentials}"))
        .body(Body::empty())
        .unwrap();
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

#[tokio::test]
async fn basic_authentication_is_under_the_same_lockout() {
    for (label, store) in stores("lockout-basic") {
        let app = basic_app(
            Some(UsernameThrottle::new(store, rate("3/min"))),
            rate("3/min"),
        );
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(
                send(&app, basic("alice", "guess", "10.0.3.1"))
                    .await
                    .0
                    .as_u16(),
            );
        }
        // Three checked and refused (401), then refused before any password is hashed.
        assert_eq!(seen, [401, 401, 401, 429, 429], "{label}");
        let (_, headers, body) = send(&app, basic("alice", "right-password", "10.0.3.1")).await;
        assert_eq!(body["code"], "throttled", "{label}");
        assert!(headers.contains_key("retry-after"));
        // The owner elsewhere is served.
        let (status, _, body) = send(&app, basic("alice", "right-password", "10.0.3.2")).await;
        assert_eq!((status.as_u16(), body), (200, json!("alice")), "{label}");
    }
}

#[tokio::test]
async fn a_trailing_space_is_another_username_not_a_fresh_allowance() {
    for t in crate::databases::each_backend().await {
        let users = wxrest::user::UserStore::new(t.db.clone());
        users
            .create_user(wxrest::user::NewUser::new("admin").password("right-password"))
            .await
            .unwrap();
        let tokens = TokenService::new(jwt())
            .with_users(users)
            .with_login_attempts(UsernameThrottle::new(MemoryRateStore::new(), rate("2/min")));
        let app = Router::new().nest("/auth", token_routes(tokens));
        let guesses = [("admin", "guess", "10.0.4.1"); 2];
        assert_eq!(
            login_statuses(&app, &guesses).await,
            [400, 400],
            "{}",
            t.label
        );
        // MySQL's utf8mb4_bin ignores trailing spaces in `=`: "admin " must not be admin.
        for other in ["admin ", "admin   "] {
            let (status, _, body) = send(&app, login(other, "right-password", "10.0.4.1")).await;
            assert_eq!(status, 400, "{}: {other:?} logged in: {body}", t.label);
        }
        assert_eq!(
            send(&app, login("admin", "right-password", "10.0.4.1"))
                .await
                .0,
            429,
            "{}",
            t.label
        );
    }
}

#[tokio::test]
async fn ipv6_clients_are_counted_by_their_64_prefix() {
    let app = app(ThrottleLayer::new(MemoryRateStore::new()).anon(rate("1/min")));
    let from = |ip: &str| request("GET", "/goods", &format!("[{ip}]"), None);
    assert_eq!(send(&app, from("2001:db8:1:2::1")).await.0, 200);
    // Another address in the same /64 is the same client.
    assert_eq!(send(&app, from("2001:db8:1:2::ffff")).await.0, 429);
    // Another /64 is another client; an IPv4-mapped address counts as its IPv4 one.
    assert_eq!(send(&app, from("2001:db8:1:3::1")).await.0, 200);
    assert_eq!(
        send(&app, request("GET", "/goods", "192.0.2.1", None))
            .await
            .0,
        200
    );
    assert_eq!(send(&app, from("::ffff:192.0.2.1")).await.0, 429);
}
