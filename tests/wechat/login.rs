//! The WeChat login and phone endpoints, end to end over HTTP against a FakeWeChat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxrest::wechat::{FakeWeChat, RedisCodeCache, Script, WxLoginService};

use crate::databases;
use crate::running_app;
use crate::running_app::{App, start, start_with};

async fn scripted(code: &str, openid: &str) -> (FakeWeChat, App) {
    let fake = FakeWeChat::start().await;
    fake.script_code(code, Script::session(openid));
    let app = start(&fake).await;
    (fake, app)
}

// ---------------------------------------------------------------- login: users

#[tokio::test]
async fn first_login_creates_the_user() {
    let (_fake, app) = scripted("code-1", "openid-1").await;
    let answer = app.login("code-1").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["created"], true);
    assert_eq!(answer.body["user"]["username"], "openid-1");
    assert!(answer.body["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        answer.body["refresh"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let id = answer.body["user"]["id"].as_i64().unwrap();
    assert!(app.users.get(id).await.unwrap().is_some());
}

#[tokio::test]
async fn second_login_with_a_new_code_updates_the_same_user() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.script_code("code-2", Script::session("openid-1"));
    let first = app.login("code-1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = app.login("code-2").await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["created"], false);
    assert_eq!(second.body["user"]["id"], first.body["user"]["id"]);
    let (before, after) = (
        first.body["user"]["last_login"].as_str().unwrap(),
        second.body["user"]["last_login"].as_str().unwrap(),
    );
    assert!(after > before, "last_login {before} -> {after}");
}

#[tokio::test]
async fn user_info_fields_are_saved_only_when_sent() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.script_code("code-2", Script::session("openid-1"));
    let info = json!({
        "nickName": "Tea Lover", "avatarUrl": "https://img.example/a.png", "gender": 2,
        "country": "China", "province": "Zhejiang", "city": "Hangzhou", "language": "zh_CN"
    });
    let first = app
        .post(
            "/auth/wx-login/",
            None,
            json!({ "code": "code-1", "userInfo": info }),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let user = &first.body["user"];
    assert_eq!(user["nickname"], "Tea Lover");
    assert_eq!(user["avatar_url"], "https://img.example/a.png");
    assert_eq!(user["gender"], 2);
    assert_eq!(user["city"], "Hangzhou");
    assert_eq!(user["language"], "zh_CN");

    let second = app.login("code-2").await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["user"]["nickname"], "Tea Lover");
    assert_eq!(second.body["user"]["province"], "Zhejiang");
}

#[tokio::test]
async fn blank_code_is_a_field_error_without_calling_wechat() {
    let fake = FakeWeChat::start().await;
    let app = start(&fake).await;
    let answer = app.login("   ").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"code": ["This field may not be blank."]})
    );
    assert_eq!(fake.code2session_calls(), 0);
}

#[tokio::test]
async fn missing_code_is_required() {
    let fake = FakeWeChat::start().await;
    let app = start(&fake).await;
    let answer = app.post("/auth/wx-login", None, json!({})).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, json!({"code": ["This field is required."]}));
}

#[tokio::test]
async fn invalid_user_info_is_a_nested_field_error() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    let answer = app
        .post(
            "/auth/wx-login/",
            None,
            json!({ "code": "code-1", "userInfo": { "nickName": "x".repeat(65) } }),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"userInfo": {"nickname": ["Ensure this field has no more than 64 characters."]}})
    );
    assert_eq!(fake.code2session_calls(), 0);
}

#[tokio::test]
async fn malformed_json_gets_the_parse_error() {
    let fake = FakeWeChat::start().await;
    let app = start(&fake).await;
    let answer = app.post_raw("/auth/wx-login/", None, "{\"code\": ").await;
    answer.assert_parse_error();
}

#[tokio::test]
async fn inactive_user_gets_401() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.script_code("code-2", Script::session("openid-1"));
    let (_, id) = app.logged_in("code-1").await;
    app.users.set_active(id, false).await.unwrap();
    let answer = app.login("code-2").await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        json!({"detail": "User account is disabled.", "code": "user_inactive"})
    );
}

// ---------------------------------------------------------------- login: WeChat errors

