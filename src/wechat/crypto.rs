//! WeChat's `encryptedData`: AES-128-CBC with PKCS#7 padding, the user's `session_key` as key,
//! the `iv` sent along; the `watermark.appid` check; and the `rawData` signature.
//!
//! ```
//! use serde_json::json;
//! use wxrest::wechat::crypto;
//!
//! let key = "tiihtNczf5v6AKRyjwEUhQ==";
//! let iv = "r7BXXKkLb8qrSNn05n0qiA==";
//! let data = json!({"nickName": "Tea", "watermark": {"appid": "wx123", "timestamp": 1}});
//! let encrypted = crypto::encrypt(key, iv, &data)?;
//! assert_eq!(crypto::decrypt_for("wx123", key, &encrypted, iv)?, data);
//! assert_eq!(
//!     crypto::decrypt_for("wx-other", key, &encrypted, iv),
//!     Err(wxrest::wechat::WxError::WatermarkMismatch),
//! );
//! # Ok::<(), wxrest::wechat::WxError>(())
//! ```

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::WxError;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// A phone number as WeChat gives it (from `getuserphonenumber` or decrypted phone data).
///
/// ```
/// use serde_json::json;
/// use wxrest::wechat::crypto::PhoneInfo;
///
/// let info = PhoneInfo::from_value(json!({
///     "phoneNumber": "+86 13800138000", "purePhoneNumber": "13800138000", "countryCode": "86",
///     "watermark": {"appid": "wx123", "timestamp": 1700000000}
/// }))?;
/// assert_eq!(info.pure_phone_number, "13800138000");
/// # Ok::<(), wxrest::wechat::WxError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneInfo {
    /// The number with country code as the user sees it (e.g. `+86 13800138000` or `13800138000`).
    pub phone_number: String,
    /// The number without country code.
    pub pure_phone_number: String,
    /// The country code (e.g. `86`).
    #[serde(deserialize_with = "string_or_number")]
    pub country_code: String,
    /// Which app and when the number was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Watermark>,
}

/// The `watermark` WeChat puts in decrypted data and phone answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The appid the data was issued for.
    pub appid: String,
    /// Unix seconds when it was issued.
    #[serde(default)]
    pub timestamp: i64,
}

impl PhoneInfo {
    /// Reads a phone object (`{"phoneNumber", "purePhoneNumber", "countryCode", "watermark"}`).
    ///
    /// # Errors
    /// [`WxError::InvalidInput`] when the value does not have that shape.
    pub fn from_value(value: Value) -> Result<Self, WxError> {
        serde_json::from_value(value)
            .map_err(|e| WxError::InvalidInput(format!("not a phone number object: {e}")))
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    }
}

fn decode_b64(what: &str, input: &str) -> Result<Vec<u8>, WxError> {
    STANDARD
        .decode(input.trim())
        .map_err(|_| WxError::InvalidInput(format!("{what} is not valid base64")))
}

fn decode_16(what: &str, input: &str) -> Result<[u8; 16], WxError> {
    let bytes = decode_b64(what, input)?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| WxError::InvalidInput(format!("{what} must be 16 bytes")))
}

/// Decrypts `encryptedData` with the user's `session_key` and the `iv`, all base64, into JSON.
///
/// Does not check the watermark: use [`decrypt_for`] unless you call [`check_watermark`].
///
/// # Errors
/// [`WxError::InvalidInput`] for bad base64 or lengths; [`WxError::Decrypt`] when the padding
/// or the JSON is wrong, which means the `session_key` is not the one the data was encrypted
/// with (it is stale: the user must `wx.login()` again).
pub fn decrypt(
    session_key_b64: &str,
    encrypted_data_b64: &str,
    iv_b64: &str,
) -> Result<Value, WxError> {
    let key = decode_16("session_key", session_key_b64)?;
    let iv = decode_16("iv", iv_b64)?;
    let data = decode_b64("encryptedData", encrypted_data_b64)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(WxError::InvalidInput(
            "encryptedData length is not a multiple of 16 bytes".to_owned(),
        ));
    }
    let plain = Aes128CbcDec::new(&key.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(&data)
        .map_err(|_| WxError::Decrypt)?;
    // A wrong key gives valid padding about once in 256 tries: the JSON then fails.
    serde_json::from_slice(&plain).map_err(|_| WxError::Decrypt)
}

