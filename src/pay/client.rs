//! [`WxPayClient`]: one merchant's client for WeChat Pay API v3 (JSAPI).
//!
//! Every request is signed with the merchant key; every 2xx answer's `Wechatpay-Signature` is
//! verified over its raw bytes with WeChat Pay's public key before anything in it is
//! believed. Calls are bounded by the configured deadline; a call is retried (at most
//! `max_retries` times) after a connect error, and, for calls WeChat Pay treats as idempotent
//! (query, close, refund per `out_refund_no`), after a 5xx or `FREQUENCY_LIMITED` answer.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::PayError;
use super::config::{WxPayConfig, check_notify_url};
use super::refund::{Refund, RefundRequest, check_out_refund_no};
use super::sign::{self, RequestPayment};
use super::transaction::{JsapiOrder, Transaction, check_out_trade_no};

/// The largest answer body read from WeChat Pay.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The counter of failed WeChat Pay calls, labelled `kind` ([`PayError::kind`]).
pub const PAY_ERRORS_METRIC: &str = "wxrest_pay_errors_total";

/// A client for one merchant and appid. Cheap to clone (an `Arc` inside).
///
/// ```
/// # #[cfg(not(feature = "fake-pay"))] fn main() {}
/// # #[cfg(feature = "fake-pay")]
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wxrest::pay::PayError> {
/// use wxrest::pay::{FakeWeChatPay, JsapiOrder, TradeState, WxPayClient};
///
/// let fake = FakeWeChatPay::start().await;
/// let pay = WxPayClient::new(fake.config())?;
/// let params = pay.jsapi(&JsapiOrder::new("mall-000001", "Tea", 100, "o-buyer")).await?;
/// assert_eq!(params.sign_type, "RSA");
/// assert_eq!(pay.query_order("mall-000001").await?.trade_state, TradeState::NotPay);
/// pay.close_order("mall-000001").await?;
/// assert_eq!(pay.query_order("mall-000001").await?.trade_state, TradeState::Closed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WxPayClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: WxPayConfig,
    http: reqwest::Client,
}

impl fmt::Debug for WxPayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxPayClient")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// One API call.
struct Call {
    method: Method,
    /// The path (its characters need no escaping: numbers are checked first).
    path: String,
    /// One query parameter, form-encoded.
    query: Option<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// Whether repeating the call cannot do more than doing it once.
    idempotent: bool,
}

