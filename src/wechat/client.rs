//! [`WxClient`]: one mini-program's client for WeChat's server API.
//!
//! ```
//! # #[cfg(not(feature = "fake-wechat"))] fn main() {}
//! # #[cfg(feature = "fake-wechat")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wxrest::wechat::WxError> {
//! use wxrest::wechat::{FakeWeChat, Script, WxClient};
//!
//! let fake = FakeWeChat::start().await;
//! fake.script_code("code-1", Script::session("openid-1"));
//! let client = WxClient::new(fake.config())?;
//! let session = client.code2session("code-1").await?;
//! assert_eq!(session.openid, "openid-1");
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WxError;
use super::config::{AccessTokenMode, WxConfig};
use super::crypto::PhoneInfo;
use super::error::redact;
use super::token::{AccessTokenStore, CachedToken, TokenFuture, TokenManager, TokenProvider};
use crate::user::WxSession;

/// errcodes meaning "this access_token is not (or no longer) valid".
const TOKEN_INVALID: [i64; 3] = [40001, 42001, 40014];

/// A client for one appid: login codes, phone numbers, and the access_token they need.
///
/// Cheap to clone (an `Arc` inside). Clients for different appids share nothing.
#[derive(Clone)]
pub struct WxClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: WxConfig,
    http: reqwest::Client,
    tokens: TokenManager,
    provider: Option<TokenProvider>,
}

impl fmt::Debug for WxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxClient")
            .field("config", &self.inner.config)
            .field("token_store", &self.inner.tokens.has_store())
            .field("token_provider", &self.inner.provider.is_some())
            .finish()
    }
}

/// One HTTP call to WeChat.
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: Vec<(&'a str, String)>,
    body: Option<&'a Value>,
}

