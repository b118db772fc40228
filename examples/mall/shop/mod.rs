//! The mall, assembled only from `wxrest`'s public API: configuration from the environment,
//! the database with the crate's and the mall's migrations, tokens, WeChat login (real or the
//! built-in fake), the catalogue, cart and orders, and the HTTP stack around them.

pub mod cart;
pub mod catalog;
pub mod orders;
pub mod payment;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use wxrest::ApiError;
use wxrest::auth::{
    AuthLayer, IsAuthenticated, JwtAuthLayer, JwtConfig, MemoryRevocationStore,
    RedisRevocationStore, RevocationStore, TokenService, token_routes, token_routes_openapi,
};
use wxrest::db::{Db, Dialect};
use wxrest::openapi::{ApiDoc, docs_routes};
use wxrest::pay::{FakeWeChatPay, MAX_NOTIFICATION_BYTES, WxPayClient, WxPayConfig};
use wxrest::throttle::{
    MemoryRateStore, Rate, RateStore, RedisRateStore, ThrottleLayer, UsernameThrottle,
};
use wxrest::user::{UserStore, profile_routes};
use wxrest::viewset::ListCache;
use wxrest::wechat::{FakeWeChat, RedisTokenStore, WxClient, WxConfig};
use wxrest::wechat::{RedisCodeCache, WxLoginService};

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("examples/mall/migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("examples/mall/migrations/postgres");
static MYSQL: sqlx::migrate::Migrator = sqlx::migrate!("examples/mall/migrations/mysql");

/// The secret used when `JWT_SECRET` is unset: development only, loudly.
pub const DEV_JWT_SECRET: &str = "mall-dev-only-secret-do-not-use-in-production";

/// The prefix of every Redis key the mall writes when `REDIS_PREFIX` is unset.
pub const DEFAULT_REDIS_PREFIX: &str = "wxrest:mall:";

/// Everything the mall reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (revocations, the WeChat access_token, login codes), so
    /// several deployments can share one Redis.
    pub redis_prefix: String,
    /// `JWT_SECRET` as set (possibly blank, which `serve` refuses); `None` when unset.
    pub jwt_secret: Option<String>,
    pub wx: Option<WxConfig>,
    /// `MALL_DEV=1`: development mode, the only way to the development defaults (the
    /// development secret, the fake WeChat, the fake WeChat Pay), on every address: loopback
    /// is what a host behind nginx binds, not a development box.
    pub dev_switch: bool,
    /// Deadline for a request head and for an idle kept-alive connection
    /// (`MALL_HEADER_TIMEOUT`, seconds).
    pub header_read_timeout: Duration,
    /// Deadline for a client to take a response once the socket stops taking it
    /// (`MALL_WRITE_TIMEOUT`, seconds).
    pub write_timeout: Duration,
    /// Open connections at most (`MALL_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Open connections at most per client address (`MALL_MAX_CONNECTIONS_PER_IP`; `0` is
    /// off). Not applied behind proxies ([`Config::num_proxies`] > 0): every connection then
    /// comes from the proxy.
    pub max_connections_per_ip: usize,
    /// `/metrics` on the API port, behind `Authorization: Bearer <token>` (`MALL_METRICS_TOKEN`).
    pub metrics_token: Option<String>,
    /// `/metrics` on its own listen address (`MALL_METRICS_BIND`), e.g. `127.0.0.1:9100`.
    pub metrics_bind: Option<String>,
    /// `MALL_ADMIN_PASSWORD`: creates the staff user `admin` at start-up when it does not
    /// exist (an existing `admin` is left as it is); checked by [`check_password`].
    pub admin_password: Option<String>,
    pub seed_demo: bool,
    pub cors_origins: Vec<String>,
    pub body_limit: usize,
    /// Bytes of cached list pages at most (`MALL_LIST_CACHE_BYTES`).
    pub list_cache_bytes: u64,
    /// `MALL_BENCH_ROUTES=1`: `/bench/open` and `/bench/protected` serve the same static JSON,
    /// without and with authentication (for the load script).
    pub bench_routes: bool,
    /// `MALL_ACCESS_LOG=1`: one `info` line per answered request. Off by default, as with
    /// gunicorn (the reverse proxy usually keeps the access log): the line is then at `debug`,
    /// while failures are logged at any setting. Formatting a line per request costs about half
    /// of the trivial route's throughput (BENCHMARKS.md).
    pub access_log: bool,
    /// Anonymous requests per client IP (`MALL_THROTTLE_ANON`).
    pub throttle_anon: Rate,
    /// Requests per user (`MALL_THROTTLE_USER`).
    pub throttle_user: Rate,
    /// Logins (`/auth/wx-login/`, `/auth/token/`) per client (`MALL_THROTTLE_LOGIN`).
    pub throttle_login: Rate,
    /// Proxies in front of the mall that append to `X-Forwarded-For` (`MALL_TRUST_PROXY=N`):
    /// the client is the `N`th address from the right.
    pub num_proxies: usize,
    /// The WeChat Pay merchant (`WXPAY_MCHID`, ... read by [`WxPayConfig::from_env`]); `None`
    /// when `WXPAY_MCHID` is unset: the built-in fake WeChat Pay in development, else payment
    /// is disabled.
    pub pay: Option<WxPayConfig>,
    /// `WXPAY_NOTIFY_URL` for the built-in fake (a real merchant's is in [`Config::pay`]);
    /// default `http://<WXREST_BIND>/pay/wechat/notify/`.
    pub pay_notify_url: Option<String>,
    /// Seconds an order may stay unpaid, from its creation (`MALL_UNPAID_TIMEOUT`).
    pub unpaid_timeout: Duration,
    /// `JWT_ACCESS_LIFETIME`, and the development settings a mini-program client's tests need.
    pub client_testing: ClientTesting,
}

