//! The access_token lifecycle: cached until 5 minutes before it expires, fetched by one caller
//! at a time (in this process, and across instances through an [`AccessTokenStore`] lock),
//! dropped and refetched once when WeChat says it is no longer valid.
//!
//! WeChat allows 2,000 access_token fetches a day per appid, so a failing store never turns
//! into one fetch per call: the client keeps its own copy of the token it fetched.
//!
//! ```no_run
//! use wxrest::wechat::{RedisTokenStore, WxClient, WxConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisTokenStore::open("redis://127.0.0.1:6379")?;
//! let client = WxClient::new(WxConfig::from_env()?)?.with_token_store(store);
//! let token = client.access_token().await?;
//! # let _ = token; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::WxError;
use crate::error::BackendError;

/// Seconds before `expires_at` at which a token is no longer handed out.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// How long the cross-instance refresh lock is held at most.
const LOCK_TTL: Duration = Duration::from_secs(10);
/// How long a caller that lost the lock waits for the winner's token before fetching itself.
const POLL_FOR: Duration = Duration::from_secs(3);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Bound on any single store operation, so a hung store cannot hang the API call.
const STORE_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// An access_token and when it expires.
///
/// `Debug` does not show the token.
///
/// ```
/// use wxrest::wechat::CachedToken;
///
/// let t = CachedToken::new("ACCESS_TOKEN", 1_700_007_200);
/// assert!(t.is_fresh(1_700_000_000));
/// assert!(!t.is_fresh(1_700_007_200 - 299));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    /// The access_token.
    pub token: String,
    /// When it expires, in unix seconds.
    pub expires_at: i64,
}

impl CachedToken {
    /// A token expiring at `expires_at` (unix seconds).
    pub fn new(token: impl Into<String>, expires_at: i64) -> Self {
        Self {
            token: token.into(),
            expires_at,
        }
    }

    /// A token expiring `expires_in` seconds from now (as WeChat's answers say).
    pub fn expiring_in(token: impl Into<String>, expires_in: i64) -> Self {
        Self::new(token, unix_now().saturating_add(expires_in))
    }

    /// Whether it may still be handed out at `now`: more than 5 minutes before expiry.
    pub fn is_fresh(&self, now: i64) -> bool {
        now.saturating_add(REFRESH_MARGIN_SECS) < self.expires_at
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Where access_tokens are shared between instances of the app, keyed by appid.
///
/// Implement it to keep tokens elsewhere; [`MemoryTokenStore`] and [`RedisTokenStore`] are
/// ready.
///
#[cfg_attr(not(feature = "redis"), doc = "[`RedisTokenStore`]: crate")]
///
/// ```
/// use std::sync::Arc;
/// use wxrest::wechat::{AccessTokenStore, MemoryTokenStore};
///
/// let store: Arc<dyn AccessTokenStore> = Arc::new(MemoryTokenStore::new());
/// # let _ = store;
/// ```
#[async_trait]
pub trait AccessTokenStore: Send + Sync + 'static {
    /// The token stored for `appid`, if any.
    async fn get(&self, appid: &str) -> Result<Option<CachedToken>, BackendError>;
    /// Stores `token` for `appid` (until it expires).
    async fn set(&self, appid: &str, token: &CachedToken) -> Result<(), BackendError>;
    /// Drops the token of `appid` only if it is still `token` (compare-and-delete), so a token
    /// another instance just stored survives.
    async fn invalidate(&self, appid: &str, token: &str) -> Result<(), BackendError>;
    /// Takes the refresh lock of `appid` for at most `ttl`; `false` if someone holds it.
    async fn try_lock(&self, appid: &str, ttl: Duration) -> Result<bool, BackendError>;
    /// Releases the refresh lock of `appid` taken through this store.
    async fn unlock(&self, appid: &str) -> Result<(), BackendError>;
}

/// A shared store (`Arc<dyn AccessTokenStore>` or `Arc<S>`) is a store too: hand clones of one
/// to several clients.
#[async_trait]
impl<S: AccessTokenStore + ?Sized> AccessTokenStore for Arc<S> {
    async fn get(&self, appid: &str) -> Result<Option<CachedToken>, BackendError> {
        (**self).get(appid).await
    }
    async fn set(&self, appid: &str, token: &CachedToken) -> Result<(), BackendError> {
        (**self).set(appid, token).await
    }
    async fn invalidate(&self, appid: &str, token: &str) -> Result<(), BackendError> {
        (**self).invalidate(appid, token).await
    }
    async fn try_lock(&self, appid: &str, ttl: Duration) -> Result<bool, BackendError> {
        (**self).try_lock(appid, ttl).await
    }
    async fn unlock(&self, appid: &str) -> Result<(), BackendError> {
        (**self).unlock(appid).await
    }
}

/// An in-process [`AccessTokenStore`]: shares tokens between clients of one process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use wxrest::wechat::{AccessTokenStore, CachedToken, MemoryTokenStore};
///
/// let store = MemoryTokenStore::new();
/// store.set("wx1", &CachedToken::expiring_in("T1", 7200)).await.unwrap();
/// store.invalidate("wx1", "OLD").await.unwrap(); // not the stored token: kept
/// assert!(store.get("wx1").await.unwrap().is_some());
/// store.invalidate("wx1", "T1").await.unwrap();
/// assert!(store.get("wx1").await.unwrap().is_none());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, CachedToken>>,
    locks: Mutex<HashMap<String, Instant>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> BackendError {
    BackendError::Other("token store lock poisoned".to_owned())
}

#[async_trait]
impl AccessTokenStore for MemoryTokenStore {
    async fn get(&self, appid: &str) -> Result<Option<CachedToken>, BackendError> {
        let tokens = self.tokens.lock().map_err(poisoned)?;
        Ok(tokens
            .get(appid)
            .filter(|t| t.expires_at > unix_now())
            .cloned())
    }

