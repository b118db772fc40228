//! [`WxConfig`]: which mini-program, where WeChat lives, and how patient to be with it.

use std::fmt;
use std::time::Duration;

use super::WxError;
use crate::upstream::upstream_settings;

/// The default WeChat API base URL.
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";

/// How the access_token is obtained from WeChat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessTokenMode {
    /// `POST /cgi-bin/stable_token` with `force_refresh: false`: fetching does not invalidate
    /// the token other servers already hold. WeChat's recommendation, and the default.
    #[default]
    Stable,
    /// `GET /cgi-bin/token`: the classic endpoint; every fetch issues a new token.
    Classic,
}

/// Configuration of one [`WxClient`](super::WxClient): one mini-program (appid).
///
/// The appsecret is never shown by `Debug`:
///
/// ```
/// use std::time::Duration;
/// use wxrest::wechat::{AccessTokenMode, WxConfig};
///
/// let config = WxConfig::new("wx1234567890abcdef", "the-app-secret")
///     .timeout(Duration::from_secs(3))
///     .token_mode(AccessTokenMode::Classic);
/// assert_eq!(config.api_base, "https://api.weixin.qq.com");
/// assert!(!format!("{config:?}").contains("the-app-secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WxConfig {
    /// The mini-program's appid.
    pub appid: String,
    secret: String,
    /// Base URL of the WeChat API, without a trailing slash (default [`DEFAULT_API_BASE`]).
    pub api_base: String,
    /// TCP/TLS connect timeout (default 3 s).
    pub connect_timeout: Duration,
    /// Overall deadline of one API call, retries included (default 5 s).
    pub timeout: Duration,
    /// How many times errcode -1 and connect errors are retried (default 2).
    pub max_retries: u32,
    /// How the access_token is fetched (default [`AccessTokenMode::Stable`]).
    pub token_mode: AccessTokenMode,
}

impl WxConfig {
    /// A configuration for `appid` with its appsecret and default settings.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            api_base: DEFAULT_API_BASE.to_owned(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            max_retries: 2,
            token_mode: AccessTokenMode::Stable,
        }
    }

    /// Reads `WX_APPID`, `WX_SECRET` and optionally `WX_API_BASE` from the environment.
    ///
    /// # Errors
    /// [`WxError::Config`] when `WX_APPID` or `WX_SECRET` is missing or empty.
    pub fn from_env() -> Result<Self, WxError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| WxError::Config(format!("environment variable {name} is not set")))
        };
        let mut config = Self::new(var("WX_APPID")?, var("WX_SECRET")?);
        if let Ok(base) = var("WX_API_BASE") {
            config = config.api_base(base);
        }
        Ok(config)
    }

    /// Sets the appsecret.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    upstream_settings!("`FakeWeChat`");

    /// Sets how the access_token is fetched.
    #[must_use]
    pub fn token_mode(mut self, mode: AccessTokenMode) -> Self {
        self.token_mode = mode;
        self
    }

    pub(crate) fn secret_str(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for WxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxConfig")
            .field("appid", &self.appid)
            .field("secret", &"[redacted]")
            .field("api_base", &self.api_base)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("token_mode", &self.token_mode)
            .finish()
    }
}
