//! The mall under hostile input and failing dependencies: DRF error shapes for the framework's
//! own failures, panics, SQL metacharacters and oversized values, WeChat faults, and login
//! throttling. Driven through the mall's real router (`oneshot`) or over HTTP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::databases;
use crate::running_mall::{RunningMall, assert_throttled};
use crate::shop;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::{Router, routing};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use reqwest::Method;
use serde_json::{Value, json};
use tower::ServiceExt;
use wxrest::wechat::{FakeWeChat, Script};

struct Mall {
    router: Router,
    _fake: Option<FakeWeChat>,
    target: databases::Target,
}

/// A routes-only-in-tests handler that panics with a message that must never be shown.
async fn boom() -> &'static str {
    panic!("secret internals: db password hunter2")
}

async fn start_with(config: impl FnOnce(&mut shop::Config)) -> Mall {
    start_on("sqlite-file", config).await
}

async fn start_on(label: &str, config: impl FnOnce(&mut shop::Config)) -> Mall {
    let target = databases::fresh_target(label).await;
    let mut cfg = shop::Config::for_database(&target.url);
    cfg.seed_demo = true;
    config(&mut cfg);
    let extra = Router::new().route("/test/panic", routing::get(boom));
    let shop = shop::build_with(&cfg, extra).await.unwrap();
    Mall {
        router: shop.router,
        _fake: shop.fake,
        target,
    }
}

async fn start() -> Mall {
    start_with(|_| {}).await
}

fn from(ip: &str, mut req: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:50000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

impl Mall {
    async fn send(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value, String) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        (status, headers, body, text)
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("JWT {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let (status, _, body, _) = self
            .send(from("10.1.0.1", req.body(body.into()).unwrap()))
            .await;
        (status, body)
    }

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(token), None, Body::empty())
            .await
    }

    /// `POST /auth/wx-login/` with `body` sent as `content_type`.
    async fn login_as(&self, content_type: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let path = "/auth/wx-login/";
        self.call("POST", path, None, Some(content_type), body)
            .await
    }

    /// `method uri` as `token`, with `body` as JSON.
    async fn send_json(
        &self,
        method: &str,
        uri: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let json = Some("application/json");
        self.call(method, uri, Some(token), json, body.to_string())
            .await
    }

    /// `method uri` without credentials or body.
    async fn anonymous(&self, method: &str, uri: &str) -> (StatusCode, Value) {
        self.call(method, uri, None, None, Body::empty()).await
    }

    async fn login(&self, code: &str) -> String {
        let body = json!({ "code": code }).to_string();
        let (status, body) = self.login_as("application/json", body).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

// --- DRF error shapes for the framework's own failures ---

#[tokio::test]
async fn malformed_json_is_400_with_drfs_parse_error() {
    let mall = start().await;
    let (status, body) = mall.login_as("application/json", "{\"code\": ").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("JSON parse error - ")),
        "{body}"
    );
    assert_eq!(body["code"], "parse_error");
}

#[tokio::test]
async fn a_wrong_content_type_is_415() {
    let mall = start().await;
    let (status, body) = mall.login_as("text/plain", "code=x").await;
    assert_eq!(status, 415);
    assert_eq!(
        body,
        json!({"detail": "Unsupported media type \"text/plain\" in request.", "code": "unsupported_media_type"})
    );
}

