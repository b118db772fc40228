//! The development settings a mini-program client's tests need (`client/test`): a short
//! `JWT_ACCESS_LIFETIME`, login codes WeChat answers as used, the built-in fake WeChat Pay at
//! a fixed address paying by `wx.requestPayment`'s parameters, and a delayed notification.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::running_mall::RunningMall;
use crate::shop::{ClientTesting, MAX_NOTIFY_DELAY_MS};

/// [`ClientTesting::parse`] over `vars`, in development or not, without a merchant.
fn parse(development: bool, vars: &[(&str, &str)]) -> Result<ClientTesting, String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ClientTesting::parse(development, false, |name| vars.get(name).cloned())
}

/// The claims of a JWT, read without verifying it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Places an order of one unit of the first goods listed in stock: its id.
async fn order(mall: &RunningMall, token: &str) -> i64 {
    let (status, goods) = mall.get("/mall/goods/", token).await;
    assert_eq!(status, 200, "{goods}");
    let gid = goods["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stock"].as_i64().unwrap() > 0)
        .expect("the demo catalogue has goods in stock")["id"]
        .as_i64()
        .unwrap();
    let (status, order) = mall
        .post(
            "/mall/orders/",
            Some(token),
            json!({"items": [{"goods": gid, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    order["id"].as_i64().unwrap()
}

/// The order's status as its buyer reads it.
async fn status_of(mall: &RunningMall, id: i64, token: &str) -> String {
    let (status, body) = mall.get(&format!("/mall/orders/{id}/"), token).await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().unwrap().to_owned()
}

/// A development mall (the built-in fakes) on a fresh SQLite file whose built-in fake WeChat
/// Pay notifies it, as `serve` sets it up.
async fn dev_mall(
    tweak: impl FnOnce(&mut crate::shop::Config),
) -> (RunningMall, crate::databases::Target) {
    let target = crate::databases::fresh_target("sqlite-file").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = crate::running_mall::demo_config(&target.url);
    config.bind = listener.local_addr().unwrap().to_string();
    tweak(&mut config);
    (RunningMall::serve_on(listener, &config).await, target)
}

/// A free port on 127.0.0.1 (bound, then released).
async fn free_addr() -> std::net::SocketAddr {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    probe.local_addr().unwrap()
}

#[test]
fn client_testing_settings_default_to_nothing_and_read_their_values() {
    assert_eq!(parse(false, &[]).unwrap(), ClientTesting::default());
    let dev = parse(
        true,
        &[
            ("JWT_ACCESS_LIFETIME", "2"),
            ("MALL_FAKE_PAY_BIND", "127.0.0.1:8001"),
            ("MALL_FAKE_PAY_NOTIFY_DELAY", "1500"),
        ],
    )
    .unwrap();
    assert_eq!(dev.access_lifetime, Some(Duration::from_secs(2)));
    assert_eq!(dev.fake_pay_bind, Some("127.0.0.1:8001".parse().unwrap()));
    assert_eq!(dev.fake_pay_notify_delay, Duration::from_millis(1500));
}

#[test]
fn jwt_access_lifetime_is_bounded_and_short_only_in_development() {
    let prod = parse(false, &[("JWT_ACCESS_LIFETIME", "600")]).unwrap();
    assert_eq!(prod.access_lifetime, Some(Duration::from_secs(600)));
    let err = parse(false, &[("JWT_ACCESS_LIFETIME", "2")]).unwrap_err();
    assert!(
        err.contains("JWT_ACCESS_LIFETIME") && err.contains("MALL_DEV=1"),
        "{err}"
    );
    for nonsense in ["0", "86401", "-5", "1.5", "an hour"] {
        for dev in [false, true] {
            let err = parse(dev, &[("JWT_ACCESS_LIFETIME", nonsense)]).unwrap_err();
            assert!(
                err.starts_with("JWT_ACCESS_LIFETIME: "),
                "{nonsense}: {err}"
            );
        }
    }
}

#[test]
fn fake_pay_settings_are_refused_outside_development_and_when_malformed() {
    for (name, value) in [
        ("MALL_FAKE_PAY_BIND", "127.0.0.1:8001"),
        ("MALL_FAKE_PAY_NOTIFY_DELAY", "100"),
    ] {
        let err = parse(false, &[(name, value)]).unwrap_err();
        assert!(
            err.contains(name) && err.contains("without MALL_DEV=1"),
            "{err}"
        );
        // A real merchant: no fake runs for them to configure.
        let err = ClientTesting::parse(true, true, |n| (n == name).then(|| value.to_owned()))
            .unwrap_err();
        assert!(err.contains(name) && err.contains("WXPAY_MCHID"), "{err}");
    }
    let err = parse(true, &[("MALL_FAKE_PAY_BIND", "localhost")]).unwrap_err();
    assert!(err.starts_with("MALL_FAKE_PAY_BIND: "), "{err}");
    let too_long = (MAX_NOTIFY_DELAY_MS + 1).to_string();
    for bad in [too_long.as_str(), "-1", "soon"] {
        let err = parse(true, &[("MALL_FAKE_PAY_NOTIFY_DELAY", bad)]).unwrap_err();
        assert!(err.starts_with("MALL_FAKE_PAY_NOTIFY_DELAY: "), "{err}");
    }
}

#[tokio::test]
async fn a_short_access_lifetime_expires_tokens_with_token_expired() {
    let (mall, _db) = RunningMall::demo_on("sqlite-file", |c| {
        c.client_testing.access_lifetime = Some(Duration::from_secs(1));
    })
    .await;
    let login = mall.wx_login_answer("short-lived").await;
    let token = login["token"].as_str().unwrap();
    let exp = claims(token)["exp"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        exp <= now + 1,
        "exp {exp} is at most a second away from {now}"
    );
    // Past `exp` (whole seconds, no leeway): the answer a client refreshes on.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = mall.get("/mall/orders/", token).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("token_expired")),
        "{body}"
    );
    let (status, refreshed) = mall
        .post(
            "/auth/token/refresh/",
            None,
            json!({"refresh": login["refresh"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, body) = mall
        .get("/mall/orders/", refreshed["token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn login_codes_starting_with_used_answer_wechat_code_used() {
    let (mall, _db) = RunningMall::demo_on("sqlite-file", |_| {}).await;
    let (status, body) = mall
        .post("/auth/wx-login/", None, json!({"code": "used-0001"}))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("wechat_code_used")),
        "{body}"
    );
    // A fresh code from wx.login() then logs in.
    mall.wx_login("fresh-0001").await;
}

#[tokio::test]
async fn the_fake_pay_serves_on_its_address_and_pays_by_request_payment_parameters() {
    let addr = free_addr().await;
    let (mall, _db) = dev_mall(|c| {
        c.client_testing.fake_pay_bind = Some(addr);
    })
    .await;
    let dev = mall.payments.dev_fake.clone().unwrap();
    assert_eq!(dev.base_url(), format!("http://{addr}"));
    let buyer = mall.wx_login("payer").await;
    let id = order(&mall, &buyer).await;
    let (status, params) = mall
        .post(&format!("/mall/orders/{id}/pay/"), Some(&buyer), json!({}))
        .await;
    assert_eq!(status, 200, "{params}");
    let url = format!("http://{addr}/fake/request-payment");
    // Parameters WeChat would refuse pay nothing.
    let mut forged = params.clone();
    forged["package"] = json!("prepay_id=someone-elses");
    let resp = mall.http.post(&url).json(&forged).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = mall.http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = mall.http.post(&url).json(&params).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    dev.flush_notifications().await;
    assert_eq!(status_of(&mall, id, &buyer).await, "paid");
    // Paying twice is refused as WeChat refuses it.
    let resp = mall.http.post(&url).json(&params).send().await.unwrap();
    assert_eq!(resp.status(), 409);
}

#[tokio::test]
async fn a_fixed_fake_pay_address_in_use_is_a_start_up_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let target = crate::databases::fresh_target("sqlite-file").await;
    let mut config = crate::running_mall::demo_config(&target.url);
    config.client_testing.fake_pay_bind = Some(addr);
    let err = crate::shop::build(&config)
        .await
        .err()
        .expect("the address is taken");
    let err = err.to_string();
    assert!(
        err.contains("fake WeChat Pay") && err.contains(&addr.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_notify_delay_leaves_the_order_pending_until_the_notification_arrives() {
    let (mall, _db) = dev_mall(|c| {
        c.client_testing.fake_pay_notify_delay = Duration::from_millis(3000);
    })
    .await;
    let dev = mall.payments.dev_fake.clone().unwrap();
    let buyer = mall.wx_login("patient").await;
    let id = order(&mall, &buyer).await;
    let (status, params) = mall
        .post(&format!("/mall/orders/{id}/pay/"), Some(&buyer), json!({}))
        .await;
    assert_eq!(status, 200, "{params}");
    let url = format!("{}/fake/request-payment", dev.base_url());
    let resp = mall.http.post(&url).json(&params).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Paid at WeChat Pay, not yet known to the mall: nothing has been sent.
    assert_eq!(dev.notifications_sent(), 0);
    assert_eq!(status_of(&mall, id, &buyer).await, "pending");
    dev.flush_notifications().await;
    assert_eq!(dev.notifications_delivered(), 1);
    assert_eq!(status_of(&mall, id, &buyer).await, "paid");
}
