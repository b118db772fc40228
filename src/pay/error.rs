//! [`PayError`] (calls to WeChat Pay) and [`NotifyError`] (notifications from it), each
//! rendering itself as a response.
//!
//! No variant ever carries the merchant private key, the APIv3 key or a signature's input:
//! messages name what was wrong, never the secret it was checked with.

use std::borrow::Cow;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::error::ApiError;

/// An error calling WeChat Pay, or configuring the client.
///
/// Answers WeChat Pay gives as `{"code", "message"}` with a non-2xx status become the typed
/// variants ([`PayError::OrderPaid`], [`PayError::NotFound`], ...) or [`PayError::Api`]; a
/// non-2xx answer is only ever a failure, never evidence of payment. A 2xx answer whose
/// `Wechatpay-Signature` does not verify is [`PayError::Signature`] (rendered 502): nothing it
/// says is returned.
///
/// ```
/// use wxrest::pay::PayError;
///
/// let err = PayError::from_api(400, "ORDERPAID", "order paid");
/// assert_eq!(err, PayError::OrderPaid);
/// assert_eq!(err.code(), Some("ORDERPAID"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// `ORDERPAID`: the order is already paid (closing or re-ordering it is refused).
    #[error("WeChat Pay: the order is already paid (ORDERPAID)")]
    OrderPaid,
    /// `ORDER_CLOSED`: the order was closed and can no longer be paid.
    #[error("WeChat Pay: the order is closed (ORDER_CLOSED)")]
    OrderClosed,
    /// `ORDER_NOT_EXIST` or `RESOURCE_NOT_EXISTS`: WeChat Pay has no such order or refund.
    #[error("WeChat Pay has no such order or refund ({code})")]
    NotFound {
        /// The code WeChat Pay answered.
        code: String,
    },
    /// `SIGN_ERROR`: WeChat Pay refused the request signature (wrong merchant key or serial).
    #[error("WeChat Pay refused the request signature (SIGN_ERROR): {message}")]
    SignRejected {
        /// WeChat Pay's message.
        message: String,
    },
    /// `FREQUENCY_LIMITED`: too many calls; still after the bounded retries.
    #[error("WeChat Pay rate limit reached (FREQUENCY_LIMITED)")]
    RateLimited,
    /// `SYSTEM_ERROR`, `BANKERROR` or another 5xx answer, still after the bounded retries.
    #[error("WeChat Pay is unavailable ({code}, HTTP {status})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The code WeChat Pay answered (or `HTTP_<status>` when it sent none).
        code: String,
    },
    /// Any other `{"code", "message"}` answer (`PARAM_ERROR`, `INVALID_REQUEST`,
    /// `NOT_ENOUGH`, `OUT_TRADE_NO_USED`, ...).
    #[error("WeChat Pay error {code} (HTTP {status}): {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The code WeChat Pay answered.
        code: String,
        /// WeChat Pay's message.
        message: String,
    },
    /// A 2xx answer whose signature is missing or does not verify with WeChat Pay's public key
    /// (or whose `Wechatpay-Serial` is not the configured public key id, whose timestamp is
    /// outside the 5-minute window, or which is a `WECHATPAY/SIGNTEST/` probe). Treated as
    /// forged: nothing in it is believed.
    #[error("WeChat Pay's answer failed its signature check: {0}")]
    Signature(String),
    /// A verified answer that is not the JSON expected.
    #[error("malformed answer from WeChat Pay: {0}")]
    Malformed(String),
    /// WeChat Pay did not answer before the configured deadline.
    #[error("WeChat Pay did not answer in time")]
    Timeout,
    /// Connection or HTTP-level failure.
    #[error("transport error talking to WeChat Pay: {0}")]
    Transport(String),
    /// An argument the client checks before calling (e.g. an `out_trade_no` WeChat Pay would
    /// refuse, a zero amount).
    #[error("invalid payment request: {0}")]
    InvalidRequest(String),
    /// The configuration is incomplete or invalid (missing variable, bad key, APIv3 key not
    /// 32 bytes, ...).
    #[error("WeChat Pay configuration error: {0}")]
    Config(String),
    /// Signing with the merchant key failed.
    #[error("could not sign with the merchant private key")]
    Sign,
}

