//! The list cache; its design is documented on [`ListCache`].

mod versions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use versions::Versions;
pub(crate) use versions::{Change, Stamp};
pub use versions::{MAX_ROW_VERSIONS, VERSION_TTL};

use super::Visible;
use super::pagination::Head;
use crate::error::BackendError;

/// Cached list pages that survive writes which do not concern them: what DRF never had, and
/// what lets a busy list answer without SQL while orders change stock.
///
/// A cached list is two kinds of entries, after Rails' per-record fragment caching and
/// Facebook's TAO (association lists and objects cached apart), invalidated by what changed
/// as django-cacheops does:
///
/// - a **page**: the ids on it, the count and the links, keyed by the viewset, which rows the
///   caller sees, the path and the recognised query parameters in their canonical spelling,
///   and the largest version among what its membership and order depend on: the table's
///   *membership* version (inserts, deletes, [`touch`](ListCache::touch)) and the version of
///   each column its filters, search fields, ordering (the default one too), cursor field and
///   scope field read;
/// - a **row body**: one row's rendered JSON, keyed by the viewset, the id and the row's version
///   (its own, or the table's all-rows version if newer). A page answer is its head, the
///   bodies joined by `,` and its tail, as bytes; bodies missing from the cache are read in
///   one `WHERE id IN (...)`. The page keeps its rows' last assembled bytes with the row
///   versions they were made at, and answers with them while they have not moved.
///
/// What a key holds, and why (everything an answer depends on, nothing a client can spell
/// twice):
///
/// - **The viewset**, not the table: each [`ModelViewSet::cache`](super::ModelViewSet::cache)
///   takes its own part of the cache. Two viewsets over one table (an admin model with
///   `cost_price`, a public one without) render different bodies from one row, page
///   differently, scope by different columns or complete rows with
///   [`with_related`](super::ModelViewSet::with_related); they share the versions (the data)
///   but never a page or a body. (Bodies of a viewset with `with_related` are not kept at all:
///   they read other tables.) A body depends only on its row: rendering sees no caller.
/// - **Which rows the caller sees**, in three states: nothing (an anonymous caller of a scoped
///   viewset), everything (no scope, staff under `owner_field_staff_sees_all`, a `scope_by`
///   answering `None`), or one owner's. The list's query is built from the same answer.
/// - **The path and the canonical parameters**: only the parameters the list reads, each as
///   parsed (`page=02` is `page=2`, `on_sale=True` is `on_sale=true`, `__in` lists and
///   search terms sorted without repeats, unknown orderings and defaults dropped), so junk
///   parameters and respellings make no entries; links carry the same spelling.
/// - **Not the origin**: a page's links are kept relative (`/goods/?page=2`) and each answer
///   puts its own request's scheme and host in front. A `Host` or `X-Forwarded-Proto` header
///   (or an HTTP/2 authority) can neither make an entry nor reach another caller's links.
///
/// Writes say what they changed. A viewset's own update changes the columns it validated
/// (and its automatic timestamps) of one row; create and destroy change membership. A hook
/// that writes with raw SQL declares it: [`WriteContext::changed`](super::WriteContext::changed)
/// / [`ListCache::changed`] for "these columns of these rows", [`touch`](ListCache::touch) for
/// "anything in this table". So an order decrementing `stock` leaves every page whose
/// filters and order do not read `stock` cached, and only the ordered goods' bodies are read
/// again.
///
/// Correctness: a page's versions are read *before* its query, and every write bumps its
/// versions before its response leaves, so no client reads a page older than its own completed
/// write, and a racing write is never hidden (the entry lands under the old versions). A row
/// body read by a page's query is kept only if its row has not been bumped since the versions
/// were read. Versions come from one monotonic clock (see [`MAX_ROW_VERSIONS`] and
/// [`VERSION_TTL`] for why an evicted or expired version never revives an old entry).
///
/// Bounds: keys come from recognised parameters in canonical form only (junk parameters,
/// respellings and origins make no entries), pages and row bodies share one total bound in
/// bytes, row versions are bounded in number (memory) or expire (Redis). A client can make the
/// cache keep at most `max_bytes` of pages of distinct real queries, each at most a page of
/// rows.
///
/// With several instances, share the versions through Redis (`ListCache::open`, feature
/// `redis`); pages and bodies stay in each process, so nothing cached crosses instances, only
/// the versions that say what changed. A list
/// then costs two Redis round trips (the page's versions, the rows' versions), each one
/// `MGET`, instead of a COUNT and a page query. (A write's bump is one script over several
/// keys: a single Redis server or primary, not Redis Cluster.)
///
/// ```
/// # async fn run(db: wxrest::db::Db) {
/// use wxrest::viewset::ListCache;
/// # use serde::{Deserialize, Serialize};
/// # use wxrest::viewset::{Field, Model, ModelViewSet, Schema};
/// # #[derive(Serialize, Deserialize)] struct Goods { id: i64 }
/// # impl Model for Goods { fn schema() -> Schema { Schema::new("goods").field(Field::id()) } }
/// let cache = ListCache::memory(64 * 1024 * 1024); // 64 MiB of pages and rows at most
/// let goods = ModelViewSet::<Goods>::new(db).cache(cache.clone()).routes_at("/goods");
/// // After changing the stock of goods 7 and 9 with raw SQL elsewhere:
/// cache.changed("goods", &["stock"], &[7, 9]).await.ok();
/// // After changing goods in ways nobody listed:
/// cache.touch("goods").await.ok();
/// # }
/// ```
///
/// Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct ListCache {
    inner: Arc<Inner>,
}