async fn login_answer_for(script: Script) -> (FakeWeChat, running_app::Answer) {
    let fake = FakeWeChat::start().await;
    fake.script_code("code-x", script);
    let app = start(&fake).await;
    let answer = app.login("code-x").await;
    (fake, answer)
}

#[tokio::test]
async fn errcode_40029_answers_400_wechat_code_invalid() {
    let (_fake, answer) = login_answer_for(Script::Error(40029)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"detail": "Invalid WeChat login code.", "code": "wechat_code_invalid"})
    );
}

#[tokio::test]
async fn unknown_code_answers_400_wechat_code_invalid() {
    let fake = FakeWeChat::start().await;
    let app = start(&fake).await;
    let answer = app.login("never-issued").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["code"], "wechat_code_invalid");
}

#[tokio::test]
async fn errcode_40163_answers_400_wechat_code_used() {
    let (_fake, answer) = login_answer_for(Script::Error(40163)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({
            "detail": "This WeChat login code has already been used.",
            "code": "wechat_code_used"
        })
    );
}

#[tokio::test]
async fn errcode_45011_answers_429() {
    let (_fake, answer) = login_answer_for(Script::Error(45011)).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.body["code"], "wechat_rate_limited");
}

#[tokio::test]
async fn errcode_40226_answers_403() {
    let (_fake, answer) = login_answer_for(Script::Error(40226)).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.body["code"], "wechat_high_risk");
}

#[tokio::test]
async fn busy_twice_then_success_answers_200() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.fail_next(2, Script::Error(-1));
    let answer = app.login("code-1").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["created"], true);
    assert_eq!(fake.code2session_calls(), 3);
}

#[tokio::test]
async fn wechat_timeout_answers_503_within_about_the_timeout() {
    let fake = FakeWeChat::start().await;
    fake.script_code("slow", Script::Delay(Duration::from_secs(3)));
    let config = fake.config().timeout(Duration::from_millis(300));
    let app = start_with(databases::sqlite_memory().await, config, |l| l).await;
    let started = Instant::now();
    let answer = app.login("slow").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.body,
        json!({
            "detail": "WeChat is temporarily unavailable, try again later.",
            "code": "wechat_unavailable"
        })
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn malformed_wechat_answer_is_502() {
    let (_fake, answer) = login_answer_for(Script::Malformed).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.body["code"], "wechat_unavailable");
}

#[tokio::test]
async fn no_error_body_shows_the_appsecret() {
    let fake = FakeWeChat::start().await;
    let secret = "fake-app-secret-0123456789abcdef";
    let scripts = [
        Script::Error(40029),
        Script::Error(40163),
        Script::Error(45011),
        Script::Error(40226),
        Script::Error(-1),
        Script::Error(40125),
        Script::Error(99999),
        Script::Malformed,
        Script::Status(500),
    ];
    for (i, script) in scripts.into_iter().enumerate() {
        fake.script_code(format!("code-{i}"), script);
    }
    // A wrong secret makes WeChat answer 40125 too.
    let wrong = start_with(
        databases::sqlite_memory().await,
        fake.config().secret("another-secret-value"),
        |l| l,
    )
    .await;
    let app = start(&fake).await;
    for i in 0..9 {
        let answer = app.login(&format!("code-{i}")).await;
        assert!(answer.status >= 400, "{}", answer.text);
        assert!(!answer.text.contains(secret), "{}", answer.text);
    }
    fake.script_code("ok", Script::session("openid-ok"));
    let answer = wrong.login("ok").await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(!answer.text.contains("another-secret-value"));
}

#[tokio::test]
async fn wechat_errors_are_not_remembered() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.fail_next(3, Script::Error(-1));
    let busy = app.login("code-1").await;
    assert_eq!(busy.status, 503, "{}", busy.text);
    let again = app.login("code-1").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["created"], true);
}

// ---------------------------------------------------------------- retried codes

#[tokio::test]
async fn retried_code_answers_the_same_user_with_fresh_tokens() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    let first = app.login("code-1").await;
    let second = app.login("code-1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["user"]["id"], first.body["user"]["id"]);
    assert_eq!(second.body["created"], first.body["created"]);
    assert_ne!(second.body["token"], first.body["token"]);
    assert_ne!(second.body["refresh"], first.body["refresh"]);
    assert_eq!(fake.code2session_calls(), 1);
}