/// The access token lifetime, and what a mini-program client's tests need from a mall in
/// development (read by [`ClientTesting::parse`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTesting {
    /// `JWT_ACCESS_LIFETIME` (seconds): 60 to 86400; with `MALL_DEV=1` from 1, so a client's
    /// refresh can be exercised without waiting a minute. `None`: the crate's default.
    pub access_lifetime: Option<Duration>,
    /// `MALL_FAKE_PAY_BIND` (`MALL_DEV=1` only): the built-in fake WeChat Pay's address, so a
    /// mini-program stand-in can reach its `/fake/request-payment`.
    pub fake_pay_bind: Option<std::net::SocketAddr>,
    /// `MALL_FAKE_PAY_NOTIFY_DELAY` (milliseconds, at most [`MAX_NOTIFY_DELAY_MS`];
    /// `MALL_DEV=1` only): how long after a payment the built-in fake notifies the mall.
    pub fake_pay_notify_delay: Duration,
}

/// The shortest `JWT_ACCESS_LIFETIME` outside development, in seconds (the crate's check).
pub const MIN_ACCESS_LIFETIME_SECS: u64 = 60;
/// The longest `JWT_ACCESS_LIFETIME`, in seconds.
pub const MAX_ACCESS_LIFETIME_SECS: u64 = 24 * 60 * 60;
/// The longest `MALL_FAKE_PAY_NOTIFY_DELAY`, in milliseconds.
pub const MAX_NOTIFY_DELAY_MS: u64 = 60_000;

