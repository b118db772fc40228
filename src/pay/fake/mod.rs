//! [`FakeWeChatPay`]: an in-process WeChat Pay API v3 for tests and local development.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod api;
mod builder;
mod notifier;

pub use builder::FakeWeChatPayBuilder;
pub use notifier::SignedNotification;

use super::config::WxPayConfig;
use super::refund::Refund;
use super::sign::{self, RequestPayment};
use super::transaction::{Payer, TradeState, Transaction, TransactionAmount};

/// The largest request body the fake reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How the fake mangles or replaces its next answers ([`FakeWeChatPay::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayScript {
    /// Do the work, but answer with a signature that does not verify (a forged answer).
    TamperSignature,
    /// Do the work, but answer without the `Wechatpay-*` signature headers.
    OmitSignature,
    /// Do the work, but answer with a `WECHATPAY/SIGNTEST/` probe signature.
    Probe,
    /// Do the work, but sign with the serial of another key.
    WrongSerial,
    /// Do the work, but answer with a correct signature 10 minutes old.
    StaleTimestamp,
    /// Do nothing and answer `{"code", "message"}` with this status.
    Error {
        /// The HTTP status.
        status: u16,
        /// WeChat Pay's code (`SYSTEM_ERROR`, ...).
        code: String,
        /// The message.
        message: String,
    },
    /// Wait, then answer normally.
    Delay(Duration),
}

impl PayScript {
    /// [`PayScript::Error`] with a generic message.
    pub fn error(status: u16, code: impl Into<String>) -> Self {
        Self::Error {
            status,
            code: code.into(),
            message: "scripted error".to_owned(),
        }
    }
}

/// Why the fake refused to "pay" an order ([`FakeWeChatPay::pay`],
/// [`FakeWeChatPay::request_payment`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FakePayError {
    /// No order with this number (or prepay_id).
    #[error("no such order")]
    UnknownOrder,
    /// The order is not waiting for payment.
    #[error("the order cannot be paid: it is {}", .0.as_str())]
    NotPayable(TradeState),
    /// The `wx.requestPayment` parameters would be refused by WeChat.
    #[error("wx.requestPayment parameters refused: {0}")]
    BadParams(&'static str),
}

/// An in-process HTTP server speaking WeChat Pay API v3 (JSAPI prepay, query, close, refund)
/// as the real one does, for tests and local development. Stops when dropped. Needs feature
/// `fake-pay`.
///
/// It verifies the merchant's request signatures (a bad one gets 401 `SIGN_ERROR`), keeps
/// orders and refunds in memory (bounded), signs every answer with its own platform key,
/// and sends payment and refund notifications, signed and AES-256-GCM encrypted, to the
/// order's notify_url, again while the answer is not 2xx. [`FakeWeChatPay::config`] hands out
/// the matching [`WxPayConfig`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wxrest::pay::PayError> {
/// use wxrest::pay::{FakeWeChatPay, JsapiOrder, PayError, PayScript, WxPayClient};
///
/// let fake = FakeWeChatPay::start().await;
/// let pay = WxPayClient::new(fake.config())?;
/// pay.prepay_jsapi(&JsapiOrder::new("mall-000001", "Tea", 100, "o-buyer")).await?;
/// fake.pay("mall-000001").expect("an unpaid order");
/// assert!(pay.query_order("mall-000001").await?.is_paid());
///
/// fake.fail_next(1, PayScript::TamperSignature);
/// assert!(matches!(pay.query_order("mall-000001").await, Err(PayError::Signature(_))));
/// # Ok(()) }
/// ```
pub struct FakeWeChatPay {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Keeps [`Server`](crate::server::Server) from serving (without development on) while it runs.
    _registration: crate::dev::FakeRegistration,
}

impl fmt::Debug for FakeWeChatPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeWeChatPay")
            .field("mchid", &self.shared.mchid)
            .field("appid", &self.shared.appid)
            .field("addr", &self.addr)
            .field("dev_mode", &self.shared.dev_mode)
            .finish_non_exhaustive()
    }
}