    async fn set(&self, appid: &str, token: &CachedToken) -> Result<(), BackendError> {
        let mut tokens = self.tokens.lock().map_err(poisoned)?;
        tokens.insert(appid.to_owned(), token.clone());
        Ok(())
    }

    async fn invalidate(&self, appid: &str, token: &str) -> Result<(), BackendError> {
        let mut tokens = self.tokens.lock().map_err(poisoned)?;
        if tokens.get(appid).is_some_and(|t| t.token == token) {
            tokens.remove(appid);
        }
        Ok(())
    }

    async fn try_lock(&self, appid: &str, ttl: Duration) -> Result<bool, BackendError> {
        let mut locks = self.locks.lock().map_err(poisoned)?;
        let now = Instant::now();
        match locks.get(appid) {
            Some(until) if *until > now => Ok(false),
            _ => {
                locks.insert(appid.to_owned(), now + ttl);
                Ok(true)
            }
        }
    }

    async fn unlock(&self, appid: &str) -> Result<(), BackendError> {
        self.locks.lock().map_err(poisoned)?.remove(appid);
        Ok(())
    }
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use crate::redis_conn::{Keyspace, keyspace_constructors};

    const COMPARE_AND_DELETE_TOKEN: &str = r"
    local v = redis.call('GET', KEYS[1])
    if v then
      local ok, t = pcall(cjson.decode, v)
      if ok and t['token'] == ARGV[1] then
        return redis.call('DEL', KEYS[1])
      end
    end
    return 0
    ";

    /// A Redis [`AccessTokenStore`] shared by every instance of the app.
    ///
    /// Keys (under a configurable prefix, default `wxrest:`): `wx:token:{appid}` (JSON
    /// `{"token","expires_at"}`, expiring with the token) and `wx:token-lock:{appid}`
    /// (`SET NX PX`, released only by its owner).
    ///
    /// ```no_run
    /// use wxrest::wechat::RedisTokenStore;
    /// let store = RedisTokenStore::open("redis://127.0.0.1:6379")?.prefix("shop:");
    /// # Ok::<(), wxrest::BackendError>(())
    /// ```
    #[derive(Clone, Debug)]
    pub struct RedisTokenStore {
        redis: Keyspace,
        owner: String,
        invalidate_script: Arc<redis::Script>,
    }

    impl RedisTokenStore {
        keyspace_constructors!(timeout: 1 s, prefix: "wxrest:");

        fn on(redis: Keyspace) -> Self {
            Self {
                redis,
                owner: uuid::Uuid::new_v4().to_string(),
                invalidate_script: Arc::new(redis::Script::new(COMPARE_AND_DELETE_TOKEN)),
            }
        }

