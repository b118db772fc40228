//! WeChat Pay API v3 for mini-programs (JSAPI). Needs feature `pay`.
//!
//! - [`WxPayConfig`]: the merchant (mchid, certificate serial, private key, APIv3 key),
//!   WeChat Pay's public key and its id, the appid and the notify URL; `Debug` redacts keys.
//! - [`WxPayClient`]: signed requests, answers verified before they are believed: JSAPI
//!   prepay, the [`RequestPayment`] parameters of `wx.requestPayment`, query, close, refund.
//! - [`PayNotification`]: an axum extractor that verifies and decrypts WeChat Pay's
//!   notifications into a typed [`Transaction`] or [`RefundNotice`].
//! - `FakeWeChatPay` (feature `fake-pay`): an in-process WeChat Pay that signs, verifies and
//!   encrypts as the real one, for tests and local development.
//!
//! Every signature is RSA PKCS#1 v1.5 with SHA-256, base64-encoded, over newline-terminated
//! lines:
//!
//! | what | signed with | message |
//! |---|---|---|
//! | request `Authorization` | merchant private key | `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n` |
//! | answer / notification (`Wechatpay-Signature`) | WeChat Pay private key | `TIMESTAMP\nNONCE\nBODY\n` |
//! | `paySign` of `wx.requestPayment` | merchant private key | `appId\ntimeStamp\nnonceStr\npackage\n` |
//!
//! The payment flow:
//!
//! ```text
//! mini-program              backend (WxPayClient)                 WeChat Pay
//! POST /orders/{id}/pay/ -> prepay_jsapi(order) --signed POST /v3/pay/transactions/jsapi-->
//!                           <-- {"prepay_id"} (signature verified)
//!                        <- request_payment(prepay_id): {timeStamp, nonceStr, package,
//!                                                        signType: "RSA", paySign}
//! wx.requestPayment({...}) ------------------------------------------------> buyer pays
//!                           PayNotification <-- signed, encrypted POST notify_url --
//!                           (mark paid once; answer 204)
//! ```
//!
//! ```
//! # #[cfg(not(feature = "fake-pay"))] fn main() {}
//! # #[cfg(feature = "fake-pay")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wxrest::pay::{FakeWeChatPay, JsapiOrder, RefundRequest, TradeState, WxPayClient};
//!
//! let fake = FakeWeChatPay::start().await;
//! let pay = WxPayClient::new(fake.config())?;
//!
//! // The buyer asks to pay: hand these to `wx.requestPayment`.
//! let params = pay.jsapi(&JsapiOrder::new("mall-000042", "Green tea", 2_500, "o-buyer")).await?;
//! assert!(params.package.starts_with("prepay_id="));
//!
//! // The buyer pays in WeChat (the fake checks paySign as WeChat would).
//! fake.request_payment(&params)?;
//! let tx = pay.query_order("mall-000042").await?;
//! assert!(tx.is_paid_for(2_500, "o-buyer"));
//!
//! // Refund it, once, however often this is called.
//! let refund = RefundRequest::new("mall-000042", "mall-000042-refund", 2_500, 2_500);
//! assert!(pay.refund(&refund).await?.status.is_accepted());
//! pay.refund(&refund).await?;
//! assert_eq!(fake.refunds_created(), 1);
//! # Ok(()) }
//! ```

mod client;
mod config;
mod error;
#[cfg(feature = "fake-pay")]
mod fake;
mod notify;
mod refund;
mod sign;
mod transaction;

pub use client::{PAY_ERRORS_METRIC, WxPayClient};
pub use config::{DEFAULT_PAY_API_BASE, WxPayConfig, WxPayConfigBuilder};
pub use error::{NotifyError, PayError};
#[cfg(feature = "fake-pay")]
pub use fake::{FakePayError, FakeWeChatPay, FakeWeChatPayBuilder, PayScript, SignedNotification};
pub use notify::{MAX_NOTIFICATION_BYTES, NotifyResource, PayNotification};
pub use refund::{Refund, RefundAmount, RefundNotice, RefundRequest, RefundStatus};
pub use sign::RequestPayment;
pub use transaction::{
    JsapiOrder, Payer, TradeState, Transaction, TransactionAmount, is_valid_out_trade_no,
};