impl ClientTesting {
    /// Reads `JWT_ACCESS_LIFETIME`, `MALL_FAKE_PAY_BIND` and `MALL_FAKE_PAY_NOTIFY_DELAY` with
    /// `var` (the environment in [`Config::from_env`]); `development` is `MALL_DEV=1`,
    /// `merchant` whether `WXPAY_MCHID` is set (then no fake runs). A malformed or
    /// out-of-range value, or a development setting outside development, is an error naming
    /// the variable.
    pub fn parse(
        development: bool,
        merchant: bool,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let whole = |name: &str| -> Result<Option<u64>, String> {
            var(name)
                .map(|text| {
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{name}: expected a whole number, got {text:?}"))
                })
                .transpose()
        };
        let dev_only = |name: &str| -> Result<(), String> {
            if !development {
                return Err(format!(
                    "{name} is a development setting: it is refused without MALL_DEV=1"
                ));
            }
            if merchant {
                return Err(format!(
                    "{name} configures the built-in fake WeChat Pay, which does not run with \
                     WXPAY_MCHID set"
                ));
            }
            Ok(())
        };
        let min_lifetime = if development {
            1
        } else {
            MIN_ACCESS_LIFETIME_SECS
        };
        let access_lifetime = match whole("JWT_ACCESS_LIFETIME")? {
            None => None,
            Some(secs) if (min_lifetime..=MAX_ACCESS_LIFETIME_SECS).contains(&secs) => {
                Some(Duration::from_secs(secs))
            }
            Some(secs) => {
                return Err(format!(
                    "JWT_ACCESS_LIFETIME: expected {min_lifetime} to {MAX_ACCESS_LIFETIME_SECS} \
                     seconds, got {secs}{}",
                    if development || secs == 0 || secs > MAX_ACCESS_LIFETIME_SECS {
                        ""
                    } else {
                        " (shorter lifetimes only with MALL_DEV=1)"
                    }
                ));
            }
        };
        let fake_pay_bind = match var("MALL_FAKE_PAY_BIND") {
            None => None,
            Some(text) => {
                dev_only("MALL_FAKE_PAY_BIND")?;
                Some(text.trim().parse().map_err(|_| {
                    format!("MALL_FAKE_PAY_BIND: expected an address such as 127.0.0.1:8001, got {text:?}")
                })?)
            }
        };
        let fake_pay_notify_delay = match whole("MALL_FAKE_PAY_NOTIFY_DELAY")? {
            None => Duration::ZERO,
            Some(ms) => {
                dev_only("MALL_FAKE_PAY_NOTIFY_DELAY")?;
                if ms > MAX_NOTIFY_DELAY_MS {
                    return Err(format!(
                        "MALL_FAKE_PAY_NOTIFY_DELAY: expected at most {MAX_NOTIFY_DELAY_MS} ms, got {ms}"
                    ));
                }
                Duration::from_millis(ms)
            }
        };
        Ok(Self {
            access_lifetime,
            fake_pay_bind,
            fake_pay_notify_delay,
        })
    }
}

/// Cached list pages take at most this many bytes unless `MALL_LIST_CACHE_BYTES` says.
pub const DEFAULT_LIST_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Default rates: generous for a mini-program's bursts, strict on password guessing.
pub const DEFAULT_THROTTLE_ANON: &str = "200/min";
/// See [`DEFAULT_THROTTLE_ANON`].
pub const DEFAULT_THROTTLE_USER: &str = "1200/min";
/// See [`DEFAULT_THROTTLE_ANON`].
pub const DEFAULT_THROTTLE_LOGIN: &str = "30/min";

fn rate(var: &str, default: &str) -> Result<Rate, String> {
    let text = env(var).unwrap_or_else(|| default.into());
    text.parse().map_err(|e| format!("{var}: {e}"))
}