/// Checks that decrypted data carries `watermark.appid == appid`.
///
/// # Errors
/// [`WxError::WatermarkMismatch`] when the watermark is missing or for another app.
pub fn check_watermark(value: &Value, appid: &str) -> Result<(), WxError> {
    match value.pointer("/watermark/appid").and_then(Value::as_str) {
        Some(found) if found == appid => Ok(()),
        _ => Err(WxError::WatermarkMismatch),
    }
}

/// [`decrypt`] then [`check_watermark`] against `appid`.
///
/// # Errors
/// As [`decrypt`] and [`check_watermark`].
pub fn decrypt_for(
    appid: &str,
    session_key_b64: &str,
    encrypted_data_b64: &str,
    iv_b64: &str,
) -> Result<Value, WxError> {
    let value = decrypt(session_key_b64, encrypted_data_b64, iv_b64)?;
    check_watermark(&value, appid)?;
    Ok(value)
}

/// Decrypts phone-number `encryptedData` (the legacy `getPhoneNumber` flow) for `appid`.
///
/// # Errors
/// As [`decrypt_for`], and [`WxError::InvalidInput`] when the data is not a phone object.
pub fn decrypt_phone_for(
    appid: &str,
    session_key_b64: &str,
    encrypted_data_b64: &str,
    iv_b64: &str,
) -> Result<PhoneInfo, WxError> {
    PhoneInfo::from_value(decrypt_for(
        appid,
        session_key_b64,
        encrypted_data_b64,
        iv_b64,
    )?)
}

/// Encrypts `value` as WeChat would: JSON, PKCS#7, AES-128-CBC, base64. For tests and fakes.
///
/// # Errors
/// [`WxError::InvalidInput`] for a bad key or iv.
pub fn encrypt(session_key_b64: &str, iv_b64: &str, value: &Value) -> Result<String, WxError> {
    let key = decode_16("session_key", session_key_b64)?;
    let iv = decode_16("iv", iv_b64)?;
    let plain = serde_json::to_vec(value)
        .map_err(|e| WxError::InvalidInput(format!("value is not serialisable: {e}")))?;
    let cipher = Aes128CbcEnc::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(&plain);
    Ok(STANDARD.encode(cipher))
}

/// The `signature` WeChat sends with `rawData`: lowercase hex sha1(rawData + session_key).
pub fn signature(raw_data: &str, session_key: &str) -> String {
    let digest = Sha1::new()
        .chain_update(raw_data.as_bytes())
        .chain_update(session_key.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies `signature_hex == sha1(raw_data + session_key)`, comparing in constant time.
///
/// ```
/// use wxrest::wechat::crypto;
///
/// let sig = crypto::signature("{\"nickName\":\"Tea\"}", "key");
/// assert!(crypto::verify_signature("{\"nickName\":\"Tea\"}", "key", &sig).is_ok());
/// assert!(crypto::verify_signature("{\"nickName\":\"Tee\"}", "key", &sig).is_err());
/// ```
///
/// # Errors
/// [`WxError::SignatureMismatch`] when it does not match (or is not 40 hex digits).
pub fn verify_signature(
    raw_data: &str,
    session_key: &str,
    signature_hex: &str,
) -> Result<(), WxError> {
    let expected = signature(raw_data, session_key);
    let given = signature_hex.trim().to_ascii_lowercase();
    if given.len() != expected.len() {
        return Err(WxError::SignatureMismatch);
    }
    let diff = expected
        .bytes()
        .zip(given.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(WxError::SignatureMismatch)
    }
}
