//! [`CodeCache`]: what a `wx.login()` code resolved to, remembered for a few minutes so a
//! mini-program that sends the same code twice gets the same login instead of WeChat's 40163.
//!
//! Only `{openid, unionid, created}` is remembered: never a token, never the `session_key`.
//! Codes are remembered by their SHA-256 digest ([`code_digest`]), never in clear.
//!
//! [`MemoryCodeCache`] serves one process. [`RedisCodeCache`] lets several instances share the
//! window and adds a claim (`SET NX PX`) so that, across instances, exactly one of them asks
//! WeChat about a new code while the others wait for its answer.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wxrest::BackendError> {
//! use std::time::Duration;
//! use wxrest::wechat::{CodeCache, CodeEntry, MemoryCodeCache, code_digest};
//!
//! let cache = MemoryCodeCache::new();
//! let digest = code_digest("081abcDEF");
//! let entry = CodeEntry { openid: "o6_bmjr".into(), unionid: None, created: true };
//! cache.put("wx123", &digest, &entry, Duration::from_secs(300)).await?;
//! assert_eq!(cache.get("wx123", &digest).await?, Some(entry));
//! assert_eq!(cache.get("wx-other", &digest).await?, None);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::BackendError;

/// What a login code resolved to. Holds no secret: no token, no `session_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeEntry {
    /// The user's openid.
    pub openid: String,
    /// The user's unionid, if WeChat gave one.
    #[serde(default)]
    pub unionid: Option<String>,
    /// Whether the login that resolved the code created the user.
    #[serde(default)]
    pub created: bool,
}

/// The lowercase hex SHA-256 of a login code: the only form in which codes are stored.
///
/// ```
/// let digest = wxrest::wechat::code_digest("abc");
/// assert_eq!(digest.len(), 64);
/// assert!(!digest.contains("abc"));
/// ```
pub fn code_digest(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Storage for resolved login codes, keyed by appid and [`code_digest`].
///
/// `get` and `put` are required. The claim methods coordinate several instances; their
/// defaults (always granted, never held) suit a store used by one process only, where the
/// login service already makes concurrent requests for one code share one WeChat call.
#[async_trait]
pub trait CodeCache: Send + Sync + 'static {
    /// The entry remembered for this code, if any.
    async fn get(&self, appid: &str, digest: &str) -> Result<Option<CodeEntry>, BackendError>;

    /// Remembers `entry` for `ttl`.
    async fn put(
        &self,
        appid: &str,
        digest: &str,
        entry: &CodeEntry,
        ttl: Duration,
    ) -> Result<(), BackendError>;

    /// Tries to become the one caller that asks WeChat about this code, for at most `ttl`.
    /// `owner` identifies the claim for [`release`](Self::release).
    async fn claim(
        &self,
        appid: &str,
        digest: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let _ = (appid, digest, owner, ttl);
        Ok(true)
    }

    /// Whether someone holds the claim on this code.
    async fn is_claimed(&self, appid: &str, digest: &str) -> Result<bool, BackendError> {
        let _ = (appid, digest);
        Ok(false)
    }

    /// Gives up `owner`'s claim (and only `owner`'s).
    async fn release(&self, appid: &str, digest: &str, owner: &str) -> Result<(), BackendError> {
        let _ = (appid, digest, owner);
        Ok(())
    }
}

#[async_trait]
impl<C: CodeCache + ?Sized> CodeCache for Arc<C> {
    async fn get(&self, appid: &str, digest: &str) -> Result<Option<CodeEntry>, BackendError> {
        (**self).get(appid, digest).await
    }
    async fn put(
        &self,
        appid: &str,
        digest: &str,
        entry: &CodeEntry,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        (**self).put(appid, digest, entry, ttl).await
    }
    async fn claim(
        &self,
        appid: &str,
        digest: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        (**self).claim(appid, digest, owner, ttl).await
    }
    async fn is_claimed(&self, appid: &str, digest: &str) -> Result<bool, BackendError> {
        (**self).is_claimed(appid, digest).await
    }
    async fn release(&self, appid: &str, digest: &str, owner: &str) -> Result<(), BackendError> {
        (**self).release(appid, digest, owner).await
    }
}