        fn token_key(&self, appid: &str) -> String {
            self.redis.key(format_args!("wx:token:{appid}"))
        }

        fn lock_key(&self, appid: &str) -> String {
            self.redis.key(format_args!("wx:token-lock:{appid}"))
        }
    }

    #[async_trait]
    impl AccessTokenStore for RedisTokenStore {
        async fn get(&self, appid: &str) -> Result<Option<CachedToken>, BackendError> {
            let mut conn = self.redis.conn();
            let raw: Option<String> = redis::cmd("GET")
                .arg(self.token_key(appid))
                .query_async(&mut conn)
                .await?;
            Ok(
                raw.and_then(|raw| match serde_json::from_str::<CachedToken>(&raw) {
                    Ok(token) => Some(token),
                    Err(_) => {
                        tracing::warn!(appid, "ignoring unreadable access_token entry in Redis");
                        None
                    }
                }),
            )
        }

        async fn set(&self, appid: &str, token: &CachedToken) -> Result<(), BackendError> {
            let ttl_ms = token
                .expires_at
                .saturating_sub(unix_now())
                .saturating_mul(1000);
            if ttl_ms <= 0 {
                return Ok(());
            }
            let value =
                serde_json::to_string(token).map_err(|e| BackendError::Other(e.to_string()))?;
            let mut conn = self.redis.conn();
            let _: () = redis::cmd("SET")
                .arg(self.token_key(appid))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await?;
            Ok(())
        }

        async fn invalidate(&self, appid: &str, token: &str) -> Result<(), BackendError> {
            let mut conn = self.redis.conn();
            let _: i64 = self
                .invalidate_script
                .key(self.token_key(appid))
                .arg(token)
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        }

        async fn try_lock(&self, appid: &str, ttl: Duration) -> Result<bool, BackendError> {
            self.redis
                .try_lock(&self.lock_key(appid), &self.owner, ttl)
                .await
        }

        async fn unlock(&self, appid: &str) -> Result<(), BackendError> {
            self.redis.unlock(&self.lock_key(appid), &self.owner).await
        }
    }
}
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisTokenStore;

/// A boxed future yielding a token, as returned by fetchers and providers.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<CachedToken, WxError>> + Send>>;
/// An external token source set with [`WxClient::with_token_provider`](super::WxClient::with_token_provider).
pub(crate) type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// The per-client token cache: local copy, in-process single flight, optional shared store.
pub(crate) struct TokenManager {
    appid: String,
    store: Option<Arc<dyn AccessTokenStore>>,
    /// This process's copy of the token, and until when (unix secs) it is handed out.
    local: Mutex<Option<(CachedToken, i64)>>,
    refresh: tokio::sync::Mutex<()>,
    /// The last failed refresh, so callers queued behind it share its error instead of each
    /// asking WeChat again.
    last_failure: Mutex<Option<(Instant, WxError)>>,
}

impl TokenManager {
    pub(crate) fn new(appid: String, store: Option<Arc<dyn AccessTokenStore>>) -> Self {
        Self {
            appid,
            store,
            local: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
        }
    }

    pub(crate) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    pub(crate) fn store(&self) -> Option<Arc<dyn AccessTokenStore>> {
        self.store.clone()
    }

    fn local_fresh(&self) -> Option<String> {
        let now = unix_now();
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local
            .as_ref()
            .filter(|(_, fresh_until)| now < *fresh_until)
            .map(|(t, _)| t.token.clone())
    }

