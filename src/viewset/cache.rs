//! Cached list pages, invalidated by table versions: what DRF never had, and what lets a list
//! answer without SQL.
//!
//! Every write through a viewset (create, update, destroy, extra actions, hooks) bumps its
//! table's version before the response leaves; a list page is cached under the version read
//! *before* its query ran. So a client never reads a page older than its own completed write,
//! and other clients see a write as soon as it is committed. Writes made outside viewsets (raw
//! SQL in a hook that changes another table, an admin script) call [`ListCache::touch`].
//!
//! With several instances, share the versions through Redis ([`ListCache::redis`]): each list
//! then costs one Redis `GET` instead of a COUNT and a page query.
//!
//! ```
//! # async fn run(db: wxrest::db::Db) {
//! use wxrest::viewset::ListCache;
//! # use serde::{Deserialize, Serialize};
//! # use wxrest::viewset::{Field, Model, ModelViewSet, Schema};
//! # #[derive(Serialize, Deserialize)] struct Goods { id: i64 }
//! # impl Model for Goods { fn schema() -> Schema { Schema::new("goods").field(Field::id()) } }
//! let cache = ListCache::memory(64 * 1024 * 1024); // 64 MiB of pages at most
//! let goods = ModelViewSet::<Goods>::new(db).cache(cache.clone()).routes_at("/goods");
//! // After changing goods with raw SQL elsewhere:
//! cache.touch("goods").await.ok();
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "redis")]
use redis::aio::ConnectionManager;

use crate::error::BackendError;

/// A shared cache of list pages with per-table versions. Cheap to clone.
#[derive(Clone)]
pub struct ListCache {
    inner: Arc<Inner>,
}

struct Inner {
    versions: Versions,
    pages: moka::sync::Cache<String, Bytes>,
}

enum Versions {
    Memory(RwLock<HashMap<String, u64>>),
    #[cfg(feature = "redis")]
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

/// The bytes a cached page is counted as besides its key and body (the cache's own entry).
const ENTRY_OVERHEAD: usize = 128;

/// How long a page may be served at most, whatever the versions say (a backstop if a version
/// bump was lost).
pub const PAGE_TTL: Duration = Duration::from_secs(30);

impl std::fmt::Debug for ListCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListCache")
            .field("pages", &self.inner.pages.entry_count())
            .field("bytes", &self.inner.pages.weighted_size())
            .finish()
    }
}

impl ListCache {
    /// Versions in this process: right for one instance. Pages are kept while their total
    /// size (keys, bodies and a fixed overhead each) stays within `max_bytes`; past it the
    /// least used are dropped.
    pub fn memory(max_bytes: u64) -> Self {
        Self::with_versions(Versions::Memory(RwLock::new(HashMap::new())), max_bytes)
    }

    /// Versions in Redis (`{prefix}tablever:{table}`), shared by every instance; connects
    /// lazily. If Redis fails, lists bypass the cache (they read the database). Pages are kept
    /// in this process within `max_bytes`, as with [`memory`](Self::memory).
    ///
    /// Needs feature `redis`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(url: &str, prefix: &str, max_bytes: u64) -> Result<Self, BackendError> {
        let conn = crate::redis_conn::lazy(url, Duration::from_secs(1))?;
        Ok(Self::with_versions(
            Versions::Redis {
                conn,
                prefix: prefix.to_owned(),
            },
            max_bytes,
        ))
    }

    fn with_versions(versions: Versions, max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                versions,
                pages: moka::sync::Cache::builder()
                    .max_capacity(max_bytes)
                    .weigher(|key: &String, page: &Bytes| {
                        u32::try_from(key.len() + page.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                    })
                    .time_to_live(PAGE_TTL)
                    .build(),
            }),
        }
    }

    /// The current version of `table`.
    pub async fn version(&self, table: &str) -> Result<u64, BackendError> {
        match &self.inner.versions {
            Versions::Memory(map) => Ok(map
                .read()
                .map(|m| m.get(table).copied().unwrap_or(0))
                .unwrap_or(0)),
            #[cfg(feature = "redis")]
            Versions::Redis { conn, prefix } => {
                let v: Option<u64> = redis::cmd("GET")
                    .arg(format!("{prefix}tablever:{table}"))
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(v.unwrap_or(0))
            }
        }
    }

    /// Marks `table` changed: every cached page of it is stale from now on.
    pub async fn touch(&self, table: &str) -> Result<(), BackendError> {
        match &self.inner.versions {
            Versions::Memory(map) => {
                if let Ok(mut m) = map.write() {
                    *m.entry(table.to_owned()).or_insert(0) += 1;
                }
                Ok(())
            }
            #[cfg(feature = "redis")]
            Versions::Redis { conn, prefix } => {
                let _: u64 = redis::cmd("INCR")
                    .arg(format!("{prefix}tablever:{table}"))
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
        }
    }

    /// The bytes the cached pages take now (keys, bodies and per-entry overhead), for
    /// monitoring.
    ///
    /// ```
    /// assert_eq!(wxrest::viewset::ListCache::memory(1 << 20).weighted_size(), 0);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.inner.pages.run_pending_tasks();
        self.inner.pages.weighted_size()
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        self.inner.pages.get(key)
    }

    pub(crate) fn put(&self, key: String, page: Bytes) {
        self.inner.pages.insert(key, page);
    }
}
