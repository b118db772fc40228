//! A full mall flow under a capturing TRACE subscriber: WeChat login, refresh, phone, order, a
//! refused login code, password and Basic logins (right and wrong). No token, password,
//! session_key, appsecret or JWT secret reaches the logs or an error body.

use std::net::SocketAddr;

use crate::captured_logs::CapturedLogs;
use crate::databases;
use crate::shop;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wxrest::wechat::{FakeWeChat, Script};

const APP_SECRET: &str = "mall-log-test-appsecret-0123456789ab";
const JWT_SECRET: &str = "mall-log-test-jwt-secret-0123456789abcdef";
const ADMIN_PASSWORD: &str = "admin-pass-never-logged-42";
const WRONG_PASSWORD: &str = "wrong-pass-never-logged-43";

struct Answer {
    status: u16,
    body: Value,
    text: String,
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<String>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.2.0.1:40000".parse::<SocketAddr>().unwrap()));
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

async fn post(app: &Router, uri: &str, auth: Option<String>, body: Value) -> Answer {
    call(app, "POST", uri, auth, Some(body)).await
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_mall_flow_logs_no_secret() {
    let (captured, _guard) = CapturedLogs::install();

    let fake = FakeWeChat::builder().secret(APP_SECRET).start().await;
    fake.script_code("mall-code-secret-1", Script::session("openid-mall-1"));
    fake.script_code("mall-code-bad-2", Script::Error(40029));
    fake.script_phone("mall-phone-code-3", "13800138000");
    let target = databases::fresh_target("sqlite-file").await;
    let mut config = shop::Config::for_database(&target.url);
    config.jwt_secret = Some(JWT_SECRET.into());
    config.wx = Some(fake.config());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.seed_demo = true;
    // One line per request, so that every request's log is searched for secrets.
    config.access_log = true;
    let app = shop::build(&config).await.unwrap().router;

    let login = post(
        &app,
        "/auth/wx-login/",
        None,
        json!({"code": "mall-code-secret-1"}),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.body["token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh"].as_str().unwrap().to_owned();
    let bearer = || Some(format!("JWT {token}"));
    let session_key = fake.session_key_of("openid-mall-1").unwrap();

    let phone = post(
        &app,
        "/auth/wx-phone/",
        bearer(),
        json!({"code": "mall-phone-code-3"}),
    )
    .await;
    assert_eq!(phone.status, 200, "{}", phone.text);

    let goods = call(&app, "GET", "/mall/goods/?search=Gaiwan", bearer(), None).await;
    let gid = goods.body["results"][0]["id"].as_i64().unwrap();
    let order = post(
        &app,
        "/mall/orders/",
        bearer(),
        json!({"items": [{"goods": gid, "quantity": 1}]}),
    )
    .await;
    assert_eq!(order.status, 201, "{}", order.text);
    // Rotation, then a reuse (which ends the session: done last).
    let refreshed = post(
        &app,
        "/auth/token/refresh/",
        None,
        json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let new_token = refreshed.body["token"].as_str().unwrap().to_owned();
    let new_refresh = refreshed.body["refresh"].as_str().unwrap().to_owned();
    let reused = post(
        &app,
        "/auth/token/refresh/",
        None,
        json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(reused.status, 401, "{}", reused.text);

    let bad_code = post(
        &app,
        "/auth/wx-login/",
        None,
        json!({"code": "mall-code-bad-2"}),
    )
    .await;
    assert_eq!(bad_code.status, 400, "{}", bad_code.text);

    let password = post(
        &app,
        "/auth/token/",
        None,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(password.status, 200, "{}", password.text);
    let admin_token = password.body["token"].as_str().unwrap().to_owned();
    let wrong = post(
        &app,
        "/auth/token/",
        None,
        json!({"username": "admin", "password": WRONG_PASSWORD}),
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);

    let b64 = base64::engine::general_purpose::STANDARD;
    let basic_right = b64.encode(format!("admin:{ADMIN_PASSWORD}"));
    let basic_wrong = b64.encode(format!("admin:{WRONG_PASSWORD}"));
    let basic = call(
        &app,
        "GET",
        "/users/me/",
        Some(format!("Basic {basic_right}")),
        None,
    )
    .await;
    let basic_bad = call(
        &app,
        "GET",
        "/users/me/",
        Some(format!("Basic {basic_wrong}")),
        None,
    )
    .await;
    assert!(basic.status < 500 && basic_bad.status < 500);
    let forged = call(
        &app,
        "GET",
        "/users/me/",
        Some(format!("JWT {token}x")),
        None,
    )
    .await;
    assert_eq!(forged.status, 401);

    let logs = captured.text();
    assert!(
        logs.contains("/auth/wx-login/"),
        "requests were not logged:\n{logs}"
    );
    let secrets = [
        ("appsecret", APP_SECRET),
        ("JWT secret", JWT_SECRET),
        ("admin password", ADMIN_PASSWORD),
        ("wrong password", WRONG_PASSWORD),
        ("Basic credentials", basic_right.as_str()),
        ("wrong Basic credentials", basic_wrong.as_str()),
        ("session_key", session_key.as_str()),
        ("token", token.as_str()),
        ("refresh", refresh.as_str()),
        ("refreshed token", new_token.as_str()),
        ("rotated refresh", new_refresh.as_str()),
        ("admin token", admin_token.as_str()),
        ("login code", "mall-code-secret-1"),
        ("refused login code", "mall-code-bad-2"),
        ("phone code", "mall-phone-code-3"),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "the logs show the {what}:\n{logs}");
    }
    // Error bodies carry no secret; no body at all carries the session_key or a secret key.
    let errors = [&reused, &bad_code, &wrong, &basic_bad, &forged];
    for answer in errors {
        assert!(
            answer.body["detail"].is_string() || answer.body.is_object(),
            "{}",
            answer.text
        );
        for (what, secret) in secrets {
            assert!(
                !answer.text.contains(secret),
                "an error body shows the {what}: {}",
                answer.text
            );
        }
    }
    for answer in [
        &login, &refreshed, &phone, &order, &password, &basic, &goods,
    ] {
        for secret in [APP_SECRET, JWT_SECRET, ADMIN_PASSWORD, session_key.as_str()] {
            assert!(!answer.text.contains(secret), "{}", answer.text);
        }
        assert!(!answer.text.contains("session_key"), "{}", answer.text);
    }
}
