//! A running mall: the example shop built from a configuration, served on `127.0.0.1:0` (with
//! the peer address, as `serve` does) and called over real HTTP with reqwest.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wxrest::db::Db;

use crate::databases::{self, Target};
use crate::shop;

/// The password of the `admin` account [`demo_config`] creates.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A mall on `database_url` with the demo catalogue and an `admin` account.
pub fn demo_config(database_url: &str) -> shop::Config {
    let mut config = shop::Config::for_database(database_url);
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.seed_demo = true;
    config
}

/// One served instance; cheap to clone (clones share the server).
#[derive(Clone)]
pub struct RunningMall {
    /// `http://127.0.0.1:port`.
    pub base: String,
    pub http: reqwest::Client,
    /// The instance's own pool on its database.
    pub db: Db,
    pub payments: shop::payment::Payments,
}

impl RunningMall {
    /// Builds the shop from `config` and serves it until the test's runtime ends; the shop's
    /// development fakes live as long as the server.
    pub async fn serve(config: &shop::Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_on(listener, config).await
    }

    /// [`serve`](Self::serve) on `listener`, for a configuration that needs the address first
    /// (a notify URL).
    pub async fn serve_on(listener: tokio::net::TcpListener, config: &shop::Config) -> Self {
        let shop = shop::build(config)
            .await
            .unwrap_or_else(|e| panic!("build the mall: {e}"));
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = shop.router;
        let fake = shop.fake;
        tokio::spawn(async move {
            let _keep_fake_alive = fake;
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        // reqwest is built with `rustls-no-provider` (wxrest's TLS is rustls on ring): like any
        // app building its own clients, pick the process's crypto provider first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            db: shop.db,
            payments: shop.payments,
        }
    }

    /// A mall with the demo configuration (adjusted by `tweak`) on a fresh database of the
    /// backend `label`, which lives as long as the returned target.
    pub async fn demo_on(label: &str, tweak: impl FnOnce(&mut shop::Config)) -> (Self, Target) {
        let target = databases::fresh_target(label).await;
        let mut config = demo_config(&target.url);
        tweak(&mut config);
        (Self::serve(&config).await, target)
    }

    /// `method path` with `token` as `JWT` credentials and `body` as JSON: status and body
    /// (the text as a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("JWT {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Logs in with a `wx.login()` code, which must succeed: the whole answer, which never
    /// carries the openid or the session_key.
    pub async fn wx_login_answer(&self, code: &str) -> Value {
        let (status, body) = self
            .post("/auth/wx-login/", None, json!({"code": code}))
            .await;
        assert_eq!(status, 200, "wx-login {code}: {body}");
        assert!(body.get("openid").is_none() && !body.to_string().contains("session_key"));
        body
    }

    /// Logs in with a `wx.login()` code, which must succeed: the access token.
    pub async fn wx_login(&self, code: &str) -> String {
        let answer = self.wx_login_answer(code).await;
        answer["token"].as_str().unwrap().to_owned()
    }

    /// The admin's access token (password login).
    pub async fn admin(&self) -> String {
        let (status, body) = self
            .post(
                "/auth/token/",
                None,
                json!({"username": "admin", "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

/// DRF's 429 for a throttled request.
pub fn assert_throttled(status: StatusCode, body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "throttled");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Request was throttled. Expected available in "),
        "{detail}"
    );
}

/// The no-oversell rule: with the Gaiwan's stock set to 50, 200 concurrent one-unit orders
/// from 8 buyers, spread round-robin over `instances` (all on one database), sell exactly 50
/// and are refused 150 times with 409; the stock ends at 0 and the order items hold 50 units.
pub async fn assert_no_oversell(what: &str, instances: &[RunningMall]) {
    let first = &instances[0];
    let admin = first.admin().await;
    let (_, found) = first.get("/mall/goods/?search=Gaiwan", &admin).await;
    let gid = found["results"][0]["id"].as_i64().unwrap();
    let (status, _) = instances[instances.len() - 1]
        .call(
            Method::PATCH,
            &format!("/mall/goods/{gid}/"),
            Some(&admin),
            Some(json!({"stock": 50})),
        )
        .await;
    assert_eq!(status, 200);
    let mut buyers = Vec::new();
    for i in 0..8 {
        let instance = &instances[i % instances.len()];
        buyers.push(instance.wx_login(&format!("buyer-{i}")).await);
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let instance = instances[i % instances.len()].clone();
            let token = buyers[i % buyers.len()].clone();
            let order = json!({"items": [{"goods": gid, "quantity": 1}]});
            tokio::spawn(async move { instance.post("/mall/orders/", Some(&token), order).await })
        })
        .collect();
    let (mut sold, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (StatusCode::CREATED, _) => sold += 1,
            (StatusCode::CONFLICT, _) => refused += 1,
            (other, body) => panic!("{what}: unexpected {other}: {body}"),
        }
    }
    assert_eq!((sold, refused), (50, 150), "{what}");
    for instance in instances {
        let (_, goods) = instance.get(&format!("/mall/goods/{gid}/"), &admin).await;
        assert_eq!(goods["stock"], 0, "{what}");
    }
    let sql = format!(
        "SELECT quantity FROM order_items WHERE goods = {}",
        first.db.dialect().placeholder(1)
    );
    let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(gid)
        .fetch_all(first.db.pool())
        .await
        .unwrap();
    let items: i64 = rows.iter().map(|r| r.0).sum();
    assert_eq!(
        items, 50,
        "{what}: order items reconcile with the stock sold"
    );
}
