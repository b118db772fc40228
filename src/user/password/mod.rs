//! Password hashing: the one entry point for every password hash the crate computes.
//!
//! New passwords are hashed with argon2id and the crate's default parameters, stored as a PHC
//! string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`). Verification also reads the hashes
//! Django writes (`pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`, `bcrypt_sha256`, `bcrypt`, `scrypt`), so
//! users imported from a Django project log in with their password; [`Verdict::Outdated`]
//! tells the caller to store a fresh hash ([`UserStore`](super::UserStore) does, on login).
//!
//! Every hash and verification goes through a [`PasswordHashing`] bound: at most one per core
//! at once, a few more waiting, and [`PasswordError::Busy`] (503 with `Retry-After`) at once
//! beyond that, so a flood of login attempts costs bounded memory and CPU. Each client address
//! holds at most a small share of it ([`PasswordHashing::per_client`], a few more waiting for
//! it; beyond them [`PasswordError::ClientBusy`], 429 with `Retry-After`), so a few clients cannot fill it and
//! lock everyone else out of password logins. Verification takes at least a fixed time
//! whatever the stored value (see [`PasswordHashing::floor`]).
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

pub use django::{MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS, MAX_SCRYPT_MEMORY, MAX_SCRYPT_P};

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

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
#[non_exhaustive]
pub enum PasswordError {
    /// As many hashes as the bound allows are running and its queue is full: retry later.
    /// Renders 503 `{"detail": ..., "code": "password_checks_busy"}` with `Retry-After`.
    #[error("Too many password checks are running, try again in a moment.")]
    Busy {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// This client already has its share of the bound queued or running
    /// ([`PasswordHashing::per_client`]): it retries later, other clients are served. Renders
    /// DRF's 429 `{"detail": "Request was throttled. ...", "code": "throttled"}` with
    /// `Retry-After`.
    #[error("This client's password checks are already running, try again in a moment.")]
    ClientBusy {
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
            // Rendered as the token view renders it: one home for the message and code.
            PasswordError::Busy { retry_after } => {
                crate::auth::AuthError::Busy { retry_after }.into()
            }
            PasswordError::ClientBusy { retry_after } => {
                crate::auth::AuthError::Throttled { retry_after }.into()
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
            PasswordError::ClientBusy { retry_after } => BackendError::ClientBusy { retry_after },
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
/// `queue` more waiting, [`PasswordError::Busy`] at once for the rest, at most `per_client`
/// of them (queued or running) for one client address, and every verification padded to a
/// floor. Cheap to clone (clones share the bound).
///
/// Hashing costs memory (argon2: 19 MiB per hash with this crate's parameters, 100 MiB with
/// Django's) and a core for tens to hundreds of milliseconds, and a client can ask for one
/// with every login attempt. The permits (one per core by default) bound both; the queue
/// (eight per permit by default) bounds how long a caller can wait.
///
/// Each client's share: the whole bound is a few slots (ten on two cores), and a few clients
/// sending slow guesses (Django's PBKDF2 takes half a second) would hold them all, leaving
/// every other login 503. A verification made for a client
/// ([`verify_from`](Self::verify_from), which the token view and the Basic authenticator use
/// through [`UserStore`](super::UserStore)) holds one of that client's `per_client` slots (one
/// by default) while it waits or runs; a few more from the same client
/// ([`per_client_queue`](Self::per_client_queue), four by default) wait for that slot outside
/// the shared queue, and the rest are refused at once with [`PasswordError::ClientBusy`]
/// (429). So `k` guessing clients hold at most `k × per_client` slots, and another client
/// waits behind those at most (the queue is first come, first served) instead of being
/// refused. Clients count by their
/// [`network`](crate::client::network) (an IPv6 client's `/64`); the table of shares holds
/// only clients with a check waiting or running, each with at most `per_client +
/// per_client_queue` of them. A verification with no client address (served without
/// `ConnectInfo`) takes no share.
///
/// The permits are threads: `permits` dedicated hashing threads (started on first use) take
/// work from a channel holding at most `queue` jobs, and each keeps its argon2 memory for the
/// next hash. A semaphore in front of tokio's blocking pool bounded the count but not the
/// memory: hashes landed on ever new threads (a permit comes back a moment before its thread
/// is idle) and every 19 MiB allocation left malloc a hole it could not reuse, so 200
/// concurrent guesses at the mall still peaked at 291 MiB; with these threads, 58 MiB. A hash
/// runs to its end even when the client has gone (so the bound always holds); one still
/// queued when its caller stopped waiting is skipped.
///
/// [`shared`](Self::shared) is the process-wide bound that [`UserStore`](super::UserStore)
/// and this module's functions use: one bound per process, whatever number of stores.
///
/// ```
/// use std::time::Duration;
/// use wxrest::user::password::PasswordHashing;
///
/// let hashing = PasswordHashing::new()
///     .permits(2)
///     .queue(16)
///     .per_client(1)
///     .floor(Duration::from_millis(400));
/// assert_eq!((hashing.running(), hashing.waiting()), (0, 0));
/// ```
#[derive(Clone)]
pub struct PasswordHashing {
    inner: Arc<Bound>,
}

struct Bound {
    permits: usize,
    queue: usize,
    floor: Duration,
    /// Each client's checks waiting or running.
    shares: Arc<Shares>,
    /// The queue of the hashing threads, which are started on first use.
    jobs: OnceLock<Result<SyncSender<Job>, String>>,
    gauges: Arc<Gauges>,
}

/// Work for a hashing thread, given the gauges to count itself in.
type Job = Box<dyn FnOnce(&Gauges) + Send>;

/// How many hashes run now, how many wait, and the most that ever ran at once.
#[derive(Default)]
struct Gauges {
    running: AtomicUsize,
    waiting: AtomicUsize,
    peak: AtomicUsize,
}

/// How long a check waits for one of its client's slots before it is refused with
/// [`PasswordError::ClientBusy`].
const CLIENT_WAIT: Duration = Duration::from_secs(5);

/// Each client's checks: its slots (a semaphore of `per_client` permits) and how many checks
/// hold or wait for one; clients with none have no entry, so the table is bounded by the
/// checks in flight.
struct Shares {
    per_client: usize,
    client_queue: usize,
    held: Mutex<HashMap<IpAddr, ClientSlots>>,
}

struct ClientSlots {
    slots: Arc<tokio::sync::Semaphore>,
    /// Checks holding or waiting for one of the slots.
    seated: usize,
}

/// A check's seat in its client's entry (holding a slot or waiting for one); the entry goes
/// when its last seat does.
struct Seat {
    shares: Arc<Shares>,
    client: IpAddr,
}

/// One of a client's slots, given back when dropped (the check ran, was skipped, or was never
/// queued). The permit goes first, then the seat.
struct Share {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _seat: Seat,
}

impl Shares {
    fn new(per_client: usize, client_queue: usize) -> Arc<Self> {
        Arc::new(Self {
            per_client: per_client.max(1),
            client_queue,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// One of `client`'s slots: at once when one is free, else after the checks before it
    /// (at most `client_queue` of them wait, for at most [`CLIENT_WAIT`]); `None` beyond.
    async fn take(self: &Arc<Self>, client: IpAddr) -> Option<Share> {
        let client = crate::client::network(client);
        let slots = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = held.entry(client).or_insert_with(|| ClientSlots {
                slots: Arc::new(tokio::sync::Semaphore::new(self.per_client)),
                seated: 0,
            });
            if entry.seated >= self.per_client + self.client_queue {
                return None;
            }
            entry.seated += 1;
            Arc::clone(&entry.slots)
        };
        let seat = Seat {
            shares: Arc::clone(self),
            client,
        };
        let slot = tokio::time::timeout(CLIENT_WAIT, slots.acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Share {
            _slot: slot,
            _seat: seat,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = held.get_mut(&self.client) {
            entry.seated -= 1;
            if entry.seated == 0 {
                held.remove(&self.client);
            }
        }
    }
}

impl std::fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashing")
            .field("permits", &self.inner.permits)
            .field("queue", &self.inner.queue)
            .field("per_client", &self.inner.shares.per_client)
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

/// How many checks from one client address wait for its slots by default
/// ([`PasswordHashing::per_client_queue`]).
pub const DEFAULT_CLIENT_QUEUE: usize = 4;

static SHARED: LazyLock<PasswordHashing> = LazyLock::new(PasswordHashing::new);

impl Default for PasswordHashing {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHashing {
    /// A new, separate bound: one permit per core, eight waiting callers per permit, one
    /// check per client address, and [`DEFAULT_FLOOR`]. Most applications want
    /// [`shared`](Self::shared) instead.
    pub fn new() -> Self {
        let permits = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::build(
            permits,
            8 * permits,
            (1, DEFAULT_CLIENT_QUEUE),
            DEFAULT_FLOOR,
        )
    }

    /// The process-wide bound (created on first use with [`new`](Self::new)'s settings).
    pub fn shared() -> Self {
        SHARED.clone()
    }

    fn build(
        permits: usize,
        queue: usize,
        (per_client, client_queue): (usize, usize),
        floor: Duration,
    ) -> Self {
        let permits = permits.max(1);
        Self {
            inner: Arc::new(Bound {
                permits,
                queue,
                floor,
                shares: Shares::new(per_client, client_queue),
                jobs: OnceLock::new(),
                gauges: Arc::default(),
            }),
        }
    }

    /// How many hashes may run at once (at least 1).
    #[must_use]
    pub fn permits(self, permits: usize) -> Self {
        let b = &self.inner;
        Self::build(permits, b.queue, b.client_shares(), b.floor)
    }

    /// How many callers may wait for a permit; more get [`PasswordError::Busy`] at once.
    #[must_use]
    pub fn queue(self, queue: usize) -> Self {
        let b = &self.inner;
        Self::build(b.permits, queue, b.client_shares(), b.floor)
    }

    /// How many checks one client address may have waiting or running at once (at least 1,
    /// default 1); more wait for one of them ([`per_client_queue`](Self::per_client_queue)).
    #[must_use]
    pub fn per_client(self, per_client: usize) -> Self {
        let b = &self.inner;
        Self::build(
            b.permits,
            b.queue,
            (per_client, b.shares.client_queue),
            b.floor,
        )
    }

    /// How many more checks from one client address may wait for its
    /// [`per_client`](Self::per_client) slots (default [`DEFAULT_CLIENT_QUEUE`], each for at
    /// most 5 s); more get [`PasswordError::ClientBusy`] (429) at once. Staff behind one
    /// office address logging in together wait a moment instead of being refused.
    #[must_use]
    pub fn per_client_queue(self, client_queue: usize) -> Self {
        let b = &self.inner;
        Self::build(
            b.permits,
            b.queue,
            (b.shares.per_client, client_queue),
            b.floor,
        )
    }

    /// How long a verification takes at least (see [`DEFAULT_FLOOR`] for why).
    #[must_use]
    pub fn floor(self, floor: Duration) -> Self {
        let b = &self.inner;
        Self::build(b.permits, b.queue, b.client_shares(), floor)
    }

    /// How many hashes are running now.
    pub fn running(&self) -> usize {
        self.inner.gauges.running.load(Ordering::SeqCst)
    }

    /// How many hashes wait for a hashing thread now.
    pub fn waiting(&self) -> usize {
        self.inner.gauges.waiting.load(Ordering::SeqCst)
    }

    /// The most hashes that have run at once since this bound was made (never above the
    /// permits: a gauge for metrics and tests).
    pub fn peak_running(&self) -> usize {
        self.inner.gauges.peak.load(Ordering::SeqCst)
    }

    /// Hashes `password` into a PHC string (argon2id, this crate's parameters).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(None, move || hash_blocking(password.as_bytes()))
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
        self.verify_from(None, password, stored).await
    }

    /// [`verify`](Self::verify) for a request from `client`: the check holds one of the
    /// client's [`per_client`](Self::per_client) slots while it waits and runs; when they are
    /// all held it waits for one behind at most
    /// [`per_client_queue`](Self::per_client_queue) others (for at most 5 s), and fails with
    /// [`PasswordError::ClientBusy`] beyond. `None` (no address known) takes no slot.
    pub async fn verify_from(
        &self,
        client: Option<IpAddr>,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verdict, PasswordError> {
        let deadline = tokio::time::Instant::now() + self.inner.floor;
        let share = match client {
            Some(client) => Some(self.inner.shares.take(client).await.ok_or(
                PasswordError::ClientBusy {
                    retry_after: Duration::from_secs(RETRY_AFTER_SECS),
                },
            )?),
            None => None,
        };
        let password = password.to_owned();
        let stored = stored.filter(|s| is_usable(s)).map(str::to_owned);
        let verdict = self
            .run(share, move || verify_blocking(&password, stored.as_deref()))
            .await?;
        tokio::time::sleep_until(deadline).await;
        Ok(verdict)
    }

    /// Runs `work` on a hashing thread, or fails at once with [`PasswordError::Busy`] when
    /// every thread is busy and the queue is full. `share` (a client's slot) is held until
    /// the work is done or skipped, and given back before the answer is sent.
    async fn run<T: Send + 'static>(
        &self,
        share: Option<Share>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |gauges: &Gauges| {
            gauges.waiting.fetch_sub(1, Ordering::SeqCst);
            if tx.is_closed() {
                return; // the caller stopped waiting while this was queued
            }
            let out = {
                let _running = Running::enter(gauges);
                work()
            };
            drop(share);
            let _ = tx.send(out);
        });
        let jobs = self.inner.jobs()?;
        let gauges = &self.inner.gauges;
        gauges.waiting.fetch_add(1, Ordering::SeqCst);
        jobs.try_send(job).map_err(|err| {
            gauges.waiting.fetch_sub(1, Ordering::SeqCst);
            match err {
                TrySendError::Full(_) => PasswordError::Busy {
                    retry_after: Duration::from_secs(RETRY_AFTER_SECS),
                },
                TrySendError::Disconnected(_) => {
                    PasswordError::Failed("the password hashing threads stopped".into())
                }
            }
        })?;
        rx.await
            .map_err(|_| PasswordError::Failed("a password hash panicked".into()))
    }
}

impl Bound {
    fn client_shares(&self) -> (usize, usize) {
        (self.shares.per_client, self.shares.client_queue)
    }

    /// The hashing threads' queue, starting the threads on first use.
    fn jobs(&self) -> Result<&SyncSender<Job>, PasswordError> {
        self.jobs
            .get_or_init(|| {
                let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(self.queue);
                let receiver = Arc::new(Mutex::new(receiver));
                for n in 0..self.permits {
                    let receiver = Arc::clone(&receiver);
                    let gauges = Arc::clone(&self.gauges);
                    std::thread::Builder::new()
                        .name(format!("wxrest-password-{n}"))
                        .spawn(move || hashing_thread(&receiver, &gauges))
                        .map_err(|err| format!("cannot start a password hashing thread: {err}"))?;
                }
                Ok(sender)
            })
            .as_ref()
            .map_err(|err| PasswordError::Failed(err.clone()))
    }
}

/// Runs jobs until the bound (the only sender) is dropped.
fn hashing_thread(receiver: &Mutex<Receiver<Job>>, gauges: &Gauges) {
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panicking job drops its reply sender (its caller gets `Failed`); the thread lives on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(gauges)));
    }
}

/// Counts a running hash in the gauges for as long as it lives (ended before the answer is
/// sent, so a caller that has its answer never sees its own hash as running).
struct Running<'a>(&'a Gauges);

impl<'a> Running<'a> {
    fn enter(gauges: &'a Gauges) -> Self {
        let now = gauges.running.fetch_add(1, Ordering::SeqCst) + 1;
        gauges.peak.fetch_max(now, Ordering::SeqCst);
        Running(gauges)
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

thread_local! {
    /// This hashing thread's argon2 memory (19 MiB with this crate's parameters), allocated
    /// once. Allocating it for every hash, as `Argon2::hash_password_into` does, fragments
    /// malloc's arenas (the blocks are 64-byte aligned): each hash left a hole a little too
    /// small for the next, and 200 concurrent guesses kept 270 MiB on two threads.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 with `context` into `out`, on this thread's memory when the parameters fit in
/// it (this crate's), on a one-off allocation otherwise (Django's 100 MiB, within the limits).
fn argon2_into(
    context: &Argon2,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = context.params().block_count();
    let native = Params::DEFAULT.block_count();
    if blocks > native {
        let mut memory = vec![Block::new(); blocks];
        return context.hash_password_into_with_memory(password, salt, out, &mut memory);
    }
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < native {
            *memory = vec![Block::new(); native];
        }
        context.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let failed = |err: &dyn std::fmt::Display| PasswordError::Failed(err.to_string());
    let params = Params::DEFAULT;
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&Argon2::default(), password, &salt, &mut out).map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}
fn verify_blocking(password: &str, stored: Option<&str>) -> Verdict {
    let verdict = match stored {
        Some(phc) if phc.starts_with('$') => {
            argon2_hash(phc).map(|hash| match argon2_verify(password, &hash) {
                true if is_current(&hash) => Verdict::Match,
                true => Verdict::Outdated,
                false => Verdict::Mismatch,
            })
        }
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

/// Whether `password` matches the argon2 `hash` (any variant and version), compared in
/// constant time.
fn argon2_verify(password: &str, hash: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(hash.algorithm.as_str());
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(hash))
    else {
        return false;
    };
    let mut computed = [0u8; Output::MAX_LENGTH];
    let Some(computed) = computed.get_mut(..expected.len()) else {
        return false;
    };
    let context = Argon2::new(algorithm, version, params);
    argon2_into(&context, password.as_bytes(), salt, computed).is_ok()
        && bool::from(computed.ct_eq(expected.as_bytes()))
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
