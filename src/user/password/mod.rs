//! Password hashing: the one entry point for every password hash the crate computes.
//!
//! New passwords are hashed with argon2id and the crate's default parameters, stored as a PHC
//! string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`). Verification also reads the hashes
//! Django writes (`pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`, `bcrypt_sha256`, `bcrypt`), so
//! users imported from a Django project log in with their password; [`Verdict::Outdated`]
//! tells the caller to store a fresh hash ([`UserStore`](super::UserStore) does, on login).
//!
//! Every hash and verification goes through a [`PasswordHashing`] bound: at most one per core
//! at once, a few more waiting, and [`PasswordError::Busy`] (503 with `Retry-After`) at once
//! beyond that, so a flood of login attempts costs bounded memory and CPU. Verification takes
//! at least a fixed time whatever the stored value (see [`PasswordHashing::floor`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wxrest::user::password::PasswordError> {
//! use wxrest::user::password;
//!
//! let hash = password::hash("correct horse").await?;
//! assert!(hash.starts_with("$argon2id$"));
//! assert!(password::verify("correct horse", Some(&hash)).await?);
//! assert!(!password::verify("wrong", Some(&hash)).await?);
//! assert!(!password::verify("anything", None).await?); // still costs one verification
//! # Ok(())
//! # }
//! ```

mod django;

pub use django::{MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS};

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use axum::response::{IntoResponse, Response};
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use tokio::sync::Semaphore;

use crate::error::{ApiError, BackendError};
use django::DjangoHash;

/// The prefix of a stored password that can never match (Django's convention for
/// `set_unusable_password`): accounts that log in through WeChat only.
pub const UNUSABLE_PREFIX: char = '!';

/// The largest argon2 memory cost verified, in KiB: Django writes 102,400 (100 MiB), this
/// crate 19,456. Each running verification holds this much memory.
pub const MAX_ARGON2_M_COST: u32 = 128 * 1024;

/// The largest argon2 time cost verified (Django and this crate write 2).
pub const MAX_ARGON2_T_COST: u32 = 10;

/// The largest argon2 parallelism verified (Django writes 8; lanes run one after another).
pub const MAX_ARGON2_P_COST: u32 = 16;

/// What [`PasswordError::Busy`] asks a client to wait before retrying.
const RETRY_AFTER_SECS: u64 = 1;

/// Why a password could not be hashed or verified.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// As many hashes as the bound allows are running and its queue is full: retry later.
    /// Renders 503 `{"detail": ..., "code": "password_checks_busy"}` with `Retry-After`.
    #[error("Too many password checks are running, try again in a moment.")]
    Busy {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The hasher failed (a bug or a panic, never the client's input).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Busy { retry_after } => {
                let seconds = retry_after.as_secs().max(1);
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "password_checks_busy",
                    err.to_string(),
                )
                .with_header(RETRY_AFTER, HeaderValue::from(seconds))
            }
            PasswordError::Failed(_) => ApiError::unavailable(),
        }
    }
}

impl IntoResponse for PasswordError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// For the user store's callers, which speak [`BackendError`]: `Busy` stays `Busy`, so the
/// token view can still answer it with 503 and `Retry-After`.
impl From<PasswordError> for BackendError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Busy { retry_after } => BackendError::Busy { retry_after },
            PasswordError::Failed(message) => BackendError::Other(message),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password does not match, or there was no usable hash to match.
    Mismatch,
    /// The password matches a hash in the crate's current format and parameters.
    Match,
    /// The password matches a hash in another format (Django's) or with older parameters:
    /// store [`PasswordHashing::hash`] of it instead.
    Outdated,
}

impl Verdict {
    /// Whether the password matched.
    pub fn matches(self) -> bool {
        !matches!(self, Verdict::Mismatch)
    }
}

/// The bound every password hash goes through: at most `permits` hashes at once, at most
/// `queue` more callers waiting for one, [`PasswordError::Busy`] at once for the rest, and
/// every verification padded to a floor. Cheap to clone (clones share the bound).
///
/// Hashing costs memory (argon2: 19 MiB per hash with this crate's parameters, 100 MiB with
/// Django's) and a core for tens to hundreds of milliseconds, and a client can ask for one
/// with every login attempt. The permits (one per core by default) bound both; the queue
/// (four per permit by default) bounds how long a caller can wait. A permit is held by the
/// hashing thread itself, so a client that disconnects mid-hash does not free it early.
///
/// [`shared`](Self::shared) is the process-wide bound that [`UserStore`](super::UserStore)
/// and this module's functions use: one bound per process, whatever number of stores.
///
/// ```
/// use std::time::Duration;
/// use wxrest::user::password::PasswordHashing;
///
/// let hashing = PasswordHashing::new().permits(2).queue(8).floor(Duration::from_millis(400));
/// assert_eq!(hashing.running(), 0);
/// ```
#[derive(Clone)]
pub struct PasswordHashing {
    inner: Arc<Bound>,
}