impl WxClient {
    /// A client for the mini-program described by `config`.
    ///
    /// # Errors
    /// [`WxError::Config`] when the base URL is invalid or the HTTP client cannot be built.
    pub fn new(config: WxConfig) -> Result<Self, WxError> {
        Url::parse(&config.api_base)
            .map_err(|e| WxError::Config(format!("invalid WeChat api_base: {e}")))?;
        let http = crate::upstream::http_client_builder()
            .map_err(WxError::Config)?
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| {
                WxError::Config(redact(&e.without_url().to_string(), &[config.secret_str()]))
            })?;
        let tokens = TokenManager::new(config.appid.clone(), None);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                tokens,
                provider: None,
            }),
        })
    }

    fn rebuild(
        &self,
        store: Option<Arc<dyn AccessTokenStore>>,
        provider: Option<TokenProvider>,
    ) -> Self {
        let config = self.inner.config.clone();
        Self {
            inner: Arc::new(Inner {
                tokens: TokenManager::new(config.appid.clone(), store),
                http: self.inner.http.clone(),
                config,
                provider,
            }),
        }
    }

    /// Shares access_tokens through `store` (e.g. a [`RedisTokenStore`] when several instances
    /// run; pass an `Arc` of a store to share it between clients). Call it right after
    /// [`WxClient::new`]: it starts a fresh token cache.
    ///
    #[cfg_attr(feature = "redis", doc = "[`RedisTokenStore`]: super::RedisTokenStore")]
    #[cfg_attr(not(feature = "redis"), doc = "[`RedisTokenStore`]: crate")]
    #[must_use]
    pub fn with_token_store(self, store: impl AccessTokenStore) -> Self {
        let provider = self.inner.provider.clone();
        self.rebuild(Some(Arc::new(store)), provider)
    }

    /// Takes access_tokens from an external token service instead of fetching them from
    /// WeChat. The provider is called when no fresh token is cached, and again after WeChat
    /// answers that the token is invalid.
    ///
    /// ```
    /// use wxrest::wechat::{CachedToken, WxClient, WxConfig};
    ///
    /// let client = WxClient::new(WxConfig::new("wx123", "secret"))?
    ///     .with_token_provider(|| async { Ok(CachedToken::expiring_in("TOKEN", 7200)) });
    /// # let _ = client; Ok::<(), wxrest::wechat::WxError>(())
    /// ```
    #[must_use]
    pub fn with_token_provider<F, Fut>(self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<CachedToken, WxError>> + Send + 'static,
    {
        let provider: TokenProvider = Arc::new(move || Box::pin(provider()) as TokenFuture);
        let store = self.inner.tokens.store();
        self.rebuild(store, Some(provider))
    }

    /// The configuration (its `Debug` redacts the secret).
    pub fn config(&self) -> &WxConfig {
        &self.inner.config
    }

    /// The appid this client serves.
    pub fn appid(&self) -> &str {
        &self.inner.config.appid
    }

    /// Exchanges a `wx.login()` code for the user's openid and session_key
    /// (`GET /sns/jscode2session`).
    ///
    /// # Errors
    /// [`WxError::InvalidCode`], [`WxError::CodeUsed`], [`WxError::RateLimited`],
    /// [`WxError::HighRisk`], [`WxError::Busy`], [`WxError::InvalidCredential`],
    /// [`WxError::Timeout`], [`WxError::Transport`], [`WxError::Malformed`], [`WxError::Api`].
    pub async fn code2session(&self, code: &str) -> Result<WxSession, WxError> {
        if code.trim().is_empty() {
            return Err(WxError::InvalidCode);
        }
        let config = &self.inner.config;
        let value = self
            .send(Call {
                method: Method::GET,
                path: "/sns/jscode2session",
                query: vec![
                    ("appid", config.appid.clone()),
                    ("secret", config.secret_str().to_owned()),
                    ("js_code", code.to_owned()),
                    ("grant_type", "authorization_code".to_owned()),
                ],
                body: None,
            })
            .await
            .map_err(classify)?;
        serde_json::from_value(value)
            .map_err(|e| failed(WxError::Malformed(format!("jscode2session answer: {e}"))))
    }

    /// A valid access_token for this appid: cached, single-flight, shared through the store.
    ///
    /// # Errors
    /// The errors of fetching it ([`WxError::InvalidCredential`] for a wrong appid/secret,
    /// [`WxError::Busy`], [`WxError::Timeout`], ...).
    pub async fn access_token(&self) -> Result<String, WxError> {
        self.inner.tokens.get(|| self.fetch_token()).await
    }

    /// The user's phone number from a `getPhoneNumber` button code
    /// (`POST /wxa/business/getuserphonenumber`).
    ///
    /// # Errors
    /// [`WxError::InvalidCode`] for an unknown or expired code, and the errors of
    /// [`WxClient::access_token`] and [`WxClient::code2session`].
    pub async fn phone_number(&self, code: &str) -> Result<PhoneInfo, WxError> {
        if code.trim().is_empty() {
            return Err(WxError::InvalidCode);
        }
        let body = json!({ "code": code });
        let value = self
            .call_with_token(
                Method::POST,
                "/wxa/business/getuserphonenumber",
                Some(&body),
            )
            .await?;
        let info = value.get("phone_info").cloned().ok_or_else(|| {
            failed(WxError::Malformed(
                "getuserphonenumber answer has no phone_info".to_owned(),
            ))
        })?;
        serde_json::from_value(info).map_err(|e| {
            failed(WxError::Malformed(format!(
                "getuserphonenumber phone_info: {e}"
            )))
        })
    }

    /// Decrypts `encryptedData` with a user's session_key and checks it is for this appid.
    ///
    /// # Errors
    /// As [`crypto::decrypt_for`](super::crypto::decrypt_for).
    pub fn decrypt(
        &self,
        session_key_b64: &str,
        encrypted_data_b64: &str,
        iv_b64: &str,
    ) -> Result<Value, WxError> {
        super::crypto::decrypt_for(self.appid(), session_key_b64, encrypted_data_b64, iv_b64)
    }

    /// Calls an API taking `?access_token=`. On 40001/42001/40014 drops the token, gets a new
    /// one and retries once.
    async fn call_with_token(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WxError> {
        let token = self.access_token().await?;
        let first = self
            .send_with_token(method.clone(), path, body, &token)
            .await;
        match first {
            Err(WxError::Api { errcode, .. }) if TOKEN_INVALID.contains(&errcode) => {
                tracing::info!(appid = %self.appid(), errcode, "access_token rejected; refetching once");
                self.inner.tokens.invalidate(&token).await;
                let token = self.access_token().await?;
                self.send_with_token(method, path, body, &token)
                    .await
                    .map_err(classify)
            }
            other => other.map_err(classify),
        }
    }

    async fn send_with_token(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Result<Value, WxError> {
        self.send_redacting(
            Call {
                method,
                path,
                query: vec![("access_token", token.to_owned())],
                body,
            },
            token,
        )
        .await
    }

    fn fetch_token(&self) -> TokenFuture {
        if let Some(provider) = &self.inner.provider {
            return provider();
        }
        let client = self.clone();
        Box::pin(async move { client.fetch_token_from_wechat().await })
    }

    async fn fetch_token_from_wechat(&self) -> Result<CachedToken, WxError> {
        let config = &self.inner.config;
        let body;
        let call = match config.token_mode {
            AccessTokenMode::Stable => {
                body = json!({
                    "grant_type": "client_credential",
                    "appid": config.appid,
                    "secret": config.secret_str(),
                    "force_refresh": false,
                });
                Call {
                    method: Method::POST,
                    path: "/cgi-bin/stable_token",
                    query: Vec::new(),
                    body: Some(&body),
                }
            }
            AccessTokenMode::Classic => Call {
                method: Method::GET,
                path: "/cgi-bin/token",
                query: vec![
                    ("grant_type", "client_credential".to_owned()),
                    ("appid", config.appid.clone()),
                    ("secret", config.secret_str().to_owned()),
                ],
                body: None,
            },
        };
        let value = self.send(call).await.map_err(classify)?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            expires_in: i64,
        }
        let answer: TokenAnswer = serde_json::from_value(value)
            .map_err(|e| failed(WxError::Malformed(format!("access_token answer: {e}"))))?;
        tracing::info!(appid = %config.appid, expires_in = answer.expires_in, "fetched WeChat access_token");
        Ok(CachedToken::expiring_in(
            answer.access_token,
            answer.expires_in,
        ))
    }

    async fn send(&self, call: Call<'_>) -> Result<Value, WxError> {
        self.send_redacting(call, "").await
    }

    /// Sends `call` with bounded retries on errcode -1 and connect errors, within the
    /// configured overall deadline. API errors come back as [`WxError::Api`] (unclassified)
    /// except -1, which becomes [`WxError::Busy`] when retries run out.
    async fn send_redacting(&self, call: Call<'_>, extra_secret: &str) -> Result<Value, WxError> {
        let config = &self.inner.config;
        let secrets = [config.secret_str(), extra_secret];
        let mut url = Url::parse(&format!("{}{}", config.api_base, call.path))
            .map_err(|e| WxError::Config(format!("invalid WeChat URL: {e}")))?;
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let deadline = Instant::now() + config.timeout;
        let mut attempt: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(WxError::Timeout);
            }
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .timeout(remaining);
            if let Some(body) = call.body {
                request = request.json(body);
            }
            let outcome = match request.send().await {
                Ok(response) => read_answer(response, &secrets).await,
                Err(err) => {
                    let connect = err.is_connect() && !err.is_timeout();
                    Err((connect, WxError::from_reqwest(err, &secrets)))
                }
            };
            let retryable = match &outcome {
                Ok(_) => false,
                Err((_, WxError::Api { errcode: -1, .. })) => true,
                Err((connect, _)) => *connect,
            };
            let backoff = Duration::from_millis(50 * 3u64.pow(attempt.min(6)));
            let fits = Instant::now() + backoff < deadline;
            if !retryable || attempt >= config.max_retries || !fits {
                return match outcome {
                    Ok(value) => Ok(value),
                    Err((_, WxError::Api { errcode: -1, .. })) => Err(WxError::Busy),
                    Err((_, err)) => Err(err),
                };
            }
            tracing::debug!(appid = %config.appid, path = call.path, attempt, "retrying WeChat call");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

/// Reads an answer: JSON whatever the Content-Type; `errcode` absent or 0 is success.
/// The bool in the error says whether it was a connect-level failure (never, here).
async fn read_answer(
    response: reqwest::Response,
    secrets: &[&str],
) -> Result<Value, (bool, WxError)> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| (false, WxError::from_reqwest(e, secrets)))?;
    let parsed = serde_json::from_slice::<Value>(&bytes);
    if !status.is_success() {
        // Some gateways answer errors with a JSON errcode; prefer it when present.
        if let Ok(value) = &parsed
            && let Some(err) = api_error(value, secrets)
        {
            return Err((false, err));
        }
        return Err((
            false,
            WxError::Transport(format!("WeChat answered HTTP {}", status.as_u16())),
        ));
    }
    let value = parsed.map_err(|e| {
        (
            false,
            WxError::Malformed(format!("answer is not JSON ({} bytes): {e}", bytes.len())),
        )
    })?;
    match api_error(&value, secrets) {
        Some(err) => Err((false, err)),
        None => Ok(value),
    }
}