struct Inner {
    versions: Versions,
    entries: moka::sync::Cache<Key, Entry>,
    max_bytes: u64,
    stats: Counters,
    /// The next viewset's number: pages and row bodies are kept per viewset.
    viewsets: AtomicU64,
}

/// What an entry is kept under. Pages and row bodies belong to one viewset: the model, its
/// serialisation, its pagination, scope and related-objects hook are the viewset's, so another
/// viewset over the same table (a public model without the admin's columns) never reads them.
/// Nothing here comes from a request as sent: the page's target is the path and the recognised
/// parameters in their canonical spelling, and the caller's scope is what the query reads.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Page {
        viewset: u64,
        /// The largest version the page depends on.
        version: u64,
        visible: Visible,
        /// The path, `?`, the canonical recognised parameters.
        target: Box<str>,
    },
    Row {
        viewset: u64,
        id: i64,
        version: u64,
    },
}

#[derive(Clone)]
enum Entry {
    Page(Arc<CachedPage>),
    Row(Bytes),
}

/// The key of a cached page, made once per request (looked up, then filled on a miss).
pub(crate) struct PageKey(Key);

/// A cached page: its envelope (links relative to the origin), the ids of its rows in order,
/// and its rows' bodies joined by `,` as last assembled, with the row versions they were
/// assembled at.
#[derive(Debug)]
pub(crate) struct CachedPage {
    pub head: Head,
    pub ids: Vec<i64>,
    pub rows: Option<(Vec<u64>, Bytes)>,
}

/// One viewset's pages and row bodies in a [`ListCache`]: a viewset reaches only its own.
#[derive(Clone)]
pub(crate) struct ViewsetCache {
    /// The shared cache (versions, bumps).
    pub lists: ListCache,
    viewset: u64,
}

#[derive(Default)]
struct Counters {
    page_hits: AtomicU64,
    page_misses: AtomicU64,
    row_hits: AtomicU64,
    row_misses: AtomicU64,
}

/// How often cached lists answered from the cache, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListCacheStats {
    /// Lists answered from a cached page: whole when none of its rows changed, else
    /// reassembled from row bodies.
    pub page_hits: u64,
    /// Lists that ran their page query.
    pub page_misses: u64,
    /// Rows of reassembled pages whose body was in the cache.
    pub row_hits: u64,
    /// Rows of cached pages read again from the database (`WHERE id IN (...)`).
    pub row_misses: u64,
}

/// The bytes an entry is counted as besides its key and body (the cache's own bookkeeping).
const ENTRY_OVERHEAD: usize = 128;

/// How long a page or row body may be served at most, whatever the versions say (a backstop if
/// a version bump was lost).
pub const ENTRY_TTL: Duration = Duration::from_secs(30);

