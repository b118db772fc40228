//! WeChat mini-program server API: login codes, the access_token, phone numbers, and
//! `encryptedData`.
//! Needs feature `wechat` (and `fake-wechat` for `FakeWeChat`).
//!
//! - [`WxClient`] (one per appid): `code2session`, `phone_number`, `access_token`.
//! - [`WxLoginService`]: the login and phone endpoints, with a [`CodeCache`] so a retried code
//!   answers the same login.
//! - [`token`]: the access_token cache, single-flight and [`AccessTokenStore`]s.
//! - [`crypto`]: `encryptedData` decryption, watermark and signature checks.
//! - `FakeWeChat` (feature `fake-wechat`): an in-process fake for tests and local dev.
//!
//! Errors are [`WxError`]; `ApiError: From<WxError>` renders them for the mini-program.

pub mod client;
pub mod code_cache;
pub mod config;
pub mod crypto;
pub mod error;
#[cfg(feature = "fake-wechat")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake-wechat")))]
pub mod fake;
pub mod login;
pub mod token;

pub use client::{WECHAT_ERRORS_METRIC, WxClient, WxSession};
#[cfg(feature = "redis")]
pub use code_cache::RedisCodeCache;
pub use code_cache::{CodeCache, CodeEntry, MemoryCodeCache, code_digest};
pub use config::{AccessTokenMode, WxConfig};
pub use crypto::{PhoneInfo, Watermark};
pub use error::WxError;
#[cfg(feature = "fake-wechat")]
pub use fake::{FakeWeChat, FakeWeChatBuilder, Script};
pub use login::{LoginOutcome, PhoneSource, WxLoginService, WxUsers};
#[cfg(feature = "redis")]
pub use token::RedisTokenStore;
pub use token::{AccessTokenStore, CachedToken, MemoryTokenStore};
