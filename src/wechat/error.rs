//! [`WxError`]: everything that can go wrong talking to WeChat or decrypting its data.
//!
//! No variant ever carries the appsecret, a `session_key`, an access token or a URL holding
//! one: transport errors are stored with their URL stripped and any occurrence of the secret
//! redacted. It renders itself: `impl From<WxError> for ApiError` below is the HTTP mapping.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::error::ApiError;

/// An error from the WeChat client, the access-token cache or the `encryptedData` crypto.
///
/// ```
/// use wxrest::wechat::WxError;
///
/// assert_eq!(WxError::from_errcode(40029, "invalid code"), WxError::InvalidCode);
/// assert_eq!(WxError::InvalidCode.errcode(), Some(40029));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WxError {
    /// errcode 40029: the login (or phone) code is invalid or expired.
    #[error("WeChat rejected the code as invalid (errcode 40029)")]
    InvalidCode,
    /// errcode 40163: the login code was already used.
    #[error("WeChat login code already used (errcode 40163)")]
    CodeUsed,
    /// errcode 45011: WeChat's per-user rate limit was hit.
    #[error("WeChat rate limit reached (errcode 45011)")]
    RateLimited,
    /// errcode 40226: WeChat's risk control blocked this user.
    #[error("WeChat risk control blocked the user (errcode 40226)")]
    HighRisk,
    /// errcode -1 ("system busy"), still after the bounded retries.
    #[error("WeChat is busy (errcode -1) after retries")]
    Busy,
    /// The app credentials or access token were refused: 40013/40125 (bad appid/appsecret), or
    /// 40001/42001/40014 (invalid or expired access token) again after one refetch.
    #[error("WeChat refused the app credentials or access token")]
    InvalidCredential,
    /// Any other non-zero errcode.
    #[error("WeChat API error {errcode}: {errmsg}")]
    Api {
        /// The errcode WeChat answered.
        errcode: i64,
        /// The errmsg WeChat answered.
        errmsg: String,
    },
    /// WeChat did not answer before the configured deadline.
    #[error("WeChat did not answer in time")]
    Timeout,
    /// Connection or HTTP-level failure (refused, reset, unexpected HTTP status, ...).
    #[error("transport error talking to WeChat: {0}")]
    Transport(String),
    /// WeChat answered something that is not the expected JSON.
    #[error("malformed answer from WeChat: {0}")]
    Malformed(String),
    /// The client could not be configured (missing environment variable, bad base URL, ...).
    #[error("WeChat client configuration error: {0}")]
    Config(String),
    /// `encryptedData` did not decrypt to JSON with this `session_key`: the stored key is stale.
    #[error("encrypted data could not be decrypted with the session key")]
    Decrypt,
    /// The decrypted data's `watermark.appid` is not this app's appid.
    #[error("encrypted data watermark does not match the appid")]
    WatermarkMismatch,
    /// `signature` is not sha1(rawData + session_key).
    #[error("rawData signature does not match")]
    SignatureMismatch,
    /// The encrypted data, key or iv are not well-formed (bad base64, wrong length, ...).
    #[error("invalid encrypted input: {0}")]
    InvalidInput(String),
}

impl WxError {
    /// The typed error for a non-zero WeChat `errcode`.
    ///
    /// Token errors (40001/42001/40014) map to [`WxError::InvalidCredential`]; the client only
    /// does so after its one refetch-and-retry.
    pub fn from_errcode(errcode: i64, errmsg: &str) -> Self {
        match errcode {
            40029 => Self::InvalidCode,
            40163 => Self::CodeUsed,
            45011 => Self::RateLimited,
            40226 => Self::HighRisk,
            -1 => Self::Busy,
            40001 | 42001 | 40014 | 40013 | 40125 => Self::InvalidCredential,
            _ => Self::Api {
                errcode,
                errmsg: errmsg.to_owned(),
            },
        }
    }

    /// The WeChat errcode this error stands for, when it stands for exactly one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::InvalidCode => Some(40029),
            Self::CodeUsed => Some(40163),
            Self::RateLimited => Some(45011),
            Self::HighRisk => Some(40226),
            Self::Busy => Some(-1),
            Self::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// A short, stable name of the variant (`invalid_code`, `busy`, `timeout`, ...), for
    /// metrics labels and logs.
    ///
    /// ```
    /// use wxrest::wechat::WxError;
    /// assert_eq!(WxError::Busy.kind(), "busy");
    /// assert_eq!(WxError::Api { errcode: 48001, errmsg: String::new() }.kind(), "api");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidCode => "invalid_code",
            Self::CodeUsed => "code_used",
            Self::RateLimited => "rate_limited",
            Self::HighRisk => "high_risk",
            Self::Busy => "busy",
            Self::InvalidCredential => "invalid_credential",
            Self::Api { .. } => "api",
            Self::Timeout => "timeout",
            Self::Transport(_) => "transport",
            Self::Malformed(_) => "malformed",
            Self::Config(_) => "config",
            Self::Decrypt => "decrypt",
            Self::WatermarkMismatch => "watermark_mismatch",
            Self::SignatureMismatch => "signature_mismatch",
            Self::InvalidInput(_) => "invalid_input",
        }
    }

    /// Builds a [`WxError::Timeout`] or [`WxError::Transport`] from a reqwest error, stripping
    /// the URL (it may hold `secret=` or `access_token=`) and redacting `secrets`.
    pub(crate) fn from_reqwest(err: reqwest::Error, secrets: &[&str]) -> Self {
        if err.is_timeout() {
            return Self::Timeout;
        }
        Self::Transport(redact(&crate::upstream::describe(err), secrets))
    }
}

/// Replaces every non-empty secret in `text` with `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "[redacted]");
    }
    out
}

impl From<WxError> for ApiError {
    fn from(err: WxError) -> Self {
        use WxError as E;
        const UNAVAILABLE: &str = "WeChat is temporarily unavailable, try again later.";
        const INVALID_DATA: &str = "The encrypted data from WeChat is invalid.";
        match err {
            E::InvalidCode => {
                Self::bad_request("wechat_code_invalid", "Invalid WeChat login code.")
            }
            E::CodeUsed => Self::bad_request(
                "wechat_code_used",
                "This WeChat login code has already been used.",
            ),
            E::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "wechat_rate_limited",
                "Too many WeChat login attempts, try again later.",
            ),
            E::HighRisk => Self::new(
                StatusCode::FORBIDDEN,
                "wechat_high_risk",
                "WeChat blocked this account for risk control.",
            ),
            E::Busy | E::Timeout => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wechat_unavailable",
                UNAVAILABLE,
            )
            .with_cause(format_args!("WeChat unavailable: {err}")),
            E::Decrypt => Self::bad_request(
                "session_key_stale",
                "The WeChat session has expired; call wx.login() again.",
            ),
            E::WatermarkMismatch | E::SignatureMismatch | E::InvalidInput(_) => {
                Self::bad_request("invalid_encrypted_data", INVALID_DATA)
            }
            // Transport, Malformed, Api, InvalidCredential, Config: our side or WeChat's is
            // broken; the detail (never holding secrets) goes to the log, not the client.
            other => Self::new(StatusCode::BAD_GATEWAY, "wechat_unavailable", UNAVAILABLE)
                .with_cause(format_args!("WeChat call failed: {other}")),
        }
    }
}

impl IntoResponse for WxError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
