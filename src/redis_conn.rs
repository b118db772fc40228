//! What every Redis-backed store of the crate shares: one way to connect (lazily: start-up
//! never waits for Redis, requests fail fast while it is down; short timeouts, one reconnect
//! attempt), its keys under a configurable prefix, and the owner-checked locks two stores use.
//!
//! Each store offers the same constructors on top: `open(url)` (lazy, fails only for a bad
//! URL), `new(conn)` on an existing `ConnectionManager`, and `.prefix(p)`.

use std::fmt::Display;
use std::sync::Arc;
#[cfg(feature = "wechat")]
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::BackendError;

/// Releases a lock only when it is still the caller's (compare-and-delete).
#[cfg(feature = "wechat")]
static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
    if redis.call('GET', KEYS[1]) == ARGV[1] then
      return redis.call('DEL', KEYS[1])
    end
    return 0
    ",
    )
});

/// A connection manager to `url` that connects on first use, with `timeout` for connecting
/// and for each response.
pub(crate) fn lazy(url: &str, timeout: Duration) -> Result<ConnectionManager, BackendError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

/// A store's connection and key prefix. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Keyspace {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Keyspace {
    /// Connects to `url` on first use, with `timeout` for connecting and for each response;
    /// keys start with `prefix`.
    pub(crate) fn open(url: &str, timeout: Duration, prefix: &str) -> Result<Self, BackendError> {
        Ok(Self::new(lazy(url, timeout)?, prefix))
    }

    /// On an existing connection manager.
    pub(crate) fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: Arc::from(prefix),
        }
    }

    /// Replaces the key prefix.
    pub(crate) fn set_prefix(&mut self, prefix: String) {
        self.prefix = Arc::from(prefix);
    }

    /// `{prefix}{rest}`.
    pub(crate) fn key(&self, rest: impl Display) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// A connection handle for one command (clones share the multiplexed connection).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Takes the lock `key` for `owner` for at most `ttl`; `false` when someone holds it.
    #[cfg(feature = "wechat")]
    pub(crate) async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn())
            .await?;
        Ok(reply.is_some())
    }

    /// Releases the lock `key` if `owner` still holds it.
    #[cfg(feature = "wechat")]
    pub(crate) async fn unlock(&self, key: &str, owner: &str) -> Result<(), BackendError> {
        let _: i64 = UNLOCK
            .key(key)
            .arg(owner)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

/// `ttl` in whole milliseconds, at least 1 (Redis refuses a zero expiry).
#[cfg(any(feature = "wechat", feature = "throttle"))]
pub(crate) fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The constructors every Redis-backed store offers, written once: `open(url)`, `new(conn)`
/// and `.prefix(p)`. The store keeps its [`Keyspace`] in a field `redis` and builds itself
/// from one with `fn on(redis: Keyspace) -> Self`.
macro_rules! keyspace_constructors {
    (timeout: $secs:literal s, prefix: $prefix:literal) => {
        #[doc = concat!(
            "Connects to `url` (`redis://host:port/db`) on first use, with ", stringify!($secs),
            " s timeouts, and reconnects after failures: start-up does not wait for Redis.\n\n",
            "# Errors\n[`BackendError::Redis`](crate::BackendError::Redis) when the URL is invalid."
        )]
        pub fn open(url: &str) -> Result<Self, crate::BackendError> {
            let timeout = std::time::Duration::from_secs($secs);
            Ok(Self::on(crate::redis_conn::Keyspace::open(url, timeout, $prefix)?))
        }

        /// A store on an existing connection manager.
        pub fn new(conn: redis::aio::ConnectionManager) -> Self {
            Self::on(crate::redis_conn::Keyspace::new(conn, $prefix))
        }

        #[doc = concat!(
            "Uses `prefix` for every key instead of `", $prefix, "` (to share one Redis ",
            "database between applications, or between deployments of one)."
        )]
        #[must_use]
        pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
            self.redis.set_prefix(prefix.into());
            self
        }
    };
}
pub(crate) use keyspace_constructors;