struct Shared {
    mchid: String,
    appid: String,
    apiv3_key: [u8; 32],
    merchant_serial: String,
    public_key_id: String,
    /// The merchant private key as given (PEM), for [`FakeWeChatPay::config`].
    merchant_key_pem: String,
    merchant_public: sign::PublicKey,
    /// The platform public key (PKCS#1 PEM), for [`FakeWeChatPay::config`].
    platform_public_pem: String,
    platform_signing: sign::SigningKey,
    base_url: String,
    dev_mode: bool,
    max_orders: usize,
    notify_attempts: u32,
    notify_retry_delay: Duration,
    notify_delay: Duration,
    refund_delay: Duration,
    http: reqwest::Client,
    state: Mutex<FakeState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    prepay: AtomicU64,
    query: AtomicU64,
    close: AtomicU64,
    refund: AtomicU64,
    refund_query: AtomicU64,
    refunds_created: AtomicU64,
    signature_rejections: AtomicU64,
    notifications_sent: AtomicU64,
    notifications_delivered: AtomicU64,
    notifications_dropped: AtomicU64,
}

#[derive(Default)]
struct FakeState {
    orders: HashMap<String, Order>,
    prepay_ids: HashMap<String, String>,
    refunds: HashMap<String, (Refund, Option<String>)>,
    scripts: Vec<(u64, PayScript)>,
    drop_notifications: u64,
    next_id: u64,
}

struct Order {
    appid: String,
    description: String,
    total: i64,
    openid: String,
    attach: Option<String>,
    notify_url: String,
    prepay_id: String,
    state: TradeState,
    transaction_id: Option<String>,
    success_time: Option<String>,
    refunded: i64,
    /// The `TRANSACTION.SUCCESS` notification body, once paid: every delivery sends the same.
    notification: Option<Vec<u8>>,
}

impl Order {
    fn transaction(&self, mchid: &str, out_trade_no: &str) -> Transaction {
        let paid = self.transaction_id.is_some();
        Transaction {
            appid: self.appid.clone(),
            mchid: mchid.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            transaction_id: self.transaction_id.clone(),
            trade_type: Some("JSAPI".to_owned()),
            trade_state: self.state,
            trade_state_desc: Some(state_desc(self.state).to_owned()),
            bank_type: paid.then(|| "OTHERS".to_owned()),
            attach: self.attach.clone(),
            success_time: self.success_time.clone(),
            payer: Some(Payer {
                openid: self.openid.clone(),
            }),
            amount: Some(TransactionAmount {
                total: Some(self.total),
                payer_total: paid.then_some(self.total),
                currency: Some("CNY".to_owned()),
                payer_currency: Some("CNY".to_owned()),
            }),
        }
    }
}

fn state_desc(state: TradeState) -> &'static str {
    match state {
        TradeState::Success => "支付成功",
        TradeState::Refund => "转入退款",
        TradeState::NotPay => "未支付",
        TradeState::Closed => "已关闭",
        _ => "其他状态",
    }
}

impl Shared {
    /// [`FakeWeChatPay::request_payment`].
    fn request_payment(
        self: &Arc<Self>,
        params: &RequestPayment,
    ) -> Result<Transaction, FakePayError> {
        if params.app_id != self.appid {
            return Err(FakePayError::BadParams("appId is not the merchant's appid"));
        }
        if params.sign_type != "RSA" {
            return Err(FakePayError::BadParams("signType must be RSA"));
        }
        if !self.verify_pay_sign(params) {
            return Err(FakePayError::BadParams("paySign does not verify"));
        }
        let prepay_id = params
            .prepay_id()
            .ok_or(FakePayError::BadParams("package must be prepay_id=..."))?;
        let out_trade_no = self
            .lock()
            .prepay_ids
            .get(prepay_id)
            .cloned()
            .ok_or(FakePayError::UnknownOrder)?;
        self.pay(&out_trade_no)
    }

