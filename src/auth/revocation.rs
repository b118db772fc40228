//! What ends tokens before their `exp`: revoked token ids (logout), consumed refresh tokens and
//! revoked refresh families (rotation with reuse detection), and the per-user token version
//! ("log out everywhere", deactivation).
//!
//! The database holds the truth about token versions ([`UserLookup`](super::UserLookup));
//! a [`RevocationStore`] holds revocations and a cache of versions. [`MemoryRevocationStore`]
//! serves one process; [`RedisRevocationStore`] lets every instance see a logout at once.
//! Entries expire with the tokens they concern, so both stores prune themselves.
//!
//! ```
//! # tokio_test_block_on(async {
//! use wxrest::auth::{MemoryRevocationStore, RevocationStore};
//!
//! let store = MemoryRevocationStore::new();
//! let exp = 4_070_908_800;
//! assert!(store.consume_refresh("jti-1", exp).await.unwrap());   // first use wins
//! assert!(!store.consume_refresh("jti-1", exp).await.unwrap());  // a reuse
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use redis::aio::ConnectionManager;

use super::jwt::now;
use crate::error::BackendError;

/// How long a cached token version is trusted before the database is asked again.
pub const VERSION_CACHE_TTL: Duration = Duration::from_secs(10 * 60);

/// The revocation facts one authenticated request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessState {
    /// The token id was revoked (logout).
    pub revoked: bool,
    /// The cached token version of the user; `None` when not cached.
    pub token_version: Option<i64>,
}

/// Storage for revocations and the token-version cache. Implement it for another backend; the
/// crate ships memory and Redis.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Is `jti` revoked, and what is the cached token version of `user_id`? One round trip.
    async fn access_state(
        &self,
        jti: Option<&str>,
        user_id: i64,
    ) -> Result<AccessState, BackendError>;

    /// Revokes `jti` until `expires_at` (unix seconds, the token's `exp`).
    async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), BackendError>;

    /// Marks the refresh token `jti` consumed. Atomic: of concurrent callers exactly one gets
    /// `true`; every later call gets `false` (a reuse).
    async fn consume_refresh(&self, jti: &str, expires_at: i64) -> Result<bool, BackendError>;

    /// Revokes every refresh token of `family` until `expires_at`.
    async fn revoke_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError>;

    /// Is `family` revoked?
    async fn is_family_revoked(&self, family: &str) -> Result<bool, BackendError>;

    /// Caches `version` for `user_id` unless a value is cached already (fills a miss without
    /// overwriting a concurrent explicit [`set_token_version`](Self::set_token_version)).
    async fn fill_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError>;

    /// Sets the cached version (after the database was bumped).
    async fn set_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError>;

    /// Drops the cached version, so the next request reads the database.
    async fn forget_token_version(&self, user_id: i64) -> Result<(), BackendError>;

    /// A counter this process sees change on every revocation or version change, when the
    /// store lives in this process (`None` for shared stores). While it stays the same, an
    /// access check that passed still passes, so [`TokenService`](super::TokenService) can
    /// skip repeating it.
    fn local_epoch(&self) -> Option<u64> {
        None
    }
}

struct UntilExpiry;

impl<K> Expiry<K, i64> for UntilExpiry {
    fn expire_after_create(&self, _key: &K, expires_at: &i64, _at: Instant) -> Option<Duration> {
        Some(Duration::from_secs((*expires_at - now()).max(0) as u64))
    }
}

