//! [`WxPayConfig`]: which merchant, with which keys, paying for which mini-program, and where
//! WeChat Pay lives.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use spki::der::Decode;

use super::PayError;
use super::sign::{PublicKey, SigningKey};
use crate::upstream::upstream_settings;

/// The default WeChat Pay API base URL.
pub const DEFAULT_PAY_API_BASE: &str = "https://api.mch.weixin.qq.com";

/// The smallest RSA key accepted (WeChat Pay issues 2048-bit keys).
const MIN_RSA_BITS: usize = 2048;

/// Configuration of a [`WxPayClient`](super::WxPayClient): one merchant (mchid) taking
/// payments for one mini-program (appid), in public-key mode (answers and notifications are
/// verified with the WeChat Pay public key whose id is `PUB_KEY_ID_...`).
///
/// Built with [`WxPayConfig::builder`] (which parses and checks the keys) or
/// [`WxPayConfig::from_env`]. `Debug` never shows the merchant private key or the APIv3 key.
///
/// ```no_run
/// use wxrest::pay::WxPayConfig;
///
/// let config = WxPayConfig::builder()
///     .mchid("1900000109")
///     .merchant_serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
///     .merchant_key_pem(std::fs::read_to_string("apiclient_key.pem")?)
///     .apiv3_key(std::env::var("WXPAY_APIV3_KEY")?)
///     .wechatpay_public_key_pem(std::fs::read_to_string("pub_key.pem")?)
///     .public_key_id("PUB_KEY_ID_0114232134912410000000000000")
///     .appid("wx1234567890abcdef")
///     .notify_url("https://shop.example.com/pay/wechat/notify/")
///     .build()?;
/// assert!(!format!("{config:?}").contains("PRIVATE KEY"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WxPayConfig {
    /// The merchant id (`mchid`).
    pub mchid: String,
    /// The serial number of the merchant API certificate (`serial_no` in `Authorization`).
    pub merchant_serial: String,
    /// The id of WeChat Pay's public key (`PUB_KEY_ID_...`): answers and notifications must
    /// carry it as `Wechatpay-Serial`.
    pub public_key_id: String,
    /// The mini-program's appid the payments are for.
    pub appid: String,
    /// Where WeChat Pay sends payment notifications (an absolute http(s) URL without query).
    pub notify_url: String,
    /// Base URL of the WeChat Pay API, without a trailing slash (default
    /// [`DEFAULT_PAY_API_BASE`]).
    pub api_base: String,
    /// TCP/TLS connect timeout (default 3 s).
    pub connect_timeout: Duration,
    /// Overall deadline of one API call, retries included (default 10 s).
    pub timeout: Duration,
    /// How many times a call is retried after a connect error, or (for idempotent calls) a
    /// 5xx or `FREQUENCY_LIMITED` answer (default 2).
    pub max_retries: u32,
    pub(super) keys: Arc<Keys>,
}

/// The key material: never printed.
pub(super) struct Keys {
    pub(super) signing: SigningKey,
    pub(super) apiv3_key: [u8; 32],
    pub(super) wechatpay_public: PublicKey,
}

impl WxPayConfig {
    /// Starts a configuration; [`WxPayConfigBuilder::build`] checks it.
    pub fn builder() -> WxPayConfigBuilder {
        WxPayConfigBuilder::default()
    }

