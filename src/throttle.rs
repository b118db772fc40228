//! Throttling with the rules of DRF's throttle classes (`AnonRateThrottle`, `UserRateThrottle`
//! and `ScopedRateThrottle`) as one tower layer, counted in fixed windows.
//! Needs feature `throttle` (and `redis` for `RedisRateStore`).
//!
//! Rates are written DRF's way (`"100/min"`, `"5/second"`, `"1000/day"`) and parsed at start-up.
//! Over a limit the client gets DRF's 429:
//! `{"detail": "Request was throttled. Expected available in N seconds.", "code": "throttled"}`
//! with `Retry-After: N`.
//!
//! **Fixed windows, not DRF's sliding history.** DRF keeps each key's request timestamps and
//! refuses while `requests` of them are younger than `period`. This layer keeps one counter per
//! key instead: the key's first hit opens a window of `period`, hits in it are counted, and
//! the count starts over when it ends. It costs one atomic increment per rule (one Redis round
//! trip) instead of a list per client, and a client gets the same rate over time; but around a
//! window's end a client can send up to `2 × requests` within one `period` (the end of one
//! window and the start of the next), which DRF's history would refuse. Choose rates with that
//! in mind.
//!
//! **Headers.** Every response that went through a counting rule carries the fields of the
//! IETF draft *RateLimit header fields for HTTP* (draft-ietf-httpapi-ratelimit-headers), which
//! clients can read before they hit the limit:
//!
//! ```text
//! RateLimit-Policy: "anon";q=100;w=60, "login";q=5;w=60    every rule that counted it
//! RateLimit: "login";r=3;t=41                              the tightest: 3 left, window ends in 41 s
//! ```
//!
//! A 429 carries them too (`r=0`), with `Retry-After` equal to the longest wait of the rules
//! over their limit. When the store fails (fail-open, below) the rule sends no fields.
//!
//! | rule | applies to | keyed by |
//! |---|---|---|
//! | [`anon`](ThrottleLayer::anon) | requests without an [`Identity`] | client IP |
//! | [`user`](ThrottleLayer::user) | every request | user id, or client IP when anonymous |
//! | [`scope`](ThrottleLayer::scope) | requests the scope's predicate selects | user id or client IP |
//! | [`client_scope`](ThrottleLayer::client_scope) | requests the scope's predicate selects | client IP, whatever token is attached |
//! | [`UsernameThrottle`] | failed password checks (through [`TokenService::with_login_attempts`](crate::auth::TokenService::with_login_attempts) and [`BasicAuthenticator::login_attempts`](crate::auth::BasicAuthenticator::login_attempts)) | (username, client IP), username, client IP |
//!
//! Login routes belong in a `client_scope`: counted per user, anyone holding several tokens
//! would get that many times the guesses.
//! The user and scope rules read the [`Identity`] the auth layer inserted, so the throttle
//! layer must run *inside* the auth layer (in axum, `.layer(throttle)` before
//! `.layer(auth)`). The client IP is the socket's peer address
//! (`ConnectInfo<SocketAddr>`: serve with `into_make_service_with_connect_info` or
//! [`Server`]). Behind `N` proxies that append to `X-Forwarded-For`,
//! [`num_proxies(N)`](ThrottleLayer::num_proxies) takes the `N`th address from the right, as
//! DRF's `NUM_PROXIES` does: the entries left of it are the client's own to forge (see
//! [`client_addr`]); an IPv6 client counts by its `/64`. A request
//! with no address counts under the key `unknown`, and the first one logs an error: serve
//! with `into_make_service_with_connect_info::<SocketAddr>()`, or every client shares one key.
//!
//! Counters live in a [`RateStore`]: [`MemoryRateStore`] for one process,
//! [`RedisRateStore`] to share them between instances. When the store fails the layer
//! **fails open**: the request passes and a warning is logged, so a Redis outage degrades
//! throttling instead of taking the API down.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use wxrest::auth::{JwtAuthLayer, JwtConfig};
//! use wxrest::throttle::{MemoryRateStore, ThrottleLayer};
//!
//! # fn main() -> Result<(), wxrest::throttle::RateError> {
//! let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
//! let throttle = ThrottleLayer::new(MemoryRateStore::new())
//!     .anon("100/min".parse()?)
//!     .user("600/min".parse()?)
//!     .scope("login", "5/min".parse()?, |parts| parts.uri.path().starts_with("/auth/"));
//! let app: Router = Router::new()
//!     .route("/goods", get(|| async { "goods" }))
//!     .route("/auth/token/", post(|| async { "token" }))
//!     .layer(throttle)                 // inside ...
//!     .layer(JwtAuthLayer::new(jwt));  // ... the auth layer
//! # Ok(()) }
//! ```
//!
#![cfg_attr(feature = "server", doc = "[`Server`]: crate::server::Server")]
#![cfg_attr(not(feature = "server"), doc = "[`Server`]: crate")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisRateStore`]: crate")]

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use tower::Layer;

