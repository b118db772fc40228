//! Payment and refund notifications: verified, decrypted and typed, as an axum extractor.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use axum::extract::{FromRef, FromRequest, Request};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::Value;

use super::NotifyError;
use super::client::WxPayClient;
use super::refund::RefundNotice;
use super::sign;
use super::transaction::Transaction;

/// The largest notification body accepted (real ones are about 1 KiB).
pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

/// The encryption of `resource`.
const AEAD_AES_256_GCM: &str = "AEAD_AES_256_GCM";

/// A verified, decrypted notification from WeChat Pay.
///
/// WeChat Pay POSTs a JSON envelope whose `resource` is encrypted with AEAD_AES_256_GCM under
/// the APIv3 key. [`PayNotification`] is an extractor: the handler runs only for a
/// notification whose signature verifies with WeChat Pay's public key (`Wechatpay-Serial` =
/// the configured public key id), whose `Wechatpay-Timestamp` is within 5 minutes, which is
/// not a `WECHATPAY/SIGNTEST/` probe, whose `resource` decrypts, and which is for the
/// configured merchant and appid. Anything else is answered by [`NotifyError`]:
/// `{"code": "FAIL", "message": ...}` with a 4xx status, so WeChat Pay delivers it again.
///
/// WeChat Pay delivers a notification until it is acknowledged (and an attacker may replay a
/// captured one within the 5 minutes): apply it idempotently, e.g. with a conditional update
/// keyed by `out_trade_no`. Answer 204 (or 200) once it is applied.
///
/// ```
/// use axum::{Router, extract::FromRef, http::StatusCode, routing::post};
/// use wxrest::pay::{PayNotification, WxPayClient};
///
/// #[derive(Clone, FromRef)]
/// struct AppState {
///     pay: WxPayClient,
/// }
///
/// async fn notify(notification: PayNotification) -> StatusCode {
///     if let Some(tx) = notification.transaction() {
///         // mark the order `tx.out_trade_no` paid if `tx.is_paid_for(total, openid)`
///         let _ = tx;
///     }
///     StatusCode::NO_CONTENT
/// }
///
/// fn routes(state: AppState) -> Router {
///     Router::new().route("/pay/wechat/notify/", post(notify)).with_state(state)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PayNotification {
    /// The notification id (the same on every delivery of it).
    pub id: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`, ...
    pub event_type: String,
    /// When it was created (RFC 3339).
    pub create_time: Option<String>,
    /// WeChat Pay's summary (e.g. `支付成功`).
    pub summary: Option<String>,
    /// The decrypted content.
    pub resource: NotifyResource,
}

/// What a notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyResource {
    /// A payment (`TRANSACTION.*`).
    Transaction(Transaction),
    /// A refund's outcome (`REFUND.*`).
    Refund(RefundNotice),
    /// Another kind, decrypted but not typed.
    Other {
        /// `resource.original_type`.
        original_type: String,
        /// The decrypted JSON.
        plaintext: Value,
    },
}

impl PayNotification {
    /// The payment, for `TRANSACTION.*` notifications.
    pub fn transaction(&self) -> Option<&Transaction> {
        match &self.resource {
            NotifyResource::Transaction(tx) => Some(tx),
            _ => None,
        }
    }

    /// The refund outcome, for `REFUND.*` notifications.
    pub fn refund(&self) -> Option<&RefundNotice> {
        match &self.resource {
            NotifyResource::Refund(refund) => Some(refund),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(default)]
    create_time: Option<String>,
    event_type: String,
    #[serde(default)]
    summary: Option<String>,
    resource: EncryptedResource,
}

#[derive(Deserialize)]
struct EncryptedResource {
    algorithm: String,
    ciphertext: String,
    #[serde(default)]
    associated_data: String,
    nonce: String,
    #[serde(default)]
    original_type: String,
}

impl WxPayClient {
    /// Verifies, decrypts and types a notification from its headers and raw body (what the
    /// [`PayNotification`] extractor does).
    ///
    /// # Errors
    /// [`NotifyError`]: missing headers, a stale timestamp, an unknown serial, a probe, a bad
    /// signature, a body too large or malformed, a `resource` that does not decrypt, or a
    /// notification for another merchant or appid.
    pub fn parse_notification(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<PayNotification, NotifyError> {
        if body.len() > MAX_NOTIFICATION_BYTES {
            return Err(NotifyError::TooLarge);
        }
        let config = self.config();
        let signature_type = headers
            .get("wechatpay-signature-type")
            .map(|v| v.to_str().unwrap_or_default());
        if signature_type.is_some_and(|t| t != sign::AUTH_SCHEME) {
            return Err(NotifyError::Malformed(
                "unsupported Wechatpay-Signature-Type".into(),
            ));
        }
        sign::verify_wechatpay(
            headers,
            body,
            &config.keys.wechatpay_public,
            &config.public_key_id,
            sign::unix_now(),
        )?;
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| NotifyError::Malformed(format!("not a notification: {e}")))?;
        let resource = &envelope.resource;
        if resource.algorithm != AEAD_AES_256_GCM {
            return Err(NotifyError::Malformed(format!(
                "unsupported algorithm {}",
                resource.algorithm.chars().take(32).collect::<String>()
            )));
        }
        let plaintext = decrypt_resource(
            config.apiv3_key(),
            &resource.nonce,
            &resource.associated_data,
            &resource.ciphertext,
        )?;
        let malformed = |e: serde_json::Error| NotifyError::Malformed(format!("resource: {e}"));
        let typed = if envelope.event_type.starts_with("TRANSACTION.")
            || resource.original_type == "transaction"
        {
            let tx: Transaction = serde_json::from_slice(&plaintext).map_err(malformed)?;
            if tx.mchid != config.mchid || tx.appid != config.appid {
                return Err(NotifyError::Malformed(
                    "the payment is for another merchant or appid".into(),
                ));
            }
            NotifyResource::Transaction(tx)
        } else if envelope.event_type.starts_with("REFUND.") || resource.original_type == "refund" {
            let refund: RefundNotice = serde_json::from_slice(&plaintext).map_err(malformed)?;
            if refund.mchid != config.mchid {
                return Err(NotifyError::Malformed(
                    "the refund is for another merchant".into(),
                ));
            }
            NotifyResource::Refund(refund)
        } else {
            NotifyResource::Other {
                original_type: resource.original_type.clone(),
                plaintext: serde_json::from_slice(&plaintext).map_err(malformed)?,
            }
        };
        Ok(PayNotification {
            id: envelope.id,
            event_type: envelope.event_type,
            create_time: envelope.create_time,
            summary: envelope.summary,
            resource: typed,
        })
    }
}

/// Decrypts a notification `resource` (AEAD_AES_256_GCM; the ciphertext carries its 16-byte
/// tag at the end).
pub(super) fn decrypt_resource(
    key: &[u8; 32],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, NotifyError> {
    let nonce: [u8; 12] = nonce
        .as_bytes()
        .try_into()
        .map_err(|_| NotifyError::Malformed("resource nonce must be 12 bytes".into()))?;
    let ciphertext = STANDARD
        .decode(ciphertext_b64)
        .map_err(|_| NotifyError::Malformed("resource ciphertext is not base64".into()))?;
    let cipher = Aes256Gcm::new(&(*key).into());
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &ciphertext,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| NotifyError::Decrypt)
}

/// Encrypts a notification `resource` as WeChat Pay does (used by the fake).
#[cfg(feature = "fake-pay")]
pub(super) fn encrypt_resource(
    key: &[u8; 32],
    nonce: &[u8; 12],
    associated_data: &str,
    plaintext: &[u8],
) -> String {
    let cipher = Aes256Gcm::new(&(*key).into());
    // Encryption into a Vec cannot fail for inputs this small.
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .unwrap_or_default();
    STANDARD.encode(ciphertext)
}

/// Extracts a verified notification; the state must give the [`WxPayClient`]
/// (`WxPayClient: FromRef<S>`). The body is read up to [`MAX_NOTIFICATION_BYTES`].
impl<S> FromRequest<S> for PayNotification
where
    S: Send + Sync,
    WxPayClient: FromRef<S>,
{
    type Rejection = NotifyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let client = WxPayClient::from_ref(state);
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_NOTIFICATION_BYTES as u64) {
            return Err(NotifyError::TooLarge);
        }
        let bytes = Limited::new(body, MAX_NOTIFICATION_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    NotifyError::TooLarge
                } else {
                    NotifyError::Body
                }
            })?
            .to_bytes();
        client.parse_notification(&parts.headers, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

    #[cfg(feature = "fake-pay")]
    #[test]
    fn resource_round_trips_and_any_change_fails_to_decrypt() {
        let ct = encrypt_resource(&KEY, b"nonce-123456", "transaction", b"{\"a\":1}");
        assert_eq!(
            decrypt_resource(&KEY, "nonce-123456", "transaction", &ct).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            decrypt_resource(&KEY, "nonce-123456", "refund", &ct),
            Err(NotifyError::Decrypt)
        );
        assert_eq!(
            decrypt_resource(&KEY, "nonce-654321", "transaction", &ct),
            Err(NotifyError::Decrypt)
        );
        let other_key = *b"fedcba9876543210fedcba9876543210";
        assert_eq!(
            decrypt_resource(&other_key, "nonce-123456", "transaction", &ct),
            Err(NotifyError::Decrypt)
        );
    }

    #[test]
    fn nonce_of_wrong_length_is_malformed_not_a_panic() {
        let err = decrypt_resource(&KEY, "short", "", "AAAA").unwrap_err();
        assert!(matches!(err, NotifyError::Malformed(_)));
    }
}