#[tokio::test]
async fn a_wrong_method_is_405_with_drfs_detail() {
    let mall = start().await;
    let (status, body) = mall.anonymous("PUT", "/auth/wx-login/").await;
    assert_eq!(status, 405);
    assert_eq!(
        body,
        json!({"detail": "Method \"PUT\" not allowed.", "code": "method_not_allowed"})
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json() {
    let mall = start_with(|c| c.body_limit = 1024).await;
    let huge = json!({ "code": "x".repeat(4096) }).to_string();
    let (status, body) = mall.login_as("application/json", huge).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "payload_too_large", "{body}");
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn an_unknown_route_is_404_json() {
    let mall = start().await;
    let (status, body) = mall.anonymous("GET", "/no/such/route/").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Not found.", "code": "not_found"}));
}

#[tokio::test]
async fn a_panicking_handler_gives_drfs_500_without_the_panic_text() {
    let mall = start().await;
    let req = from(
        "10.1.0.1",
        Request::get("/test/panic").body(Body::empty()).unwrap(),
    );
    let (status, headers, body, text) = mall.send(req).await;
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        json!({"detail": "A server error occurred.", "code": "server_error"})
    );
    assert!(!text.contains("hunter2") && !text.contains("secret internals"));
    // The server goes on serving.
    let (status, _) = mall.anonymous("GET", "/healthz").await;
    assert_eq!(status, 200);
}

// --- Injection and oversized values ---

const HOSTILE: [&str; 6] = [
    "' OR '1'='1",
    "1; DROP TABLE goods; --",
    "\" OR \"\"=\"",
    "1) UNION SELECT id, password FROM wxrest_users --",
    "%' AND 1=1 AND '%'='",
    "\\'; DELETE FROM orders; --",
];

fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn goods_count(mall: &Mall, token: &str) -> i64 {
    let (status, page) = mall.get("/mall/goods/", token).await;
    assert_eq!(status, 200, "{page}");
    page["count"].as_i64().unwrap()
}

/// Requests `/mall/...` with each hostile value in place of `{}` in `path` and checks each
/// answer with `check(value, status, body)`; the catalogue is intact after.
async fn each_hostile_value(path: &str, check: impl Fn(&str, StatusCode, &Value)) {
    let mall = start().await;
    let token = mall.login("injector").await;
    for value in HOSTILE {
        let (status, body) = mall.get(&path.replace("{}", &enc(value)), &token).await;
        check(value, status, &body);
    }
    assert_eq!(goods_count(&mall, &token).await, 12);
}

#[tokio::test]
async fn sql_metacharacters_in_search_find_nothing_and_change_nothing() {
    each_hostile_value("/mall/goods/?search={}", |value, status, page| {
        assert_eq!(status, 200, "{value}: {page}");
        assert_eq!(page["count"], 0, "{value}: {page}");
    })
    .await;
}

#[tokio::test]
async fn sql_metacharacters_in_filters_are_400() {
    each_hostile_value("/mall/goods/?price__gte={}", |value, status, body| {
        assert_eq!(status, 400, "{value}: {body}");
        assert_eq!(body, &json!({"price__gte": ["Enter a number."]}), "{value}");
    })
    .await;
}

#[tokio::test]
async fn sql_metacharacters_in_ordering_are_never_sql() {
    // DRF ignores fields it does not whitelist: the default ordering, every row.
    each_hostile_value("/mall/goods/?ordering={}", |value, status, body| {
        assert!(
            (status == 200 && body["count"] == 12) || status == 400,
            "{value}: {status} {body}"
        );
    })
    .await;
}

#[tokio::test]
async fn sql_metacharacters_in_path_ids_are_404() {
    let mall = start().await;
    let token = mall.login("injector").await;
    for value in HOSTILE {
        for base in ["/mall/goods/", "/mall/orders/", "/mall/categories/"] {
            let (status, body) = mall.get(&format!("{base}{}/", enc(value)), &token).await;
            assert_eq!(status, 404, "{base}{value}: {body}");
            assert_eq!(body, json!({"detail": "Not found.", "code": "not_found"}));
        }
    }
    let (status, _) = mall
        .call(
            "POST",
            &format!("/mall/orders/{}/cancel/", enc(HOSTILE[1])),
            Some(&token),
            Some("application/json"),
            "{}",
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(goods_count(&mall, &token).await, 12);
}

#[tokio::test]
async fn oversized_query_and_path_values_are_harmless() {
    let mall = start().await;
    let token = mall.login("big").await;
    // `http` caps a URI at 64 KiB, so query and path values stay just under it; the JSON body
    // carries 100 KB.
    let big = "x".repeat(60 * 1024);
    let (status, body) = mall
        .get(&format!("/mall/goods/?search={big}"), &token)
        .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            400,
            json!({"search": ["Ensure each term has no more than 1000 characters."]})
        )
    );
    let many = vec!["tea"; 5000].join("+");
    let (status, body) = mall
        .get(&format!("/mall/goods/?search={many}"), &token)
        .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            400,
            json!({"search": ["Ensure this field has no more than 20 terms."]})
        )
    );
    let (status, body) = mall
        .get(&format!("/mall/goods/?price__gte={big}"), &token)
        .await;
    assert_eq!(
        (status.as_u16(), body),
        (400, json!({"price__gte": ["Enter a number."]}))
    );
    let digits = "9".repeat(60 * 1024);
    let (status, body) = mall.get(&format!("/mall/goods/{digits}/"), &token).await;
    assert_eq!(
        (status.as_u16(), body["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, _) = mall
        .get(
            &format!(
                "/mall/goods/?ordering={}&page={}",
                &big[..30_000],
                &digits[..30_000]
            ),
            &token,
        )
        .await;
    assert!(status == 200 || status == 400 || status == 404, "{status}");
    // A 100 KB field in a JSON body is a validation error, not a database error.
    let (status, body) = mall
        .send_json(
            "POST",
            "/mall/cart/",
            &token,
            json!({"goods": "x".repeat(100 * 1024), "quantity": 1}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("goods").is_some(), "{body}");
    assert_eq!(goods_count(&mall, &token).await, 12);
}

// --- Throttling in the mall ---

#[tokio::test]
async fn mall_logins_are_throttled_harder_than_browsing() {
    let mall = start_with(|c| c.throttle_login = "3/min".parse().unwrap()).await;
    for i in 0..3 {
        mall.login(&format!("login-{i}")).await;
    }
    let (status, body) = mall
        .login_as("application/json", json!({"code": "login-4"}).to_string())
        .await;
    assert_throttled(status, &body);
    // Browsing is not a login.
    let (status, _) = mall.anonymous("GET", "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn attached_tokens_do_not_buy_more_logins() {
    let mall = start_with(|c| c.throttle_login = "3/min".parse().unwrap()).await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(mall.login(&format!("holder-{i}")).await);
    }
    // Each token is another user, but the address has spent its logins.
    for token in &tokens {
        let (status, body) = mall
            .call(
                "POST",
                "/auth/wx-login/",
                Some(token),
                Some("application/json"),
                json!({"code": "one-more"}).to_string(),
            )
            .await;
        assert_eq!(
            (status.as_u16(), body["code"].clone()),
            (429, json!("throttled"))
        );
    }
}

// --- input the databases refuse, and checks PATCH must make too ---

#[tokio::test]
async fn nul_characters_in_text_input_are_400_naming_the_field() {
    for label in databases::backend_labels() {
        let mall = start_on(label, |_| {}).await;
        let token = mall.login("nul-checker").await;
        let cases = [
            (
                "POST",
                "/auth/wx-login/",
                None,
                json!({"code": "a\u{0}b"}),
                "code",
            ),
            (
                "POST",
                "/auth/token/",
                None,
                json!({"username": "ad\u{0}min", "password": "x"}),
                "username",
            ),
            (
                "PATCH",
                "/users/me/",
                Some(token.as_str()),
                json!({"nickname": "tea\u{0}lover"}),
                "nickname",
            ),
        ];
        for (method, uri, auth, body, field) in cases {
            let (status, answer) = mall
                .call(
                    method,
                    uri,
                    auth,
                    Some("application/json"),
                    body.to_string(),
                )
                .await;
            assert_eq!(
                (status.as_u16(), answer[field].clone()),
                (400, json!(["Null characters are not allowed."])),
                "{label} {method} {uri}: {answer}"
            );
        }
        for uri in [
            "/mall/goods/?name__icontains=a%00b",
            "/mall/categories/?name=a%00b",
        ] {
            let (status, answer) = mall.get(uri, &token).await;
            assert!(
                status == 400 || status == 200,
                "{label} {uri}: {status} {answer}"
            );
            if status == 400 {
                assert!(answer.to_string().contains("Null characters"), "{answer}");
            }
        }
        let (status, _) = mall.get("/mall/goods/?search=a%00b", &token).await;
        assert_eq!(status, 200, "{label}: NUL in a search term is dropped");
    }
}

#[tokio::test]
async fn avatar_urls_must_be_web_addresses() {
    let mall = start().await;
    let token = mall.login("avatar-owner").await;
    for bad in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/a.png",
        "//example.com/a.png",
        "not a url",
    ] {
        let (status, body) = mall
            .send_json("PATCH", "/users/me/", &token, json!({"avatarUrl": bad}))
            .await;
        assert_eq!(
            (status.as_u16(), body),
            (400, json!({"avatar_url": ["Enter a valid URL."]})),
            "{bad}"
        );
    }
    for good in [
        "https://thirdwx.qlogo.cn/mmopen/a/132",
        "http://example.com/a.png",
        "",
    ] {
        let (status, body) = mall
            .send_json("PATCH", "/users/me/", &token, json!({"avatar_url": good}))
            .await;
        assert_eq!(status, 200, "{good}: {body}");
    }
}

/// Adds a goods row straight to the database: `(id)`.
async fn add_goods(mall: &Mall, name: &str, stock: i64, on_sale: bool) -> i64 {
    let db = wxrest::db::Db::connect(&mall.target.url).await.unwrap();
    let d = db.dialect();
    let sql = format!(
        "INSERT INTO goods (name, description, price, stock, on_sale, created_at, category) \
         VALUES ({}, (SELECT MIN(id) FROM categories))",
        d.placeholders(1, 6)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .bind("")
        .bind(100_i64)
        .bind(stock)
        .bind(on_sale)
        .bind(0_i64)
        .execute(db.pool())
        .await
        .unwrap();
    let sql = format!("SELECT id FROM goods WHERE name = {}", d.placeholder(1));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn cart_patch_checks_sale_and_stock_like_post() {
    let mall = start().await;
    let token = mall.login("cart-mover").await;
    let plenty = add_goods(&mall, "plenty", 100, true).await;
    let scarce = add_goods(&mall, "scarce", 2, true).await;
    let withdrawn = add_goods(&mall, "withdrawn", 100, false).await;
    let (status, item) = mall
        .send_json(
            "POST",
            "/mall/cart/",
            &token,
            json!({"goods": plenty, "quantity": 5}),
        )
        .await;
    assert_eq!(status, 201, "{item}");
    let uri = format!("/mall/cart/{}/", item["id"]);
    let patch = |body: Value| {
        let uri = uri.clone();
        let token = token.clone();
        let mall = &mall;
        async move {
            mall.call(
                "PATCH",
                &uri,
                Some(&token),
                Some("application/json"),
                body.to_string(),
            )
            .await
        }
    };
    let (status, body) = patch(json!({"goods": withdrawn})).await;
    assert_eq!(
        (status.as_u16(), body),
        (400, json!({"goods": ["These goods are not on sale."]}))
    );
    let (status, body) = patch(json!({"goods": scarce})).await;
    assert_eq!(
        (status.as_u16(), body),
        (
            400,
            json!({"quantity": ["Ensure this value is less than or equal to 2."]})
        )
    );
    let (status, body) = patch(json!({"goods": scarce, "quantity": 2})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["goods"].clone(), body["quantity"].clone()),
        (json!(scarce), json!(2))
    );
}

// --- WeChat faults ---

/// A mall over HTTP whose WeChat is `fake`, answering within `timeout`.
struct Served {
    mall: RunningMall,
    fake: FakeWeChat,
    _target: databases::Target,
}

async fn serve_with_fake(timeout: Duration) -> Served {
    let fake = FakeWeChat::start().await;
    let config = fake.config().timeout(timeout).max_retries(1);
    let (mall, target) = RunningMall::demo_on("sqlite-file", |c| c.wx = Some(config)).await;
    Served {
        mall,
        fake,
        _target: target,
    }
}

impl Served {
    /// `POST /auth/wx-login/`: status, body and how long it took.
    async fn login(&self, code: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        let (status, body) = self
            .mall
            .post("/auth/wx-login/", None, json!({ "code": code }))
            .await;
        (status.as_u16(), body, started.elapsed())
    }
}

const WX_TIMEOUT: Duration = Duration::from_millis(800);

fn assert_wechat_unavailable(status: u16, body: &Value, took: Duration) {
    assert!(status == 502 || status == 503, "{status} {body}");
    assert_eq!(body["code"], "wechat_unavailable", "{body}");
    assert_eq!(
        body["detail"],
        "WeChat is temporarily unavailable, try again later."
    );
    assert!(
        took < WX_TIMEOUT + Duration::from_millis(700),
        "answered after {took:?}"
    );
}

#[tokio::test]
async fn a_wechat_slower_than_the_timeout_is_503_in_time() {
    let mall = serve_with_fake(WX_TIMEOUT).await;
    mall.fake
        .script_code("slow", Script::Delay(Duration::from_secs(10)));
    let (status, body, took) = mall.login("slow").await;
    assert_wechat_unavailable(status, &body, took);
}

#[tokio::test]
async fn a_wechat_5xx_is_502() {
    let mall = serve_with_fake(WX_TIMEOUT).await;
    mall.fake.script_code("down", Script::Status(502));
    let (status, body, took) = mall.login("down").await;
    assert_wechat_unavailable(status, &body, took);
}

#[tokio::test]
async fn a_wechat_garbage_body_is_502() {
    let mall = serve_with_fake(WX_TIMEOUT).await;
    mall.fake.script_code("garbage", Script::Malformed);
    let (status, body, took) = mall.login("garbage").await;
    assert_wechat_unavailable(status, &body, took);
}

#[tokio::test]
async fn a_busy_wechat_is_503() {
    let mall = serve_with_fake(WX_TIMEOUT).await;
    mall.fake.script_code("busy", Script::Error(-1));
    let (status, body, took) = mall.login("busy").await;
    assert_wechat_unavailable(status, &body, took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_wechat_login_does_not_hold_up_other_routes() {
    let mall = std::sync::Arc::new(serve_with_fake(Duration::from_secs(3)).await);
    mall.fake
        .script_code("slow", Script::Delay(Duration::from_secs(10)));
    let slow = {
        let mall = mall.clone();
        tokio::spawn(async move { mall.login("slow").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, _) = mall.mall.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    let fast = started.elapsed();
    assert!(fast < Duration::from_millis(500), "healthz took {fast:?}");
    let (status, _) = mall
        .mall
        .call(Method::GET, "/mall/categories/", None, None)
        .await;
    // Anonymous: refused at once, not queued behind the login.
    assert_eq!(status, 401);
    assert!(started.elapsed() < Duration::from_millis(500));
    let (status, body, took) = slow.await.unwrap();
    assert!(status == 502 || status == 503, "{status} {body}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}