use crate::auth::{AuthError, Identity, Login};
use crate::client::{client_addr, network};
use crate::error::{ApiError, BackendError};
use crate::gate::{Decide, Decision, Gate, ResponseHeaders};

/// A number of requests per period, parsed from DRF's notation.
///
/// The period is the first letter of the unit, as in DRF: `s`/`sec`/`second`, `m`/`min`/`minute`,
/// `h`/`hour`, `d`/`day`.
///
/// ```
/// use std::time::Duration;
/// use wxrest::throttle::Rate;
///
/// let rate: Rate = "100/min".parse().unwrap();
/// assert_eq!((rate.requests(), rate.period()), (100, Duration::from_secs(60)));
/// assert!("100/fortnight".parse::<Rate>().is_err());
/// assert!("many/day".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    requests: u64,
    period: Duration,
}

/// A rate that could not be parsed; a start-up error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid throttle rate {0:?}: expected N/second, N/minute, N/hour or N/day")]
pub struct RateError(String);

impl Rate {
    /// `requests` per `period`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rate = wxrest::throttle::Rate::new(5, Duration::from_secs(1));
    /// assert_eq!(rate, "5/second".parse().unwrap());
    /// ```
    pub fn new(requests: u64, period: Duration) -> Self {
        Self { requests, period }
    }

    /// Parses DRF's notation (same as [`FromStr`]).
    pub fn parse(text: &str) -> Result<Self, RateError> {
        text.parse()
    }

    /// Requests allowed per period.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || RateError(text.to_owned());
        let (num, unit) = text.trim().split_once('/').ok_or_else(err)?;
        let requests: u64 = num.trim().parse().map_err(|_| err())?;
        let unit = unit.trim().to_ascii_lowercase();
        let seconds = match unit.as_str() {
            "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(err()),
        };
        Ok(Self::new(requests, Duration::from_secs(seconds)))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.requests, self.period.as_secs())
    }
}

/// The counter after one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Time until the window ends and the count starts again.
    pub resets_in: Duration,
}

/// Where the counters live. Windows are fixed and start at a key's first hit: the first hit
/// opens a window of `period`, every hit in it increments the count, and the key starts over
/// after the window ends.
///
/// Implement it for another backend (one atomic increment per hit):
///
/// ```
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use wxrest::BackendError;
/// use wxrest::throttle::{Hit, MemoryRateStore, RateStore, ThrottleLayer};
///
/// /// Counts every hit in memory and logs it.
/// struct Logged(MemoryRateStore);
///
/// #[async_trait]
/// impl RateStore for Logged {
///     async fn hit(&self, key: &str, period: Duration) -> Result<Hit, BackendError> {
///         let hit = self.0.hit(key, period).await?;
///         tracing::debug!(key, count = hit.count, "throttle hit");
///         Ok(hit)
///     }
///
///     async fn peek(&self, key: &str) -> Result<Option<Hit>, BackendError> {
///         self.0.peek(key).await
///     }
/// }
///
/// let layer = ThrottleLayer::new(Logged(MemoryRateStore::new())).anon("60/min".parse().unwrap());
/// # let _ = layer;
/// ```
#[async_trait]
pub trait RateStore: Send + Sync + 'static {
    /// Counts one hit of `key` in its window of `period`, atomically.
    async fn hit(&self, key: &str, period: Duration) -> Result<Hit, BackendError>;

    /// The current window of `key` without counting a hit: `None` when it has none (never hit,
    /// or its window ended). The login lock-out reads its failure counters with it before a
    /// password is checked, and counts only failures.
    async fn peek(&self, key: &str) -> Result<Option<Hit>, BackendError>;

    /// The same hit counted without waiting, when this store can (counters in memory);
    /// `None` (the default) sends it to [`hit`](Self::hit). The throttle layer decides a
    /// request without any allocation beyond its keys when every hit is counted here.
    fn hit_now(&self, key: &str, period: Duration) -> Option<Result<Hit, BackendError>> {
        let _ = (key, period);
        None
    }
}