fn default_rate(text: &str) -> Rate {
    Rate::parse(text).unwrap_or_else(|e| panic!("built-in default: {e}"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A number from the environment: `default` when unset, a start-up error when malformed.
fn number<T: std::str::FromStr>(var: &str, default: T) -> Result<T, String> {
    match env(var) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{var}: expected a whole number, got {text:?}")),
    }
}

fn flag(var: &str) -> bool {
    env(var).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

impl Config {
    /// Reads `WXREST_BIND`, `DATABASE_URL`, `REDIS_URL`, `REDIS_PREFIX`, `JWT_SECRET`,
    /// `WX_APPID`, `WX_SECRET`, `WX_API_BASE`, `MALL_ADMIN_PASSWORD`, `MALL_SEED_DEMO`,
    /// `CORS_ORIGINS`, `MALL_BODY_LIMIT`, `MALL_BENCH_ROUTES`, `MALL_THROTTLE_ANON`,
    /// `MALL_THROTTLE_USER`, `MALL_THROTTLE_LOGIN` (DRF rates such as `100/min`; a malformed
    /// one is a start-up error), `MALL_TRUST_PROXY`, `MALL_DEV`, `MALL_HEADER_TIMEOUT`,
    /// `MALL_WRITE_TIMEOUT`, `MALL_MAX_CONNECTIONS`, `MALL_MAX_CONNECTIONS_PER_IP`, the
    /// metrics and WeChat Pay variables, and [`ClientTesting`]'s; a malformed number or a
    /// short `MALL_ADMIN_PASSWORD` is a start-up error.
    pub fn from_env() -> Result<Self, String> {
        let pay = WxPayConfig::from_env().map_err(|e| format!("WeChat Pay configuration: {e}"))?;
        let client_testing = ClientTesting::parse(flag("MALL_DEV"), pay.is_some(), env)?;
        let wx = match env("WX_APPID") {
            None => None,
            Some(_) => {
                Some(WxConfig::from_env().map_err(|e| format!("WeChat configuration: {e}"))?)
            }
        };
        Ok(Self {
            bind: env("WXREST_BIND").unwrap_or_else(|| "127.0.0.1:8000".into()),
            database_url: env("DATABASE_URL").unwrap_or_else(|| "sqlite://mall.db".into()),
            redis_url: env("REDIS_URL"),
            redis_prefix: env("REDIS_PREFIX").unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into()),
            jwt_secret: std::env::var("JWT_SECRET").ok(),
            wx,
            dev_switch: flag("MALL_DEV"),
            header_read_timeout: Duration::from_secs(number(
                "MALL_HEADER_TIMEOUT",
                wxrest::server::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
            )?),
            write_timeout: Duration::from_secs(number(
                "MALL_WRITE_TIMEOUT",
                wxrest::server::DEFAULT_WRITE_TIMEOUT.as_secs(),
            )?),
            max_connections: number(
                "MALL_MAX_CONNECTIONS",
                wxrest::server::DEFAULT_MAX_CONNECTIONS,
            )?,
            max_connections_per_ip: number(
                "MALL_MAX_CONNECTIONS_PER_IP",
                wxrest::server::DEFAULT_MAX_CONNECTIONS_PER_PEER,
            )?,
            metrics_token: env("MALL_METRICS_TOKEN"),
            metrics_bind: env("MALL_METRICS_BIND"),
            admin_password: match env("MALL_ADMIN_PASSWORD") {
                Some(password) => Some(
                    check_password(&password)
                        .map_err(|e| format!("MALL_ADMIN_PASSWORD: {e}"))?
                        .to_owned(),
                ),
                None => None,
            },
            seed_demo: env("MALL_SEED_DEMO").is_some_and(|v| v == "1" || v == "true"),
            cors_origins: env("CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            body_limit: number("MALL_BODY_LIMIT", 1024 * 1024)?,
            list_cache_bytes: number("MALL_LIST_CACHE_BYTES", DEFAULT_LIST_CACHE_BYTES)?,
            bench_routes: env("MALL_BENCH_ROUTES").is_some_and(|v| v == "1"),
            access_log: env("MALL_ACCESS_LOG").is_some_and(|v| v == "1"),
            throttle_anon: rate("MALL_THROTTLE_ANON", DEFAULT_THROTTLE_ANON)?,
            throttle_user: rate("MALL_THROTTLE_USER", DEFAULT_THROTTLE_USER)?,
            throttle_login: rate("MALL_THROTTLE_LOGIN", DEFAULT_THROTTLE_LOGIN)?,
            num_proxies: match env("MALL_TRUST_PROXY").as_deref() {
                Some(v) if v.eq_ignore_ascii_case("true") => 1,
                _ => number("MALL_TRUST_PROXY", 0)?,
            },
            pay,
            pay_notify_url: env("WXPAY_NOTIFY_URL"),
            unpaid_timeout: match number("MALL_UNPAID_TIMEOUT", payment::DEFAULT_UNPAID_TIMEOUT)? {
                0 => return Err("MALL_UNPAID_TIMEOUT: expected at least 1 second".into()),
                secs => Duration::from_secs(secs),
            },
            client_testing,
        })
    }

    /// A configuration for tests: everything default, on `database_url`, in development mode
    /// (the fakes and the development secret, as with `MALL_DEV=1`).
    #[allow(dead_code)] // used by the end-to-end tests, which include this module
    pub fn for_database(database_url: &str) -> Self {
        Self {
            bind: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.into(),
            jwt_secret: Some(DEV_JWT_SECRET.into()),
            wx: None,
            dev_switch: true,
            header_read_timeout: wxrest::server::DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: wxrest::server::DEFAULT_WRITE_TIMEOUT,
            max_connections: wxrest::server::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: wxrest::server::DEFAULT_MAX_CONNECTIONS_PER_PEER,
            metrics_token: None,
            metrics_bind: None,
            admin_password: None,
            seed_demo: false,
            cors_origins: Vec::new(),
            body_limit: 1024 * 1024,
            list_cache_bytes: DEFAULT_LIST_CACHE_BYTES,
            bench_routes: false,
            access_log: false,
            throttle_anon: default_rate(DEFAULT_THROTTLE_ANON),
            throttle_user: default_rate(DEFAULT_THROTTLE_USER),
            throttle_login: default_rate(DEFAULT_THROTTLE_LOGIN),
            num_proxies: 0,
            pay: None,
            pay_notify_url: None,
            unpaid_timeout: Duration::from_secs(payment::DEFAULT_UNPAID_TIMEOUT),
            client_testing: ClientTesting::default(),
        }
    }

    /// Whether development conveniences may run: `MALL_DEV=1`, nothing else (a loopback
    /// `WXREST_BIND` is what a host behind nginx binds).
    pub fn development(&self) -> bool {
        self.dev_switch
    }

    /// The production rule `serve` applies before migrating or binding: a blank `JWT_SECRET`
    /// is always refused; without `JWT_SECRET` or `WX_APPID`, the development secret and the
    /// fake WeChat are allowed only in [`development`](Self::development), on every address.
    pub fn check_production(&self) -> Result<(), String> {
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(
                "JWT_SECRET is set but blank: set it to a random secret of at least \
                        32 bytes (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        }
        if self.development() {
            return Ok(());
        }
        const RULE: &str = "development defaults are used only with MALL_DEV=1, on any address \
             (loopback included: behind a reverse proxy it serves the public)";
        if self.jwt_secret.is_none() {
            return Err(format!(
                "JWT_SECRET is not set: set it to a random secret of at least 32 bytes ({RULE})"
            ));
        }
        if self.wx.is_none() {
            return Err(format!(
                "WX_APPID is not set: set WX_APPID and WX_SECRET to your mini-program's \
                 credentials ({RULE})"
            ));
        }
        Ok(())
    }

    /// The per-address connection bound the server applies: off behind proxies.
    pub fn connections_per_ip(&self) -> usize {
        if self.num_proxies > 0 {
            0
        } else {
            self.max_connections_per_ip
        }
    }

    /// The signing secret: `JWT_SECRET`, or the development secret.
    pub fn signing_secret(&self) -> &str {
        self.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET)
    }
}

/// A running mall's parts.
pub struct Shop {
    pub router: Router,
    pub db: Db,
    /// The built-in fake WeChat when `WX_APPID` is unset (dev mode).
    pub fake: Option<FakeWeChat>,
    /// What the payment routes and the unpaid-order sweeper use
    /// ([`payment::spawn_sweeper`]; `serve` starts it), with the built-in fake WeChat Pay
    /// when `WXPAY_MCHID` is unset in development (dev mode:
    /// `POST {base}/fake/pay/{out_trade_no}` pays an order).
    pub payments: payment::Payments,
}

/// The notify URL the built-in fake WeChat Pay calls: `WXPAY_NOTIFY_URL`, else this server.
fn dev_notify_url(config: &Config) -> String {
    if let Some(url) = &config.pay_notify_url {
        return url.clone();
    }
    let bind = config
        .bind
        .replacen("0.0.0.0:", "127.0.0.1:", 1)
        .replacen("[::]:", "[::1]:", 1);
    format!("http://{bind}/pay/wechat/notify/")
}

/// The shortest staff password `createsuperuser` and `MALL_ADMIN_PASSWORD` accept, in
/// characters.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 8;

/// The one check of a staff password, for `createsuperuser` and `MALL_ADMIN_PASSWORD` alike.
pub fn check_password(password: &str) -> Result<&str, String> {
    if password.chars().count() < MIN_ADMIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {MIN_ADMIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(password)
}

/// `MALL_ADMIN_PASSWORD` at start-up: creates `admin` as a staff superuser when no such user
/// exists, and otherwise leaves it alone, so an operator's later revocation (staff rights
/// taken, account deactivated) or password change survives restarts. Resetting is
/// `mall createsuperuser --username admin`'s job.
async fn create_admin_once(users: &UserStore, password: &str) -> Result<(), wxrest::BackendError> {
    if let Some(admin) = users.get_by_username("admin").await? {
        tracing::info!(
            id = admin.id,
            "MALL_ADMIN_PASSWORD: the user admin exists and is left as it is \
             (`mall createsuperuser --username admin` resets it)"
        );
        return Ok(());
    }
    let admin = users.ensure_admin("admin", password).await?;
    tracing::info!(
        id = admin.id,
        "MALL_ADMIN_PASSWORD: staff user admin created"
    );
    Ok(())
}

/// Connects and migrates (the users table, then the mall's tables, which refer to it).
pub async fn open_database(url: &str) -> Result<Db, wxrest::BackendError> {
    let db = Db::connect(url).await?;
    UserStore::setup(db.clone()).await?;
    let migrator = match db.dialect() {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
        Dialect::MySql => &MYSQL,
    };
    db.migrate_app(migrator, "_mall_migrations").await?;
    Ok(db)
}

/// Builds the whole application.
pub async fn build(config: &Config) -> Result<Shop, Box<dyn std::error::Error + Send + Sync>> {
    build_with(config, Router::new()).await
}

/// Is this request a login (password or WeChat), which gets the stricter throttle scope?
pub fn is_login(parts: &http::request::Parts) -> bool {
    matches!(
        parts.uri.path().trim_end_matches('/'),
        "/auth/wx-login" | "/auth/token"
    )
}

/// Where rate counters live: Redis under `REDIS_PREFIX` when configured, else this process.
fn rate_store(config: &Config) -> Result<Arc<dyn RateStore>, wxrest::BackendError> {
    Ok(match &config.redis_url {
        Some(url) => {
            Arc::new(RedisRateStore::open(url)?.prefix(format!("{}throttle:", config.redis_prefix)))
        }
        None => Arc::new(MemoryRateStore::new()),
    })
}

fn throttle(config: &Config, store: Arc<dyn RateStore>) -> ThrottleLayer {
    ThrottleLayer::new(store)
        .anon(config.throttle_anon)
        .user(config.throttle_user)
        .client_scope("login", config.throttle_login, is_login)
        .num_proxies(config.num_proxies)
}

/// [`build`], with `extra` routes served under the same stack (tests use it to reach the
/// middleware with routes of their own).
pub async fn build_with(
    config: &Config,
    extra: Router,
) -> Result<Shop, Box<dyn std::error::Error + Send + Sync>> {
    let db = open_database(&config.database_url).await?;
    // One revocation store for the tokens and the user store: deactivating a user ends their
    // tokens at once (on every instance with Redis).
    let revocations: Arc<dyn RevocationStore> = match &config.redis_url {
        Some(url) => Arc::new(RedisRevocationStore::open(url)?.prefix(config.redis_prefix.clone())),
        None => Arc::new(MemoryRevocationStore::new()),
    };
    let users = UserStore::new(db.clone()).with_revocations(revocations.clone());
    let mut jwt = JwtConfig::hs256(config.signing_secret())?;
    match config.client_testing.access_lifetime {
        // Development only (ClientTesting::parse refuses it otherwise): shorter than the
        // crate's minimum, which its check would refuse.
        Some(lifetime) if lifetime.as_secs() < MIN_ACCESS_LIFETIME_SECS => {
            jwt = jwt.access_lifetime(lifetime);
        }
        Some(lifetime) => {
            jwt = jwt.access_lifetime(lifetime);
            jwt.check()?;
        }
        None => jwt.check()?,
    }
    let rates = rate_store(config)?;
    let tokens = TokenService::new(jwt)
        .with_store(revocations)
        .with_users(users.clone())
        .with_login_attempts(
            UsernameThrottle::new(rates.clone(), config.throttle_login)
                .num_proxies(config.num_proxies),
        );
    let (client, fake) = match &config.wx {
        Some(wx) => (WxClient::new(wx.clone())?, None),
        None => {
            let fake = FakeWeChat::builder().dev_mode(true).start().await;
            (WxClient::new(fake.config())?, Some(fake))
        }
    };
    let client = match &config.redis_url {
        Some(url) => {
            client.with_token_store(RedisTokenStore::open(url)?.prefix(config.redis_prefix.clone()))
        }
        None => client,
    };
    let mut login = WxLoginService::new(client, users.clone(), tokens.clone());
    if let Some(url) = &config.redis_url {
        login = login.code_cache(RedisCodeCache::open(url)?.prefix(config.redis_prefix.clone()));
    }
    if let Some(password) = &config.admin_password {
        create_admin_once(&users, check_password(password)?).await?;
    }
    if config.seed_demo {
        catalog::seed_demo(&db).await?;
    }
    let doc = ApiDoc::new("wxrest mall", env!("CARGO_PKG_VERSION"))
        .description("The example mall: WeChat login, catalogue, cart and orders.")
        .merge(token_routes_openapi("/auth"));
    let lists = match &config.redis_url {
        Some(url) => ListCache::open(url)?
            .prefix(config.redis_prefix.clone())
            .max_bytes(config.list_cache_bytes),
        None => ListCache::memory(config.list_cache_bytes),
    };
    let (catalog, doc) = catalog::routes(&db, doc, &lists);
    let (cart, doc) = cart::routes(&db, doc, &lists);
    let (pay, pay_fake) = match &config.pay {
        Some(pay) => (Some(WxPayClient::new(pay.clone())?), None),
        None if config.development() => {
            let testing = &config.client_testing;
            let mut fake = FakeWeChatPay::builder()
                .dev_mode(true)
                .notify_delay(testing.fake_pay_notify_delay);
            if let Some(addr) = testing.fake_pay_bind {
                fake = fake.bind(addr);
            }
            let fake = Arc::new(fake.try_start().await.map_err(|e| {
                format!(
                    "the built-in fake WeChat Pay cannot listen on {}: {e}",
                    testing
                        .fake_pay_bind
                        .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string())
                )
            })?);
            let client = WxPayClient::new(fake.config().notify_url(dev_notify_url(config)))?;
            (Some(client), Some(fake))
        }
        None => (None, None),
    };
    let payments = payment::Payments {
        db: db.clone(),
        pay,
        lists: lists.clone(),
        unpaid_timeout: config.unpaid_timeout,
        dev_fake: pay_fake,
    };
    // Before the orders viewset's document: the payment actions' descriptions win.
    let doc = doc.merge(payment::payment_openapi());
    let (orders, doc) = orders::routes(&db, doc, &lists, &payments);
    let api = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready).with_state(db.clone()))
        .nest("/auth", token_routes(tokens.clone()).merge(login.router()))
        .nest("/users", profile_routes(users.clone(), tokens.clone()))
        .merge(catalog)
        .merge(cart)
        .merge(orders)
        .merge(docs_routes(doc.build()))
        .merge(bench_routes(config.bench_routes))
        .merge(extra)
        .fallback(|| async { ApiError::not_found() })
        // After routing (the metrics label requests with the route template), as ONE layer:
        // axum boxes each `Router::layer` call into every route and clones the boxes per
        // request.
        .layer(
            ServiceBuilder::new()
                .layer(telemetry::TrackLayer)
                .layer(cors(&config.cors_origins))
                .layer(JwtAuthLayer::new(tokens.clone()))
                .layer(throttle(config, rates.clone()))
                // A body that trickles in holds a connection: give it a deadline too.
                .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(30)))
                .layer(DefaultBodyLimit::max(config.body_limit)),
        );
    // Before routing, wrapped around the API once: compression, and DRF's JSON for the
    // router's own bodiless 404/405.
    let api = ServiceBuilder::new()
        .layer(CompressionLayer::new().gzip(true))
        .layer(axum::middleware::from_fn(wxrest::fallbacks::drf_fallbacks))
        .service(api);
    // WeChat Pay's notifications: outside the throttle (WeChat Pay sends from few addresses)
    // and the JWT layer (it authenticates by signature), inside the body limit, tracing and
    // panic catching.
    let notify = payment::notify_routes(&payments).layer(
        ServiceBuilder::new()
            .layer(telemetry::TrackLayer)
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(30)))
            .layer(DefaultBodyLimit::max(MAX_NOTIFICATION_BYTES)),
    );
    let router = outer_layers(notify.fallback_service(api), config.access_log);
    // Outside the API's stack: the scraper's bearer token is not a JWT.
    let router = match metrics_on_api_port(config, rates) {
        Some(metrics) => metrics.fallback_service(router),
        None => router,
    };
    Ok(Shop {
        router,
        db,
        fake,
        payments,
    })
}

