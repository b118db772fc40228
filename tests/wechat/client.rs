//! WxClient against FakeWeChat over real HTTP: login codes, errcodes, retries, timeouts,
//! malformed answers, and secrets kept out of errors.
#![cfg(feature = "fake-wechat")]

use std::time::{Duration, Instant};

use serde_json::json;
use wxrest::ApiError;
use wxrest::wechat::{FakeWeChat, Script, WxClient, WxError};

const SECRET: &str = "s3cr3t-appsecret-never-show-me";

async fn fake() -> FakeWeChat {
    FakeWeChat::builder()
        .appid("wxclienttest")
        .secret(SECRET)
        .start()
        .await
}

fn assert_no_secret(err: &WxError) {
    let api: ApiError = err.clone().into();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        api.body().to_string(),
        api.to_string(),
    ] {
        assert!(!text.contains(SECRET), "secret leaked in {text}");
        assert!(
            !text.contains("secret="),
            "secret parameter leaked in {text}"
        );
    }
}

#[tokio::test]
async fn code2session_success_returns_openid_session_key_and_unionid() {
    let fake = fake().await;
    fake.script_code(
        "c1",
        Script::Session {
            openid: "o-1".into(),
            unionid: Some("u-1".into()),
        },
    );
    let client = WxClient::new(fake.config()).unwrap();
    let session = client.code2session("c1").await.unwrap();
    assert_eq!(session.openid, "o-1");
    assert_eq!(session.unionid.as_deref(), Some("u-1"));
    assert_eq!(
        Some(session.session_key.clone()),
        fake.session_key_of("o-1")
    );
    assert!(!format!("{session:?}").contains(&session.session_key));
}

#[tokio::test]
async fn text_plain_json_answers_are_parsed() {
    let fake = fake().await;
    fake.script_code("c1", Script::session("o-1"));
    // reqwest is built with `rustls-no-provider` (wxrest's TLS is rustls on ring): like any
    // app building its own clients, pick the process's crypto provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(format!(
        "{}/sns/jscode2session?appid=wxclienttest&secret={SECRET}&js_code=c1&grant_type=authorization_code",
        fake.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(response.headers()["content-type"], "text/plain");
    fake.script_code("c2", Script::session("o-2"));
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(client.code2session("c2").await.unwrap().openid, "o-2");
}

async fn scripted_error(errcode: i64) -> WxError {
    let fake = fake().await;
    fake.script_code("c", Script::Error(errcode));
    let client = WxClient::new(fake.config()).unwrap();
    client.code2session("c").await.unwrap_err()
}

#[tokio::test]
async fn errcode_40029_is_invalid_code() {
    assert_eq!(scripted_error(40029).await, WxError::InvalidCode);
    let api: ApiError = WxError::InvalidCode.into();
    assert_eq!(api.status(), 400);
    assert_eq!(
        api.body(),
        json!({"detail": "Invalid WeChat login code.", "code": "wechat_code_invalid"})
    );
}

#[tokio::test]
async fn errcode_40163_is_code_used() {
    assert_eq!(scripted_error(40163).await, WxError::CodeUsed);
    let api: ApiError = WxError::CodeUsed.into();
    assert_eq!(api.status(), 400);
    assert_eq!(
        api.body(),
        json!({"detail": "This WeChat login code has already been used.", "code": "wechat_code_used"})
    );
}

#[tokio::test]
async fn errcode_45011_is_rate_limited() {
    assert_eq!(scripted_error(45011).await, WxError::RateLimited);
    let api: ApiError = WxError::RateLimited.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (429, "wechat_rate_limited")
    );
}

#[tokio::test]
async fn errcode_40226_is_high_risk() {
    assert_eq!(scripted_error(40226).await, WxError::HighRisk);
    let api: ApiError = WxError::HighRisk.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (403, "wechat_high_risk")
    );
}

#[tokio::test]
async fn other_errcode_is_api_error_and_502() {
    let err = scripted_error(61024).await;
    assert!(
        matches!(err, WxError::Api { errcode: 61024, .. }),
        "{err:?}"
    );
    let api: ApiError = err.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (502, "wechat_unavailable")
    );
}