/// A shared store (`Arc<dyn RateStore>` or `Arc<S>`) is a store too: hand clones of one to the
/// layer and the [`UsernameThrottle`].
#[async_trait]
impl<S: RateStore + ?Sized> RateStore for Arc<S> {
    async fn hit(&self, key: &str, period: Duration) -> Result<Hit, BackendError> {
        (**self).hit(key, period).await
    }

    async fn peek(&self, key: &str) -> Result<Option<Hit>, BackendError> {
        (**self).peek(key).await
    }

    fn hit_now(&self, key: &str, period: Duration) -> Option<Result<Hit, BackendError>> {
        (**self).hit_now(key, period)
    }
}

/// One key's window: fixed at its first hit, counted atomically.
struct Window {
    started: Instant,
    period: Duration,
    count: AtomicU64,
}

impl Window {
    fn live(&self, now: Instant) -> bool {
        self.started + self.period > now
    }

    fn resets_in(&self, now: Instant) -> Duration {
        (self.started + self.period).saturating_duration_since(now)
    }
}

struct UntilWindowEnds;

impl moka::Expiry<String, Arc<Window>> for UntilWindowEnds {
    fn expire_after_create(
        &self,
        _key: &String,
        w: &Arc<Window>,
        now: Instant,
    ) -> Option<Duration> {
        Some(w.resets_in(now))
    }

    /// A key's next window (its first hit after the last ended) expires with itself.
    fn expire_after_update(
        &self,
        _key: &String,
        w: &Arc<Window>,
        now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(w.resets_in(now))
    }
}

/// Counters in this process (a `moka` cache whose entries expire with their windows).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use wxrest::throttle::{MemoryRateStore, RateStore};
///
/// let store = MemoryRateStore::new();
/// assert_eq!(store.hit("ip:10.0.0.1", Duration::from_secs(60)).await.unwrap().count, 1);
/// assert_eq!(store.hit("ip:10.0.0.1", Duration::from_secs(60)).await.unwrap().count, 2);
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryRateStore {
    windows: moka::sync::Cache<String, Arc<Window>>,
}

impl Default for MemoryRateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateStore {
    /// An empty store holding at most a million keys.
    pub fn new() -> Self {
        Self {
            windows: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .expire_after(UntilWindowEnds)
                .build(),
        }
    }
}

#[async_trait]
impl RateStore for MemoryRateStore {
    async fn hit(&self, key: &str, period: Duration) -> Result<Hit, BackendError> {
        Ok(self.count(key, period))
    }

    async fn peek(&self, key: &str) -> Result<Option<Hit>, BackendError> {
        let now = Instant::now();
        Ok(self
            .windows
            .get(key)
            .filter(|window| window.live(now))
            .map(|window| Hit {
                count: window.count.load(Ordering::Relaxed),
                resets_in: window.resets_in(now),
            }))
    }

    fn hit_now(&self, key: &str, period: Duration) -> Option<Result<Hit, BackendError>> {
        Some(Ok(self.count(key, period)))
    }
}