struct Bound {
    permits: usize,
    queue: usize,
    floor: Duration,
    /// `permits + queue`: taken without waiting on entry, so waiters are bounded.
    admitted: Arc<Semaphore>,
    /// `permits`: held while a hash runs.
    hashing: Arc<Semaphore>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl std::fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashing")
            .field("permits", &self.inner.permits)
            .field("queue", &self.inner.queue)
            .field("floor", &self.inner.floor)
            .field("running", &self.running())
            .finish()
    }
}

/// How long a verification takes at least, whatever the stored value.
///
/// Why a floor: the hashes a store holds differ in cost (this crate's argon2id takes tens of
/// milliseconds; Django 5.x's PBKDF2 with 1,000,000 iterations, its argon2 with 100 MiB and
/// bcrypt with cost 12 take a few hundred), so without one an attacker timing wrong guesses
/// could tell accounts imported from Django and not yet upgraded from native ones, and both
/// from unknown usernames (which verify against a dummy argon2id hash). Running extra hash
/// work to equalise (Django's `harden_runtime`) would spend cores and memory on every guess;
/// sleeping until a deadline costs neither and is the same for every account. The floor
/// counts from the start of the call, so time spent waiting for a permit is part of it.
/// A hash slower than the floor is not hidden: set the floor above the slowest hash you store
/// (it is about 0.5 s for Django 5.2's PBKDF2 on a small VM).
pub const DEFAULT_FLOOR: Duration = Duration::from_millis(500);

static SHARED: LazyLock<PasswordHashing> = LazyLock::new(PasswordHashing::new);

impl Default for PasswordHashing {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHashing {
    /// A new, separate bound: one permit per core, four waiting callers per permit, and
    /// [`DEFAULT_FLOOR`]. Most applications want [`shared`](Self::shared) instead.
    pub fn new() -> Self {
        let permits = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::build(permits, 4 * permits, DEFAULT_FLOOR)
    }

    /// The process-wide bound (created on first use with [`new`](Self::new)'s settings).
    pub fn shared() -> Self {
        SHARED.clone()
    }

    fn build(permits: usize, queue: usize, floor: Duration) -> Self {
        let permits = permits.max(1);
        Self {
            inner: Arc::new(Bound {
                permits,
                queue,
                floor,
                admitted: Arc::new(Semaphore::new(permits + queue)),
                hashing: Arc::new(Semaphore::new(permits)),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// How many hashes may run at once (at least 1).
    #[must_use]
    pub fn permits(self, permits: usize) -> Self {
        Self::build(permits, self.inner.queue, self.inner.floor)
    }

    /// How many callers may wait for a permit; more get [`PasswordError::Busy`] at once.
    #[must_use]
    pub fn queue(self, queue: usize) -> Self {
        Self::build(self.inner.permits, queue, self.inner.floor)
    }

    /// How long a verification takes at least (see [`DEFAULT_FLOOR`] for why).
    #[must_use]
    pub fn floor(self, floor: Duration) -> Self {
        Self::build(self.inner.permits, self.inner.queue, floor)
    }

    /// How many hashes are running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// The most hashes that have run at once since this bound was made (never above the
    /// permits: a gauge for metrics and tests).
    pub fn peak_running(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Hashes `password` into a PHC string (argon2id, this crate's parameters).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move || hash_blocking(password.as_bytes()))
            .await?
    }

    /// Verifies `password` against a stored value: this crate's argon2id PHC string or one of
    /// Django's formats. `None`, empty, unusable (`!...`), unsupported or malformed values
    /// never match, and still cost one argon2id verification against a dummy hash. Takes at
    /// least [`floor`](Self::floor), whatever the value.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verdict, PasswordError> {
        let deadline = tokio::time::Instant::now() + self.inner.floor;
        let password = password.to_owned();
        let stored = stored.filter(|s| is_usable(s)).map(str::to_owned);
        let verdict = self
            .run(move || verify_blocking(&password, stored.as_deref()))
            .await?;
        tokio::time::sleep_until(deadline).await;
        Ok(verdict)
    }

    /// Runs `work` on the blocking pool once admitted and given a permit. Both permits move
    /// into the blocking task, so they are released when the work ends, not when the caller
    /// stops waiting for it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let admitted = Arc::clone(&self.inner.admitted)
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy {
                retry_after: Duration::from_secs(RETRY_AFTER_SECS),
            })?;
        let permit = Arc::clone(&self.inner.hashing)
            .acquire_owned()
            .await
            .map_err(|err| PasswordError::Failed(err.to_string()))?;
        let bound = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, permit);
            let _gauge = Running::enter(&bound);
            work()
        })
        .await
        .map_err(|err| PasswordError::Failed(format!("password hashing task failed: {err}")))
    }
}

