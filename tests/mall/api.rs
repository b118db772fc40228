//! End to end: the example mall on 127.0.0.1:0 over real HTTP, the whole user story on every
//! backend, and the no-oversell rule under 200 concurrent orders.

use crate::databases;
use crate::running_mall::{RunningMall, assert_no_oversell};
use serde_json::{Value, json};

/// The stock of `goods` as the API shows it.
async fn stock_of(mall: &RunningMall, goods: i64, token: &str) -> i64 {
    mall.get(&format!("/mall/goods/{goods}/"), token).await.1["stock"]
        .as_i64()
        .unwrap()
}

async fn user_story(label: &str) {
    let (mall, _target) = RunningMall::demo_on(label, |_| {}).await;
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
    assert_eq!(stock_of(&mall, gid, &alice).await, stock - 3);
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
    assert_eq!(stock_of(&mall, gid, &alice).await, stock);
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
    for label in databases::server_labels() {
        user_story(label).await;
    }
}

async fn no_oversell(label: &str) {
    let (mall, _target) = RunningMall::demo_on(label, |_| {}).await;
    assert_no_oversell(label, &[mall]).await;
}

#[tokio::test]
async fn concurrent_orders_never_oversell_on_sqlite() {
    no_oversell("sqlite-file").await;
}

#[tokio::test]
async fn concurrent_orders_never_oversell_on_server_databases() {
    for label in databases::server_labels() {
        no_oversell(label).await;
    }
}