    /// Keeps `token` until 5 minutes before it expires, or for half its remaining life when it
    /// has less than 10 minutes left (stable_token can hand out such a token): never a fetch
    /// per call.
    fn keep_local(&self, token: &CachedToken) {
        let now = unix_now();
        let remaining = token.expires_at.saturating_sub(now);
        let fresh_until = if remaining > 2 * REFRESH_MARGIN_SECS {
            token.expires_at - REFRESH_MARGIN_SECS
        } else {
            now + remaining / 2
        };
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), fresh_until));
    }

    /// Runs a store operation with a deadline; `Err` is already logged.
    async fn store_op<T, F>(&self, what: &str, op: F) -> Result<T, ()>
    where
        F: Future<Output = Result<T, BackendError>>,
    {
        match tokio::time::timeout(STORE_OP_TIMEOUT, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                tracing::warn!(appid = %self.appid, error = %err, "access_token store {what} failed; using this process's copy");
                Err(())
            }
            Err(_) => {
                tracing::warn!(appid = %self.appid, "access_token store {what} timed out; using this process's copy");
                Err(())
            }
        }
    }

    /// The store's token if fresh; `Err` when the store failed.
    async fn read_store(
        &self,
        store: &Arc<dyn AccessTokenStore>,
    ) -> Result<Option<CachedToken>, ()> {
        let now = unix_now();
        let found = self.store_op("get", store.get(&self.appid)).await?;
        Ok(found.filter(|t| t.is_fresh(now)))
    }

    /// A valid access_token, fetching it with `fetch` when neither this process nor the store
    /// has a fresh one.
    pub(crate) async fn get<F>(&self, fetch: F) -> Result<String, WxError>
    where
        F: Fn() -> TokenFuture,
    {
        if let Some(token) = self.local_fresh() {
            return Ok(token);
        }
        let arrived = Instant::now();
        let _single_flight = self.refresh.lock().await;
        // Someone in this process may have refreshed while we waited...
        if let Some(token) = self.local_fresh() {
            return Ok(token);
        }
        // ...or failed to: share that failure rather than queueing one fetch per caller.
        {
            let failure = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, err)) = failure.as_ref()
                && *at >= arrived
            {
                return Err(err.clone());
            }
        }
        let result = self.refresh_locked(&fetch).await;
        if let Err(err) = &result {
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), err.clone()));
        }
        result
    }

    /// The refresh path, run by one caller of this process at a time.
    async fn refresh_locked<F>(&self, fetch: &F) -> Result<String, WxError>
    where
        F: Fn() -> TokenFuture,
    {
        let Some(store) = self.store.clone() else {
            return self.fetch_without_store(fetch).await;
        };
        match self.read_store(&store).await {
            Ok(Some(token)) => {
                self.keep_local(&token);
                return Ok(token.token);
            }
            Ok(None) => {}
            Err(()) => return self.fetch_without_store(fetch).await,
        }
        match self
            .store_op("lock", store.try_lock(&self.appid, LOCK_TTL))
            .await
        {
            Ok(true) => {
                let result = self.fetch_holding_lock(&store, fetch).await;
                let _ = self.store_op("unlock", store.unlock(&self.appid)).await;
                result
            }
            Ok(false) => {
                // Another instance is fetching: wait briefly for its token.
                let deadline = Instant::now() + POLL_FOR;
                while Instant::now() < deadline {
                    tokio::time::sleep(POLL_EVERY).await;
                    match self.read_store(&store).await {
                        Ok(Some(token)) => {
                            self.keep_local(&token);
                            return Ok(token.token);
                        }
                        Ok(None) => {}
                        Err(()) => break,
                    }
                }
                tracing::warn!(appid = %self.appid, "no access_token from the instance holding the lock; fetching");
                let token = fetch().await?;
                self.keep_local(&token);
                let _ = self.store_op("set", store.set(&self.appid, &token)).await;
                Ok(token.token)
            }
            Err(()) => self.fetch_without_store(fetch).await,
        }
    }

    async fn fetch_holding_lock<F>(
        &self,
        store: &Arc<dyn AccessTokenStore>,
        fetch: &F,
    ) -> Result<String, WxError>
    where
        F: Fn() -> TokenFuture,
    {
        // The previous lock holder may have stored a token between our read and our lock.
        if let Ok(Some(token)) = self.read_store(store).await {
            self.keep_local(&token);
            return Ok(token.token);
        }
        let token = fetch().await?;
        self.keep_local(&token);
        let _ = self.store_op("set", store.set(&self.appid, &token)).await;
        Ok(token.token)
    }

    async fn fetch_without_store<F>(&self, fetch: &F) -> Result<String, WxError>
    where
        F: Fn() -> TokenFuture,
    {
        let token = fetch().await?;
        self.keep_local(&token);
        Ok(token.token)
    }

    /// Drops `token` locally and in the store, unless it was already replaced.
    pub(crate) async fn invalidate(&self, token: &str) {
        {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if local.as_ref().is_some_and(|(t, _)| t.token == token) {
                *local = None;
            }
        }
        if let Some(store) = &self.store {
            let _ = self
                .store_op("invalidate", store.invalidate(&self.appid, token))
                .await;
        }
    }
}