#[tokio::test]
async fn api_errors_are_not_retried() {
    let fake = fake().await;
    for (i, code) in [40029, 40163, 45011, 40226].into_iter().enumerate() {
        fake.script_code(format!("c{i}"), Script::Error(code));
    }
    let client = WxClient::new(fake.config()).unwrap();
    for i in 0..4 {
        let _ = client.code2session(&format!("c{i}")).await.unwrap_err();
    }
    assert_eq!(fake.code2session_calls(), 4);
}

#[tokio::test]
async fn busy_twice_then_success_is_retried() {
    let fake = fake().await;
    fake.script_code("c", Script::session("o-1"));
    fake.fail_next(2, Script::Error(-1));
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(client.code2session("c").await.unwrap().openid, "o-1");
    assert_eq!(fake.code2session_calls(), 3);
}

#[tokio::test]
async fn busy_forever_is_busy_after_bounded_retries() {
    let fake = fake().await;
    fake.script_code("c", Script::Error(-1));
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(client.code2session("c").await, Err(WxError::Busy));
    assert_eq!(fake.code2session_calls(), 3, "1 call + max_retries (2)");
    let api: ApiError = WxError::Busy.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (503, "wechat_unavailable")
    );
}

#[tokio::test]
async fn delay_beyond_timeout_is_timeout_within_the_timeout() {
    let fake = fake().await;
    fake.script_code("slow", Script::Delay(Duration::from_secs(10)));
    let client = WxClient::new(fake.config().timeout(Duration::from_millis(400))).unwrap();
    let started = Instant::now();
    let err = client.code2session("slow").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err, WxError::Timeout);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(fake.code2session_calls(), 1, "timeouts are not retried");
    assert_no_secret(&err);
}

#[tokio::test]
async fn short_delay_within_timeout_succeeds() {
    let fake = fake().await;
    fake.script_code("slowish", Script::Delay(Duration::from_millis(100)));
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(
        client.code2session("slowish").await.unwrap().openid,
        "fake-openid-slowish"
    );
}

#[tokio::test]
async fn malformed_body_is_malformed() {
    let fake = fake().await;
    fake.script_code("m", Script::Malformed);
    let client = WxClient::new(fake.config()).unwrap();
    let err = client.code2session("m").await.unwrap_err();
    assert!(matches!(err, WxError::Malformed(_)), "{err:?}");
    let api: ApiError = err.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (502, "wechat_unavailable")
    );
}

#[tokio::test]
async fn http_500_is_a_transport_error_and_not_retried() {
    let fake = fake().await;
    fake.script_code("s", Script::Status(500));
    let client = WxClient::new(fake.config()).unwrap();
    let err = client.code2session("s").await.unwrap_err();
    assert!(
        matches!(&err, WxError::Transport(msg) if msg.contains("500")),
        "{err:?}"
    );
    assert_eq!(fake.code2session_calls(), 1);
}

#[tokio::test]
async fn reused_code_is_code_used() {
    let fake = fake().await;
    fake.script_code("once", Script::session("o-1"));
    let client = WxClient::new(fake.config()).unwrap();
    client.code2session("once").await.unwrap();
    assert_eq!(client.code2session("once").await, Err(WxError::CodeUsed));
}

#[tokio::test]
async fn unscripted_code_outside_dev_mode_is_invalid() {
    let fake = fake().await;
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(
        client.code2session("anything").await,
        Err(WxError::InvalidCode)
    );
}

#[tokio::test]
async fn dev_mode_logs_in_any_code_and_rejects_bad_ones() {
    let fake = FakeWeChat::builder().dev_mode(true).start().await;
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(
        client.code2session("x1").await.unwrap().openid,
        "fake-openid-x1"
    );
    assert_eq!(
        client.code2session("bad-x").await,
        Err(WxError::InvalidCode)
    );
}

#[tokio::test]
async fn wrong_secret_is_invalid_credential_without_the_secret() {
    let fake = fake().await;
    fake.script_code("c", Script::session("o-1"));
    let wrong = "wrong-secret-that-must-not-leak";
    let client = WxClient::new(fake.config().secret(wrong)).unwrap();
    let err = client.code2session("c").await.unwrap_err();
    assert_eq!(err, WxError::InvalidCredential);
    let api: ApiError = err.clone().into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (502, "wechat_unavailable")
    );
    for text in [err.to_string(), format!("{err:?}"), api.body().to_string()] {
        assert!(!text.contains(wrong), "{text}");
    }
}