impl MemoryRateStore {
    /// A hit on a live window is a read and an atomic increment; only a key's first hit in a
    /// window writes to the cache (atomically per key: concurrent first hits share one window).
    fn count(&self, key: &str, period: Duration) -> Hit {
        let now = Instant::now();
        let window = match self.windows.get(key) {
            Some(window) if window.live(now) => window,
            _ => self
                .windows
                .entry_by_ref(key)
                .and_upsert_with(|old| match old.map(|e| e.into_value()) {
                    Some(window) if window.live(now) => window,
                    _ => Arc::new(Window {
                        started: now,
                        period,
                        count: AtomicU64::new(0),
                    }),
                })
                .into_value(),
        };
        let count = window.count.fetch_add(1, Ordering::Relaxed) + 1;
        Hit {
            count,
            resets_in: window.resets_in(now),
        }
    }
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use crate::redis_conn::{Keyspace, keyspace_constructors};

    /// INCR, open the window on the first hit, and read its remaining time: one atomic round trip.
    const HIT_SCRIPT: &str = r"
    local count = redis.call('INCR', KEYS[1])
    local ttl = redis.call('PTTL', KEYS[1])
    if count == 1 or ttl < 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    return {count, ttl}
    ";

    /// A key's count and remaining time without counting: `{0, 0}` when it has no window.
    const PEEK_SCRIPT: &str = r"
    local count = redis.call('GET', KEYS[1])
    if not count then
      return {0, 0}
    end
    return {tonumber(count), redis.call('PTTL', KEYS[1])}
    ";

    /// Counters in Redis, shared by every instance: one Lua script per hit (`INCR` + `PEXPIRE` +
    /// `PTTL`, atomic), keys `{prefix}{key}` (default prefix `wxrest:throttle:`). While Redis is
    /// down hits fail, and the throttle layer lets requests through.
    ///
    /// ```no_run
    /// use wxrest::throttle::{RedisRateStore, ThrottleLayer};
    /// let store = RedisRateStore::open("redis://127.0.0.1:6379").unwrap().prefix("shop:throttle:");
    /// let layer = ThrottleLayer::new(store).anon("100/min".parse().unwrap());
    /// # let _ = layer;
    /// ```
    #[derive(Clone, Debug)]
    pub struct RedisRateStore {
        redis: Keyspace,
        script: Arc<redis::Script>,
        peek: Arc<redis::Script>,
    }

    impl RedisRateStore {
        keyspace_constructors!(timeout: 1 s, prefix: "wxrest:throttle:");

        fn on(redis: Keyspace) -> Self {
            Self {
                redis,
                script: Arc::new(redis::Script::new(HIT_SCRIPT)),
                peek: Arc::new(redis::Script::new(PEEK_SCRIPT)),
            }
        }
    }

    #[async_trait]
    impl RateStore for RedisRateStore {
        async fn hit(&self, key: &str, period: Duration) -> Result<Hit, BackendError> {
            let (count, ttl): (u64, i64) = self
                .script
                .key(self.redis.key(key))
                .arg(crate::redis_conn::millis(period))
                .invoke_async(&mut self.redis.conn())
                .await?;
            Ok(Hit {
                count,
                resets_in: Duration::from_millis(ttl.max(0).unsigned_abs()),
            })
        }

        async fn peek(&self, key: &str) -> Result<Option<Hit>, BackendError> {
            let (count, ttl): (u64, i64) = self
                .peek
                .key(self.redis.key(key))
                .invoke_async(&mut self.redis.conn())
                .await?;
            Ok((count > 0 && ttl > 0).then(|| Hit {
                count,
                resets_in: Duration::from_millis(ttl.unsigned_abs()),
            }))
        }
    }
}
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisRateStore;

