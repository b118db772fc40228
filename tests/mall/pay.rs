//! WeChat Pay in the mall, over real HTTP against the crate's `FakeWeChatPay` (which signs,
//! verifies and encrypts as WeChat Pay does): paying, notifications (redelivered, forged,
//! probes, replays, wrong amounts), shipping and confirming, refunds under concurrent
//! cancels, the unpaid-order sweeper, tampered answers, payment disabled, and two instances
//! sweeping one PostgreSQL database. Every test ends by reconciling the stock: what is on the
//! shelves plus what live orders hold equals what there was.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::databases;
use crate::running_mall::{RunningMall, demo_config};
use crate::shop;
use crate::shop::payment::{SweepReport, sweep_once};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wxrest::db::Db;
use wxrest::pay::{
    FakeWeChatPay, JsapiOrder, PayScript, RefundRequest, RequestPayment, SignedNotification,
    TradeState,
};

const NOTIFY: &str = "/pay/wechat/notify/";

/// One running mall paying through `fake`.
struct Mall {
    running: RunningMall,
    fake: Arc<FakeWeChatPay>,
    /// The built-in fake, when the mall runs one (development without a merchant).
    dev_fake: Option<Arc<FakeWeChatPay>>,
    /// Total units in stock when the mall started.
    initial_stock: i64,
}

impl Deref for Mall {
    type Target = RunningMall;
    fn deref(&self) -> &RunningMall {
        &self.running
    }
}

/// A fake WeChat Pay that retries a refused notification twice, quickly.
async fn fake_pay() -> Arc<FakeWeChatPay> {
    Arc::new(
        FakeWeChatPay::builder()
            .notify_retries(3, Duration::from_millis(20))
            .refund_delay(Duration::from_millis(10))
            .start()
            .await,
    )
}

/// Starts a mall on `database_url` paying through `fake`; `tweak` adjusts the configuration.
async fn start_on(
    database_url: &str,
    fake: Arc<FakeWeChatPay>,
    tweak: impl FnOnce(&mut shop::Config),
) -> Mall {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notify_url = format!("http://{}{NOTIFY}", listener.local_addr().unwrap());
    let mut config = demo_config(database_url);
    config.pay = Some(fake.config().notify_url(notify_url.clone()));
    config.pay_notify_url = Some(notify_url);
    tweak(&mut config);
    let running = RunningMall::serve_on(listener, &config).await;
    let initial_stock = shelf_stock(&running.db).await;
    Mall {
        dev_fake: running.payments.dev_fake.clone(),
        running,
        fake,
        initial_stock,
    }
}

/// A mall on a fresh SQLite file (kept alive by the returned target).
async fn start(tweak: impl FnOnce(&mut shop::Config)) -> (Mall, databases::Target) {
    start_label("sqlite-file", tweak).await
}

/// A mall on a fresh database of the backend `label`.
async fn start_label(
    label: &str,
    tweak: impl FnOnce(&mut shop::Config),
) -> (Mall, databases::Target) {
    let target = databases::fresh_target(label).await;
    let mall = start_on(&target.url, fake_pay().await, tweak).await;
    (mall, target)
}

async fn shelf_stock(db: &Db) -> i64 {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT stock FROM goods")
        .fetch_all(db.pool())
        .await
        .unwrap();
    rows.iter().map(|r| r.0).sum()
}

impl Mall {
    /// `POST /mall/orders/{id}/{action}/` (pay, ship, confirm, cancel) as `token`.
    async fn act(&self, id: i64, action: &str, token: &str) -> (StatusCode, Value) {
        let path = format!("/mall/orders/{id}/{action}/");
        self.post(&path, Some(token), json!({})).await
    }

    /// Places an order of 2 units of a goods in stock: its id.
    async fn order(&self, token: &str) -> i64 {
        let (goods,): (i64,) = sqlx::query_as(
            "SELECT id FROM goods WHERE stock >= 2 AND on_sale = TRUE ORDER BY id LIMIT 1",
        )
        .fetch_one(self.db.pool())
        .await
        .unwrap();
        let (status, order) = self
            .call(
                Method::POST,
                "/mall/orders/",
                Some(token),
                Some(json!({"items": [{"goods": goods, "quantity": 2}]})),
            )
            .await;
        assert_eq!(status, 201, "{order}");
        assert_eq!(order["status"], "pending");
        order["id"].as_i64().unwrap()
    }