struct PerEntryTtl;

impl Expiry<(String, String), (CodeEntry, Duration)> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        value: &(CodeEntry, Duration),
        _at: Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

/// An in-process [`CodeCache`] (the default): right for one instance.
#[derive(Clone)]
pub struct MemoryCodeCache {
    entries: moka::future::Cache<(String, String), (CodeEntry, Duration)>,
}

impl std::fmt::Debug for MemoryCodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCodeCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Default for MemoryCodeCache {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCodeCache {
    /// An empty cache holding at most 100 000 codes.
    pub fn new() -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

#[async_trait]
impl CodeCache for MemoryCodeCache {
    async fn get(&self, appid: &str, digest: &str) -> Result<Option<CodeEntry>, BackendError> {
        let key = (appid.to_owned(), digest.to_owned());
        Ok(self.entries.get(&key).await.map(|(entry, _)| entry))
    }

    async fn put(
        &self,
        appid: &str,
        digest: &str,
        entry: &CodeEntry,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let key = (appid.to_owned(), digest.to_owned());
        self.entries.insert(key, (entry.clone(), ttl)).await;
        Ok(())
    }
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use crate::redis_conn::{Keyspace, keyspace_constructors, millis};

    /// A [`CodeCache`] in Redis, shared by every instance.
    ///
    /// Keys (under a configurable prefix, default `wxrest:`): `wx:code:{appid}:{sha256 hex}` holds
    /// the JSON entry, `wx:code-lock:{appid}:{sha256 hex}` the claim; both expire by themselves.
    /// While Redis is down, logins fall back to asking WeChat directly; timeouts are short (1 s)
    /// because a login waits on them.
    ///
    /// ```no_run
    /// use wxrest::wechat::RedisCodeCache;
    /// let cache = RedisCodeCache::open("redis://127.0.0.1:6379")?.prefix("shop:");
    /// # Ok::<(), wxrest::BackendError>(())
    /// ```
    #[derive(Clone, Debug)]
    pub struct RedisCodeCache {
        redis: Keyspace,
    }

    impl RedisCodeCache {
        keyspace_constructors!(timeout: 1 s, prefix: "wxrest:");

        fn on(redis: Keyspace) -> Self {
            Self { redis }
        }

        fn key(&self, kind: &str, appid: &str, digest: &str) -> String {
            self.redis.key(format_args!("wx:{kind}:{appid}:{digest}"))
        }
    }

    #[async_trait]
    impl CodeCache for RedisCodeCache {
        async fn get(&self, appid: &str, digest: &str) -> Result<Option<CodeEntry>, BackendError> {
            let raw: Option<String> = redis::cmd("GET")
                .arg(self.key("code", appid, digest))
                .query_async(&mut self.redis.conn())
                .await?;
            raw.map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| BackendError::Other(format!("unreadable login code entry: {e}")))
            })
            .transpose()
        }

        async fn put(
            &self,
            appid: &str,
            digest: &str,
            entry: &CodeEntry,
            ttl: Duration,
        ) -> Result<(), BackendError> {
            let text = serde_json::to_string(entry)
                .map_err(|e| BackendError::Other(format!("cannot encode login code entry: {e}")))?;
            let _: Option<String> = redis::cmd("SET")
                .arg(self.key("code", appid, digest))
                .arg(text)
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut self.redis.conn())
                .await?;
            Ok(())
        }

        async fn claim(
            &self,
            appid: &str,
            digest: &str,
            owner: &str,
            ttl: Duration,
        ) -> Result<bool, BackendError> {
            self.redis
                .try_lock(&self.key("code-lock", appid, digest), owner, ttl)
                .await
        }

        async fn is_claimed(&self, appid: &str, digest: &str) -> Result<bool, BackendError> {
            let exists: bool = redis::cmd("EXISTS")
                .arg(self.key("code-lock", appid, digest))
                .query_async(&mut self.redis.conn())
                .await?;
            Ok(exists)
        }

        async fn release(
            &self,
            appid: &str,
            digest: &str,
            owner: &str,
        ) -> Result<(), BackendError> {
            self.redis
                .unlock(&self.key("code-lock", appid, digest), owner)
                .await
        }
    }
}
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisCodeCache;