/// An in-process store: right for one instance; use [`RedisRevocationStore`] for several.
#[derive(Clone)]
pub struct MemoryRevocationStore {
    revoked: moka::sync::Cache<String, i64>,
    consumed: moka::sync::Cache<String, i64>,
    families: moka::sync::Cache<String, i64>,
    versions: moka::sync::Cache<i64, i64>,
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRevocationStore {
    /// An empty store.
    pub fn new() -> Self {
        let expiring = || {
            moka::sync::Cache::builder()
                .expire_after(UntilExpiry)
                .build()
        };
        Self {
            revoked: expiring(),
            consumed: expiring(),
            families: expiring(),
            versions: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(VERSION_CACHE_TTL)
                .build(),
            epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl RevocationStore for MemoryRevocationStore {
    async fn access_state(
        &self,
        jti: Option<&str>,
        user_id: i64,
    ) -> Result<AccessState, BackendError> {
        Ok(AccessState {
            revoked: jti.is_some_and(|j| self.revoked.contains_key(j)),
            token_version: self.versions.get(&user_id),
        })
    }

    async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), BackendError> {
        if expires_at > now() {
            self.revoked.insert(jti.to_owned(), expires_at);
            self.changed();
        }
        Ok(())
    }

    async fn consume_refresh(&self, jti: &str, expires_at: i64) -> Result<bool, BackendError> {
        let entry = self
            .consumed
            .entry(jti.to_owned())
            .or_insert_with(|| expires_at.max(now() + 1));
        Ok(entry.is_fresh())
    }

    async fn revoke_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError> {
        self.families
            .insert(family.to_owned(), expires_at.max(now() + 1));
        Ok(())
    }

    async fn is_family_revoked(&self, family: &str) -> Result<bool, BackendError> {
        Ok(self.families.contains_key(family))
    }

    async fn fill_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        self.versions.entry(user_id).or_insert(version);
        Ok(())
    }

    async fn set_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        self.versions.insert(user_id, version);
        self.changed();
        Ok(())
    }

    async fn forget_token_version(&self, user_id: i64) -> Result<(), BackendError> {
        self.versions.invalidate(&user_id);
        self.changed();
        Ok(())
    }

    fn local_epoch(&self) -> Option<u64> {
        Some(self.epoch.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// A Redis store shared by every instance: a logout on one is honoured by all at once.
///
/// Keys (under a configurable prefix, default `wxrest:`): `jti:{id}`, `rt:{id}`, `fam:{id}`
/// expire with their tokens; `tv:{user}` expires after [`VERSION_CACHE_TTL`].
///
/// When Redis is unreachable the store returns [`BackendError::Redis`] and authentication
/// fails closed (503), so a logged-out token is never accepted by mistake.
#[derive(Clone)]
pub struct RedisRevocationStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl RedisRevocationStore {
    /// Connects lazily to `url` (`redis://host:port/db`): start-up does not fail while Redis is
    /// down, requests do (503) until it is back.
    pub fn open(url: &str) -> Result<Self, BackendError> {
        let conn = crate::redis_conn::lazy(url, Duration::from_secs(2))?;
        Ok(Self::new(conn))
    }

    /// A store on an existing connection manager.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            prefix: Arc::from("wxrest:"),
        }
    }

    /// Uses `prefix` for every key (to share one Redis database between applications).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    fn key(&self, kind: &str, id: impl std::fmt::Display) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    async fn set_until(
        &self,
        key: String,
        expires_at: i64,
        nx: bool,
    ) -> Result<bool, BackendError> {
        let ttl = (expires_at - now()).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(1).arg("EX").arg(ttl);
        if nx {
            cmd.arg("NX");
        }
        let reply: Option<String> = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(reply.is_some())
    }
}

#[async_trait]
impl RevocationStore for RedisRevocationStore {
    async fn access_state(
        &self,
        jti: Option<&str>,
        user_id: i64,
    ) -> Result<AccessState, BackendError> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.key("tv", user_id));
        if let Some(jti) = jti {
            pipe.cmd("EXISTS").arg(self.key("jti", jti));
        }
        let mut conn = self.conn.clone();
        if jti.is_some() {
            let (version, revoked): (Option<i64>, bool) = pipe.query_async(&mut conn).await?;
            Ok(AccessState {
                revoked,
                token_version: version,
            })
        } else {
            let (version,): (Option<i64>,) = pipe.query_async(&mut conn).await?;
            Ok(AccessState {
                revoked: false,
                token_version: version,
            })
        }
    }

    async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), BackendError> {
        if expires_at > now() {
            self.set_until(self.key("jti", jti), expires_at, false)
                .await?;
        }
        Ok(())
    }

    async fn consume_refresh(&self, jti: &str, expires_at: i64) -> Result<bool, BackendError> {
        self.set_until(self.key("rt", jti), expires_at, true).await
    }

    async fn revoke_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError> {
        self.set_until(self.key("fam", family), expires_at, false)
            .await
            .map(|_| ())
    }

    async fn is_family_revoked(&self, family: &str) -> Result<bool, BackendError> {
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.key("fam", family))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(exists)
    }

    async fn fill_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key("tv", user_id))
            .arg(version)
            .arg("EX")
            .arg(VERSION_CACHE_TTL.as_secs())
            .arg("NX")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn set_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key("tv", user_id))
            .arg(version)
            .arg("EX")
            .arg(VERSION_CACHE_TTL.as_secs())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn forget_token_version(&self, user_id: i64) -> Result<(), BackendError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.key("tv", user_id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