impl PayError {
    /// The typed error for a non-2xx answer `{"code", "message"}` with HTTP `status`.
    pub fn from_api(status: u16, code: &str, message: &str) -> Self {
        match code {
            "ORDERPAID" => Self::OrderPaid,
            "ORDER_CLOSED" => Self::OrderClosed,
            "ORDER_NOT_EXIST" | "RESOURCE_NOT_EXISTS" => Self::NotFound {
                code: code.to_owned(),
            },
            "SIGN_ERROR" => Self::SignRejected {
                message: message.to_owned(),
            },
            "FREQUENCY_LIMITED" => Self::RateLimited,
            "SYSTEM_ERROR" | "BANKERROR" => Self::Unavailable {
                status,
                code: code.to_owned(),
            },
            _ if status >= 500 => Self::Unavailable {
                status,
                code: code.to_owned(),
            },
            _ => Self::Api {
                status,
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }

    /// The WeChat Pay code this error stands for, when it came from an answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::OrderPaid => Some("ORDERPAID"),
            Self::OrderClosed => Some("ORDER_CLOSED"),
            Self::NotFound { code } | Self::Unavailable { code, .. } | Self::Api { code, .. } => {
                Some(code)
            }
            Self::SignRejected { .. } => Some("SIGN_ERROR"),
            Self::RateLimited => Some("FREQUENCY_LIMITED"),
            _ => None,
        }
    }

    /// Whether retrying the same call later may succeed (rate limits, 5xx, timeouts,
    /// transport errors).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Unavailable { .. } | Self::Timeout | Self::Transport(_)
        )
    }

    /// Whether WeChat Pay certainly did not do what was asked, and will not on the same call:
    /// it answered with a 4xx refusal (`ORDERPAID`, `ORDER_CLOSED`, not found, `SIGN_ERROR`,
    /// `PARAM_ERROR`, `INVALID_REQUEST`, `NOT_ENOUGH`, ...), or the client refused the request
    /// before sending it. A state claimed for the call may then be given back. Rate limits,
    /// 5xx answers, timeouts, transport errors and answers that fail verification are not
    /// refusals: the call may have been applied, so ask WeChat Pay before deciding.
    ///
    /// ```
    /// use wxrest::pay::PayError;
    ///
    /// assert!(PayError::from_api(403, "NOT_ENOUGH", "balance").is_refusal());
    /// assert!(!PayError::from_api(500, "SYSTEM_ERROR", "busy").is_refusal());
    /// assert!(!PayError::Timeout.is_refusal());
    /// assert!(!PayError::Signature("forged".into()).is_refusal());
    /// ```
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::OrderPaid
            | Self::OrderClosed
            | Self::NotFound { .. }
            | Self::SignRejected { .. }
            | Self::InvalidRequest(_) => true,
            Self::Api { status, .. } => (400..500).contains(status) && *status != 429,
            _ => false,
        }
    }

    /// A short, stable name of the variant (`order_paid`, `signature`, ...), for metrics
    /// labels, logs and the `code` of the rendered body (prefixed `pay_`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OrderPaid => "order_paid",
            Self::OrderClosed => "order_closed",
            Self::NotFound { .. } => "not_found",
            Self::SignRejected { .. } => "sign_rejected",
            Self::RateLimited => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Api { .. } => "api",
            Self::Signature(_) => "signature",
            Self::Malformed(_) => "malformed",
            Self::Timeout => "timeout",
            Self::Transport(_) => "transport",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Config(_) => "config",
            Self::Sign => "sign",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::OrderPaid | Self::OrderClosed => StatusCode::CONFLICT,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Config(_) | Self::Sign => StatusCode::INTERNAL_SERVER_ERROR,
            Self::SignRejected { .. }
            | Self::Api { .. }
            | Self::Signature(_)
            | Self::Malformed(_)
            | Self::Transport(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// What the client of *our* API is told: WeChat Pay's own messages and transport details
    /// stay in logs.
    fn detail(&self) -> Cow<'static, str> {
        match self {
            Self::OrderPaid => "The order is already paid.".into(),
            Self::OrderClosed => "The payment order is closed.".into(),
            Self::NotFound { .. } => "WeChat Pay has no such order.".into(),
            Self::RateLimited | Self::Unavailable { .. } => {
                "WeChat Pay is temporarily unavailable; try again later.".into()
            }
            Self::Timeout => "WeChat Pay did not answer in time.".into(),
            Self::Signature(_) => "WeChat Pay's answer could not be verified.".into(),
            Self::InvalidRequest(reason) => format!("Invalid payment request: {reason}").into(),
            Self::Config(_) | Self::Sign => ApiError::SERVER_ERROR_DETAIL.into(),
            Self::SignRejected { .. } | Self::Api { .. } | Self::Malformed(_) => {
                "WeChat Pay refused the request.".into()
            }
            Self::Transport(_) => "WeChat Pay could not be reached.".into(),
        }
    }
}