    /// Reads the merchant configuration from the environment: `WXPAY_MCHID`,
    /// `WXPAY_MCH_SERIAL`, `WXPAY_MCH_KEY_FILE` (PEM file), `WXPAY_APIV3_KEY`,
    /// `WXPAY_PUBLIC_KEY_FILE` (PEM file), `WXPAY_PUBLIC_KEY_ID`, `WXPAY_NOTIFY_URL`, the appid
    /// from `WXPAY_APPID` or else `WX_APPID`, and optionally `WXPAY_API_BASE`.
    ///
    /// `Ok(None)` when `WXPAY_MCHID` is not set: payment is not configured.
    ///
    /// # Errors
    /// [`PayError::Config`] naming the variable (or file) that is missing or invalid; never
    /// its content.
    pub fn from_env() -> Result<Option<Self>, PayError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub(super) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, PayError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let Some(mchid) = get("WXPAY_MCHID") else {
            return Ok(None);
        };
        let need = |name: &str| {
            get(name)
                .ok_or_else(|| PayError::Config(format!("environment variable {name} is not set")))
        };
        let file = |name: &str| {
            let path = need(name)?;
            std::fs::read_to_string(path.trim()).map_err(|e| {
                PayError::Config(format!(
                    "cannot read the file named by {name}: {}",
                    e.kind()
                ))
            })
        };
        let mut builder = Self::builder()
            .mchid(mchid.trim())
            .merchant_serial(need("WXPAY_MCH_SERIAL")?.trim())
            .merchant_key_pem(file("WXPAY_MCH_KEY_FILE")?)
            .apiv3_key(need("WXPAY_APIV3_KEY")?.trim())
            .wechatpay_public_key_pem(file("WXPAY_PUBLIC_KEY_FILE")?)
            .public_key_id(need("WXPAY_PUBLIC_KEY_ID")?.trim())
            .notify_url(need("WXPAY_NOTIFY_URL")?.trim());
        let appid = get("WXPAY_APPID")
            .or_else(|| get("WX_APPID"))
            .ok_or_else(|| {
                PayError::Config("environment variable WXPAY_APPID (or WX_APPID) is not set".into())
            })?;
        builder = builder.appid(appid.trim());
        if let Some(base) = get("WXPAY_API_BASE") {
            builder = builder.api_base(base.trim());
        }
        builder.build().map(Some)
    }

    /// Sets the notification URL (checked by [`WxPayClient::new`](super::WxPayClient::new)).
    #[must_use]
    pub fn notify_url(mut self, url: impl Into<String>) -> Self {
        self.notify_url = url.into();
        self
    }

    upstream_settings!("`FakeWeChatPay`");

    /// The APIv3 key (for decrypting notifications).
    pub(super) fn apiv3_key(&self) -> &[u8; 32] {
        &self.keys.apiv3_key
    }
}

impl fmt::Debug for WxPayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxPayConfig")
            .field("mchid", &self.mchid)
            .field("merchant_serial", &self.merchant_serial)
            .field("merchant_private_key", &"[redacted]")
            .field("apiv3_key", &"[redacted]")
            .field("public_key_id", &self.public_key_id)
            .field("appid", &self.appid)
            .field("notify_url", &self.notify_url)
            .field("api_base", &self.api_base)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// Collects a [`WxPayConfig`]; [`build`](WxPayConfigBuilder::build) parses the keys and checks
/// every value. `Debug` redacts the private key and the APIv3 key.
#[derive(Clone, Default)]
#[must_use]
pub struct WxPayConfigBuilder {
    mchid: String,
    merchant_serial: String,
    merchant_key_pem: String,
    apiv3_key: String,
    public_key_pem: String,
    public_key_id: String,
    appid: String,
    notify_url: String,
    api_base: Option<String>,
}

impl fmt::Debug for WxPayConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxPayConfigBuilder")
            .field("mchid", &self.mchid)
            .field("merchant_serial", &self.merchant_serial)
            .field("merchant_key_pem", &"[redacted]")
            .field("apiv3_key", &"[redacted]")
            .field("public_key_id", &self.public_key_id)
            .field("appid", &self.appid)
            .field("notify_url", &self.notify_url)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl WxPayConfigBuilder {
    /// The merchant id.
    pub fn mchid(mut self, mchid: impl Into<String>) -> Self {
        self.mchid = mchid.into();
        self
    }

    /// The serial number of the merchant API certificate.
    pub fn merchant_serial(mut self, serial: impl Into<String>) -> Self {
        self.merchant_serial = serial.into();
        self
    }

    /// The merchant API private key, PEM (`apiclient_key.pem`: PKCS#8, or PKCS#1).
    pub fn merchant_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.merchant_key_pem = pem.into();
        self
    }

    /// The APIv3 key: exactly 32 bytes.
    pub fn apiv3_key(mut self, key: impl Into<String>) -> Self {
        self.apiv3_key = key.into();
        self
    }

    /// WeChat Pay's public key, PEM (`pub_key.pem`: SPKI, or PKCS#1).
    pub fn wechatpay_public_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.public_key_pem = pem.into();
        self
    }

    /// The id of WeChat Pay's public key (`PUB_KEY_ID_...`).
    pub fn public_key_id(mut self, id: impl Into<String>) -> Self {
        self.public_key_id = id.into();
        self
    }

    /// The mini-program's appid.
    pub fn appid(mut self, appid: impl Into<String>) -> Self {
        self.appid = appid.into();
        self
    }

    /// Where WeChat Pay sends payment notifications.
    pub fn notify_url(mut self, url: impl Into<String>) -> Self {
        self.notify_url = url.into();
        self
    }

    /// The API base URL (default [`DEFAULT_PAY_API_BASE`]).
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = Some(base.into());
        self
    }

    /// Parses the keys and checks every value.
    ///
    /// # Errors
    /// [`PayError::Config`] saying which value is missing or invalid: an empty id, a key that
    /// is not a PEM RSA key of at least 2048 bits, an APIv3 key that is not exactly 32 bytes, a
    /// notify URL or API base that is not an absolute http(s) URL. Key material is never
    /// included.
    pub fn build(self) -> Result<WxPayConfig, PayError> {
        let required = |name: &str, value: &str| {
            if value.trim().is_empty() {
                Err(PayError::Config(format!("{name} is required")))
            } else if value.len() > 64 || value.chars().any(char::is_whitespace) {
                Err(PayError::Config(format!(
                    "{name} must be at most 64 characters without spaces"
                )))
            } else {
                Ok(())
            }
        };
        required("mchid", &self.mchid)?;
        required("merchant_serial", &self.merchant_serial)?;
        required("public_key_id", &self.public_key_id)?;
        required("appid", &self.appid)?;
        let private = parse_private_key(&self.merchant_key_pem)?;
        let public = parse_public_key(&self.public_key_pem)?;
        let apiv3_key: [u8; 32] = self.apiv3_key.as_bytes().try_into().map_err(|_| {
            PayError::Config(format!(
                "the APIv3 key must be exactly 32 bytes (got {})",
                self.apiv3_key.len()
            ))
        })?;
        check_notify_url(&self.notify_url)?;
        let api_base = self
            .api_base
            .unwrap_or_else(|| DEFAULT_PAY_API_BASE.to_owned())
            .trim_end_matches('/')
            .to_owned();
        check_http_url("api_base", &api_base)?;
        Ok(WxPayConfig {
            mchid: self.mchid,
            merchant_serial: self.merchant_serial,
            public_key_id: self.public_key_id,
            appid: self.appid,
            notify_url: self.notify_url,
            api_base,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_retries: 2,
            keys: Arc::new(Keys {
                signing: private,
                apiv3_key,
                wechatpay_public: public,
            }),
        })
    }
}