impl WxPayClient {
    /// A client for the merchant described by `config`.
    ///
    /// # Errors
    /// [`PayError::Config`] when the API base or notify URL is not an absolute http(s) URL, or
    /// the HTTP client cannot be built.
    pub fn new(config: WxPayConfig) -> Result<Self, PayError> {
        let base = Url::parse(&config.api_base)
            .map_err(|e| PayError::Config(format!("invalid WeChat Pay api_base: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(PayError::Config(
                "WeChat Pay api_base must be an http(s) URL".into(),
            ));
        }
        check_notify_url(&config.notify_url)?;
        let http = crate::upstream::http_client_builder()
            .map_err(PayError::Config)?
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxrest/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PayError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner { config, http }),
        })
    }

    /// The configuration (its `Debug` redacts the keys).
    pub fn config(&self) -> &WxPayConfig {
        &self.inner.config
    }

    /// Places a JSAPI order (`POST /v3/pay/transactions/jsapi`) and returns its `prepay_id`
    /// (valid two hours). Placing the same order again answers the same `prepay_id`.
    ///
    /// # Errors
    /// [`PayError::InvalidRequest`] before calling for values WeChat Pay refuses;
    /// [`PayError::OrderPaid`], [`PayError::OrderClosed`], [`PayError::Api`] (e.g.
    /// `OUT_TRADE_NO_USED` for the same number with other values), [`PayError::Signature`],
    /// [`PayError::Timeout`], ...
    pub async fn prepay_jsapi(&self, order: &JsapiOrder) -> Result<String, PayError> {
        order.validate()?;
        let config = &self.inner.config;
        let mut body = json!({
            "appid": config.appid,
            "mchid": config.mchid,
            "description": order.description,
            "out_trade_no": order.out_trade_no,
            "notify_url": config.notify_url,
            "amount": { "total": order.total, "currency": "CNY" },
            "payer": { "openid": order.payer_openid },
        });
        if let Some(attach) = &order.attach {
            body["attach"] = Value::String(attach.clone());
        }
        if let Some(at) = &order.time_expire {
            body["time_expire"] = Value::String(at.clone());
        }
        #[derive(Deserialize)]
        struct Answer {
            prepay_id: String,
        }
        // Only connect errors are retried here: whether to place the order again after a 5xx
        // is the caller's call (the same values answer the same prepay_id).
        let answer: Answer = self
            .call_json(Call {
                method: Method::POST,
                path: "/v3/pay/transactions/jsapi".to_owned(),
                query: None,
                body: Some(body.to_string().into_bytes()),
                idempotent: false,
            })
            .await?;
        if answer.prepay_id.is_empty() {
            return Err(failed(PayError::Malformed("empty prepay_id".into())));
        }
        Ok(answer.prepay_id)
    }

    /// The parameters `wx.requestPayment` takes for `prepay_id`, signed now with the merchant
    /// key. No call to WeChat Pay (one RSA signature): sign again whenever the mini-program
    /// asks, with the stored `prepay_id`.
    ///
    /// # Errors
    /// [`PayError::InvalidRequest`] for an empty `prepay_id`; [`PayError::Sign`].
    pub fn request_payment(&self, prepay_id: &str) -> Result<RequestPayment, PayError> {
        if prepay_id.is_empty()
            || prepay_id.len() > 64
            || !prepay_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(PayError::InvalidRequest("invalid prepay_id".into()));
        }
        let config = &self.inner.config;
        RequestPayment::sign(&config.appid, prepay_id, &config.keys.signing)
    }

    /// [`prepay_jsapi`](Self::prepay_jsapi) then [`request_payment`](Self::request_payment).
    ///
    /// # Errors
    /// As those two.
    pub async fn jsapi(&self, order: &JsapiOrder) -> Result<RequestPayment, PayError> {
        let prepay_id = self.prepay_jsapi(order).await?;
        self.request_payment(&prepay_id)
    }

    /// What WeChat Pay says about an order
    /// (`GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=...`).
    ///
    /// # Errors
    /// [`PayError::NotFound`] (`ORDER_NOT_EXIST`) when it was never placed;
    /// [`PayError::Signature`] for an unverified answer; [`PayError::Malformed`] for an answer
    /// about another order or merchant; transport errors.
    pub async fn query_order(&self, out_trade_no: &str) -> Result<Transaction, PayError> {
        check_out_trade_no(out_trade_no)?;
        let mchid = &self.inner.config.mchid;
        let tx: Transaction = self
            .call_json(Call {
                method: Method::GET,
                path: format!("/v3/pay/transactions/out-trade-no/{out_trade_no}"),
                query: Some(("mchid", mchid.clone())),
                body: None,
                idempotent: true,
            })
            .await?;
        if tx.out_trade_no != out_trade_no || &tx.mchid != mchid {
            return Err(failed(PayError::Malformed(
                "the answer is about another order or merchant".into(),
            )));
        }
        Ok(tx)
    }

    /// Closes an unpaid order so it can no longer be paid
    /// (`POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close`, answered 204).
    ///
    /// # Errors
    /// [`PayError::OrderPaid`] when it was paid meanwhile (query it and treat it as paid);
    /// [`PayError::NotFound`] when it was never placed; [`PayError::Signature`]; transport
    /// errors.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), PayError> {
        check_out_trade_no(out_trade_no)?;
        let body = json!({ "mchid": self.inner.config.mchid });
        self.call(Call {
            method: Method::POST,
            path: format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close"),
            query: None,
            body: Some(body.to_string().into_bytes()),
            idempotent: true,
        })
        .await?;
        Ok(())
    }

    /// Refunds (part of) a paid order (`POST /v3/refund/domestic/refunds`). Idempotent per
    /// `out_refund_no`: calling again, or a retry, answers the same refund.
    ///
    /// The refund is accepted when [`Refund::status`] is `PROCESSING` or `SUCCESS`
    /// ([`RefundStatus::is_accepted`](super::RefundStatus::is_accepted)).
    ///
    /// # Errors
    /// [`PayError::NotFound`] (`RESOURCE_NOT_EXISTS`) for an unknown order,
    /// [`PayError::Api`] (`INVALID_REQUEST`, `NOT_ENOUGH`, ...), [`PayError::Signature`],
    /// transport errors.
    pub async fn refund(&self, request: &RefundRequest) -> Result<Refund, PayError> {
        request.validate()?;
        let mut body = json!({
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "amount": { "refund": request.refund, "total": request.total, "currency": "CNY" },
        });
        if let Some(reason) = &request.reason {
            body["reason"] = Value::String(reason.clone());
        }
        if let Some(url) = &request.notify_url {
            check_notify_url(url).map_err(|_| {
                PayError::InvalidRequest("notify_url must be an http(s) URL without query".into())
            })?;
            body["notify_url"] = Value::String(url.clone());
        }
        let refund: Refund = self
            .call_json(Call {
                method: Method::POST,
                path: "/v3/refund/domestic/refunds".to_owned(),
                query: None,
                body: Some(body.to_string().into_bytes()),
                idempotent: true,
            })
            .await?;
        check_refund(&refund, &request.out_refund_no)?;
        Ok(refund)
    }

    /// What WeChat Pay says about a refund (`GET /v3/refund/domestic/refunds/{out_refund_no}`).
    ///
    /// # Errors
    /// [`PayError::NotFound`] (`RESOURCE_NOT_EXISTS`); [`PayError::Signature`]; transport
    /// errors.
    pub async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, PayError> {
        check_out_refund_no(out_refund_no)?;
        let refund: Refund = self
            .call_json(Call {
                method: Method::GET,
                path: format!("/v3/refund/domestic/refunds/{out_refund_no}"),
                query: None,
                body: None,
                idempotent: true,
            })
            .await?;
        check_refund(&refund, out_refund_no)?;
        Ok(refund)
    }

    async fn call_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, PayError> {
        let body = self.call(call).await?;
        serde_json::from_slice(&body)
            .map_err(|e| failed(PayError::Malformed(format!("unexpected answer: {e}"))))
    }

    /// Sends `call`, verifying a 2xx answer's signature; counts every failure once.
    async fn call(&self, call: Call) -> Result<Bytes, PayError> {
        self.send(call).await.map_err(failed)
    }

    async fn send(&self, call: Call) -> Result<Bytes, PayError> {
        let config = &self.inner.config;
        let mut url = Url::parse(&format!("{}{}", config.api_base, call.path))
            .map_err(|e| PayError::InvalidRequest(format!("invalid path: {e}")))?;
        if let Some((name, value)) = &call.query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let body = call.body.unwrap_or_default();
        let deadline = Instant::now() + config.timeout;
        let mut attempt: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(PayError::Timeout);
            }
            let authorization = sign::authorization(
                &config.mchid,
                &config.merchant_serial,
                &config.keys.signing,
                call.method.as_str(),
                &path_and_query,
                &body,
            )?;
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .timeout(remaining)
                .header(header::AUTHORIZATION, authorization)
                .header(header::ACCEPT, "application/json")
                .header("Wechatpay-Serial", &config.public_key_id);
            if call.method != Method::GET {
                request = request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let (outcome, connect) = match request.send().await {
                Ok(response) => (self.read_answer(response).await, false),
                Err(err) => {
                    let connect = err.is_connect() && !err.is_timeout();
                    (Err(transport(err)), connect)
                }
            };
            let retryable = match &outcome {
                Ok(_) => false,
                Err(PayError::Unavailable { .. } | PayError::RateLimited) => call.idempotent,
                Err(_) => connect,
            };
            let backoff = Duration::from_millis(100 * 3u64.pow(attempt.min(6)));
            if !retryable || attempt >= config.max_retries || Instant::now() + backoff >= deadline {
                return outcome;
            }
            tracing::debug!(path = %url.path(), attempt, "retrying WeChat Pay call");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// Reads an answer: a 2xx is believed only once its signature verifies; anything else is
    /// a typed failure.
    async fn read_answer(&self, mut response: reqwest::Response) -> Result<Bytes, PayError> {
        let status = response.status();
        let headers: HeaderMap = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(PayError::Malformed("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            let config = &self.inner.config;
            sign::verify_wechatpay(
                &headers,
                &body,
                &config.keys.wechatpay_public,
                &config.public_key_id,
                sign::unix_now(),
            )
            .map_err(|e| PayError::Signature(e.to_string()))?;
            return Ok(Bytes::from(body));
        }
        Err(api_error(status, &body))
    }
}

/// The typed error of a non-2xx answer.
fn api_error(status: StatusCode, body: &[u8]) -> PayError {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        code: String,
        #[serde(default)]
        message: String,
    }
    let code = status.as_u16();
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) if !answer.code.is_empty() => {
            let message: String = answer.message.chars().take(256).collect();
            PayError::from_api(code, &answer.code, &message)
        }
        _ if status == StatusCode::TOO_MANY_REQUESTS => PayError::RateLimited,
        _ => PayError::from_api(code, &format!("HTTP_{code}"), ""),
    }
}