/// The default bound of `ListCache::open` (feature `redis`): 64 MiB of pages and row bodies.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

impl std::fmt::Debug for ListCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListCache")
            .field("entries", &self.inner.entries.entry_count())
            .field("bytes", &self.inner.entries.weighted_size())
            .field("max_bytes", &self.inner.max_bytes)
            .finish()
    }
}

impl ListCache {
    /// Versions in this process: right for one instance. Pages and row bodies are kept while
    /// their total size (keys, bodies and a fixed overhead each) stays within `max_bytes`;
    /// past it the least used are dropped.
    ///
    /// ```
    /// let cache = wxrest::viewset::ListCache::memory(64 << 20);
    /// # let _ = cache;
    /// ```
    pub fn memory(max_bytes: u64) -> Self {
        Self::build(Versions::memory(), max_bytes)
    }

    /// Versions in Redis at `url` (keys `wxrest:lv:...`; see [`prefix`](Self::prefix)), shared
    /// by every instance; connects lazily, so start-up does not wait for Redis. While Redis
    /// fails, lists bypass the cache (they read the database). Pages and row bodies are kept in
    /// this process within [`DEFAULT_MAX_BYTES`] (see [`max_bytes`](Self::max_bytes)).
    ///
    /// ```
    /// # fn run() -> Result<(), wxrest::BackendError> {
    /// use wxrest::viewset::ListCache;
    /// let cache = ListCache::open("redis://127.0.0.1:6379")?.prefix("mall:").max_bytes(32 << 20);
    /// # let _ = cache; Ok(()) }
    /// ```
    ///
    /// Needs feature `redis`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn open(url: &str) -> Result<Self, BackendError> {
        let conn = crate::redis_conn::lazy(url, Duration::from_secs(1))?;
        Ok(Self::build(
            Versions::redis(conn, "wxrest:".into()),
            DEFAULT_MAX_BYTES,
        ))
    }

    /// Uses `prefix` for every Redis key (to share one Redis database between applications).
    /// Call it before cloning the cache: it makes a new, empty cache.
    #[must_use]
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        let max_bytes = self.inner.max_bytes;
        Self::build(self.into_versions().with_prefix(prefix.into()), max_bytes)
    }

    /// Keeps at most `max_bytes` of pages and row bodies in this process. Call it before cloning
    /// the cache: it makes a new, empty cache.
    #[must_use]
    pub fn max_bytes(self, max_bytes: u64) -> Self {
        Self::build(self.into_versions(), max_bytes)
    }

    fn into_versions(self) -> Versions {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.versions,
            Err(shared) => match &shared.versions {
                #[cfg(feature = "redis")]
                Versions::Redis { conn, prefix, .. } => {
                    Versions::redis(conn.clone(), prefix.clone())
                }
                Versions::Memory(_) => Versions::memory(),
            },
        }
    }

    fn build(versions: Versions, max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                versions,
                entries: moka::sync::Cache::builder()
                    .max_capacity(max_bytes)
                    .weigher(|key: &Key, entry: &Entry| {
                        let key = std::mem::size_of::<Key>()
                            + match key {
                                Key::Page { target, .. } => target.len(),
                                Key::Row { .. } => 0,
                            };
                        let body = match entry {
                            Entry::Page(p) => {
                                let assembled =
                                    p.rows.as_ref().map_or(0, |(v, b)| v.len() * 8 + b.len());
                                p.head.weight() + p.ids.len() * 8 + assembled
                            }
                            Entry::Row(b) => b.len(),
                        };
                        u32::try_from(key + body + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                    })
                    .time_to_live(ENTRY_TTL)
                    .build(),
                max_bytes,
                stats: Counters::default(),
                viewsets: AtomicU64::new(0),
            }),
        }
    }

    /// Marks `table` changed in any way: every cached page and row body of it is stale from now
    /// on. For writes that cannot say what they changed (an admin script, a bulk import).
    pub async fn touch(&self, table: &str) -> Result<(), BackendError> {
        self.bump(Change::everything(table)).await
    }

    /// Marks `columns` of the rows `ids` of `table` changed (e.g. a hook's
    /// `UPDATE goods SET stock = stock - 1 WHERE id = 7`: `changed("goods", &["stock"], &[7])`).
    /// Those rows' bodies are stale, and so are the pages whose filters, search or ordering read
    /// one of `columns`; other pages stay cached. Rows added or removed need
    /// [`touch`](Self::touch).
    pub async fn changed(
        &self,
        table: &str,
        columns: &[&str],
        ids: &[i64],
    ) -> Result<(), BackendError> {
        self.bump(Change::rows(table, columns, ids)).await
    }

    pub(crate) async fn bump(&self, change: Change<'_>) -> Result<(), BackendError> {
        self.inner.versions.bump(change).await
    }

    /// The bytes the cached pages and row bodies take now (keys, bodies and per-entry
    /// overhead), for monitoring.
    ///
    /// ```
    /// assert_eq!(wxrest::viewset::ListCache::memory(1 << 20).weighted_size(), 0);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.inner.entries.run_pending_tasks();
        self.inner.entries.weighted_size()
    }

    /// How often lists were answered from the cache since it was made.
    ///
    /// ```
    /// let stats = wxrest::viewset::ListCache::memory(1 << 20).stats();
    /// assert_eq!(stats.page_hits + stats.page_misses, 0);
    /// ```
    pub fn stats(&self) -> ListCacheStats {
        let s = &self.inner.stats;
        ListCacheStats {
            page_hits: s.page_hits.load(Ordering::Relaxed),
            page_misses: s.page_misses.load(Ordering::Relaxed),
            row_hits: s.row_hits.load(Ordering::Relaxed),
            row_misses: s.row_misses.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn stamp(&self, table: &str, columns: &[&str]) -> Result<Stamp, BackendError> {
        self.inner.versions.stamp(table, columns).await
    }

    pub(crate) async fn row_versions(
        &self,
        table: &str,
        ids: &[i64],
    ) -> Result<Vec<u64>, BackendError> {
        self.inner.versions.rows(table, ids).await
    }

    /// A new viewset's part of this cache: its own pages and row bodies, the shared versions.
    pub(crate) fn for_viewset(&self) -> ViewsetCache {
        ViewsetCache {
            lists: self.clone(),
            viewset: self.inner.viewsets.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl ViewsetCache {
    /// The key of the page at `target` (path and canonical parameters) for callers who see
    /// `visible`, at `version`.
    pub(crate) fn page_key(&self, version: u64, visible: Visible, target: String) -> PageKey {
        PageKey(Key::Page {
            viewset: self.viewset,
            version,
            visible,
            target: target.into_boxed_str(),
        })
    }

    /// The page under `key`, counted as a page hit or miss.
    pub(crate) fn page(&self, key: &PageKey) -> Option<Arc<CachedPage>> {
        let inner = &self.lists.inner;
        tally(
            match inner.entries.get(&key.0) {
                Some(Entry::Page(page)) => Some(page),
                _ => None,
            },
            &inner.stats.page_hits,
            &inner.stats.page_misses,
        )
    }

    pub(crate) fn put_page(&self, key: PageKey, page: CachedPage) {
        self.lists
            .inner
            .entries
            .insert(key.0, Entry::Page(Arc::new(page)));
    }

    /// The body of row `id` at `version`, counted as a row hit or miss.
    pub(crate) fn row(&self, id: i64, version: u64) -> Option<Bytes> {
        let inner = &self.lists.inner;
        let key = Key::Row {
            viewset: self.viewset,
            id,
            version,
        };
        tally(
            match inner.entries.get(&key) {
                Some(Entry::Row(body)) => Some(body),
                _ => None,
            },
            &inner.stats.row_hits,
            &inner.stats.row_misses,
        )
    }

    pub(crate) fn put_row(&self, id: i64, version: u64, body: Bytes) {
        let key = Key::Row {
            viewset: self.viewset,
            id,
            version,
        };
        self.lists.inner.entries.insert(key, Entry::Row(body));
    }
}

/// Counts `found` as a hit or a miss.
fn tally<T>(found: Option<T>, hits: &AtomicU64, misses: &AtomicU64) -> Option<T> {
    let counter = if found.is_some() { hits } else { misses };
    counter.fetch_add(1, Ordering::Relaxed);
    found
}