impl From<PayError> for ApiError {
    fn from(err: PayError) -> Self {
        let code = format!("pay_{}", err.kind());
        ApiError::new(err.status(), code, err.detail())
    }
}

/// Renders `{"detail", "code"}` (DRF's shape): 409 for `ORDERPAID`/`ORDER_CLOSED`, 404 for a
/// missing order, 502 for a forged or refused answer, 503/504 when WeChat Pay is
/// unavailable or slow, 500 for our own configuration.
///
/// ```
/// use axum::response::IntoResponse;
/// use wxrest::pay::PayError;
///
/// let response = PayError::Signature("bad signature".into()).into_response();
/// assert_eq!(response.status(), 502);
/// ```
impl IntoResponse for PayError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// Why a payment notification was refused. Renders `{"code": "FAIL", "message": ...}` with a
/// 4xx status, the answer WeChat Pay expects (it then delivers the notification again later).
///
/// ```
/// use axum::response::IntoResponse;
/// use wxrest::pay::NotifyError;
///
/// let response = NotifyError::SignatureProbe.into_response();
/// assert_eq!(response.status(), 401);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A `Wechatpay-*` header is missing or empty.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `Wechatpay-Timestamp` is not a number, or more than 5 minutes from now.
    #[error("Wechatpay-Timestamp is invalid or outside the 5-minute window")]
    Timestamp,
    /// `Wechatpay-Serial` is not the configured WeChat Pay public key id.
    #[error("Wechatpay-Serial is not the configured public key id")]
    UnknownSerial,
    /// A `WECHATPAY/SIGNTEST/` signature: WeChat Pay probing that signatures are checked.
    #[error("signature probe refused")]
    SignatureProbe,
    /// The signature does not verify with WeChat Pay's public key.
    #[error("signature does not verify")]
    BadSignature,
    /// The body is larger than [`MAX_NOTIFICATION_BYTES`](super::MAX_NOTIFICATION_BYTES).
    #[error("notification body too large")]
    TooLarge,
    /// The body is not a notification (not JSON, fields missing, unknown algorithm).
    #[error("malformed notification: {0}")]
    Malformed(String),
    /// `resource` did not decrypt with the APIv3 key (wrong key, tampered ciphertext, nonce
    /// or associated_data).
    #[error("resource could not be decrypted")]
    Decrypt,
    /// The body could not be read.
    #[error("could not read the notification body")]
    Body,
}

impl NotifyError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MissingHeader(_)
            | Self::Timestamp
            | Self::UnknownSerial
            | Self::SignatureProbe
            | Self::BadSignature => StatusCode::UNAUTHORIZED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed(_) | Self::Decrypt | Self::Body => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for NotifyError {
    fn into_response(self) -> Response {
        let body = json!({ "code": "FAIL", "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}