/// The merchant private key from PEM: PKCS#8 (`PRIVATE KEY`, what WeChat Pay issues) or
/// PKCS#1 (`RSA PRIVATE KEY`), RSA, 2048 to 4096 bits.
pub(super) fn parse_private_key(pem: &str) -> Result<SigningKey, PayError> {
    let pem = pem.trim();
    if pem.is_empty() {
        return Err(PayError::Config(
            "the merchant private key is required".into(),
        ));
    }
    let invalid = || {
        PayError::Config(
            "the merchant private key is not a PEM RSA private key (PKCS#8 or PKCS#1)".into(),
        )
    };
    let block = ::pem::parse(pem).map_err(|_| invalid())?;
    let key = match block.tag() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(block.contents()),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(block.contents()),
        _ => return Err(invalid()),
    };
    let key = key.map_err(|rejected| match rejected.to_string().as_str() {
        "TooSmall" => too_small("merchant private key"),
        "TooLarge" => PayError::Config("the merchant private key has more than 4096 bits".into()),
        _ => invalid(),
    })?;
    if key.public().modulus_len() * 8 < MIN_RSA_BITS {
        return Err(too_small("merchant private key"));
    }
    Ok(key)
}

/// WeChat Pay's public key from PEM: SPKI (`PUBLIC KEY`, `pub_key.pem`) or PKCS#1
/// (`RSA PUBLIC KEY`), RSA, 2048 to 8192 bits. ring verifies with the PKCS#1 form, which an
/// SPKI holds as its bit string.
fn parse_public_key(pem: &str) -> Result<PublicKey, PayError> {
    let pem = pem.trim();
    if pem.is_empty() {
        return Err(PayError::Config(
            "the WeChat Pay public key is required".into(),
        ));
    }
    let invalid = || {
        PayError::Config(
            "the WeChat Pay public key is not a PEM RSA public key (SPKI or PKCS#1)".into(),
        )
    };
    let block = ::pem::parse(pem).map_err(|_| invalid())?;
    let pkcs1_der = match block.tag() {
        "PUBLIC KEY" => {
            let spki =
                spki::SubjectPublicKeyInfoRef::from_der(block.contents()).map_err(|_| invalid())?;
            if spki.algorithm.oid != RSA_ENCRYPTION {
                return Err(invalid());
            }
            spki.subject_public_key
                .as_bytes()
                .ok_or_else(invalid)?
                .to_vec()
        }
        "RSA PUBLIC KEY" => block.contents().to_vec(),
        _ => return Err(invalid()),
    };
    let key = pkcs1::RsaPublicKey::from_der(&pkcs1_der).map_err(|_| invalid())?;
    let bits = key.modulus.as_bytes().len() * 8;
    if bits < MIN_RSA_BITS {
        return Err(too_small("WeChat Pay public key"));
    }
    if bits > 8192 {
        return Err(PayError::Config(
            "the WeChat Pay public key has more than 8192 bits".into(),
        ));
    }
    Ok(UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        pkcs1_der,
    ))
}