#[tokio::test]
async fn code_is_forgotten_after_its_ttl() {
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::session("openid-1"));
    let app = start_with(databases::sqlite_memory().await, fake.config(), |l| {
        l.code_ttl(Duration::from_millis(300))
    })
    .await;
    assert_eq!(app.login("code-1").await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late = app.login("code-1").await;
    assert_eq!(late.status, 400);
    assert_eq!(late.body["code"], "wechat_code_used");
    assert_eq!(fake.code2session_calls(), 2);
}

/// Logs in `n` times at once with `code`, spread over `apps`: every login succeeds, as one
/// user.
async fn concurrent_logins_are_one_user(apps: &[Arc<App>], n: usize, code: &'static str) {
    let requests = (0..n).map(|i| {
        let app = apps[i % apps.len()].clone();
        tokio::spawn(async move { app.login(code).await })
    });
    let mut ids = Vec::new();
    for answer in futures_util::future::join_all(requests).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        ids.push(answer.body["user"]["id"].as_i64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_requests_with_one_code_make_one_wechat_call() {
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::session("openid-1"));
    fake.fail_next(1, Script::Delay(Duration::from_millis(200)));
    let app = Arc::new(start(&fake).await);
    concurrent_logins_are_one_user(&[app], 20, "code-1").await;
    assert_eq!(fake.code2session_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_redis_make_one_wechat_call_for_a_code() {
    let Some(url) = databases::redis_url() else {
        return;
    };
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::session("openid-1"));
    fake.fail_next(1, Script::Delay(Duration::from_millis(300)));
    let (a, b) = two_instances(&url, &fake, |l| l).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    concurrent_logins_are_one_user(&[a, b.clone()], 10, "code-1").await;
    assert_eq!(fake.code2session_calls(), 1);

    // A later retry on the other instance is answered from Redis.
    let later = b.login("code-1").await;
    assert_eq!(later.status, 200, "{}", later.text);
    assert_eq!(fake.code2session_calls(), 1);
}

/// Two app instances on one database, sharing a Redis code cache under a fresh prefix.
async fn two_instances(
    url: &str,
    fake: &FakeWeChat,
    configure: impl Fn(WxLoginService) -> WxLoginService + Clone + Send + 'static,
) -> (App, App) {
    let prefix = databases::unique_prefix("wx-code");
    let db = databases::sqlite_memory().await;
    let mut apps = Vec::new();
    for db in [db.clone(), db] {
        let cache = RedisCodeCache::open(url).unwrap().prefix(prefix.clone());
        let configure = configure.clone();
        apps.push(start_with(db, fake.config(), move |l| configure(l.code_cache(cache))).await);
    }
    let b = apps.pop().unwrap();
    let a = apps.pop().unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_waiting_on_a_failed_exchange_answers_503_without_calling_wechat() {
    let Some(url) = databases::redis_url() else {
        return;
    };
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::Error(40029));
    fake.fail_next(1, Script::Delay(Duration::from_millis(400)));
    let (a, b) = two_instances(&url, &fake, |l| l).await;
    let first = tokio::spawn(async move { a.login("code-1").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let waiting = b.login("code-1").await;
    assert_eq!(waiting.status, 503, "{}", waiting.text);
    assert_eq!(waiting.body["code"], "wechat_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let first = first.await.unwrap();
    assert_eq!(first.status, 400, "{}", first.text);
    assert_eq!(first.body["code"], "wechat_code_invalid");
    assert_eq!(fake.code2session_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_waits_for_another_only_for_the_claim_wait() {
    let Some(url) = databases::redis_url() else {
        return;
    };
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::session("openid-1"));
    fake.fail_next(1, Script::Delay(Duration::from_millis(1500)));
    let (a, b) = two_instances(&url, &fake, |l| l.claim_wait(Duration::from_millis(300))).await;
    let first = tokio::spawn(async move { a.login("code-1").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let waiting = b.login("code-1").await;
    assert_eq!(waiting.status, 503, "{}", waiting.text);
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(fake.code2session_calls(), 1);
    // Once the first instance answered, the other one answers the same login.
    let later = b.login("code-1").await;
    assert_eq!(later.status, 200, "{}", later.text);
    assert_eq!(fake.code2session_calls(), 1);
}

#[tokio::test]
async fn redis_code_cache_keys_hold_no_raw_code_or_secret() {
    let Some(url) = databases::redis_url() else {
        return;
    };
    let prefix = databases::unique_prefix("wx-code-keys");
    let fake = FakeWeChat::start().await;
    fake.script_code("code-raw-1", Script::session("openid-1"));
    let cache = RedisCodeCache::open(&url).unwrap().prefix(prefix.clone());
    let app = start_with(databases::sqlite_memory().await, fake.config(), move |l| {
        l.code_cache(cache)
    })
    .await;
    assert_eq!(app.login("code-raw-1").await.status, 200);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let digest = wxrest::wechat::code_digest("code-raw-1");
    assert_eq!(
        keys,
        vec![format!("{prefix}wx:code:{}:{digest}", fake.appid())]
    );
    let value: String = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let entry: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        entry,
        json!({"openid": "openid-1", "unionid": null, "created": true})
    );
}

#[tokio::test]
async fn login_keeps_working_when_redis_is_down() {
    let (fake, _) = scripted("unused", "x").await;
    fake.script_code("code-1", Script::session("openid-1"));
    let cache = RedisCodeCache::open("redis://127.0.0.1:1").unwrap();
    let app = start_with(databases::sqlite_memory().await, fake.config(), move |l| {
        l.code_cache(cache)
    })
    .await;
    let answer = app.login("code-1").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["created"], true);
}

// ---------------------------------------------------------------- one row per openid

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_of_one_openid_create_one_row_on_every_backend() {
    for db in databases::each_backend().await {
        let fake = FakeWeChat::start().await;
        for i in 0..10 {
            fake.script_code(format!("code-{i}"), Script::session("openid-same"));
        }
        let app = Arc::new(start_with(db.db.clone(), fake.config(), |l| l).await);
        let requests = (0..10).map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.login(&format!("code-{i}")).await })
        });
        let mut ids = Vec::new();
        let mut created = 0;
        for answer in futures_util::future::join_all(requests).await {
            let answer = answer.unwrap();
            assert_eq!(answer.status, 200, "{}: {}", db.label, answer.text);
            ids.push(answer.body["user"]["id"].as_i64().unwrap());
            created += usize::from(answer.body["created"] == true);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{}: {ids:?}", db.label);
        assert_eq!(created, 1, "{}", db.label);
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(db.pool())
            .await
            .unwrap();
        let n: i64 = sqlx::Row::try_get(&row, 0).unwrap();
        assert_eq!(n, 1, "{}", db.label);
        assert_eq!(fake.code2session_calls(), 10, "{}", db.label);
    }
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn login_token_passes_the_auth_layer() {
    let (_fake, app) = scripted("code-1", "openid-1").await;
    let (token, id) = app.logged_in("code-1").await;
    let answer = app.get("/probe", Some(&token)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body, json!({ "user_id": id }));
}

#[tokio::test]
async fn login_refresh_token_works_at_the_token_service() {
    let (_fake, app) = scripted("code-1", "openid-1").await;
    let answer = app.login("code-1").await;
    let refresh = answer.body["refresh"].as_str().unwrap();
    let (pair, user) = app.tokens.refresh(refresh).await.unwrap();
    assert_eq!(user.id, answer.body["user"]["id"].as_i64().unwrap());
    let probe = app.get("/probe", Some(&pair.token)).await;
    assert_eq!(probe.status, 200, "{}", probe.text);
}

#[tokio::test]
async fn login_answer_has_no_openid_or_session_key() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    let answer = app.login("code-1").await;
    assert_eq!(answer.status, 200);
    let session_key = fake.session_key_of("openid-1").unwrap();
    assert!(!answer.text.contains(&session_key));
    // The user's username is their openid (the store's Django-seed convention); no field
    // named openid is sent.
    assert!(!answer.text.contains("\"openid\""), "{}", answer.text);
    assert!(answer.body.get("openid").is_none());
    assert!(answer.body["user"].get("openid").is_none());
    assert!(answer.body["user"].get("session_key").is_none());
}

#[tokio::test]
async fn expose_openid_adds_the_openid_to_the_answer() {
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::session("openid-1"));
    let app = start_with(databases::sqlite_memory().await, fake.config(), |l| {
        l.expose_openid(true)
    })
    .await;
    let answer = app.login("code-1").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["openid"], "openid-1");
    let session_key = fake.session_key_of("openid-1").unwrap();
    assert!(!answer.text.contains(&session_key));
}

// ---------------------------------------------------------------- phone numbers

#[tokio::test]
async fn phone_by_code_is_stored_and_shown_by_me() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.script_phone("phone-code", "13800138000");
    let (token, _) = app.logged_in("code-1").await;
    let answer = app
        .post(
            "/auth/wx-phone/",
            Some(&token),
            json!({"code": "phone-code"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["phone"], "13800138000");
    assert_eq!(answer.body["phone_country_code"], "86");
    let me = app.get("/users/me/", Some(&token)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["phone"], "13800138000");
}

#[tokio::test]
async fn unknown_phone_code_is_wechat_code_invalid() {
    let (_fake, app) = scripted("code-1", "openid-1").await;
    let (token, _) = app.logged_in("code-1").await;
    let answer = app
        .post("/auth/wx-phone", Some(&token), json!({"code": "nope"}))
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["code"], "wechat_code_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_phone_requests_fetch_one_access_token() {
    let fake = FakeWeChat::start().await;
    let app = Arc::new(start(&fake).await);
    let mut tokens = Vec::new();
    for i in 0..10 {
        fake.script_code(format!("code-{i}"), Script::session(format!("openid-{i}")));
        fake.script_phone(format!("phone-{i}"), format!("1380013800{i}"));
        tokens.push(app.logged_in(&format!("code-{i}")).await.0);
    }
    let requests = tokens.into_iter().enumerate().map(|(i, token)| {
        let app = app.clone();
        tokio::spawn(async move {
            app.post(
                "/auth/wx-phone/",
                Some(&token),
                json!({"code": format!("phone-{i}")}),
            )
            .await
        })
    });
    for (i, answer) in futures_util::future::join_all(requests)
        .await
        .into_iter()
        .enumerate()
    {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["phone"], format!("1380013800{i}"));
    }
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(fake.phone_calls(), 10);
}

#[tokio::test]
async fn phone_after_access_token_invalidation_refetches_once() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    fake.script_phone("phone-1", "13800138001");
    fake.script_phone("phone-2", "13800138002");
    let (token, _) = app.logged_in("code-1").await;
    let first = app
        .post("/auth/wx-phone/", Some(&token), json!({"code": "phone-1"}))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(fake.token_calls(), 1);
    fake.invalidate_access_tokens();
    let second = app
        .post("/auth/wx-phone/", Some(&token), json!({"code": "phone-2"}))
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["phone"], "13800138002");
    assert_eq!(fake.token_calls(), 2);
}

