//! Sessions, rotation and token versions (documented on [`RevocationStore`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;

use super::jwt::now;
use crate::error::BackendError;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisRevocationStore;

/// How long a cached token version is trusted by default before the database is asked again:
/// the longest a change made outside the crate (a Django admin sharing the database, another
/// instance without Redis) takes to end a user's tokens, plus
/// [`TokenService`](super::TokenService)'s 10-second memo of passed checks.
pub const DEFAULT_VERSION_TTL: Duration = Duration::from_secs(30);

/// The cached token version [`RevocationStore::forget_token_version`] leaves: "read the
/// database". A fill does not replace it, so a database read that began before the change
/// cannot cache the old version again; it expires with the version TTL.
pub(crate) const UNKNOWN_VERSION: i64 = i64::MIN;

/// How many sessions a [`MemoryRevocationStore`] keeps by default. Past it the least used are
/// dropped, which ends them (see the module docs).
pub const DEFAULT_MAX_SESSIONS: u64 = 1_000_000;

/// The revocation facts one authenticated request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessState {
    /// The token's session was revoked.
    pub revoked: bool,
    /// The cached token version of the user; `None` when not cached.
    pub token_version: Option<i64>,
}

/// What presenting a refresh token did to its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// It was the current generation: the family moved to the next one.
    Rotated,
    /// It was an older generation (a reuse): the family is revoked now.
    Reused,
    /// The family was revoked before, or is unknown.
    Ended,
}

/// Storage for what ends tokens before their `exp`: sessions (one *family* per login, shared by every token
/// of that login however it was refreshed), rotation with reuse detection, and the per-user
/// token version ("log out everywhere", deactivation).
///
/// A family is one small record per session: the generation of the one refresh token still
/// valid. Rotating a refresh token of generation `g` moves the family to `g + 1`; presenting
/// any other generation is a reuse and revokes the family, which ends every token of that
/// login, access tokens included. So the store holds O(sessions), not O(rotations). A revoked
/// family is remembered only as long as an access token of it can live (the access lifetime
/// after the revocation): nothing of the session is valid after that. Tokens minted by Django
/// (djangorestframework-simplejwt, djangorestframework-jwt) have no record to remove: their
/// revocation is remembered until they expire.
///
/// The database holds the truth about token versions ([`UserLookup`](crate::auth::UserLookup));
/// a [`RevocationStore`] holds families and a short-lived cache of versions.
/// [`MemoryRevocationStore`] serves one process; [`RedisRevocationStore`] lets every instance
/// see a logout at once; implement the trait for another backend. Entries expire with the tokens they concern.
///
/// **Failing safe.** A refresh token whose family the store does not know is refused: a store
/// that forgot a session (an entry evicted under memory pressure, a restart of the memory
/// store, a flushed Redis) ends it, and the client logs in again, instead of letting a used
/// refresh token work. Access tokens are refused only when their family is known to be
/// revoked, so a verify-only service (or a restarted one) keeps honouring unexpired access
/// tokens it did not issue.
///
/// ```
/// # tokio_test_block_on(async {
/// use wxrest::auth::{MemoryRevocationStore, RevocationStore, Rotation};
///
/// let store = MemoryRevocationStore::new();
/// let exp = 4_070_908_800;
/// store.start_family("fam-1", exp).await.unwrap();
/// assert_eq!(store.rotate_family("fam-1", 0, exp, exp).await.unwrap(), Rotation::Rotated);
/// // Generation 0 again: a stolen, already used refresh token. The session ends.
/// assert_eq!(store.rotate_family("fam-1", 0, exp, exp).await.unwrap(), Rotation::Reused);
/// assert_eq!(store.rotate_family("fam-1", 1, exp, exp).await.unwrap(), Rotation::Ended);
/// assert!(store.access_state("fam-1", 7).await.unwrap().revoked);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
///
#[cfg_attr(not(feature = "redis"), doc = "[`RedisRevocationStore`]: crate")]
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Is the session `family` revoked, and what is the cached token version of `user_id`?
    /// One round trip.
    async fn access_state(&self, family: &str, user_id: i64) -> Result<AccessState, BackendError>;

    /// Records a new session at generation 0, kept until `expires_at` (unix seconds).
    async fn start_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError>;

    /// Presents the refresh token of `generation`: atomically, of concurrent callers with the
    /// current generation exactly one gets [`Rotation::Rotated`] (and the family is then kept
    /// until `expires_at`); any other generation revokes the family, remembered as revoked
    /// until `revoked_until`.
    async fn rotate_family(
        &self,
        family: &str,
        generation: u64,
        expires_at: i64,
        revoked_until: i64,
    ) -> Result<Rotation, BackendError>;

    /// Is the session `family` live: recorded, not revoked, not expired? A session the store
    /// does not know is not (fails closed, as refresh does).
    async fn session_live(&self, family: &str) -> Result<bool, BackendError>;

    /// Revokes the session `family` (logout), remembered as revoked until `revoked_until`
    /// (unix seconds; the caller bounds it: see [`TokenService::revoke`]).
    ///
    /// [`TokenService::revoke`]: super::TokenService::revoke
    async fn revoke_family(&self, family: &str, revoked_until: i64) -> Result<(), BackendError>;

    /// Caches `version` for `user_id` unless a value is cached already (fills a miss without
    /// overwriting a concurrent explicit [`set_token_version`](Self::set_token_version)).
    async fn fill_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError>;

    /// Sets the cached version (after the database was bumped).
    async fn set_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError>;

    /// Drops the cached version, so requests read the database until the version TTL passes
    /// or [`set_token_version`](Self::set_token_version) sets it; a concurrent
    /// [`fill_token_version`](Self::fill_token_version) (a read that may predate the change)
    /// must not cache a version again before then.
    async fn forget_token_version(&self, user_id: i64) -> Result<(), BackendError>;

    /// A counter this process sees change on every revocation or version change, when the
    /// store lives in this process (`None` for shared stores). While it stays the same, an
    /// access check that passed still passes, so [`TokenService`](super::TokenService) can
    /// skip repeating it.
    fn local_epoch(&self) -> Option<u64> {
        None
    }
}

