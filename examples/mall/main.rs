//! The example mall: `cargo run --example mall` serves it on http://127.0.0.1:8000 with a
//! SQLite file `mall.db` in development mode (`MALL_DEV=1`, which the repository's
//! `.cargo/config.toml` sets for cargo's commands only): without `WX_APPID`, the built-in fake
//! WeChat (any code `X` logs in as openid `fake-openid-X`; codes starting with `bad` are
//! refused). The built binary, run without `MALL_DEV=1`, refuses to start without
//! `JWT_SECRET` and `WX_APPID`.
//!
//! ```text
//! mall [serve] [--seed-demo]      serve the API (default)
//! mall migrate                    apply migrations and exit
//! mall createsuperuser --username NAME   (password from MALL_ADMIN_PASSWORD or stdin)
//! mall seed-demo                  fill an empty catalogue with demo goods
//! ```

mod shop;

use std::io::BufRead;
use std::process::ExitCode;

const USAGE: &str = "usage: mall [serve [--seed-demo] | migrate | createsuperuser --username NAME | seed-demo] [--help]

Configuration (environment):
  WXREST_BIND          listen address (127.0.0.1:8000)
  DATABASE_URL         sqlite://mall.db | postgres://... | mysql://...
  REDIS_URL            optional; shares revocations, the WeChat token and login codes between instances
  REDIS_PREFIX         prefix of every Redis key (wxrest:mall:)
  JWT_SECRET           at least 32 bytes; required on every address (loopback too) unless
                       MALL_DEV=1 (then a published development secret is used); a blank value
                       is always refused
  WX_APPID, WX_SECRET  WeChat credentials; required on every address unless MALL_DEV=1 (then the
                       built-in fake WeChat runs)
  MALL_DEV=1           development mode: the development defaults above and below, on any
                       address (never in production; `cargo run --example mall` sets it through
                       .cargo/config.toml, the built binary does not)
  WX_API_BASE          WeChat API base URL (https://api.weixin.qq.com)
  MALL_ADMIN_PASSWORD  creates the staff user `admin` at start-up if it does not exist (at least
                       8 characters); an existing `admin` is left as it is
  MALL_SEED_DEMO=1     fills an empty catalogue with demo goods at start-up
  CORS_ORIGINS         comma-separated allowed origins for a web admin
  MALL_BODY_LIMIT      request body limit in bytes (1048576)
  MALL_LIST_CACHE_BYTES  bytes of cached list pages at most (33554432)
  MALL_HEADER_TIMEOUT  seconds a client may take to send a request head, or stay idle (10)
  MALL_WRITE_TIMEOUT   seconds a client may take to take a response once the socket stops taking
                       it (30); a client that does not read is disconnected
  MALL_MAX_CONNECTIONS open connections at most (4096)
  MALL_MAX_CONNECTIONS_PER_IP  open connections per client address (an IPv6 /64) at most (256;
                       0 is off); off behind proxies (MALL_TRUST_PROXY > 0)
  MALL_THROTTLE_ANON   anonymous requests per client IP (200/min; DRF notation N/second|minute|hour|day)
  MALL_THROTTLE_USER   requests per user (1200/min)
  MALL_THROTTLE_LOGIN  /auth/wx-login/ and /auth/token/ per client address, and failed password
                       checks per (username, address); 10x that per username (30/min)
  MALL_TRUST_PROXY=N   N proxies append to X-Forwarded-For: the client is the Nth address from
                       the right (DRF's NUM_PROXIES; only behind your own proxies)
  MALL_METRICS_BIND    serve /metrics on this address only (e.g. 127.0.0.1:9100)
  MALL_METRICS_TOKEN   serve /metrics on the API port to `Authorization: Bearer <token>` only,
                       at MALL_THROTTLE_LOGIN per client address (without either, /metrics is
                       not served)
  LOG_FORMAT=json      JSON logs; RUST_LOG sets the filter (info)
  JWT_ACCESS_LIFETIME  seconds an access token lives (3600): 60 to 86400; with MALL_DEV=1 from 1
                       (to test a client's refresh)

WeChat Pay (API v3, JSAPI; see README \"Payment\"):
  WXPAY_MCHID          merchant id; unset: with MALL_DEV=1 the built-in fake WeChat Pay runs
                       (POST <fake base>/fake/pay/<out_trade_no> pays an order), otherwise
                       payment is disabled (/pay/ answers 503 payment_unavailable) and the rest
                       of the mall serves as before
  WXPAY_MCH_SERIAL     serial number of the merchant API certificate
  WXPAY_MCH_KEY_FILE   merchant API private key, PEM file (apiclient_key.pem)
  WXPAY_APIV3_KEY      the APIv3 key (32 bytes)
  WXPAY_PUBLIC_KEY_FILE  WeChat Pay public key, PEM file (pub_key.pem)
  WXPAY_PUBLIC_KEY_ID  its id (PUB_KEY_ID_...)
  WXPAY_NOTIFY_URL     public URL of POST /pay/wechat/notify/ (https; http is accepted with a
                       warning, for local test set-ups)
  WXPAY_APPID          the mini-program paying (default WX_APPID)
  WXPAY_API_BASE       WeChat Pay API base URL (https://api.mch.weixin.qq.com; http allowed for
                       test servers)
  MALL_UNPAID_TIMEOUT  seconds an order may stay unpaid, from its creation (1800); then it is
                       closed at WeChat Pay and cancelled, its stock returned

Development only (MALL_DEV=1, built-in fakes; refused otherwise; see README \"Mini-program\"):
  login codes starting with `used` are answered as WeChat's 40163 (wechat_code_used)
  MALL_FAKE_PAY_BIND   address of the built-in fake WeChat Pay (127.0.0.1:0, a free port);
                       POST <fake base>/fake/request-payment with wx.requestPayment's
                       parameters pays as wx.requestPayment does
  MALL_FAKE_PAY_NOTIFY_DELAY  milliseconds between a payment and its notification (0; at most
                       60000)";

/// The help of one command, for `mall COMMAND --help`.
fn command_help(command: &str) -> Option<&'static str> {
    Some(match command {
        "serve" => {
            "usage: mall serve [--seed-demo]

Serves the API on WXREST_BIND after applying pending migrations (safe with several
instances starting at once). --seed-demo (or MALL_SEED_DEMO=1) fills an empty catalogue.
Stops gracefully on Ctrl-C or SIGTERM."
        }
        "migrate" => {
            "usage: mall migrate

Applies the pending migrations to DATABASE_URL and exits. Run it once before starting
instances; concurrent runs wait for each other."
        }
        "createsuperuser" => {
            "usage: mall createsuperuser --username NAME

Creates the staff superuser NAME, or resets its password and staff rights. The password
(at least 8 characters) comes from MALL_ADMIN_PASSWORD or, when unset, one line on stdin.
(At `serve` start-up, MALL_ADMIN_PASSWORD only creates `admin` when it does not exist.)"
        }
        "seed-demo" => {
            "usage: mall seed-demo

Fills an empty catalogue with demo categories and goods; does nothing when goods exist."
        }
        _ => return None,
    })
}

/// The example binary's allocator: mimalloc's thread-local free lists make the many small
/// per-request allocations of an HTTP stack cheaper than the system allocator's (the library
/// itself never sets one).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs to stdout through a writer thread, so a request never waits for the terminal or the
/// pipe: lines are formatted on the request's thread and queued (not dropped: when the queue
/// is full, the request waits). Keep the guard until exit; dropping it flushes the queue.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    // Colours only for a terminal: a file or a log collector gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let help = args
            .first()
            .and_then(|command| command_help(command))
            .unwrap_or(USAGE);
        println!("{help}");
        return ExitCode::SUCCESS;
    }
    let _flush_logs_on_exit = init_logging();
    let mut config = match shop::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mall: {e}");
            return ExitCode::from(2);
        }
    };
    let command = args.first().map(String::as_str).unwrap_or("serve");
    let result = match command {
        "serve" | "--seed-demo" => {
            config.seed_demo |= args.iter().any(|a| a == "--seed-demo");
            serve(config).await
        }
        "migrate" => shop::open_database(&config.database_url)
            .await
            .map(|_| println!("migrations applied"))
            .map_err(Into::into),
        "seed-demo" => seed(&config).await,
        "createsuperuser" => create_superuser(&config, &args).await,
        other => {
            eprintln!("mall: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mall: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn seed(config: &shop::Config) -> Result<(), BoxError> {
    let db = shop::open_database(&config.database_url).await?;
    let added = shop::catalog::seed_demo(&db).await?;
    println!("{added} demo goods added");
    Ok(())
}

async fn create_superuser(config: &shop::Config, args: &[String]) -> Result<(), BoxError> {
    let username = args
        .windows(2)
        .find(|w| w[0] == "--username")
        .map(|w| w[1].clone())
        .ok_or("createsuperuser needs --username NAME")?;
    let password = match std::env::var("MALL_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            eprintln!("password (one line on stdin):");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let password = shop::check_password(&password)?;
    let db = shop::open_database(&config.database_url).await?;
    let user = wxrest::user::UserStore::new(db)
        .ensure_admin(&username, password)
        .await?;
    println!("superuser {} (id {}) ready", user.username, user.id);
    Ok(())
}

async fn serve(config: shop::Config) -> Result<(), BoxError> {
    // Before migrating or binding: a production address never runs on development defaults.
    config.check_production()?;
    if config.dev_switch {
        tracing::warn!(
            bind = %config.bind,
            loopback = wxrest::dev::is_loopback(&config.bind),
            "MALL_DEV=1: DEVELOPMENT MODE. Without JWT_SECRET, WX_APPID or WXPAY_MCHID the \
             published development secret and the fake WeChat and WeChat Pay serve whoever \
             reaches this address; never do this in production"
        );
    }
    if config.jwt_secret.is_none() {
        tracing::warn!(
            "JWT_SECRET is not set: signing with the published development secret (MALL_DEV=1)"
        );
    }
    let shop = shop::build(&config).await?;
    if let Some(fake) = &shop.fake {
        tracing::warn!(
            base = %fake.base_url(),
            "WX_APPID is not set: dev mode with the built-in fake WeChat (code X logs in as fake-openid-X)"
        );
    }
    match (&shop.payments.pay, &shop.payments.dev_fake) {
        (None, _) => tracing::warn!(
            "WXPAY_MCHID is not set: payment is disabled (POST /mall/orders/{{id}}/pay/ answers 503; \
             the fake WeChat Pay runs only with MALL_DEV=1)"
        ),
        (Some(_), Some(fake)) => tracing::warn!(
            base = %fake.base_url(),
            "WXPAY_MCHID is not set: dev mode with the built-in fake WeChat Pay \
             (POST {{base}}/fake/pay/{{out_trade_no}} pays an order, \
             POST {{base}}/fake/request-payment does what wx.requestPayment does)"
        ),
        (Some(pay), None) => {
            if pay.config().notify_url.starts_with("http://") {
                tracing::warn!(
                    notify_url = %pay.config().notify_url,
                    "WXPAY_NOTIFY_URL is http: WeChat Pay requires https in production"
                );
            }
        }
    }
    // Every instance sweeps; the database decides which one acts on each unpaid order.
    let _sweeper = shop::payment::spawn_sweeper(shop.payments.clone());
    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    if let Some(bind) = &config.metrics_bind {
        let metrics = tokio::net::TcpListener::bind(bind).await?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics listening");
        let server = wxrest::server::Server::new()
            .max_connections(64)
            .development(config.dev_switch);
        // Installs the recorder before the API serves its first request.
        let router = shop::metrics_router();
        tokio::spawn(async move {
            let stop = std::future::pending::<()>();
            if let Err(err) = server.serve(metrics, router, stop).await {
                tracing::error!(error = %err, "metrics listener stopped");
            }
        });
    }
    tracing::info!(addr = %listener.local_addr()?, database = shop.db.dialect().name(), "mall listening");
    wxrest::server::Server::new()
        .header_read_timeout(config.header_read_timeout)
        .write_timeout(config.write_timeout)
        .max_connections(config.max_connections)
        .max_connections_per_peer(config.connections_per_ip())
        .development(config.dev_switch)
        .serve(listener, shop.router, shutdown_signal())
        .await?;
    tracing::info!("mall stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