    /// [`FakeWeChatPay::verify_pay_sign`].
    fn verify_pay_sign(&self, params: &RequestPayment) -> bool {
        sign::verify(
            &self.merchant_public,
            params.signed_message().as_bytes(),
            &params.pay_sign,
        )
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_script(&self) -> Option<PayScript> {
        let mut state = self.lock();
        let (remaining, script) = state.scripts.first_mut()?;
        let script = script.clone();
        *remaining -= 1;
        if *remaining == 0 {
            state.scripts.remove(0);
        }
        Some(script)
    }

    fn next_id(&self) -> u64 {
        let mut state = self.lock();
        state.next_id += 1;
        state.next_id
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

impl FakeWeChatPay {
    /// A fake with the default merchant, appid and keys, not in dev mode.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Configures a fake (merchant, appid, keys, dev mode, bounds, retries).
    pub fn builder() -> FakeWeChatPayBuilder {
        FakeWeChatPayBuilder::default()
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The merchant id the fake serves.
    pub fn mchid(&self) -> &str {
        &self.shared.mchid
    }

    /// The appid orders must be for.
    pub fn appid(&self) -> &str {
        &self.shared.appid
    }

    /// A client configuration matching this fake: its merchant key and serial, APIv3 key,
    /// platform public key and id, appid, and base URL. Its notify_url is a sink on the fake
    /// that accepts and discards notifications: set your own with
    /// [`WxPayConfig::notify_url`].
    pub fn config(&self) -> WxPayConfig {
        let shared = &self.shared;
        let merchant_pem = shared.merchant_key_pem.clone();
        let platform_pem = shared.platform_public_pem.clone();
        let apiv3_key = String::from_utf8_lossy(&shared.apiv3_key).into_owned();
        #[allow(clippy::expect_used)]
        WxPayConfig::builder()
            .mchid(&shared.mchid)
            .merchant_serial(&shared.merchant_serial)
            .merchant_key_pem(merchant_pem)
            .apiv3_key(apiv3_key)
            .wechatpay_public_key_pem(platform_pem)
            .public_key_id(&shared.public_key_id)
            .appid(&shared.appid)
            .notify_url(format!("{}/fake/notify-sink", shared.base_url))
            .api_base(&shared.base_url)
            .build()
            .expect("FakeWeChatPay: its own configuration is valid")
    }

    /// Pays an unpaid order as its buyer would in WeChat, and notifies the merchant.
    ///
    /// # Errors
    /// [`FakePayError::UnknownOrder`], or [`FakePayError::NotPayable`] for an order that is
    /// paid, closed or refunded.
    pub fn pay(&self, out_trade_no: &str) -> Result<Transaction, FakePayError> {
        self.shared.pay(out_trade_no)
    }

    /// What `wx.requestPayment(params)` does: checks the appid and that `paySign` verifies
    /// with the merchant's public key, then pays the order of the prepay_id.
    ///
    /// # Errors
    /// [`FakePayError::BadParams`] for parameters WeChat would refuse, and those of
    /// [`FakeWeChatPay::pay`].
    pub fn request_payment(&self, params: &RequestPayment) -> Result<Transaction, FakePayError> {
        self.shared.request_payment(params)
    }

    /// Whether `paySign` is the merchant's signature of the other parameters.
    pub fn verify_pay_sign(&self, params: &RequestPayment) -> bool {
        self.shared.verify_pay_sign(params)
    }

    /// The order as WeChat Pay knows it.
    pub fn order(&self, out_trade_no: &str) -> Option<Transaction> {
        let state = self.shared.lock();
        let order = state.orders.get(out_trade_no)?;
        Some(order.transaction(&self.shared.mchid, out_trade_no))
    }

    /// The refund as WeChat Pay knows it.
    pub fn refund(&self, out_refund_no: &str) -> Option<Refund> {
        let state = self.shared.lock();
        state.refunds.get(out_refund_no).map(|(r, _)| r.clone())
    }

    /// Sends a paid order's `TRANSACTION.SUCCESS` notification again, same id and content,
    /// signed afresh (as WeChat Pay's retries are). `false` when the order was never paid.
    pub fn redeliver(&self, out_trade_no: &str) -> bool {
        let Some((body, url)) = self.shared.paid_notification(out_trade_no) else {
            return false;
        };
        self.shared.deliver(url, body);
        true
    }

    /// The next `n` API answers follow `script` (e.g. a tampered signature, a 500).
    pub fn fail_next(&self, n: u64, script: PayScript) {
        if n > 0 {
            self.shared.lock().scripts.push((n, script));
        }
    }

    /// The next `n` notifications are lost: never sent.
    pub fn drop_notifications(&self, n: u64) {
        self.shared.lock().drop_notifications += n;
    }

    /// A paid order's `TRANSACTION.SUCCESS` notification (the one sent when it was paid),
    /// signed now, to post by hand.
    pub fn transaction_notification(&self, out_trade_no: &str) -> Option<SignedNotification> {
        let (body, _) = self.shared.paid_notification(out_trade_no)?;
        Some(self.sign_notification(sign::unix_now(), &body))
    }

    /// A notification body with `plaintext` encrypted as `resource` (associated_data =
    /// `original_type`) under the fake's APIv3 key, or under `apiv3_key` when given.
    pub fn notification_body(
        &self,
        event_type: &str,
        original_type: &str,
        plaintext: &Value,
        apiv3_key: Option<&[u8; 32]>,
    ) -> Vec<u8> {
        let key = apiv3_key.unwrap_or(&self.shared.apiv3_key);
        self.shared
            .envelope(event_type, original_type, plaintext, key)
    }

    /// Signs `body` with the platform key as WeChat Pay would at `timestamp` (unix seconds).
    pub fn sign_notification(&self, timestamp: i64, body: &[u8]) -> SignedNotification {
        self.shared.sign_body(timestamp, body)
    }

    /// Waits until every notification sent so far is delivered or has used its attempts (and
    /// pending refunds have settled).
    pub async fn flush_notifications(&self) {
        loop {
            let tasks: Vec<JoinHandle<()>> = {
                let mut tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::take(&mut *tasks)
            };
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }

    /// How many `POST /v3/pay/transactions/jsapi` requests arrived.
    pub fn prepay_calls(&self) -> u64 {
        self.shared.counters.prepay.load(Ordering::SeqCst)
    }

    /// How many order queries arrived.
    pub fn query_calls(&self) -> u64 {
        self.shared.counters.query.load(Ordering::SeqCst)
    }

    /// How many close requests arrived.
    pub fn close_calls(&self) -> u64 {
        self.shared.counters.close.load(Ordering::SeqCst)
    }

    /// How many refund requests arrived (including repeats of the same `out_refund_no`).
    pub fn refund_calls(&self) -> u64 {
        self.shared.counters.refund.load(Ordering::SeqCst)
    }

    /// How many refund queries arrived.
    pub fn refund_query_calls(&self) -> u64 {
        self.shared.counters.refund_query.load(Ordering::SeqCst)
    }

    /// How many refunds were created (money moved back).
    pub fn refunds_created(&self) -> u64 {
        self.shared.counters.refunds_created.load(Ordering::SeqCst)
    }

    /// How many requests were refused with `SIGN_ERROR`.
    pub fn signature_rejections(&self) -> u64 {
        self.shared
            .counters
            .signature_rejections
            .load(Ordering::SeqCst)
    }

    /// How many notification deliveries were attempted (retries included).
    pub fn notifications_sent(&self) -> u64 {
        self.shared
            .counters
            .notifications_sent
            .load(Ordering::SeqCst)
    }

    /// How many notifications were acknowledged with a 2xx.
    pub fn notifications_delivered(&self) -> u64 {
        self.shared
            .counters
            .notifications_delivered
            .load(Ordering::SeqCst)
    }

    /// How many notifications were lost on purpose ([`FakeWeChatPay::drop_notifications`]).
    pub fn notifications_dropped(&self) -> u64 {
        self.shared
            .counters
            .notifications_dropped
            .load(Ordering::SeqCst)
    }

    /// Stops the server (and pending notifications) and waits for it to end.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = &self.task {
            task.abort();
        }
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}

impl Drop for FakeWeChatPay {
    fn drop(&mut self) {
        self.stop();
    }
}