/// The lock-out on password guessing (django-axes' role), for the token view and the Basic
/// authenticator: counts **failed** password checks, and refuses further attempts (429
/// `throttled` with `Retry-After`, before any password is hashed) once one of its counters
/// is over its limit, until that counter's window ends.
///
/// | counter | default limit | stops |
/// |---|---|---|
/// | failures per (username, client address) | `rate` | one client guessing one account |
/// | failures per username, any address | 10 × `rate` ([`per_username`](Self::per_username)) | guessing one account from many addresses |
/// | failures per client address, any username | 10 × `rate` ([`per_client`](Self::per_client)) | one client trying many accounts |
///
/// django-axes locks out by (username, address) and by username alone
/// (`AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]`); so does
/// this. Why not per username alone at a low limit: anyone who knows an account's name could
/// lock its owner out with `rate + 1` wrong guesses. Counted per (username, address), the
/// guesser locks out only themself, and the owner, from another address, logs in; the much
/// higher per-username ceiling still stops a guess spread over many addresses, at the price
/// that such a spread can lock the account out for a window. Correct passwords are never
/// counted, so an owner is refused only while a counter of theirs is over its limit.
///
/// Usernames are counted exactly as sent (the user store's lookups are exact, so a username
/// that differs from an account's by trailing spaces or case is not that account), by their
/// SHA-256 so huge usernames cannot grow the keys; clients by their [`network`] (an IPv6
/// client's `/64`). Counters live in the store with their windows (the memory store holds at
/// most a million keys, Redis keys expire): what a client can make us keep is bounded.
/// A store failure lets the login through, with a warning.
///
/// ```
/// use std::sync::Arc;
/// use wxrest::auth::{BasicAuthenticator, JwtConfig, TokenService};
/// use wxrest::throttle::{MemoryRateStore, UsernameThrottle};
/// # use async_trait::async_trait;
/// # use wxrest::{BackendError, auth::{AuthUser, UserLookup}};
/// # struct Nobody;
/// # #[async_trait]
/// # impl UserLookup for Nobody {
/// #   async fn by_id(&self, _: i64) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
/// #   async fn by_username(&self, _: &str) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
/// #   async fn verify_password(&self, _: &str, _: &str) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
/// #   async fn bump_token_version(&self, _: i64) -> Result<Option<i64>, BackendError> { Ok(None) }
/// # }
///
/// let lockout = Arc::new(
///     UsernameThrottle::new(MemoryRateStore::new(), "10/hour".parse().unwrap()).num_proxies(1),
/// );
/// let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
/// let tokens = TokenService::new(jwt).with_login_attempts(lockout.clone());
/// let basic = BasicAuthenticator::new(Nobody).login_attempts(lockout);
/// # let _ = (tokens, basic);
/// ```
#[derive(Clone)]
pub struct UsernameThrottle {
    store: Arc<dyn RateStore>,
    rate: Rate,
    per_username: Rate,
    per_client: Rate,
    num_proxies: usize,
}

impl fmt::Debug for UsernameThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsernameThrottle")
            .field("rate", &self.rate.to_string())
            .field("per_username", &self.per_username.to_string())
            .field("per_client", &self.per_client.to_string())
            .field("num_proxies", &self.num_proxies)
            .finish_non_exhaustive()
    }
}

/// How many times `rate` the per-username and per-client ceilings are by default.
const CEILING_FACTOR: u64 = 10;

impl UsernameThrottle {
    /// `rate` failed password checks per (username, client address), and ten times that per
    /// username and per client address; counted in `store` (an `Arc` of a store to share it
    /// with the [`ThrottleLayer`]).
    pub fn new(store: impl RateStore, rate: Rate) -> Self {
        let ceiling = Rate::new(rate.requests.saturating_mul(CEILING_FACTOR), rate.period);
        Self {
            store: Arc::new(store),
            rate,
            per_username: ceiling,
            per_client: ceiling,
            num_proxies: 0,
        }
    }

    /// Failed checks per username from all addresses together (default 10 × `rate`).
    #[must_use]
    pub fn per_username(mut self, rate: Rate) -> Self {
        self.per_username = rate;
        self
    }

    /// Failed checks per client address over all usernames (default 10 × `rate`).
    #[must_use]
    pub fn per_client(mut self, rate: Rate) -> Self {
        self.per_client = rate;
        self
    }

    /// Behind `n` proxies that append to `X-Forwarded-For` (as
    /// [`ThrottleLayer::num_proxies`]); the client it finds is also the one whose share of the
    /// password hashing bound a login uses.
    #[must_use]
    pub fn num_proxies(mut self, n: usize) -> Self {
        self.num_proxies = n;
        self
    }

    /// The three counters' keys for `login`, with their rates.
    fn counters(&self, login: &Login<'_>) -> [(String, Rate); 3] {
        use sha2::Digest;
        let mut user = String::with_capacity(64);
        for byte in sha2::Sha256::digest(login.username.as_bytes()) {
            let _ = write!(user, "{byte:02x}");
        }
        let client = Who::Client(login.client.map(network));
        [
            (format!("login-failed:{user}:{client}"), self.rate),
            (format!("login-failed:{user}"), self.per_username),
            (format!("login-failed:{client}"), self.per_client),
        ]
    }
}

