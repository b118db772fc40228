//! What the fake sends: signed, encrypted notifications, delivered again until acknowledged,
//! and the buyer's payment that triggers them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Value, json};

use super::{FakePayError, Shared};
use crate::pay::notify::encrypt_resource;
use crate::pay::sign::{self, AUTH_SCHEME, H_NONCE, H_SERIAL, H_SIGNATURE, H_TIMESTAMP};
use crate::pay::transaction::{TradeState, Transaction};

/// A notification as the fake would send it, for posting by hand (and tampering with).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedNotification {
    /// `Wechatpay-Timestamp`.
    pub timestamp: String,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Signature`.
    pub signature: String,
    /// `Wechatpay-Serial`.
    pub serial: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl SignedNotification {
    /// The headers WeChat Pay sends with it.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = self.signature_headers();
        headers.insert(
            "wechatpay-signature-type",
            HeaderValue::from_static(AUTH_SCHEME),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    /// The four `Wechatpay-*` headers.
    pub(super) fn signature_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        put(H_TIMESTAMP, &self.timestamp);
        put(H_NONCE, &self.nonce);
        put(H_SIGNATURE, &self.signature);
        put(H_SERIAL, &self.serial);
        headers
    }

    /// A `POST uri` request carrying it.
    pub fn request(&self, uri: &str) -> http::Request<Body> {
        let mut request = http::Request::new(Body::from(self.body.clone()));
        *request.method_mut() = Method::POST;
        if let Ok(uri) = uri.parse() {
            *request.uri_mut() = uri;
        }
        *request.headers_mut() = self.headers();
        request
    }
}

impl Shared {
    /// Signs `body` as WeChat Pay signs answers and notifications.
    pub(super) fn sign_body(&self, timestamp: i64, body: &[u8]) -> SignedNotification {
        let timestamp = timestamp.to_string();
        let nonce = sign::nonce();
        let message = sign::wechatpay_message(&timestamp, &nonce, body);
        let signature = sign::sign(&self.platform_signing, &message).unwrap_or_default();
        SignedNotification {
            timestamp,
            nonce,
            signature,
            serial: self.public_key_id.clone(),
            body: body.to_vec(),
        }
    }

    /// A notification envelope with `plaintext` encrypted under `key`.
    pub(super) fn envelope(
        &self,
        event_type: &str,
        original_type: &str,
        plaintext: &Value,
        key: &[u8; 32],
    ) -> Vec<u8> {
        let nonce = sign::nonce();
        let nonce: [u8; 12] = nonce.as_bytes()[..12].try_into().unwrap_or([b'0'; 12]);
        let ciphertext =
            encrypt_resource(key, &nonce, original_type, plaintext.to_string().as_bytes());
        let summary = if event_type.starts_with("REFUND.") {
            "退款成功"
        } else {
            "支付成功"
        };
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "create_time": beijing_now(),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": original_type,
                "nonce": String::from_utf8_lossy(&nonce),
            }
        })
        .to_string()
        .into_bytes()
    }

    /// Sends a notification to `url` in the background, again while the answer is not 2xx
    /// (or dropped, when a drop is scripted).
    pub(super) fn deliver(self: &Arc<Self>, url: String, body: Vec<u8>) {
        {
            let mut state = self.lock();
            if state.drop_notifications > 0 {
                state.drop_notifications -= 1;
                self.counters
                    .notifications_dropped
                    .fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        let shared = self.clone();
        let task = tokio::spawn(async move {
            if !shared.notify_delay.is_zero() {
                tokio::time::sleep(shared.notify_delay).await;
            }
            for attempt in 0..shared.notify_attempts {
                if attempt > 0 {
                    tokio::time::sleep(shared.notify_retry_delay).await;
                }
                // Each delivery is signed afresh, as WeChat Pay does.
                let signed = shared.sign_body(sign::unix_now(), &body);
                shared
                    .counters
                    .notifications_sent
                    .fetch_add(1, Ordering::SeqCst);
                let outcome = shared
                    .http
                    .post(&url)
                    .headers(signed.headers())
                    .body(signed.body)
                    .send()
                    .await;
                if outcome.is_ok_and(|r| r.status().is_success()) {
                    shared
                        .counters
                        .notifications_delivered
                        .fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        });
        self.track(task);
    }

    /// Pays an order as the buyer would, and notifies the merchant.
    pub(super) fn pay(self: &Arc<Self>, out_trade_no: &str) -> Result<Transaction, FakePayError> {
        let id = self.next_id();
        let (tx, url) = {
            let mut state = self.lock();
            let order = state
                .orders
                .get_mut(out_trade_no)
                .ok_or(FakePayError::UnknownOrder)?;
            if !matches!(order.state, TradeState::NotPay | TradeState::UserPaying) {
                return Err(FakePayError::NotPayable(order.state));
            }
            order.state = TradeState::Success;
            order.transaction_id = Some(format!("42000{:023}", id));
            order.success_time = Some(beijing_now());
            (
                order.transaction(&self.mchid, out_trade_no),
                order.notify_url.clone(),
            )
        };
        let body = self.envelope(
            "TRANSACTION.SUCCESS",
            "transaction",
            &serde_json::to_value(&tx).unwrap_or_default(),
            &self.apiv3_key,
        );
        if let Some(order) = self.lock().orders.get_mut(out_trade_no) {
            order.notification = Some(body.clone());
        }
        self.deliver(url, body);
        Ok(tx)
    }

    /// A paid order's notification body and notify_url.
    pub(super) fn paid_notification(&self, out_trade_no: &str) -> Option<(Vec<u8>, String)> {
        let state = self.lock();
        let order = state.orders.get(out_trade_no)?;
        Some((order.notification.clone()?, order.notify_url.clone()))
    }
}

pub(super) fn beijing_now() -> String {
    let now = chrono::Utc::now();
    match chrono::FixedOffset::east_opt(8 * 3600) {
        Some(cst) => now
            .with_timezone(&cst)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    }
}
