//! WeChat mini-program server API: login codes, the access_token, phone numbers, and
//! `encryptedData`.
//! Needs feature `wechat` (and `fake-wechat` for `FakeWeChat`).
//!
//! - [`WxClient`] (one per appid): `code2session`, `phone_number`, `access_token`.
//! - [`WxLoginService`]: the login and phone endpoints, with a [`CodeCache`] so a retried code
//!   answers the same login.
//! - The access_token: cached, single-flight, shared through an [`AccessTokenStore`].
//! - [`crypto`]: `encryptedData` decryption, watermark and signature checks.
//! - `FakeWeChat` (feature `fake-wechat`): an in-process fake for tests and local dev.
//!
//! Errors are [`WxError`]; `ApiError: From<WxError>` renders them for the mini-program.

mod client;
mod code_cache;
mod config;
pub mod crypto;
mod error;
#[cfg(feature = "fake-wechat")]
mod fake;
mod login;
mod token;

pub use client::{WECHAT_ERRORS_METRIC, WxClient};
#[cfg(feature = "redis")]
pub use code_cache::RedisCodeCache;
pub use code_cache::{CodeCache, CodeEntry, MemoryCodeCache, code_digest};
pub use config::{AccessTokenMode, DEFAULT_API_BASE, WxConfig};
pub use error::WxError;
#[cfg(feature = "fake-wechat")]
pub use fake::{FakeWeChat, FakeWeChatBuilder, Script};
pub use login::{LoginOutcome, PhoneSource, WxLoginService, WxUsers};
#[cfg(feature = "redis")]
pub use token::RedisTokenStore;
pub use token::{AccessTokenStore, CachedToken, MemoryTokenStore, REFRESH_MARGIN_SECS};