    /// `POST /mall/orders/{id}/pay/`, expecting 200: the `wx.requestPayment` object.
    async fn pay(&self, id: i64, token: &str) -> RequestPayment {
        let (status, body) = self.act(id, "pay", token).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// The order's status, payment columns as stored.
    async fn row(&self, id: i64) -> (String, Option<String>, Option<String>, Option<i64>) {
        let sql = format!(
            "SELECT status, out_trade_no, prepay_id, paid_at FROM orders WHERE id = {}",
            self.db.dialect().placeholder(1)
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    async fn status(&self, id: i64) -> String {
        self.row(id).await.0
    }

    async fn out_trade_no(&self, id: i64) -> String {
        self.row(id)
            .await
            .1
            .expect("every order has an out_trade_no")
    }

    /// Posts a notification as WeChat Pay would: (status, body).
    async fn notify(&self, n: &SignedNotification) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{NOTIFY}", self.base))
            .headers(n.headers())
            .body(n.body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes every order look older than the unpaid timeout.
    async fn age_orders(&self, seconds: i64) {
        let sql = format!(
            "UPDATE orders SET created_at = created_at - {}",
            self.db.dialect().placeholder(1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(seconds)
            .execute(self.db.pool())
            .await
            .unwrap();
    }

    async fn sweep(&self) -> SweepReport {
        sweep_once(&self.payments).await.unwrap()
    }

    /// Shelves plus the items of live orders (pending, paid, shipped, completed, and refunding:
    /// the stock returns when the refund is recorded) equal what there was at the start.
    async fn assert_stock_reconciles(&self) {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT o.status, i.quantity FROM order_items i JOIN orders o ON o.id = i.order_id",
        )
        .fetch_all(self.db.pool())
        .await
        .unwrap();
        let held: i64 = rows
            .iter()
            .filter(|(s, _)| {
                matches!(
                    s.as_str(),
                    "pending" | "paid" | "shipped" | "completed" | "refunding"
                )
            })
            .map(|(_, q)| q)
            .sum();
        assert_eq!(
            shelf_stock(&self.db).await + held,
            self.initial_stock,
            "stock does not reconcile"
        );
    }

    /// A `TRANSACTION.SUCCESS` notification for the order, signed now, paid `total` by
    /// `openid`: built by hand, as a forger or a buggy sender would.
    fn payment_notification(&self, out_trade_no: &str, total: i64, openid: &str) -> Vec<u8> {
        let plaintext = json!({
            "appid": self.fake.appid(), "mchid": self.fake.mchid(),
            "out_trade_no": out_trade_no, "transaction_id": "4200000000000000001",
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "ok",
            "bank_type": "OTHERS", "success_time": "2026-11-27T10:00:00+08:00",
            "payer": {"openid": openid},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}
        });
        self.fake
            .notification_body("TRANSACTION.SUCCESS", "transaction", &plaintext, None)
    }

    /// An order paid through WeChat Pay (its notification applied): its id.
    async fn paid_order(&self, token: &str) -> i64 {
        let id = self.order(token).await;
        let params = self.pay(id, token).await;
        self.fake.request_payment(&params).unwrap();
        self.fake.flush_notifications().await;
        assert_eq!(self.status(id).await, "paid");
        id
    }

    /// What an instance that claimed the order's refund and then stopped leaves behind:
    /// `paid -> refunding` with a lease ending `lease` seconds from now.
    async fn claim_refund_and_stop(&self, id: i64, lease: i64) {
        let [until, id_p] = self.db.dialect().numbered();
        let sql = format!(
            "UPDATE orders SET status = 'refunding', refund_from = 'paid', \
             refund_until = {until} WHERE id = {id_p} AND status = 'paid'"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now() + lease)
            .bind(id)
            .execute(self.db.pool())
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }

    /// Ends the lease of every refund claim.
    async fn expire_refund_leases(&self) {
        sqlx::query(
            "UPDATE orders SET refund_until = refund_until - 120 WHERE status = 'refunding'",
        )
        .execute(self.db.pool())
        .await
        .unwrap();
    }

    /// The `REFUND.SUCCESS` notification of the refund `out_refund_no` as the fake knows it,
    /// signed now.
    fn refund_notification(&self, out_refund_no: &str) -> SignedNotification {
        let refund = self.fake.refund(out_refund_no).unwrap();
        let plaintext = json!({
            "mchid": self.fake.mchid(), "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id, "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id, "refund_status": "SUCCESS",
            "success_time": "2026-11-27T10:00:00+08:00",
            "user_received_account": "支付用户零钱", "amount": refund.amount
        });
        let body = self
            .fake
            .notification_body("REFUND.SUCCESS", "refund", &plaintext, None);
        self.fake.sign_notification(now(), &body)
    }

    /// How many orders have `status`.
    async fn count(&self, status: &str) -> u64 {
        let sql = format!(
            "SELECT COUNT(*) FROM orders WHERE status = {}",
            self.db.dialect().placeholder(1)
        );
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .fetch_one(self.db.pool())
            .await
            .unwrap();
        u64::try_from(n).unwrap()
    }

    async fn total(&self, id: i64) -> i64 {
        let sql = format!(
            "SELECT total FROM orders WHERE id = {}",
            self.db.dialect().placeholder(1)
        );
        let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(self.db.pool())
            .await
            .unwrap();
        total
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn happy_path_pays_ships_and_completes_an_order() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;

    // Exactly what wx.requestPayment takes, at top level: the library's `RequestPayment`
    // (whose keys tests/pay.rs pins), nothing more.
    let (status, body) = mall.act(id, "pay", &buyer).await;
    assert_eq!(status, 200, "{body}");
    let params: RequestPayment = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&params).unwrap(), body);
    assert_eq!(body["signType"], "RSA");
    assert!(body["timeStamp"].as_str().unwrap().parse::<i64>().is_ok());
    // Asked again: the same prepay_id, placed at WeChat Pay once.
    let again = mall.pay(id, &buyer).await;
    assert_eq!(again.package, params.package);
    assert_eq!(mall.fake.prepay_calls(), 1);

    // The buyer pays in WeChat; the notification marks the order paid.
    mall.fake.request_payment(&params).unwrap();
    mall.fake.flush_notifications().await;
    assert_eq!(mall.fake.notifications_delivered(), 1);
    assert_eq!(mall.status(id).await, "paid");
    assert!(mall.row(id).await.3.is_some(), "paid_at is set");
    let (status, body) = mall.act(id, "pay", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state"))
    );

    // Only staff ship; only the buyer confirms.
    let (status, body) = mall.act(id, "ship", &buyer).await;
    assert_eq!(status, 403, "{body}");
    let admin = mall.admin().await;
    let (status, body) = mall.act(id, "confirm", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state"))
    );
    let (status, body) = mall.act(id, "ship", &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "shipped");
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state"))
    );
    let (status, body) = mall.act(id, "confirm", &buyer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state"))
    );
    assert_eq!(mall.fake.refunds_created(), 0);
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn only_the_buyer_can_pay() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let admin = mall.admin().await;
    let (status, body) = mall.act(id, "pay", &admin).await;
    assert_eq!(status, 403, "{body}");
    let other = mall.wx_login("bob").await;
    let (status, _) = mall.act(id, "pay", &other).await;
    assert_eq!(status, 404);
    assert_eq!(mall.fake.prepay_calls(), 0);
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn notification_delivered_three_times_is_applied_once() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let params = mall.pay(id, &buyer).await;
    mall.fake.request_payment(&params).unwrap();
    mall.fake.flush_notifications().await;
    let paid_at = mall.row(id).await.3;
    assert!(paid_at.is_some());
    let no = mall.out_trade_no(id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(mall.fake.redeliver(&no));
    assert!(mall.fake.redeliver(&no));
    mall.fake.flush_notifications().await;
    assert_eq!(
        mall.fake.notifications_delivered(),
        3,
        "each delivery acknowledged"
    );
    let row = mall.row(id).await;
    assert_eq!(row.0, "paid");
    assert_eq!(row.3, paid_at, "applied once: paid_at unchanged");
    mall.assert_stock_reconciles().await;
}

/// Posts `n` and expects it refused with `status` and `{"code": "FAIL"}`, the order still
/// pending.
async fn assert_refused(mall: &Mall, id: i64, n: &SignedNotification, status: u16) {
    let (got, body) = mall.notify(n).await;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(body["code"], "FAIL", "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(mall.status(id).await, "pending");
    assert_eq!(mall.row(id).await.3, None, "paid_at not set");
}

/// An order awaiting payment and a correct notification paying it (not sent).
async fn pending_with_notification(mall: &Mall) -> (i64, SignedNotification) {
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.pay(id, &buyer).await;
    let body = mall.payment_notification(
        &mall.out_trade_no(id).await,
        mall.total(id).await,
        "fake-openid-alice",
    );
    (id, mall.fake.sign_notification(now(), &body))
}

#[tokio::test]
async fn forged_notification_changes_nothing() {
    let (mall, _db) = start(|_| {}).await;
    let (id, mut n) = pending_with_notification(&mall).await;
    // Signed, then the body changed (e.g. the amount): the signature no longer verifies.
    let text = String::from_utf8(n.body.clone()).unwrap();
    n.body = text
        .replacen("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS ", 1)
        .into_bytes();
    assert_refused(&mall, id, &n, 401).await;
    let (id, mut n) = pending_with_notification(&mall).await;
    n.signature = STANDARD_B64_OF_GARBAGE.into();
    assert_refused(&mall, id, &n, 401).await;
    mall.assert_stock_reconciles().await;
}

const STANDARD_B64_OF_GARBAGE: &str = "Z2FyYmFnZSBzaWduYXR1cmUgb2YgdGhlIHJpZ2h0IHNoYXBlPw==";

#[tokio::test]
async fn signature_probe_changes_nothing() {
    let (mall, _db) = start(|_| {}).await;
    let (id, mut n) = pending_with_notification(&mall).await;
    n.signature = format!("WECHATPAY/SIGNTEST/{}", n.signature);
    assert_refused(&mall, id, &n, 401).await;
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn replayed_notification_with_an_old_timestamp_changes_nothing() {
    let (mall, _db) = start(|_| {}).await;
    let (id, n) = pending_with_notification(&mall).await;
    // Correctly signed, but 10 minutes ago.
    let old = mall.fake.sign_notification(now() - 600, &n.body);
    assert_refused(&mall, id, &old, 401).await;
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn verified_notification_with_the_wrong_amount_or_payer_changes_nothing() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.pay(id, &buyer).await;
    let (no, total) = (mall.out_trade_no(id).await, mall.total(id).await);
    let short = mall.payment_notification(&no, total - 1, "fake-openid-alice");
    assert_refused(&mall, id, &mall.fake.sign_notification(now(), &short), 400).await;
    let stranger = mall.payment_notification(&no, total, "fake-openid-mallory");
    assert_refused(
        &mall,
        id,
        &mall.fake.sign_notification(now(), &stranger),
        400,
    )
    .await;
    // And the right one is applied.
    let right = mall.payment_notification(&no, total, "fake-openid-alice");
    let (status, body) = mall
        .notify(&mall.fake.sign_notification(now(), &right))
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(mall.status(id).await, "paid");
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn notify_route_is_not_throttled() {
    let (mall, _db) = start(|c| c.throttle_anon = "2/min".parse().unwrap()).await;
    let (id, n) = pending_with_notification(&mall).await;
    let mut unsigned = n.clone();
    unsigned.signature = STANDARD_B64_OF_GARBAGE.into();
    for _ in 0..5 {
        assert_refused(&mall, id, &unsigned, 401).await;
    }
    let (status, body) = mall.notify(&n).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(mall.status(id).await, "paid");
    mall.assert_stock_reconciles().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancels_of_a_paid_order_refund_it_once() {
    for label in databases::backend_labels() {
        concurrent_cancels_refund_once_on(label).await;
    }
}

async fn concurrent_cancels_refund_once_on(label: &str) {
    let (mall, _db) = start_label(label, |_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let params = mall.pay(id, &buyer).await;
    mall.fake.request_payment(&params).unwrap();
    mall.fake.flush_notifications().await;
    assert_eq!(mall.status(id).await, "paid");
    let mall = Arc::new(mall);
    let cancels: Vec<_> = (0..8)
        .map(|_| {
            let (mall, buyer) = (mall.clone(), buyer.clone());
            tokio::spawn(async move { mall.act(id, "cancel", &buyer).await })
        })
        .collect();
    let mut refunded = 0;
    for cancel in cancels {
        let (status, body) = cancel.await.unwrap();
        match status.as_u16() {
            200 => {
                // The winner answers refunded; a cancel arriving while it waits for WeChat
                // Pay answers the refund under way.
                assert!(
                    matches!(body["status"].as_str(), Some("refunded" | "refunding")),
                    "{body}"
                );
                refunded += 1;
            }
            409 => assert_eq!(body["code"], "invalid_state"),
            other => panic!("cancel answered {other}: {body}"),
        }
    }
    assert!(refunded >= 1);
    assert_eq!(
        mall.fake.refunds_created(),
        1,
        "{label}: one refund however many cancels"
    );
    assert_eq!(mall.status(id).await, "refunded");
    let no = mall.out_trade_no(id).await;
    let refund = mall.fake.refund(&format!("{no}-refund")).unwrap();
    assert_eq!(refund.amount.refund, mall.total(id).await);
    let (status, _) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(status, 409);
    assert_eq!(mall.fake.refunds_created(), 1);
    mall.assert_stock_reconciles().await;
}

/// A cancel and a ship of the same paid order, fired together, on every backend: the order
/// ends either shipped and never refunded, or refunded and never shipped, and WeChat Pay
/// agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_ship_racing_never_ship_a_refunded_order() {
    for label in databases::backend_labels() {
        cancel_and_ship_race_on(label).await;
    }
}

async fn cancel_and_ship_race_on(label: &str) {
    const N: usize = 12;
    let (mall, _db) = start_label(label, |_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let admin = mall.admin().await;
    let mut ids = Vec::new();
    for _ in 0..N {
        let id = mall.order(&buyer).await;
        let params = mall.pay(id, &buyer).await;
        mall.fake.request_payment(&params).unwrap();
        ids.push(id);
    }
    mall.fake.flush_notifications().await;
    for id in &ids {
        assert_eq!(mall.status(*id).await, "paid");
    }
    let mall = Arc::new(mall);
    let races: Vec<_> = ids
        .iter()
        .map(|&id| {
            let (mall, buyer, admin) = (mall.clone(), buyer.clone(), admin.clone());
            tokio::spawn(async move {
                let (cancel, ship) =
                    tokio::join!(mall.act(id, "cancel", &buyer), mall.act(id, "ship", &admin));
                (id, cancel, ship)
            })
        })
        .collect();
    for race in races {
        let (id, (cancel, cancel_body), (ship, ship_body)) = race.await.unwrap();
        let status = mall.status(id).await;
        let no = mall.out_trade_no(id).await;
        let refund = mall.fake.refund(&format!("{no}-refund"));
        let trade = mall.fake.order(&no).unwrap().trade_state;
        match status.as_str() {
            "shipped" => {
                assert_eq!(ship, 200, "{label}: {ship_body}");
                assert_eq!(cancel, 409, "{label}: {cancel_body}");
                assert!(refund.is_none(), "{label}: order {id} shipped and refunded");
                assert_eq!(trade, TradeState::Success, "{label}: order {id}");
            }
            "refunded" => {
                assert_eq!(cancel, 200, "{label}: {cancel_body}");
                assert_eq!(cancel_body["status"], "refunded");
                assert_eq!(ship, 409, "{label}: {ship_body}");
                assert!(
                    refund.is_some(),
                    "{label}: order {id} refunded locally only"
                );
                assert_eq!(trade, TradeState::Refund, "{label}: order {id}");
            }
            other => panic!("{label}: order {id} ended {other}"),
        }
    }
    assert_eq!(mall.fake.refunds_created(), mall.count("refunded").await);
    mall.assert_stock_reconciles().await;
}

/// A refund claimed and then interrupted, on every backend: once before the call was made
/// (the instance stopped), once after WeChat Pay did it but its answer (and notification)
/// was lost. Nobody can ship either meanwhile; after the claim's lease any instance's sweeper
/// finishes both, and WeChat Pay is asked for each refund once.
#[tokio::test]
async fn interrupted_refund_is_finished_by_the_sweeper_and_sent_once() {
    for label in databases::backend_labels() {
        interrupted_refund_on(label).await;
    }
}

async fn interrupted_refund_on(label: &str) {
    let (mall, _db) = start_label(label, |_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let admin = mall.admin().await;

    let never_sent = mall.paid_order(&buyer).await;
    mall.claim_refund_and_stop(never_sent, 60).await;
    let (status, body) = mall.act(never_sent, "ship", &admin).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state")),
        "{label}"
    );
    let (status, body) = mall.act(never_sent, "cancel", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["status"]),
        (200, &json!("refunding"))
    );
    assert_eq!(
        mall.fake.refund_calls(),
        0,
        "{label}: the claim's holder sends it"
    );

    let lost = mall.paid_order(&buyer).await;
    mall.fake.drop_notifications(1);
    mall.fake.fail_next(1, PayScript::TamperSignature);
    let (status, body) = mall.act(lost, "cancel", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["status"]),
        (200, &json!("refunding")),
        "{label}: {body}"
    );
    mall.fake.flush_notifications().await;
    assert_eq!(mall.fake.notifications_dropped(), 1);
    assert_eq!(mall.status(lost).await, "refunding", "{label}");
    assert_eq!(mall.fake.refund_calls(), 1);

    assert_eq!(mall.sweep().await.claimed, 0, "{label}: the leases hold");
    mall.assert_stock_reconciles().await;
    mall.expire_refund_leases().await;
    let report = mall.sweep().await;
    assert_eq!(
        (report.claimed, report.refunded),
        (2, 2),
        "{label}: {report:?}"
    );
    for id in [never_sent, lost] {
        assert_eq!(mall.status(id).await, "refunded", "{label}: order {id}");
        let no = mall.out_trade_no(id).await;
        assert!(mall.fake.refund(&format!("{no}-refund")).is_some());
        let (status, _) = mall.act(id, "ship", &admin).await;
        assert_eq!(status, 409);
    }
    assert_eq!(
        (mall.fake.refund_calls(), mall.fake.refunds_created()),
        (2, 2),
        "{label}: the lost one was queried, not sent again"
    );
    mall.expire_refund_leases().await;
    assert_eq!(mall.sweep().await.claimed, 0, "{label}: finished once");
    mall.fake.flush_notifications().await;
    mall.assert_stock_reconciles().await;
}

/// WeChat Pay refusing a refund, on every backend: at `cancel`, and at the sweeper's try for
/// an interrupted one. The order is `paid` again (shippable), nothing refunded, stock held.
#[tokio::test]
async fn refused_refund_returns_the_order_to_paid() {
    for label in databases::backend_labels() {
        refused_refund_on(label).await;
    }
}

async fn refused_refund_on(label: &str) {
    let (mall, _db) = start_label(label, |_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let admin = mall.admin().await;
    let id = mall.paid_order(&buyer).await;

    mall.fake.fail_next(1, PayScript::error(403, "NOT_ENOUGH"));
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(mall.status(id).await, "paid");
    mall.assert_stock_reconciles().await;

    // The sweeper's try, for a claim whose holder stopped, refused as well.
    mall.claim_refund_and_stop(id, -1).await;
    mall.fake.fail_next(1, PayScript::Delay(Duration::ZERO)); // the refund query: unknown
    mall.fake
        .fail_next(1, PayScript::error(400, "INVALID_REQUEST"));
    let report = mall.sweep().await;
    assert_eq!(
        (report.claimed, report.refund_refused),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(mall.status(id).await, "paid");
    assert_eq!(mall.fake.refund_calls(), 2);
    assert_eq!(mall.fake.refunds_created(), 0);
    mall.assert_stock_reconciles().await;

    let (status, body) = mall.act(id, "ship", &admin).await;
    assert_eq!((status.as_u16(), &body["status"]), (200, &json!("shipped")));
    mall.assert_stock_reconciles().await;
}

/// A refund is asked for with the mall's notify_url: WeChat Pay's `REFUND.SUCCESS` comes back
/// to the mall and is recorded.
#[tokio::test]
async fn refund_carries_the_notify_url_and_its_notification_is_recorded() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.paid_order(&buyer).await;
    let delivered = mall.fake.notifications_delivered();
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["status"]),
        (200, &json!("refunded"))
    );
    mall.fake.flush_notifications().await;
    assert_eq!(
        mall.fake.notifications_delivered(),
        delivered + 1,
        "the refund's notification reached the mall"
    );
    let sql = format!(
        "SELECT refund_status FROM orders WHERE id = {}",
        mall.db.dialect().placeholder(1)
    );
    let (refund_status,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(mall.db.pool())
        .await
        .unwrap();
    assert_eq!(refund_status.as_deref(), Some("SUCCESS"));
    mall.assert_stock_reconciles().await;
}

/// `REFUND.SUCCESS` arriving while the instance that asked for the refund still waits for
/// the answer: the order is refunded and its stock returned, once; a replay changes nothing.
#[tokio::test]
async fn refund_notification_before_the_answer_finishes_the_refund_once() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.paid_order(&buyer).await;
    let (no, total) = (mall.out_trade_no(id).await, mall.total(id).await);
    let out_refund_no = format!("{no}-refund");
    mall.claim_refund_and_stop(id, 60).await;
    // What the claiming instance asked for (its answer not back yet).
    let client = mall.payments.pay.clone().unwrap();
    client
        .refund(&RefundRequest::new(&no, &out_refund_no, total, total))
        .await
        .unwrap();
    mall.fake.flush_notifications().await;
    let n = mall.refund_notification(&out_refund_no);

    let before = shelf_stock(&mall.db).await;
    let (status, body) = mall.notify(&n).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(mall.status(id).await, "refunded");
    assert_eq!(shelf_stock(&mall.db).await, before + 2, "the stock is back");
    mall.assert_stock_reconciles().await;

    let (status, body) = mall.notify(&n).await;
    assert_eq!(status, 204, "{body}");
    let again = mall.refund_notification(&out_refund_no);
    assert_eq!(mall.notify(&again).await.0, 204);
    assert_eq!(mall.status(id).await, "refunded");
    assert_eq!(shelf_stock(&mall.db).await, before + 2, "returned once");
    mall.expire_refund_leases().await;
    assert_eq!(
        mall.sweep().await,
        SweepReport::default(),
        "nothing left to finish"
    );
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn cancelling_a_pending_order_closes_it_at_wechat_pay_first() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.pay(id, &buyer).await;
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    let no = mall.out_trade_no(id).await;
    assert_eq!(
        mall.fake.order(&no).unwrap().trade_state,
        TradeState::Closed
    );
    assert!(mall.fake.pay(&no).is_err(), "a closed order cannot be paid");
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn cancelling_while_wechat_pay_refuses_to_close_cancels_nothing() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.pay(id, &buyer).await;
    mall.fake
        .fail_next(5, PayScript::error(500, "SYSTEM_ERROR"));
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(mall.status(id).await, "pending");
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn sweeper_closes_and_cancels_an_unpaid_order_after_the_timeout() {
    for label in databases::backend_labels() {
        sweeper_closes_and_cancels_on(label).await;
    }
}

async fn sweeper_closes_and_cancels_on(label: &str) {
    let (mall, _db) = start_label(label, |c| c.unpaid_timeout = Duration::from_secs(60)).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.pay(id, &buyer).await;
    assert_eq!(mall.sweep().await, SweepReport::default(), "not due yet");
    mall.age_orders(61).await;
    let report = mall.sweep().await;
    assert_eq!((report.claimed, report.cancelled), (1, 1), "{report:?}");
    assert_eq!(mall.status(id).await, "cancelled");
    let no = mall.out_trade_no(id).await;
    assert_eq!(
        mall.fake.order(&no).unwrap().trade_state,
        TradeState::Closed
    );
    assert_eq!(mall.fake.close_calls(), 1);
    assert_eq!(mall.sweep().await.claimed, 0, "swept once");
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn sweeper_marks_paid_an_order_whose_notification_was_lost() {
    let (mall, _db) = start(|c| c.unpaid_timeout = Duration::from_secs(60)).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let params = mall.pay(id, &buyer).await;
    mall.fake.drop_notifications(1);
    mall.fake.request_payment(&params).unwrap();
    mall.fake.flush_notifications().await;
    assert_eq!(mall.fake.notifications_dropped(), 1);
    assert_eq!(mall.status(id).await, "pending");
    mall.age_orders(61).await;
    let report = mall.sweep().await;
    assert_eq!((report.claimed, report.paid), (1, 1), "{report:?}");
    assert_eq!(mall.status(id).await, "paid");
    assert_eq!(mall.fake.close_calls(), 0, "a paid order is never closed");
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn sweeper_cancels_an_order_never_placed_at_wechat_pay_without_closing_it() {
    let (mall, _db) = start(|c| c.unpaid_timeout = Duration::from_secs(60)).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.age_orders(61).await;
    let report = mall.sweep().await;
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(mall.status(id).await, "cancelled");
    assert_eq!(mall.fake.query_calls(), 1);
    assert_eq!(mall.fake.close_calls(), 0);
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn sweeper_leaves_an_order_alone_while_wechat_pay_cannot_say() {
    let (mall, _db) = start(|c| c.unpaid_timeout = Duration::from_secs(60)).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.pay(id, &buyer).await;
    mall.age_orders(61).await;
    mall.fake.fail_next(1, PayScript::TamperSignature);
    let report = mall.sweep().await;
    assert_eq!((report.claimed, report.skipped), (1, 1), "{report:?}");
    assert_eq!(
        mall.status(id).await,
        "pending",
        "never cancelled before WeChat Pay closed it"
    );
    assert_eq!(
        mall.sweep().await.claimed,
        0,
        "leased to the failed sweep for a while"
    );
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn paying_after_the_timeout_is_refused() {
    let (mall, _db) = start(|c| c.unpaid_timeout = Duration::from_secs(60)).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    mall.age_orders(61).await;
    let (status, body) = mall.act(id, "pay", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state"))
    );
    assert_eq!(mall.fake.prepay_calls(), 0);
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn payment_arriving_for_a_cancelled_order_is_refunded() {
    let (mall, _db) = start(|c| c.unpaid_timeout = Duration::from_secs(60)).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let (no, total) = (mall.out_trade_no(id).await, mall.total(id).await);
    // The sweeper finds it unknown at WeChat Pay and cancels it...
    mall.age_orders(61).await;
    assert_eq!(mall.sweep().await.cancelled, 1);
    // ...while a prepay for it was in flight, and the buyer pays.
    let client = mall.payments.pay.clone().unwrap();
    client
        .prepay_jsapi(&JsapiOrder::new(&no, "late", total, "fake-openid-alice"))
        .await
        .unwrap();
    mall.fake.pay(&no).unwrap();
    mall.fake.flush_notifications().await;
    assert_eq!(
        mall.fake.refunds_created(),
        1,
        "the late payment is refunded"
    );
    assert_eq!(mall.status(id).await, "refunded");
    mall.fake.redeliver(&no);
    mall.fake.flush_notifications().await;
    assert_eq!(mall.fake.refunds_created(), 1);
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn tampered_answer_at_pay_is_a_502_and_stores_nothing() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    for script in [PayScript::TamperSignature, PayScript::OmitSignature] {
        mall.fake.fail_next(1, script);
        let (status, body) = mall.act(id, "pay", &buyer).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], "pay_signature");
        assert!(body.get("package").is_none());
        assert_eq!(mall.row(id).await.2, None, "no prepay_id stored");
        assert_eq!(mall.status(id).await, "pending");
    }
    // WeChat Pay answers the same prepay_id for the same order once the answer verifies.
    let params = mall.pay(id, &buyer).await;
    assert!(mall.fake.verify_pay_sign(&params));
    assert_eq!(
        mall.row(id).await.2.as_deref(),
        params.package.strip_prefix("prepay_id=")
    );
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn without_a_merchant_in_production_payment_is_disabled_and_the_rest_serves() {
    let (mall, _db) = start(|c| {
        c.pay = None;
        c.dev_switch = false; // production (no MALL_DEV): no built-in fake
    })
    .await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let (status, body) = mall.act(id, "pay", &buyer).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "payment_unavailable");
    let (status, body) = mall.call(Method::POST, NOTIFY, None, Some(json!({}))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "FAIL");
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn cancelling_an_order_never_asked_to_pay_calls_nobody() {
    let (mall, _db) = start(|_| {}).await;
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let (status, body) = mall.act(id, "cancel", &buyer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(mall.fake.close_calls() + mall.fake.query_calls(), 0);
    let (status, body) = mall.act(id, "pay", &buyer).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (409, &json!("invalid_state"))
    );
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn in_development_without_a_merchant_the_built_in_fake_takes_payment() {
    let (mall, _db) = start(|c| c.pay = None).await;
    let dev = mall
        .dev_fake
        .clone()
        .expect("the built-in fake runs on loopback");
    let buyer = mall.wx_login("alice").await;
    let id = mall.order(&buyer).await;
    let params = mall.pay(id, &buyer).await;
    assert!(dev.verify_pay_sign(&params));
    // The documented way to "pay" in development.
    let no = mall.out_trade_no(id).await;
    let resp = mall
        .http
        .post(format!("{}/fake/pay/{no}", dev.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    dev.flush_notifications().await;
    assert_eq!(mall.status(id).await, "paid");
    assert_eq!(
        mall.fake.prepay_calls(),
        0,
        "the configured fake is not used"
    );
    mall.assert_stock_reconciles().await;
}

#[tokio::test]
async fn openapi_documents_the_payment_routes() {
    let (mall, _db) = start(|_| {}).await;
    let resp = mall
        .http
        .get(format!("{}/openapi.json", mall.base))
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    let paths = &doc["paths"];
    for path in ["pay", "ship", "confirm", "cancel"] {
        assert!(
            paths[format!("/mall/orders/{{id}}/{path}/")]["post"].is_object(),
            "{path} missing"
        );
    }
    let pay = &paths["/mall/orders/{id}/pay/"]["post"];
    assert_eq!(
        pay["responses"]["200"]["content"]["application/json"]["schema"]["required"],
        json!(["timeStamp", "nonceStr", "package", "signType", "paySign"])
    );
    for status in ["409", "502", "503"] {
        assert!(pay["responses"][status].is_object(), "pay {status}");
    }
    let cancel = &paths["/mall/orders/{id}/cancel/"]["post"];
    for text in [&cancel["summary"], &cancel["description"]] {
        assert!(text.as_str().unwrap().contains("refunding"), "{cancel}");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Orders"].is_object() && schemas["Error"].is_object());
    let notify = &paths[NOTIFY]["post"];
    assert!(notify["responses"]["204"].is_object(), "{notify}");
    assert_eq!(
        notify["responses"]["401"]["content"]["application/json"]["schema"]["properties"]["code"]["enum"],
        json!(["FAIL"])
    );
}

/// Two instances on one PostgreSQL schema (and one Redis), both sweeping the same unpaid
/// orders: each order is settled exactly once.
#[tokio::test]
async fn two_instances_sweep_the_same_unpaid_orders_once() {
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let target = databases::fresh_target("postgres").await;
    let fake = fake_pay().await;
    let prefix = databases::unique_prefix("mall_pay");
    let tweak = |c: &mut shop::Config| {
        c.redis_url = Some(redis.clone());
        c.redis_prefix = prefix.clone();
        c.unpaid_timeout = Duration::from_secs(60);
    };
    let a = start_on(&target.url, fake.clone(), tweak).await;
    let b = start_on(&target.url, fake.clone(), tweak).await;
    let buyer = a.wx_login("alice").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = a.order(&buyer).await;
        match i % 3 {
            0 => {} // never asked to pay
            1 => {
                b.pay(id, &buyer).await; // unpaid at WeChat Pay
            }
            _ => {
                let params = b.pay(id, &buyer).await;
                fake.drop_notifications(1);
                fake.request_payment(&params).unwrap(); // paid, notification lost
            }
        }
        ids.push(id);
    }
    fake.flush_notifications().await;
    a.age_orders(61).await;
    let (ra, rb) = tokio::join!(a.sweep(), b.sweep());
    let (ra2, rb2) = tokio::join!(a.sweep(), b.sweep());
    assert_eq!(
        ra.claimed + rb.claimed + ra2.claimed + rb2.claimed,
        6,
        "{ra:?} {rb:?}"
    );
    assert_eq!(ra.cancelled + rb.cancelled, 4);
    assert_eq!(ra.paid + rb.paid, 2);
    assert_eq!(fake.close_calls(), 2, "each unpaid order closed once");
    for (i, id) in ids.iter().enumerate() {
        let expected = if i % 3 == 2 { "paid" } else { "cancelled" };
        assert_eq!(a.status(*id).await, expected, "order {i}");
    }
    a.assert_stock_reconciles().await;
}
