//! End to end: the example mall on 127.0.0.1:0 over real HTTP, the whole user story on every
//! backend, and the no-oversell rule under 200 concurrent orders.

mod common;

#[allow(dead_code)]
#[path = "../examples/mall/shop/mod.rs"]
mod shop;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "admin-password-for-tests";

struct Mall {
    base: String,
    http: reqwest::Client,
    shop_db: wxrest::db::Db,
    _target: common::Target,
}

async fn start(label: &str) -> Mall {
    let target = common::fresh_target(label).await;
    let mut config = shop::Config::for_database(&target.url);
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.seed_demo = true;
    let shop = shop::build(&config)
        .await
        .unwrap_or_else(|e| panic!("{label}: build: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = shop.router.clone();
    let fake = shop.fake;
    tokio::spawn(async move {
        let _keep_fake_alive = fake;
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Mall {
        base,
        http: reqwest::Client::new(),
        shop_db: shop.db,
        _target: target,
    }
}

impl Mall {
    async fn call(
        &self,
        method: reqwest::Method,
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
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn wx_login(&self, code: &str) -> String {
        let (status, body) = self
            .post("/auth/wx-login/", None, json!({"code": code}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("openid").is_none() && !body.to_string().contains("session_key"));
        body["token"].as_str().unwrap().to_owned()
    }

    async fn admin(&self) -> String {
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

    async fn stock(&self, goods: i64, token: &str) -> i64 {
        self.get(&format!("/mall/goods/{goods}/"), token).await.1["stock"]
            .as_i64()
            .unwrap()
    }
}

async fn user_story(label: &str) {
    let mall = start(label).await;
    // No token: DRF's 401.
    let resp = mall
        .http
        .get(format!("{}/mall/goods/", mall.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "JWT realm=\"api\"");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"})
    );
    // A bad code: WeChat's refusal, as a clear 400.
    let (status, body) = mall
        .post("/auth/wx-login/", None, json!({"code": "bad-code"}))
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].clone()),
        (400, json!("wechat_code_invalid"))
    );

    let alice = mall.wx_login("alice-code").await;
    // Browse: search + filter + ordering + pages.
    let (status, page) = mall
        .get(
            "/mall/goods/?search=tea&price__gte=5000&ordering=-price",
            &alice,
        )
        .await;
    assert_eq!(status, 200, "{label}: {page}");
    let prices: Vec<i64> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["price"].as_i64().unwrap())
        .collect();
    assert!(
        !prices.is_empty()
            && prices.windows(2).all(|w| w[0] >= w[1])
            && prices.iter().all(|p| *p >= 5000),
        "{prices:?}"
    );
    let (_, all) = mall.get("/mall/goods/", &alice).await;
    assert_eq!(all["count"], 12);
    assert_eq!(all["results"].as_array().unwrap().len(), 10);
    let next = all["next"].as_str().unwrap().replace(&mall.base, "");
    assert_eq!(
        mall.get(&next, &alice).await.1["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, cats) = mall.get("/mall/categories/", &alice).await;
    assert_eq!(cats["count"], 3);
    let (_, malformed) = mall.get("/mall/goods/?price__gte=cheap", &alice).await;
    assert_eq!(malformed, json!({"price__gte": ["Enter a number."]}));

    // Cart: the same goods twice adds up; more than the stock is refused.
    let teapot = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Gaiwan Set")
        .unwrap()
        .clone();
    let (gid, price, stock) = (
        teapot["id"].as_i64().unwrap(),
        teapot["price"].as_i64().unwrap(),
        teapot["stock"].as_i64().unwrap(),
    );
    let (status, item) = mall
        .post(
            "/mall/cart/",
            Some(&alice),
            json!({"goods": gid, "quantity": 2}),
        )
        .await;
    assert_eq!(status, 201, "{label}: {item}");
    let (_, item) = mall
        .post(
            "/mall/cart/",
            Some(&alice),
            json!({"goods": gid, "quantity": 1}),
        )
        .await;
    assert_eq!(item["quantity"], 3);
    let (status, body) = mall
        .post(
            "/mall/cart/",
            Some(&alice),
            json!({"goods": gid, "quantity": stock}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["quantity"][0]
            .as_str()
            .unwrap()
            .starts_with("Ensure this value is less than or equal to")
    );
    let (_, cart) = mall.get("/mall/cart/", &alice).await;
    assert_eq!(cart.as_array().unwrap().len(), 1);

    // Order: stock drops, total in fen, cart emptied.
    let (status, order) = mall.post("/mall/orders/", Some(&alice), json!({})).await;
    assert_eq!(status, 201, "{label}: {order}");
    assert_eq!(order["total"], price * 3);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["items"][0]["quantity"], 3);
    assert_eq!(mall.stock(gid, &alice).await, stock - 3);
    assert_eq!(mall.get("/mall/cart/", &alice).await.1, json!([]));
    let oid = order["id"].as_i64().unwrap();

    // Another user cannot see it; staff can.
    let bob = mall.wx_login("bob-code").await;
    assert_eq!(mall.get(&format!("/mall/orders/{oid}/"), &bob).await.0, 404);
    let admin = mall.admin().await;
    assert_eq!(
        mall.get(&format!("/mall/orders/{oid}/"), &admin).await.0,
        200
    );
    assert_eq!(mall.get("/mall/orders/", &bob).await.1["count"], 0);

    // Cancel: stock returns; twice is a conflict.
    let (status, cancelled) = mall
        .post(
            &format!("/mall/orders/{oid}/cancel/"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), cancelled["status"].clone()),
        (200, json!("cancelled")),
        "{cancelled}"
    );
    assert_eq!(mall.stock(gid, &alice).await, stock);
    assert_eq!(
        mall.post(
            &format!("/mall/orders/{oid}/cancel/"),
            Some(&alice),
            json!({})
        )
        .await
        .0,
        409
    );

    // Staff create goods; users may not.
    let new_goods =
        json!({"name": "Tea Towel", "price": 990, "stock": 5, "category": teapot["category"]});
    let (status, made) = mall
        .post("/mall/goods/", Some(&admin), new_goods.clone())
        .await;
    assert_eq!(status, 201, "{made}");
    let (status, denied) = mall.post("/mall/goods/", Some(&alice), new_goods).await;
    assert_eq!(
        (status.as_u16(), denied["code"].clone()),
        (403, json!("permission_denied"))
    );

    // Profile, health.
    let (status, me) = mall.get("/users/me/", &alice).await;
    assert_eq!(status, 200);
    assert!(me.get("openid").is_none());
    assert_eq!(
        mall.http
            .get(format!("{}/healthz", mall.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        mall.http
            .get(format!("{}/readyz", mall.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The API documents itself.
    let doc: Value = mall
        .http
        .get(format!("{}/openapi.json", mall.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/mall/goods/"]["get"].is_object());
    assert!(doc["paths"]["/mall/orders/{id}/cancel/"]["post"].is_object());
    assert_eq!(
        mall.http
            .get(format!("{}/docs", mall.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Unknown routes: JSON 404.
    let (status, body) = mall.get("/nowhere", &alice).await;
    assert_eq!(
        (status.as_u16(), body["detail"].clone()),
        (404, json!("Not found."))
    );
}

#[tokio::test]
async fn user_story_on_sqlite() {
    user_story("sqlite-file").await;
}

#[tokio::test]
async fn user_story_on_server_databases() {
    for label in common::server_labels() {
        user_story(label).await;
    }
}

async fn no_oversell(label: &str) {
    let mall = Arc::new(start(label).await);
    let admin = mall.admin().await;
    let (_, all) = mall.get("/mall/goods/?search=Gaiwan", &admin).await;
    let gid = all["results"][0]["id"].as_i64().unwrap();
    let (status, _) = mall
        .call(
            reqwest::Method::PATCH,
            &format!("/mall/goods/{gid}/"),
            Some(&admin),
            Some(json!({"stock": 50})),
        )
        .await;
    assert_eq!(status, 200);
    let mut buyers = Vec::new();
    for i in 0..8 {
        buyers.push(mall.wx_login(&format!("buyer-{i}")).await);
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let mall = mall.clone();
            let token = buyers[i % buyers.len()].clone();
            tokio::spawn(async move {
                mall.post(
                    "/mall/orders/",
                    Some(&token),
                    json!({"items": [{"goods": gid, "quantity": 1}]}),
                )
                .await
                .0
            })
        })
        .collect();
    let (mut sold, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap().as_u16() {
            201 => sold += 1,
            409 => refused += 1,
            other => panic!("{label}: unexpected status {other}"),
        }
    }
    assert_eq!((sold, refused), (50, 150), "{label}");
    assert_eq!(mall.stock(gid, &admin).await, 0);
    let d = mall.shop_db.dialect();
    let sql = format!(
        "SELECT quantity FROM order_items WHERE goods = {}",
        d.placeholder(1)
    );
    let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(gid)
        .fetch_all(mall.shop_db.pool())
        .await
        .unwrap();
    let total: i64 = rows.iter().map(|r| r.0).sum();
    assert_eq!(total, 50, "{label}: order items reconcile with stock");
}

#[tokio::test]
async fn concurrent_orders_never_oversell_on_sqlite() {
    no_oversell("sqlite-file").await;
}

#[tokio::test]
async fn concurrent_orders_never_oversell_on_server_databases() {
    for label in common::server_labels() {
        no_oversell(label).await;
    }
}