#[tokio::test]
async fn phone_from_encrypted_data_is_stored() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    let (token, _) = app.logged_in("code-1").await;
    let key = fake.session_key_of("openid-1").unwrap();
    let answer = app.post_encrypted_phone(&token, &key, fake.appid()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["phone"], "13900139000");
    assert_eq!(answer.body["phone_country_code"], "86");
    assert!(!answer.text.contains(&key));
}

#[tokio::test]
async fn encrypted_phone_for_another_appid_is_invalid_encrypted_data() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    let (token, _) = app.logged_in("code-1").await;
    let key = fake.session_key_of("openid-1").unwrap();
    let answer = app
        .post_encrypted_phone(&token, &key, "wx-someone-else")
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({
            "detail": "The encrypted data from WeChat is invalid.",
            "code": "invalid_encrypted_data"
        })
    );
}

#[tokio::test]
async fn encrypted_phone_with_a_stale_session_key_is_session_key_stale() {
    let (fake, app) = scripted("code-1", "openid-1").await;
    let (token, _) = app.logged_in("code-1").await;
    let stale = "tiihtNczf5v6AKRyjwEUhQ==";
    assert_ne!(fake.session_key_of("openid-1").unwrap(), stale);
    let answer = app.post_encrypted_phone(&token, stale, fake.appid()).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["code"], "session_key_stale");
}