fn check_refund(refund: &Refund, out_refund_no: &str) -> Result<(), PayError> {
    if refund.out_refund_no == out_refund_no {
        Ok(())
    } else {
        Err(failed(PayError::Malformed(
            "the answer is about another refund".into(),
        )))
    }
}

fn transport(err: reqwest::Error) -> PayError {
    if err.is_timeout() {
        return PayError::Timeout;
    }
    PayError::Transport(crate::upstream::describe(err))
}

/// Counts a failed call in [`PAY_ERRORS_METRIC`] (free when no `metrics` recorder is
/// installed).
fn failed(err: PayError) -> PayError {
    metrics::counter!(PAY_ERRORS_METRIC, "kind" => err.kind()).increment(1);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_map_to_typed_errors() {
        let paid = api_error(
            StatusCode::BAD_REQUEST,
            br#"{"code":"ORDERPAID","message":"paid"}"#,
        );
        assert_eq!(paid, PayError::OrderPaid);
        let missing = api_error(
            StatusCode::NOT_FOUND,
            br#"{"code":"ORDER_NOT_EXIST","message":"no"}"#,
        );
        assert_eq!(missing.code(), Some("ORDER_NOT_EXIST"));
        let html = api_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert!(html.is_transient());
        assert_eq!(
            api_error(StatusCode::TOO_MANY_REQUESTS, b""),
            PayError::RateLimited
        );
    }
}