/// A shared store (`Arc<dyn RevocationStore>` or `Arc<S>`) is a store too: hand clones of one
/// to the [`TokenService`](super::TokenService) and the user store.
#[async_trait]
impl<S: RevocationStore + ?Sized> RevocationStore for Arc<S> {
    async fn access_state(&self, family: &str, user_id: i64) -> Result<AccessState, BackendError> {
        (**self).access_state(family, user_id).await
    }
    async fn start_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError> {
        (**self).start_family(family, expires_at).await
    }
    async fn rotate_family(
        &self,
        family: &str,
        gen_now: u64,
        keep_until: i64,
        revoke_until: i64,
    ) -> Result<Rotation, BackendError> {
        (**self)
            .rotate_family(family, gen_now, keep_until, revoke_until)
            .await
    }
    async fn session_live(&self, family: &str) -> Result<bool, BackendError> {
        (**self).session_live(family).await
    }
    async fn revoke_family(&self, family: &str, revoked_until: i64) -> Result<(), BackendError> {
        (**self).revoke_family(family, revoked_until).await
    }
    async fn fill_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        (**self).fill_token_version(user_id, version).await
    }
    async fn set_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        (**self).set_token_version(user_id, version).await
    }
    async fn forget_token_version(&self, user_id: i64) -> Result<(), BackendError> {
        (**self).forget_token_version(user_id).await
    }
    fn local_epoch(&self) -> Option<u64> {
        (**self).local_epoch()
    }
}

/// A live session: the generation of its one valid refresh token, until when it is kept.
#[derive(Clone, Copy, Debug)]
struct Family {
    generation: u64,
    expires_at: i64,
}

struct UntilExpiry;

fn until(expires_at: i64) -> Option<Duration> {
    Some(Duration::from_secs(
        (expires_at - now()).max(0).unsigned_abs(),
    ))
}

impl Expiry<String, Family> for UntilExpiry {
    fn expire_after_create(&self, _: &String, family: &Family, _: Instant) -> Option<Duration> {
        until(family.expires_at)
    }

    fn expire_after_update(
        &self,
        _: &String,
        family: &Family,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        until(family.expires_at)
    }
}

impl Expiry<String, i64> for UntilExpiry {
    fn expire_after_create(&self, _: &String, expires_at: &i64, _: Instant) -> Option<Duration> {
        until(*expires_at)
    }

    fn expire_after_update(
        &self,
        _: &String,
        expires_at: &i64,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        until(*expires_at)
    }
}