/// Counts a running hash in the bound's gauges for as long as it lives.
struct Running<'a>(&'a Bound);

impl<'a> Running<'a> {
    fn enter(bound: &'a Bound) -> Self {
        let now = bound.running.fetch_add(1, Ordering::SeqCst) + 1;
        bound.peak.fetch_max(now, Ordering::SeqCst);
        Running(bound)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Hashes `password` into a PHC string, through the [shared](PasswordHashing::shared) bound.
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    SHARED.hash(password).await
}

/// Whether `password` matches `stored`, through the [shared](PasswordHashing::shared) bound
/// (see [`PasswordHashing::verify`]).
pub async fn verify(password: &str, stored: Option<&str>) -> Result<bool, PasswordError> {
    Ok(SHARED.verify(password, stored).await?.matches())
}

/// A stored password value that no password matches, for accounts without one.
pub fn unusable() -> String {
    format!("{UNUSABLE_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// Whether a stored password value may be a real hash (not empty, not [`unusable`]).
pub fn is_usable(stored: &str) -> bool {
    !stored.is_empty() && !stored.starts_with(UNUSABLE_PREFIX)
}

/// A hash of a random password with the same parameters as real ones, verified against when
/// there is no real hash, so a missing user costs as much work as a wrong password.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let secret = uuid::Uuid::new_v4();
    hash_blocking(secret.as_bytes()).ok()
});

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Failed(err.to_string()))
}

fn verify_blocking(password: &str, stored: Option<&str>) -> Verdict {
    let verdict = match stored {
        Some(phc) if phc.starts_with('$') => argon2_hash(phc).map(|hash| {
            match argon2_verify(password, &hash) {
                true if is_current(&hash) => Verdict::Match,
                true => Verdict::Outdated,
                false => Verdict::Mismatch,
            }
        }),
        Some(stored) => match DjangoHash::parse(stored) {
            Some(DjangoHash::Argon2(phc)) => argon2_hash(&phc).map(|hash| {
                if argon2_verify(password, &hash) {
                    Verdict::Outdated
                } else {
                    Verdict::Mismatch
                }
            }),
            Some(django) if django.verify(password) => Some(Verdict::Outdated),
            Some(_) => Some(Verdict::Mismatch),
            None => None,
        },
        None => None,
    };
    verdict.unwrap_or_else(|| {
        if let Some(dummy) = DUMMY_HASH.as_deref().and_then(argon2_hash) {
            let _ = argon2_verify(password, &dummy);
        }
        Verdict::Mismatch
    })
}

/// The argon2 PHC string `phc`, if well-formed and within the limits above.
fn argon2_hash(phc: &str) -> Option<PasswordHash> {
    let hash = PasswordHash::new(phc).ok()?;
    let params = Params::try_from(&hash).ok()?;
    let within = params.m_cost() <= MAX_ARGON2_M_COST
        && params.t_cost() <= MAX_ARGON2_T_COST
        && params.p_cost() <= MAX_ARGON2_P_COST;
    within.then_some(hash)
}

fn argon2_verify(password: &str, hash: &PasswordHash) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Whether `hash` is what [`hash_blocking`] writes today (argon2id, version 0x13, default
/// parameters).
fn is_current(hash: &PasswordHash) -> bool {
    let current = Params::DEFAULT;
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(0x13)
        && Params::try_from(hash).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (current.m_cost(), current.t_cost(), current.p_cost())
        })
}