#[async_trait]
impl crate::auth::LoginAttempts for UsernameThrottle {
    fn client(&self, parts: &Parts) -> Option<IpAddr> {
        client_addr(parts, self.num_proxies)
    }

    async fn attempt(&self, login: &Login<'_>) -> Result<(), AuthError> {
        let mut wait: Option<Duration> = None;
        for (key, rate) in self.counters(login) {
            match self.store.peek(&key).await {
                Ok(Some(hit)) if hit.count >= rate.requests => {
                    wait = Some(wait.map_or(hit.resets_in, |w| w.max(hit.resets_in)));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "throttle store failed; letting the login through");
                }
            }
        }
        match wait {
            Some(retry_after) => Err(AuthError::Throttled { retry_after }),
            None => Ok(()),
        }
    }

    async fn failed(&self, login: &Login<'_>) {
        for (key, rate) in self.counters(login) {
            if let Err(err) = self.store.hit(&key, rate.period).await {
                tracing::warn!(error = %err, "throttle store failed; a failed login was not counted");
            }
        }
    }
}

type Predicate = dyn Fn(&Parts) -> bool + Send + Sync;

#[derive(Clone)]
enum Applies {
    Anonymous,
    Everyone,
    Matching(Arc<Predicate>),
}

/// Whom a rule counts: the user when there is one (DRF's default), or always the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Per {
    UserOrClient,
    Client,
}

#[derive(Clone)]
struct Rule {
    name: Arc<str>,
    rate: Rate,
    applies: Applies,
    per: Per,
}

#[derive(Clone)]
struct Config {
    store: Arc<dyn RateStore>,
    rules: Vec<Rule>,
    num_proxies: usize,
}

/// The layer: DRF's throttle classes in order; the first rule over its limit answers 429.
/// Cheap to clone.
#[derive(Clone)]
pub struct ThrottleLayer {
    config: Arc<Config>,
}

impl fmt::Debug for ThrottleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self
            .config
            .rules
            .iter()
            .map(|r| format!("{}={}", r.name, r.rate))
            .collect();
        f.debug_struct("ThrottleLayer")
            .field("rules", &rules)
            .field("num_proxies", &self.config.num_proxies)
            .finish()
    }
}

impl ThrottleLayer {
    /// No rules yet, counters in `store` (an `Arc` of a store to share it).
    pub fn new(store: impl RateStore) -> Self {
        Self {
            config: Arc::new(Config {
                store: Arc::new(store),
                rules: Vec::new(),
                num_proxies: 0,
            }),
        }
    }

    /// A rule for the requests `applies` selects.
    fn matching(self, name: &str, rate: Rate, applies: Arc<Predicate>, per: Per) -> Self {
        self.rule(name, rate, Applies::Matching(applies), per)
    }

    fn rule(mut self, name: &str, rate: Rate, applies: Applies, per: Per) -> Self {
        Arc::make_mut(&mut self.config).rules.push(Rule {
            name: Arc::from(name),
            rate,
            applies,
            per,
        });
        self
    }

    /// DRF's `AnonRateThrottle`: anonymous requests, per client IP.
    #[must_use]
    pub fn anon(self, rate: Rate) -> Self {
        self.rule("anon", rate, Applies::Anonymous, Per::UserOrClient)
    }

    /// DRF's `UserRateThrottle`: per user id, anonymous requests per client IP.
    #[must_use]
    pub fn user(self, rate: Rate) -> Self {
        self.rule("user", rate, Applies::Everyone, Per::UserOrClient)
    }