#[tokio::test]
async fn wrong_appid_is_invalid_credential() {
    let fake = fake().await;
    let mut config = fake.config();
    config.appid = "wx-not-this-one".into();
    let client = WxClient::new(config).unwrap();
    assert_eq!(
        client.code2session("c").await,
        Err(WxError::InvalidCredential)
    );
}

#[tokio::test]
async fn transport_error_is_retried_then_reported_without_the_secret() {
    // Port 1 on loopback: connection refused, a connect-level error.
    let fake = fake().await;
    let config = fake.config().api_base("http://127.0.0.1:1");
    let client = WxClient::new(config).unwrap();
    let started = Instant::now();
    let err = client.code2session("c").await.unwrap_err();
    assert!(matches!(err, WxError::Transport(_)), "{err:?}");
    // Two backoffs (50 ms + 150 ms) were slept between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_no_secret(&err);
    let api: ApiError = err.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (502, "wechat_unavailable")
    );
}

#[tokio::test]
async fn timeout_error_never_contains_the_secret() {
    let fake = fake().await;
    fake.script_code("slow", Script::Delay(Duration::from_secs(5)));
    let client = WxClient::new(fake.config().timeout(Duration::from_millis(200))).unwrap();
    let err = client.code2session("slow").await.unwrap_err();
    assert_eq!(err, WxError::Timeout);
    assert_no_secret(&err);
    let api: ApiError = err.into();
    assert_eq!(
        (api.status().as_u16(), api.code()),
        (503, "wechat_unavailable")
    );
}

#[tokio::test]
async fn config_and_client_debug_redact_the_secret() {
    let fake = fake().await;
    let client = WxClient::new(fake.config()).unwrap();
    assert!(!format!("{:?}", fake.config()).contains(SECRET));
    assert!(!format!("{client:?}").contains(SECRET));
}

#[tokio::test]
async fn phone_number_from_scripted_code() {
    let fake = fake().await;
    fake.script_phone("p1", "13800138000");
    let client = WxClient::new(fake.config()).unwrap();
    let info = client.phone_number("p1").await.unwrap();
    assert_eq!(info.pure_phone_number, "13800138000");
    assert_eq!(info.phone_number, "+86 13800138000");
    assert_eq!(info.country_code, "86");
    assert_eq!(info.watermark.unwrap().appid, "wxclienttest");
}

#[tokio::test]
async fn unknown_phone_code_is_invalid_code() {
    let fake = fake().await;
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(client.phone_number("nope").await, Err(WxError::InvalidCode));
}

#[tokio::test]
async fn dev_mode_phone_codes_give_deterministic_numbers() {
    let fake = FakeWeChat::builder().dev_mode(true).start().await;
    let client = WxClient::new(fake.config()).unwrap();
    let a = client.phone_number("any").await.unwrap();
    let b = client.phone_number("any").await.unwrap();
    assert_eq!(a.pure_phone_number, b.pure_phone_number);
    assert!(a.pure_phone_number.starts_with("138001380"));
}

#[tokio::test]
async fn decrypting_with_the_fake_session_key() {
    let fake = fake().await;
    fake.script_code("c", Script::session("o-9"));
    let client = WxClient::new(fake.config()).unwrap();
    client.code2session("c").await.unwrap();
    let key = fake.session_key_of("o-9").unwrap();
    let iv = "r7BXXKkLb8qrSNn05n0qiA==";
    let data = json!({"nickName": "n", "watermark": {"appid": "wxclienttest", "timestamp": 1}});
    let encrypted = wxrest::wechat::crypto::encrypt(&key, iv, &data).unwrap();
    assert_eq!(client.decrypt(&key, &encrypted, iv).unwrap(), data);
}

#[tokio::test]
async fn shutdown_stops_the_fake() {
    let fake = fake().await;
    let config = fake.config();
    fake.shutdown().await;
    let client = WxClient::new(config.max_retries(0)).unwrap();
    assert!(matches!(
        client.code2session("c").await,
        Err(WxError::Transport(_))
    ));
}

#[tokio::test]
async fn empty_code_is_invalid_without_calling_wechat() {
    let fake = fake().await;
    let client = WxClient::new(fake.config()).unwrap();
    assert_eq!(client.code2session("  ").await, Err(WxError::InvalidCode));
    assert_eq!(client.phone_number("").await, Err(WxError::InvalidCode));
    assert_eq!((fake.code2session_calls(), fake.phone_calls()), (0, 0));
}