/// Request ids, panic catching and tracing: around every route but `/metrics`, once.
fn outer_layers(routes: Router, access_log: bool) -> Router {
    let answered = if access_log {
        tracing::Level::INFO
    } else {
        tracing::Level::DEBUG
    };
    let stack = ServiceBuilder::new()
        // Outermost: every response, a panic's included, carries the request id.
        .map_request(telemetry::sanitize_request_id::<axum::body::Body>)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(wxrest::fallbacks::catch_panic())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &http::Request<axum::body::Body>| {
                    // The path only: query strings may carry tokens.
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %telemetry::request_id_of(req),
                        user_id = tracing::field::Empty,
                    )
                })
                .on_response(DefaultOnResponse::new().level(answered)),
        )
        .service(routes);
    Router::new().fallback_service(stack)
}

/// `/metrics` alone, for its own listen address (`MALL_METRICS_BIND`).
pub fn metrics_router() -> Router {
    Router::new().route(
        "/metrics",
        get(telemetry::metrics_view).with_state(telemetry::prometheus()),
    )
}

/// `/metrics` on the API port only with `MALL_METRICS_TOKEN`, and then only for
/// `Authorization: Bearer <token>`: request counts and latencies are not for the public.
/// Every request to it, answered or not, counts against the login rate per client address
/// (`MALL_THROTTLE_LOGIN`; a scraper needs a few a minute), so the token cannot be guessed
/// at speed.
fn metrics_on_api_port(config: &Config, rates: Arc<dyn RateStore>) -> Option<Router> {
    let token = config.metrics_token.as_deref()?;
    let expected = MetricsToken::new(token);
    let throttle = ThrottleLayer::new(rates)
        .client_scope("metrics", config.throttle_login, |_| true)
        .num_proxies(config.num_proxies);
    Some(
        metrics_router().route_layer(ServiceBuilder::new().layer(throttle).layer(
            axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let admitted = expected.admits(req.headers());
                    async move {
                        if admitted {
                            next.run(req).await
                        } else {
                            ApiError::not_found().into_response()
                        }
                    }
                },
            ),
        )),
    )
}