    /// DRF's `ScopedRateThrottle`: requests `applies` selects count against their own `rate`
    /// under `name`, per user id or client IP, besides the other rules.
    #[must_use]
    pub fn scope(
        self,
        name: &str,
        rate: Rate,
        applies: impl Fn(&Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.matching(name, rate, Arc::new(applies), Per::UserOrClient)
    }

    /// A scope counted per client address whatever token the request carries: for logins,
    /// where counting per user would give a client holding `k` tokens `k` times the rate.
    ///
    /// ```
    /// use wxrest::throttle::{MemoryRateStore, ThrottleLayer};
    /// let layer = ThrottleLayer::new(MemoryRateStore::new())
    ///     .client_scope("login", "5/min".parse().unwrap(), |parts| parts.uri.path().starts_with("/auth/token"));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn client_scope(
        self,
        name: &str,
        rate: Rate,
        applies: impl Fn(&Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.matching(name, rate, Arc::new(applies), Per::Client)
    }

    /// Behind `n` proxies that each append the address they saw to `X-Forwarded-For`: the
    /// client is the `n`th address from the right (DRF's `NUM_PROXIES`). `0` (the default)
    /// ignores the header and uses the socket's peer. Set it only to the number of proxies
    /// you run: any more and clients pick their own key.
    #[must_use]
    pub fn num_proxies(mut self, n: usize) -> Self {
        Arc::make_mut(&mut self.config).num_proxies = n;
        self
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = Gate<ThrottleLayer, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate::new(self.clone(), inner)
    }
}

/// Every applicable counter is hit, as DRF checks every throttle class; the first rule over
/// its limit answers 429 (with the longest wait). Decided at once when the store counts in
/// memory; store failures let the request through. The response carries the `RateLimit`
/// fields of the rules that counted it (see the module docs).
impl Decide for ThrottleLayer {
    fn decide(&self, parts: Parts) -> Decision {
        thread_local! {
            /// The key being counted: written in place, no allocation per request.
            static KEY: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let store = &self.config.store;
        let mut tally = Tally::default();
        // Keys for a store that must be waited for, from its first `None` on.
        let mut later: Option<Vec<(String, Rule)>> = None;
        self.config.each_rule(&parts, |rule, who| {
            KEY.with_borrow_mut(|key| {
                key.clear();
                let _ = write!(key, "{}:{who}", rule.name);
                if let Some(keys) = &mut later {
                    keys.push((key.clone(), rule.clone()));
                    return;
                }
                match store.hit_now(key, rule.rate.period) {
                    Some(hit) => tally.count(hit, rule),
                    None => later = Some(vec![(key.clone(), rule.clone())]),
                }
            });
        });
        let Some(keys) = later else {
            return Decision::Ready(tally.verdict(parts));
        };
        let store = store.clone();
        Decision::Later(Box::pin(async move {
            for (key, rule) in &keys {
                tally.count(store.hit(key, rule.rate.period).await, rule);
            }
            tally.verdict(parts)
        }))
    }
}

/// What the counters of one request said: the longest wait of a rule over its limit, the
/// rule with the fewest requests left (the `RateLimit` field), and every counted rule's policy
/// (the `RateLimit-Policy` field).
#[derive(Default)]
struct Tally {
    wait: Option<Duration>,
    tightest: Option<(Arc<str>, u64, Duration)>,
    policy: String,
}

impl Tally {
    /// Adds one rule's hit.
    fn count(&mut self, hit: Result<Hit, BackendError>, rule: &Rule) {
        let hit = match hit {
            Ok(hit) => hit,
            Err(err) => {
                tracing::warn!(error = %err, "throttle store failed; letting the request through");
                return;
            }
        };
        if hit.count > rule.rate.requests {
            self.wait = Some(self.wait.map_or(hit.resets_in, |w| w.max(hit.resets_in)));
        }
        let remaining = rule.rate.requests.saturating_sub(hit.count);
        let tighter = match &self.tightest {
            None => true,
            Some((_, r, t)) => remaining < *r || (remaining == *r && hit.resets_in > *t),
        };
        if tighter {
            self.tightest = Some((rule.name.clone(), remaining, hit.resets_in));
        }
        if !self.policy.is_empty() {
            self.policy.push_str(", ");
        }
        let _ = write!(
            self.policy,
            "\"{}\";q={};w={}",
            rule.name,
            rule.rate.requests,
            rule.rate.period.as_secs()
        );
    }