/// `rsaEncryption` (PKCS#1), the algorithm of an RSA SPKI.
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

fn too_small(what: &str) -> PayError {
    PayError::Config(format!("the {what} must have at least {MIN_RSA_BITS} bits"))
}

fn check_http_url(name: &str, value: &str) -> Result<reqwest::Url, PayError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| PayError::Config(format!("{name} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(PayError::Config(format!(
            "{name} must be an absolute http(s) URL"
        )));
    }
    Ok(url)
}

/// WeChat Pay requires an absolute URL without query parameters.
pub(super) fn check_notify_url(value: &str) -> Result<(), PayError> {
    let url = check_http_url("notify_url", value)?;
    if url.query().is_some() {
        return Err(PayError::Config(
            "notify_url must not carry query parameters (WeChat Pay refuses them)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_mchid_means_payment_is_not_configured() {
        assert!(matches!(WxPayConfig::from_vars(|_| None), Ok(None)));
    }

    #[test]
    fn missing_variable_is_named_in_the_error() {
        let err = WxPayConfig::from_vars(|name| (name == "WXPAY_MCHID").then(|| "190".to_owned()))
            .unwrap_err();
        assert_eq!(
            err,
            PayError::Config("environment variable WXPAY_MCH_SERIAL is not set".into())
        );
    }

    #[test]
    fn unreadable_key_file_names_the_variable_not_the_path_content() {
        let err = WxPayConfig::from_vars(|name| match name {
            "WXPAY_MCHID" | "WXPAY_MCH_SERIAL" => Some("x".to_owned()),
            "WXPAY_MCH_KEY_FILE" => Some("/nonexistent/wxrest/key.pem".to_owned()),
            _ => None,
        })
        .unwrap_err();
        let PayError::Config(message) = err else {
            panic!("expected a config error");
        };
        assert!(message.contains("WXPAY_MCH_KEY_FILE"), "{message}");
    }

    #[test]
    fn from_env_reads_the_key_files_and_falls_back_to_wx_appid() {
        let dir = std::env::temp_dir().join(format!("wxrest-pay-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("apiclient_key.pem");
        let pub_file = dir.join("pub_key.pem");
        std::fs::write(&key_file, TEST_KEY).unwrap();
        std::fs::write(&pub_file, TEST_PUBLIC_KEY).unwrap();
        let vars = |name: &str| -> Option<String> {
            let value = match name {
                "WXPAY_MCHID" => "1900000109",
                "WXPAY_MCH_SERIAL" => "SERIAL01",
                "WXPAY_MCH_KEY_FILE" => key_file.to_str()?,
                "WXPAY_APIV3_KEY" => "0123456789abcdef0123456789abcdef",
                "WXPAY_PUBLIC_KEY_FILE" => pub_file.to_str()?,
                "WXPAY_PUBLIC_KEY_ID" => "PUB_KEY_ID_01",
                "WXPAY_NOTIFY_URL" => "http://127.0.0.1:8000/pay/wechat/notify/",
                "WX_APPID" => "wx-from-login",
                "WXPAY_API_BASE" => "http://127.0.0.1:9/",
                _ => return None,
            };
            Some(value.to_owned())
        };
        let config = WxPayConfig::from_vars(vars).unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(config.mchid, "1900000109");
        assert_eq!(config.appid, "wx-from-login");
        assert_eq!(config.public_key_id, "PUB_KEY_ID_01");
        assert_eq!(config.api_base, "http://127.0.0.1:9");
        assert_eq!(config.apiv3_key(), b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn notify_url_with_query_is_refused() {
        assert!(check_notify_url("https://a.example/notify?x=1").is_err());
        assert!(check_notify_url("ftp://a.example/notify").is_err());
        assert!(check_notify_url("http://127.0.0.1:8000/pay/wechat/notify/").is_ok());
    }

    /// A development key pair (the fake WeChat Pay's merchant key), the public half as SPKI.
    const TEST_KEY: &str = include_str!("fake/dev_keys/merchant.pem");
    const TEST_PUBLIC_KEY: &str = include_str!("fake/dev_keys/merchant.pub.pem");

    #[test]
    fn spki_and_pkcs1_public_keys_verify_the_same_signature() {
        let signing = parse_private_key(TEST_KEY).unwrap();
        let message = b"17\nN\n{}\n";
        let signature = super::super::sign::sign(&signing, message).unwrap();
        let spki = parse_public_key(TEST_PUBLIC_KEY).unwrap();
        assert!(super::super::sign::verify(&spki, message, &signature));
        let pkcs1_pem = ::pem::encode(&::pem::Pem::new("RSA PUBLIC KEY", spki.as_ref().to_vec()));
        let pkcs1 = parse_public_key(&pkcs1_pem).unwrap();
        assert!(super::super::sign::verify(&pkcs1, message, &signature));
    }

    #[test]
    fn small_and_non_rsa_keys_are_refused_by_name() {
        // A 1024-bit RSA key and a P-256 key (openssl genpkey), PKCS#8 and SPKI.
        let small = parse_private_key(SMALL_KEY).err().unwrap().to_string();
        assert!(small.contains("at least 2048 bits"), "{small}");
        let small_public = parse_public_key(SMALL_PUBLIC_KEY)
            .err()
            .unwrap()
            .to_string();
        assert!(
            small_public.contains("at least 2048 bits"),
            "{small_public}"
        );
        let ec = parse_public_key(EC_PUBLIC_KEY).err().unwrap().to_string();
        assert!(ec.contains("not a PEM RSA public key"), "{ec}");
    }

    const SMALL_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKQkbdypgXpLFbtK
kJscamvdBouODGRR3jUbP7tG1DjXGxmlE3ZUuSoduHRFVgQSKLEBimzm7BJR4KWh
zy2xU/8I7leyr1V56gBMEDA78upmiECyG1h1tW5oGFwvzTEF0pRJgj71//O4H+UE
aoprJGe1KcnuBAM6u6BWjhiIoz5FAgMBAAECgYACCKGD1mXQShXe2DGqelOnOnnW
SNBGfe0u40OK4nnGqoOfcbgoAyy4JN4gMqu6KS9v4gEBEGtkXrdV1gdnHYdY4IKU
lgxhmqRy5jr5TmRmvULRqEvzUGa0al4OmQ03i8JyAo+XVQNOr0FX0itQ+JmxbYXw
QiIjVIgyEtHtjT7zkQJBANKXPehymi/P/bO2teVjFRQcKdHGLBQtFWLPQAcC6zAM
7mUAC45iqK0NfKqVVnwqE9LQMrOV5IUGasar1t3gmpcCQQDHiTLQPNdXU4ivuDSM
QAc9wOxHPBMMZ01VNyaHbgZ5FcyrQUnp71vj+DdSic8StZb3/PhPHPL9vTciK0g7
oFWDAkEAwt445zPFAaFRfk8AGneJNcap2/epKjJdq8Vj1hkZUKlmoAdeqi8ZLqlg
RulR0iuNlHIbuJpnj8DUZWr1tPL1mQJAFESibbaQZSVuD/NVGx3x3lr3ZTD7+lmP
6GUGu+D4NVp6hLbIDEQtAFYZQIAREaRyZlRC4L5fDFko/YaJ+syJgwJBALUvXhx8
8qEG83rprmoVpcWtrs5RGRHiF15wwI2o9dex8rhKgvxgLAk4i63JCUgJbv77mpOw
Q1XjvgWf5upj8rU=
-----END PRIVATE KEY-----";
    const SMALL_PUBLIC_KEY: &str = r"-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCkJG3cqYF6SxW7SpCbHGpr3QaL
jgxkUd41Gz+7RtQ41xsZpRN2VLkqHbh0RVYEEiixAYps5uwSUeCloc8tsVP/CO5X
sq9VeeoATBAwO/LqZohAshtYdbVuaBhcL80xBdKUSYI+9f/zuB/lBGqKayRntSnJ
7gQDOrugVo4YiKM+RQIDAQAB
-----END PUBLIC KEY-----";
    const EC_PUBLIC_KEY: &str = r"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7YrIPbRggvP3eYx+BMuIVrzW1v4K
axGoeLOP7jRYNng8N1TNVp94tSi9BOij1Ab54OyYgxy1vMvMYlY9S8DQMw==
-----END PUBLIC KEY-----";

    #[test]
    fn garbage_keys_are_refused_without_echoing_them() {
        let err =
            parse_private_key("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----")
                .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
        assert!(parse_public_key("not a key").is_err());
        assert!(parse_public_key("").is_err());
    }
}
