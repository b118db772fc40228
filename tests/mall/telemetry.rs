//! The mall's operational surface in process: `X-Request-Id` taken or generated and echoed,
//! and the Prometheus `/metrics` endpoint after some traffic.

use crate::databases;
use crate::shop;
use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The mall's router; the rest (its database file, its dev-mode fake WeChat) lives as long as
/// the guard.
async fn mall() -> (
    Router,
    (databases::Target, Option<wxrest::wechat::FakeWeChat>),
) {
    mall_with(Some(METRICS_TOKEN)).await
}

const METRICS_TOKEN: &str = "scrape-token-0123456789";

/// The mall with `/metrics` on its API port behind `metrics_token` (or not at all).
async fn mall_with(
    metrics_token: Option<&str>,
) -> (
    Router,
    (databases::Target, Option<wxrest::wechat::FakeWeChat>),
) {
    mall_configured(metrics_token, |_| {}).await
}

async fn mall_configured(
    metrics_token: Option<&str>,
    configure: impl FnOnce(&mut shop::Config),
) -> (
    Router,
    (databases::Target, Option<wxrest::wechat::FakeWeChat>),
) {
    let target = databases::fresh_target("sqlite-file").await;
    let mut config = shop::Config::for_database(&target.url);
    config.metrics_token = metrics_token.map(str::to_owned);
    configure(&mut config);
    let shop = shop::build(&config).await.expect("build the mall");
    (shop.router, (target, shop.fake))
}

fn scrape(token: Option<&str>) -> Request<Body> {
    let mut req = get("/metrics");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn metrics_are_served_only_to_the_scrape_token() {
    let (router, _target) = mall().await;
    for token in [None, Some("wrong-token"), Some("")] {
        let resp = send(&router, scrape(token)).await;
        assert_eq!(resp.status(), 404, "{token:?}");
    }
    assert_eq!(
        send(&router, scrape(Some(METRICS_TOKEN))).await.status(),
        200
    );
    // Without a token configured, the API port has no /metrics at all.
    let (router, _target) = mall_with(None).await;
    assert_eq!(send(&router, scrape(None)).await.status(), 404);
}

#[tokio::test]
async fn guessing_the_metrics_token_is_throttled() {
    let (router, _target) = mall_configured(Some(METRICS_TOKEN), |c| {
        c.throttle_login = "3/min".parse().unwrap();
    })
    .await;
    for guess in ["a", "scrape-token-0123456788", "scrape-token-01234567890"] {
        assert_eq!(send(&router, scrape(Some(guess))).await.status(), 404);
    }
    // Past the rate, every request waits, the right token's too: guesses cannot go faster.
    for token in ["b", METRICS_TOKEN] {
        let resp = send(&router, scrape(Some(token))).await;
        assert_eq!(resp.status(), 429, "{token}");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "throttled", "{body}");
    }
}

async fn send(router: &Router, req: Request<Body>) -> Response<Body> {
    router.clone().oneshot(req).await.expect("infallible")
}

fn get(path: &str) -> http::request::Builder {
    Request::builder().method("GET").uri(path)
}

fn request_id(resp: &Response<Body>) -> String {
    resp.headers()
        .get("x-request-id")
        .expect("every response carries X-Request-Id")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_request_id_from_the_client_is_echoed() {
    let (router, _target) = mall().await;
    let resp = send(
        &router,
        get("/healthz")
            .header("x-request-id", "req-from-the-proxy-1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(request_id(&resp), "req-from-the-proxy-1");
}

#[tokio::test]
async fn a_missing_or_unreasonable_request_id_is_replaced_by_a_generated_one() {
    let (router, _target) = mall().await;
    let plain = send(&router, get("/healthz").body(Body::empty()).unwrap()).await;
    let generated = request_id(&plain);
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    // Errors carry one too.
    let not_found = send(&router, get("/nowhere").body(Body::empty()).unwrap()).await;
    assert_eq!(not_found.status(), 404);
    assert_ne!(request_id(&not_found), generated, "one id per request");
    let long = "x".repeat(500);
    let replaced = send(
        &router,
        get("/healthz")
            .header("x-request-id", long.as_str())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(uuid::Uuid::parse_str(&request_id(&replaced)).is_ok());
}

#[tokio::test]
async fn metrics_count_requests_latency_and_auth_failures() {
    let (router, _target) = mall().await;
    // Anonymous, then with a broken token: two auth failures with their reasons.
    let anonymous = send(&router, get("/mall/goods/").body(Body::empty()).unwrap()).await;
    assert_eq!(anonymous.status(), 401);
    let broken = send(
        &router,
        get("/mall/goods/")
            .header("authorization", "JWT not-a-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(broken.status(), 401);
    let goods_7 = send(&router, get("/mall/goods/7/").body(Body::empty()).unwrap()).await;
    assert_eq!(goods_7.status(), 401);
    // WeChat refuses a login code (the dev fake refuses codes starting with `bad`).
    let refused = send(
        &router,
        Request::builder()
            .method("POST")
            .uri("/auth/wx-login/")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"code": "bad-code-1"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status(), 400);

    let resp = send(&router, scrape(Some(METRICS_TOKEN))).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let has = |line_start: &str, labels: &[&str]| {
        text.lines().any(|line| {
            line.starts_with(line_start) && labels.iter().all(|label| line.contains(label))
        })
    };
    assert!(
        has(
            "http_requests_total{",
            &["method=\"GET\"", "route=\"/mall/goods/\"", "status=\"401\""]
        ),
        "{text}"
    );
    // The route template, not the path: labels stay few.
    assert!(
        has("http_requests_total{", &["route=\"/mall/goods/{id}/\""]),
        "{text}"
    );
    assert!(!text.contains("/mall/goods/7/"), "{text}");
    assert!(
        has(
            "http_request_duration_seconds_bucket{",
            &["route=\"/mall/goods/\"", "le=\""]
        ),
        "{text}"
    );
    assert!(has("http_request_duration_seconds_count{", &[]), "{text}");
    assert!(
        has(
            "wxrest_auth_failures_total{",
            &["reason=\"not_authenticated\""]
        ),
        "{text}"
    );
    assert!(
        has("wxrest_auth_failures_total{", &["reason=\"token_invalid\""]),
        "{text}"
    );
    assert!(
        has("wxrest_wechat_errors_total{", &["kind=\"invalid_code\""]),
        "{text}"
    );
}