    /// The head to go on with (the `RateLimit` fields for its response in its extensions), or
    /// the 429 (with them).
    fn verdict(self, mut parts: Parts) -> Result<Parts, ApiError> {
        let Some((name, remaining, resets_in)) = self.tightest else {
            return match self.wait {
                None => Ok(parts),
                Some(wait) => Err(throttled(wait)),
            };
        };
        let limit = format!("\"{name}\";r={remaining};t={}", whole_seconds(resets_in));
        let fields = [
            (RATELIMIT, HeaderValue::try_from(limit)),
            (RATELIMIT_POLICY, HeaderValue::try_from(self.policy)),
        ];
        match self.wait {
            None => {
                let mut headers = HeaderMap::with_capacity(2);
                for (name, value) in fields {
                    if let Ok(value) = value {
                        headers.insert(name, value);
                    }
                }
                parts.extensions.insert(ResponseHeaders(headers));
                Ok(parts)
            }
            Some(wait) => Err(fields
                .into_iter()
                .fold(throttled(wait), |err, (name, value)| match value {
                    Ok(value) => err.with_header(name, value),
                    Err(_) => err,
                })),
        }
    }
}

/// The `RateLimit` field (draft-ietf-httpapi-ratelimit-headers): the tightest counted rule,
/// `"<rule>";r=<requests left>;t=<seconds until its window ends>`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The `RateLimit-Policy` field (draft-ietf-httpapi-ratelimit-headers): every rule that counted
/// the request, `"<rule>";q=<requests>;w=<window in seconds>`, comma-separated.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Seconds, rounded up (a client waiting this long finds the window over), at least 1.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl Config {
    /// Calls `f` with each rule that applies to this request and whom it counts.
    fn each_rule(&self, parts: &Parts, mut f: impl FnMut(&Rule, Who)) {
        let user = parts.extensions.get::<Identity>().map(|i| i.user_id);
        let mut client = None;
        for rule in &self.rules {
            let applies = match &rule.applies {
                Applies::Anonymous => user.is_none(),
                Applies::Everyone => true,
                Applies::Matching(p) => p(parts),
            };
            if applies {
                let who =
                    match (user, rule.per) {
                        (Some(id), Per::UserOrClient) => Who::User(id),
                        _ => Who::Client(*client.get_or_insert_with(|| {
                            client_addr(parts, self.num_proxies).map(network)
                        })),
                    };
                f(rule, who);
            }
        }
    }
}

/// Whom a rule counts a request against; its key is `{rule}:user:{id}` or `{rule}:ip:{addr}`
/// (the client's [`network`]: an IPv6 client's `/64`; `ip:unknown` without an address).
#[derive(Clone, Copy)]
enum Who {
    User(i64),
    Client(Option<IpAddr>),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::User(id) => write!(f, "user:{id}"),
            Who::Client(Some(ip)) => write!(f, "ip:{ip}"),
            Who::Client(None) => f.write_str("ip:unknown"),
        }
    }
}

/// DRF's 429: `Request was throttled. Expected available in N seconds.` and `Retry-After: N`
/// (the same as [`ApiError::throttled`]).
///
/// ```
/// use std::time::Duration;
/// let err = wxrest::throttle::throttled(Duration::from_millis(2500));
/// assert_eq!(err.status(), 429);
/// assert_eq!(err.detail(), Some("Request was throttled. Expected available in 3 seconds."));
/// ```
pub fn throttled(wait: Duration) -> ApiError {
    ApiError::throttled(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_drf_notation() {
        for (text, n, secs) in [
            ("100/min", 100, 60),
            ("5/second", 5, 1),
            ("1000/day", 1000, 86_400),
            ("3/h", 3, 3600),
            (" 7 / Minute ", 7, 60),
        ] {
            assert_eq!(
                text.parse::<Rate>().unwrap(),
                Rate::new(n, Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "100", "/min", "-1/min", "1.5/min", "10/week", "10/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(
            throttled(Duration::from_millis(1)).detail(),
            Some("Request was throttled. Expected available in 1 second.")
        );
        assert_eq!(
            throttled(Duration::from_secs(59)).detail(),
            Some("Request was throttled. Expected available in 59 seconds.")
        );
    }
}
