//! Signatures of WeChat Pay API v3: the merchant's `Authorization` header, the
//! `Wechatpay-Signature` of answers and notifications, and the `paySign` of
//! `wx.requestPayment`.
//!
//! All are RSA PKCS#1 v1.5 with SHA-256, base64-encoded, over newline-terminated lines:
//!
//! | what | signed with | message |
//! |---|---|---|
//! | request `Authorization` | merchant private key | `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n` |
//! | answer / notification | WeChat Pay private key | `TIMESTAMP\nNONCE\nBODY\n` |
//! | `paySign` | merchant private key | `appId\ntimeStamp\nnonceStr\npackage\n` |

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::{NotifyError, PayError};

/// An RSA private key that signs (ring: blinded, constant-time).
pub(super) type SigningKey = RsaKeyPair;

/// An RSA public key that verifies: the PKCS#1 `RSAPublicKey` DER ring takes.
pub(super) type PublicKey = UnparsedPublicKey<Vec<u8>>;

/// The public half of `key`, as a verifier.
#[cfg(any(test, feature = "fake-pay"))]
pub(super) fn public_key_of(key: &SigningKey) -> PublicKey {
    use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256};
    UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        key.public_key().as_ref().to_vec(),
    )
}

/// The `Authorization` scheme (and `Wechatpay-Signature-Type`) of API v3 with RSA keys.
pub(super) const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// Prefix of the deliberately wrong signatures WeChat Pay sends to check merchants verify.
pub(super) const PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// How far (seconds) a `Wechatpay-Timestamp` may be from now.
pub(super) const MAX_CLOCK_SKEW_SECS: i64 = 300;

pub(super) const H_TIMESTAMP: &str = "wechatpay-timestamp";
pub(super) const H_NONCE: &str = "wechatpay-nonce";
pub(super) const H_SIGNATURE: &str = "wechatpay-signature";
pub(super) const H_SERIAL: &str = "wechatpay-serial";

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// 32 random alphanumeric characters.
pub(super) fn nonce() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

/// Base64 RSA-SHA256 (PKCS#1 v1.5) signature of `message`.
pub(super) fn sign(key: &SigningKey, message: &[u8]) -> Result<String, PayError> {
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(|_| PayError::Sign)?;
    Ok(STANDARD.encode(signature))
}

/// Whether `signature_b64` is a valid RSA-SHA256 (PKCS#1 v1.5) signature of `message` by
/// `key`. A signature longer than the largest key ring accepts (8192 bits) is refused before
/// decoding.
pub(super) fn verify(key: &PublicKey, message: &[u8], signature_b64: &str) -> bool {
    let signature_b64 = signature_b64.trim();
    if signature_b64.len() > 8192 / 6 + 4 {
        return false;
    }
    let Ok(bytes) = STANDARD.decode(signature_b64) else {
        return false;
    };
    key.verify(message, &bytes).is_ok()
}

/// `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
pub(super) fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut message = format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// `TIMESTAMP\nNONCE\nBODY\n`.
pub(super) fn wechatpay_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// The merchant's `Authorization` header value for one request.
pub(super) fn authorization(
    mchid: &str,
    serial_no: &str,
    key: &SigningKey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<String, PayError> {
    let timestamp = unix_now();
    let nonce = nonce();
    let signature = sign(
        key,
        &request_message(method, path_and_query, timestamp, &nonce, body),
    )?;
    Ok(format!(
        r#"{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp}",serial_no="{serial_no}",signature="{signature}""#
    ))
}

/// Verifies the `Wechatpay-*` headers of an answer or a notification over its raw `body`:
/// all four headers present, the serial is `key_id`, the timestamp within
/// [`MAX_CLOCK_SKEW_SECS`] of `now`, not a probe, and the signature valid.
pub(super) fn verify_wechatpay(
    headers: &HeaderMap,
    body: &[u8],
    key: &PublicKey,
    key_id: &str,
    now: i64,
) -> Result<(), NotifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(NotifyError::MissingHeader(name))
    };
    let timestamp = header(H_TIMESTAMP)?;
    let nonce = header(H_NONCE)?;
    let signature = header(H_SIGNATURE)?;
    let serial = header(H_SERIAL)?;
    if signature.starts_with(PROBE_PREFIX) {
        return Err(NotifyError::SignatureProbe);
    }
    if serial != key_id {
        return Err(NotifyError::UnknownSerial);
    }
    let at: i64 = timestamp.parse().map_err(|_| NotifyError::Timestamp)?;
    if now.abs_diff(at) >= MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(NotifyError::Timestamp);
    }
    if !verify(key, &wechatpay_message(timestamp, nonce, body), signature) {
        return Err(NotifyError::BadSignature);
    }
    Ok(())
}

/// The object `wx.requestPayment` takes, signed with the merchant key. Serialises with the
/// mini-program's field names: `appId`, `timeStamp` (unix seconds, a string), `nonceStr`,
/// `package` (`prepay_id=...`), `signType` (`RSA`), `paySign`.
///
/// ```
/// use wxrest::pay::RequestPayment;
///
/// let json = r#"{"appId":"wx1","timeStamp":"1700000000","nonceStr":"N","package":"prepay_id=wx2","signType":"RSA","paySign":"c2ln"}"#;
/// let params: RequestPayment = serde_json::from_str(json)?;
/// assert_eq!(params.prepay_id(), Some("wx2"));
/// assert_eq!(params.signed_message(), "wx1\n1700000000\nN\nprepay_id=wx2\n");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RequestPayment {
    /// The mini-program's appid.
    pub app_id: String,
    /// Unix seconds, as a string.
    pub time_stamp: String,
    /// A random string.
    pub nonce_str: String,
    /// `prepay_id=<prepay_id>`.
    pub package: String,
    /// Always `RSA`.
    pub sign_type: String,
    /// RSA-SHA256 over `appId\ntimeStamp\nnonceStr\npackage\n` with the merchant key, base64.
    pub pay_sign: String,
}