/// An in-process store: right for one instance; use [`RedisRevocationStore`] for several.
///
#[cfg_attr(not(feature = "redis"), doc = "[`RedisRevocationStore`]: crate")]
///
/// Bounded: at most [`DEFAULT_MAX_SESSIONS`] live sessions and as many revoked ones
/// (configurable), each a few dozen bytes whatever the number of rotations. Past the bound the
/// least used live sessions are dropped, which ends their refresh tokens (the client logs in
/// again). A revoked session of ours is kept for one access-token lifetime after its
/// revocation, a revoked token minted by Django until its own `exp` (at most the refresh and
/// access lifetimes ahead: [`TokenService::revoke`](super::TokenService::revoke)); only more
/// revocations than the bound within that time could drop one early, letting the token work
/// until it expires. It lives in the process: after a restart,
/// refresh tokens issued before it are refused; use Redis to keep sessions across restarts.
#[derive(Clone)]
pub struct MemoryRevocationStore {
    families: moka::sync::Cache<String, Family>,
    revoked: moka::sync::Cache<String, i64>,
    versions: moka::sync::Cache<i64, i64>,
    epoch: Arc<AtomicU64>,
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRevocationStore")
            .field("sessions", &self.families.entry_count())
            .field("revoked", &self.revoked.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryRevocationStore {
    /// An empty store with the default bounds.
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_SESSIONS, DEFAULT_VERSION_TTL)
    }

    /// An empty store keeping at most `max_sessions` live (and as many revoked) sessions, and
    /// trusting cached token versions for `version_ttl`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = wxrest::auth::MemoryRevocationStore::with_limits(10_000, Duration::from_secs(10));
    /// # let _ = store;
    /// ```
    pub fn with_limits(max_sessions: u64, version_ttl: Duration) -> Self {
        Self {
            families: moka::sync::Cache::builder()
                .max_capacity(max_sessions)
                .expire_after(UntilExpiry)
                .build(),
            revoked: moka::sync::Cache::builder()
                .max_capacity(max_sessions)
                .expire_after(UntilExpiry)
                .build(),
            versions: moka::sync::Cache::builder()
                .max_capacity(max_sessions)
                .time_to_live(version_ttl)
                .build(),
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many sessions are kept now: `(live, revoked)`, for monitoring.
    ///
    /// ```
    /// assert_eq!(wxrest::auth::MemoryRevocationStore::new().session_count(), (0, 0));
    /// ```
    pub fn session_count(&self) -> (u64, u64) {
        self.families.run_pending_tasks();
        self.revoked.run_pending_tasks();
        (self.families.entry_count(), self.revoked.entry_count())
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn mark_revoked(&self, family: &str, revoked_until: i64) {
        self.families.invalidate(family);
        self.revoked
            .entry_by_ref(family)
            .and_compute_with(|current| {
                let kept = current.map_or(revoked_until, |e| e.into_value().max(revoked_until));
                Op::Put(kept)
            });
        self.changed();
    }
}

#[async_trait]
impl RevocationStore for MemoryRevocationStore {
    async fn access_state(&self, family: &str, user_id: i64) -> Result<AccessState, BackendError> {
        Ok(AccessState {
            revoked: self.revoked.contains_key(family),
            token_version: self
                .versions
                .get(&user_id)
                .filter(|v| *v != UNKNOWN_VERSION),
        })
    }

    async fn start_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError> {
        self.families.insert(
            family.to_owned(),
            Family {
                generation: 0,
                expires_at,
            },
        );
        Ok(())
    }

    async fn rotate_family(
        &self,
        family: &str,
        generation: u64,
        expires_at: i64,
        revoked_until: i64,
    ) -> Result<Rotation, BackendError> {
        let mut outcome = Rotation::Ended;
        self.families
            .entry_by_ref(family)
            .and_compute_with(|current| match current.map(|e| e.into_value()) {
                Some(f) if f.generation == generation => {
                    outcome = Rotation::Rotated;
                    Op::Put(Family {
                        generation: generation + 1,
                        expires_at: expires_at.max(f.expires_at),
                    })
                }
                Some(_) => {
                    outcome = Rotation::Reused;
                    Op::Remove
                }
                None => Op::Nop,
            });
        if outcome == Rotation::Reused {
            self.mark_revoked(family, revoked_until);
        }
        Ok(outcome)
    }

    async fn session_live(&self, family: &str) -> Result<bool, BackendError> {
        Ok(self.families.contains_key(family))
    }

    async fn revoke_family(&self, family: &str, revoked_until: i64) -> Result<(), BackendError> {
        self.mark_revoked(family, revoked_until);
        Ok(())
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
        self.versions.insert(user_id, UNKNOWN_VERSION);
        self.changed();
        Ok(())
    }

    fn local_epoch(&self) -> Option<u64> {
        Some(self.epoch.load(Ordering::SeqCst))
    }
}