/// `Some(WxError::Api)` when `value` carries a non-zero errcode.
fn api_error(value: &Value, secrets: &[&str]) -> Option<WxError> {
    let errcode = value.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if errcode == 0 {
        return None;
    }
    let errmsg = redact(
        value
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        secrets,
    );
    Some(WxError::Api { errcode, errmsg })
}

/// The counter of failed WeChat calls, labelled `kind` ([`WxError::kind`]).
pub const WECHAT_ERRORS_METRIC: &str = "wxrest_wechat_errors_total";

/// Turns a raw [`WxError::Api`] into its typed variant, and counts it: every failed call
/// passes here once.
fn classify(err: WxError) -> WxError {
    let typed = match err {
        WxError::Api { errcode, errmsg } => {
            let typed = WxError::from_errcode(errcode, &errmsg);
            if typed == WxError::InvalidCredential {
                tracing::warn!(errcode, %errmsg, "WeChat refused the app credentials or access_token");
            }
            typed
        }
        other => other,
    };
    failed(typed)
}

/// Counts a failed WeChat call in [`WECHAT_ERRORS_METRIC`] (free when no `metrics` recorder
/// is installed).
fn failed(err: WxError) -> WxError {
    metrics::counter!(WECHAT_ERRORS_METRIC, "kind" => err.kind()).increment(1);
    err
}