#[tokio::test]
async fn encrypted_phone_without_iv_is_a_field_error() {
    let (_fake, app) = scripted("code-1", "openid-1").await;
    let (token, _) = app.logged_in("code-1").await;
    let answer = app
        .post(
            "/auth/wx-phone/",
            Some(&token),
            json!({"encryptedData": "abcd"}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, json!({"iv": ["This field is required."]}));
}

#[tokio::test]
async fn phone_without_code_or_encrypted_data_requires_code() {
    let (_fake, app) = scripted("code-1", "openid-1").await;
    let (token, _) = app.logged_in("code-1").await;
    let answer = app.post("/auth/wx-phone/", Some(&token), json!({})).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, json!({"code": ["This field is required."]}));
}

#[tokio::test]
async fn phone_without_a_token_is_401() {
    let fake = FakeWeChat::start().await;
    let app = start(&fake).await;
    let answer = app
        .post("/auth/wx-phone/", None, json!({"code": "phone-code"}))
        .await;
    answer.assert_not_authenticated();
    assert_eq!(fake.phone_calls(), 0);
}

// ---------------------------------------------------------------- login: your own user store

/// Keeps WeChat users through the crate's store but counts what the login service asks of it.
#[derive(Clone)]
struct Counting {
    store: wxrest::user::UserStore,
    upserts: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl wxrest::wechat::WxUsers for Counting {
    async fn upsert_by_openid(
        &self,
        session: &wxrest::user::WxSession,
        profile: Option<&wxrest::user::ProfileUpdate>,
    ) -> Result<(wxrest::user::User, bool), wxrest::BackendError> {
        self.upserts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.upsert_by_openid(session, profile).await
    }
    async fn get(&self, id: i64) -> Result<Option<wxrest::user::User>, wxrest::BackendError> {
        self.store.get(id).await
    }
    async fn get_by_openid(
        &self,
        openid: &str,
    ) -> Result<Option<wxrest::user::User>, wxrest::BackendError> {
        self.store.get_by_openid(openid).await
    }
    async fn update_profile(
        &self,
        id: i64,
        profile: &wxrest::user::ProfileUpdate,
    ) -> Result<Option<wxrest::user::User>, wxrest::BackendError> {
        self.store.update_profile(id, profile).await
    }
    async fn session_key(&self, id: i64) -> Result<Option<String>, wxrest::BackendError> {
        self.store.session_key(id).await
    }
    async fn set_phone(
        &self,
        id: i64,
        phone: &str,
        country_code: &str,
    ) -> Result<bool, wxrest::BackendError> {
        self.store.set_phone(id, phone, country_code).await
    }
}

#[tokio::test]
async fn a_login_service_can_keep_users_in_a_store_of_your_own() {
    let fake = FakeWeChat::start().await;
    fake.script_code("own-1", Script::session("openid-own"));
    fake.script_code("own-2", Script::session("openid-own"));
    let users = wxrest::user::UserStore::new(databases::sqlite_memory().await);
    let tokens = running_app::tokens_for(&users);
    let counting = Counting {
        store: users.clone(),
        upserts: Arc::default(),
    };
    let client = wxrest::wechat::WxClient::new(fake.config()).unwrap();
    let login = WxLoginService::new(client, counting.clone(), tokens.clone());
    let app = running_app::serve(
        running_app::router(login, users, tokens),
        counting.store.clone(),
        running_app::tokens_for(&counting.store),
    )
    .await;
    let first = app.login("own-1").await;
    assert_eq!(
        (first.status, first.body["created"].clone()),
        (200, json!(true))
    );
    let again = app.login("own-2").await;
    assert_eq!(
        (again.status, again.body["created"].clone()),
        (200, json!(false))
    );
    assert_eq!(first.body["user"]["id"], again.body["user"]["id"]);
    assert_eq!(
        counting.upserts.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}