impl RequestPayment {
    /// Signs the parameters for `prepay_id` now.
    pub(super) fn sign(appid: &str, prepay_id: &str, key: &SigningKey) -> Result<Self, PayError> {
        let mut params = Self {
            app_id: appid.to_owned(),
            time_stamp: unix_now().to_string(),
            nonce_str: nonce(),
            package: format!("prepay_id={prepay_id}"),
            sign_type: "RSA".to_owned(),
            pay_sign: String::new(),
        };
        params.pay_sign = sign(key, params.signed_message().as_bytes())?;
        Ok(params)
    }

    /// The prepay_id inside `package`.
    pub fn prepay_id(&self) -> Option<&str> {
        self.package.strip_prefix("prepay_id=")
    }

    /// The message `paySign` signs: `appId\ntimeStamp\nnonceStr\npackage\n`.
    pub fn signed_message(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n",
            self.app_id, self.time_stamp, self.nonce_str, self.package
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_message_ends_every_line_with_a_newline_even_with_an_empty_body() {
        assert_eq!(
            request_message("GET", "/v3/x?mchid=1", 17, "N", b""),
            b"GET\n/v3/x?mchid=1\n17\nN\n\n"
        );
        assert_eq!(wechatpay_message("17", "N", b"{}"), b"17\nN\n{}\n");
    }

    #[test]
    fn nonce_is_32_alphanumeric_characters() {
        let n = nonce();
        assert_eq!(n.len(), 32);
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(n, nonce());
    }

    #[test]
    fn missing_headers_are_named_before_any_crypto() {
        let key = test_key();
        let err = verify_wechatpay(&HeaderMap::new(), b"", &key, "id", 0).unwrap_err();
        assert_eq!(err, NotifyError::MissingHeader(H_TIMESTAMP));
    }

    #[test]
    fn probe_and_unknown_serial_are_refused() {
        let key = test_key();
        let mut headers = HeaderMap::new();
        headers.insert(H_TIMESTAMP, "100".parse().unwrap());
        headers.insert(H_NONCE, "n".parse().unwrap());
        headers.insert(H_SERIAL, "other".parse().unwrap());
        headers.insert(H_SIGNATURE, "WECHATPAY/SIGNTEST/abc".parse().unwrap());
        let probe = verify_wechatpay(&headers, b"", &key, "id", 100).unwrap_err();
        assert_eq!(probe, NotifyError::SignatureProbe);
        headers.insert(H_SIGNATURE, "c2ln".parse().unwrap());
        let serial = verify_wechatpay(&headers, b"", &key, "id", 100).unwrap_err();
        assert_eq!(serial, NotifyError::UnknownSerial);
        headers.insert(H_SERIAL, "id".parse().unwrap());
        let stale = verify_wechatpay(&headers, b"", &key, "id", 100 + 300).unwrap_err();
        assert_eq!(stale, NotifyError::Timestamp);
        let bad = verify_wechatpay(&headers, b"", &key, "id", 100).unwrap_err();
        assert_eq!(bad, NotifyError::BadSignature);
    }

    #[test]
    fn authorization_header_has_the_documented_shape_and_verifies() {
        let signing = crate::pay::config::parse_private_key(TEST_KEY).unwrap();
        let public = public_key_of(&signing);
        let body = br#"{"mchid":"1900000109"}"#;
        let path = "/v3/pay/transactions/out-trade-no/mall-1/close";
        let header = authorization("1900000109", "SERIAL01", &signing, "POST", path, body).unwrap();
        let params = header.strip_prefix("WECHATPAY2-SHA256-RSA2048 ").unwrap();
        let fields: Vec<(&str, &str)> = params
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k, v.strip_prefix('"').unwrap().strip_suffix('"').unwrap())
            })
            .collect();
        let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            ["mchid", "nonce_str", "timestamp", "serial_no", "signature"]
        );
        assert_eq!(fields[0].1, "1900000109");
        assert_eq!(fields[3].1, "SERIAL01");
        let timestamp: i64 = fields[2].1.parse().unwrap();
        assert!((unix_now() - timestamp).abs() < 5);
        let message = request_message("POST", path, timestamp, fields[1].1, body);
        assert!(verify(&public, &message, fields[4].1));
        let other = request_message("POST", path, timestamp, fields[1].1, b"{}");
        assert!(!verify(&public, &other, fields[4].1));
    }

    /// A development key (the fake WeChat Pay's merchant key): signs and verifies.
    const TEST_KEY: &str = include_str!("fake/dev_keys/merchant.pem");

    fn test_key() -> PublicKey {
        public_key_of(&crate::pay::config::parse_private_key(TEST_KEY).unwrap())
    }

    #[test]
    fn ring_signature_matches_an_independent_pkcs1_v15_sha256_signature() {
        // `openssl dgst -sha256 -sign merchant.pem` of "17\nN\n{}\n": PKCS#1 v1.5 is
        // deterministic, so ours must be byte-identical.
        let key = crate::pay::config::parse_private_key(TEST_KEY).unwrap();
        let ours = sign(&key, &wechatpay_message("17", "N", b"{}")).unwrap();
        assert_eq!(ours, OPENSSL_SIGNATURE);
        assert!(verify(
            &test_key(),
            &wechatpay_message("17", "N", b"{}"),
            &ours
        ));
        assert!(!verify(
            &test_key(),
            &wechatpay_message("18", "N", b"{}"),
            &ours
        ));
    }

    const OPENSSL_SIGNATURE: &str = include_str!("fake/dev_keys/signature-17-N.b64");
}