/// The expected `Authorization` value of the metrics scraper, kept as its SHA-256 digest: a
/// guess is compared digest to digest in constant time, so neither its length nor its first
/// differing byte shows in the time the answer takes.
#[derive(Clone)]
struct MetricsToken([u8; 32]);

impl MetricsToken {
    fn new(token: &str) -> Self {
        Self(Sha256::digest(format!("Bearer {token}")).into())
    }

    fn admits(&self, headers: &http::HeaderMap) -> bool {
        let given = headers
            .get(http::header::AUTHORIZATION)
            .map_or(&[][..], |v| v.as_bytes());
        let given: [u8; 32] = Sha256::digest(given).into();
        bool::from(given.ct_eq(&self.0))
    }
}

fn bench_routes(enabled: bool) -> Router {
    if !enabled {
        return Router::new();
    }
    async fn hello() -> Json<serde_json::Value> {
        Json(json!({"hello": "world"}))
    }
    Router::new().route("/bench/open", get(hello)).merge(
        Router::new()
            .route("/bench/protected", get(hello))
            .route_layer(AuthLayer::new().permission(IsAuthenticated)),
    )
}

async fn ready(State(db): State<Db>) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), db.ping()).await {
        Ok(Ok(())) => Ok(Json(json!({"status": "ready"}))),
        _ => Err(ApiError::unavailable()),
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<http::HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ])
        .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}
