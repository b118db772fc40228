//! The library's WeChat login and phone flow logs no appsecret, session_key, login or phone
//! code, or token.

use serde_json::json;
use wxrest::wechat::{FakeWeChat, Script};

use crate::captured_logs::CapturedLogs;
use crate::running_app::{encrypted_phone, start};

#[tokio::test(flavor = "current_thread")]
async fn secrets_are_never_logged() {
    let (captured, _guard) = CapturedLogs::install();

    let fake = FakeWeChat::start().await;
    fake.script_code("login-code-secret-1", Script::session("openid-1"));
    fake.script_code("login-code-bad-2", Script::Error(40163));
    fake.script_code("login-code-busy-3", Script::Error(-1));
    fake.script_phone("phone-code-secret-4", "13800138000");
    let app = start(&fake).await;

    let login = app.login("login-code-secret-1").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.body["token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh"].as_str().unwrap().to_owned();
    let retry = app.login("login-code-secret-1").await;
    let retry_token = retry.body["token"].as_str().unwrap().to_owned();
    let phone = app
        .post(
            "/auth/wx-phone/",
            Some(&token),
            json!({"code": "phone-code-secret-4"}),
        )
        .await;
    assert_eq!(phone.status, 200, "{}", phone.text);
    let key = fake.session_key_of("openid-1").unwrap();
    let encrypted = encrypted_phone(&key, "wx-other");
    let data = encrypted["encryptedData"].as_str().unwrap().to_owned();
    let bad_phone = app.post("/auth/wx-phone/", Some(&token), encrypted).await;
    assert_eq!(bad_phone.status, 400);
    assert_eq!(app.login("login-code-bad-2").await.status, 400);
    assert_eq!(app.login("login-code-busy-3").await.status, 503);
    let (pair, _) = app.tokens.refresh(&refresh).await.unwrap();
    let probe = app.get("/probe", Some(&pair.token)).await;
    assert_eq!(probe.status, 200);

    let logs = captured.text();
    assert!(
        logs.contains("WeChat login"),
        "the login was not logged:\n{logs}"
    );
    assert!(logs.contains("phone number stored"), "{logs}");
    for (what, secret) in [
        ("appsecret", "fake-app-secret-0123456789abcdef"),
        ("session_key", key.as_str()),
        ("token", token.as_str()),
        ("retry token", retry_token.as_str()),
        ("refresh", refresh.as_str()),
        ("refreshed token", pair.token.as_str()),
        ("login code", "login-code-secret-1"),
        ("failed login code", "login-code-bad-2"),
        ("busy login code", "login-code-busy-3"),
        ("phone code", "phone-code-secret-4"),
        ("encrypted data", data.as_str()),
    ] {
        assert!(!logs.contains(secret), "the logs show the {what}:\n{logs}");
    }
    for body in [&login.text, &retry.text, &phone.text, &bad_phone.text] {
        assert!(!body.contains(&key));
        assert!(!body.contains("\"openid\""));
    }
}
