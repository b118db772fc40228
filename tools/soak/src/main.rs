//! A bounded load generator for the mall (`scripts/soak.sh` runs it; not part of CI).
//!
//! `N` connections (default 32) each log in through the fake WeChat, then loop over browsing,
//! cart and orders for `--seconds` (default 60) or until `--max-requests` (default 5,000,000)
//! are sent. Loopback targets only. With `--database sqlite://FILE` it reconciles the orders
//! against the stock afterwards. Prints a summary and exits non-zero on any 5xx or a
//! reconciliation failure.
//!
//! ```text
//! cargo run --release -p wxrest-soak -- --base http://127.0.0.1:8000 --database sqlite://soak.db
//! ```

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Args {
    base: String,
    database: Option<String>,
    connections: usize,
    seconds: u64,
    max_requests: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        base: "http://127.0.0.1:8000".into(),
        database: None,
        connections: 32,
        seconds: 60,
        max_requests: 5_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => args.base = value()?,
            "--database" => args.database = Some(value()?),
            "--connections" => args.connections = value()?.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--max-requests" => args.max_requests = value()?.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let host = args
        .base
        .strip_prefix("http://")
        .ok_or("--base must be http://127.0.0.1:PORT or http://localhost:PORT")?;
    if !(host.starts_with("127.0.0.1:") || host.starts_with("localhost:")) {
        return Err("refusing a non-loopback target: this tool is for local soak runs".into());
    }
    args.connections = args.connections.clamp(1, 256);
    args.seconds = args.seconds.clamp(1, 600);
    Ok(args)
}

#[derive(Default)]
struct Stats {
    by_route: Mutex<BTreeMap<(&'static str, u16), u64>>,
    transport_errors: AtomicU64,
    sent: AtomicU64,
}

struct Client {
    http: reqwest::Client,
    base: String,
    stats: Arc<Stats>,
}

impl Client {
    /// A POST of `body` to `path` as `token`, counted under `route`.
    async fn post(&self, route: &'static str, path: &str, token: &str, body: Value) {
        self.call(route, reqwest::Method::POST, path, Some(token), Some(body))
            .await;
    }

    async fn call(
        &self,
        route: &'static str,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("JWT {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(_) => {
                self.stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        if let Ok(mut map) = self.stats.by_route.lock() {
            *map.entry((route, status)).or_default() += 1;
        }
        Some((status, body))
    }

    async fn login(&self, worker: usize, round: u64) -> Option<String> {
        let code = format!("soak-{worker}-{round}");
        let (status, body) = self
            .call(
                "login",
                reqwest::Method::POST,
                "/auth/wx-login/",
                None,
                Some(json!({"code": code})),
            )
            .await?;
        (status == 200)
            .then(|| body["token"].as_str().map(str::to_owned))
            .flatten()
    }
}

async fn worker(id: usize, client: Arc<Client>, stop: Arc<AtomicBool>, max: u64) {
    let mut round = 0;
    let mut token = None;
    let mut goods: Vec<i64> = Vec::new();
    let mut i: u64 = id as u64;
    while !stop.load(Ordering::Relaxed) && client.stats.sent.load(Ordering::Relaxed) < max {
        i += 1;
        // A fresh login now and then, as mini-programs do on start.
        if token.is_none() || i.is_multiple_of(200) {
            round += 1;
            token = client.login(id, round).await;
            continue;
        }
        let Some(t) = token.as_deref() else { continue };
        match i % 10 {
            0..=4 => {
                let path = match i % 3 {
                    0 => "/mall/goods/".to_owned(),
                    1 => format!("/mall/goods/?search=tea&ordering=-price&page={}", 1 + i % 2),
                    _ => "/mall/goods/?price__gte=1000".to_owned(),
                };
                if let Some((200, page)) = client
                    .call("browse", reqwest::Method::GET, &path, Some(t), None)
                    .await
                    && let Some(results) = page["results"].as_array()
                    && goods.is_empty()
                {
                    goods = results.iter().filter_map(|g| g["id"].as_i64()).collect();
                }
            }
            5 | 6 => {
                if let Some(&gid) = goods.get((i as usize) % goods.len().max(1)) {
                    let body = json!({"goods": gid, "quantity": 1});
                    client.post("cart", "/mall/cart/", t, body).await;
                }
            }
            7 => {
                client.post("order", "/mall/orders/", t, json!({})).await;
            }
            8 => {
                if let Some(&gid) = goods.get((i as usize / 10) % goods.len().max(1)) {
                    let body = json!({"items": [{"goods": gid, "quantity": 1}]});
                    client.post("order", "/mall/orders/", t, body).await;
                }
            }
            _ => {
                client
                    .call(
                        "my-orders",
                        reqwest::Method::GET,
                        "/mall/orders/",
                        Some(t),
                        None,
                    )
                    .await;
            }
        }
    }
}

/// Stock + units in live orders == the stock at start, per goods; every order has items.
async fn reconcile(url: &str, initial: &HashMap<i64, i64>) -> Result<String, String> {
    let db = wxrest::db::Db::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let pool = db.pool();
    let now: Vec<(i64, i64)> = sqlx::query_as("SELECT id, stock FROM goods")
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
    let sold: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT i.goods, CAST(SUM(i.quantity) AS BIGINT) FROM order_items i \
         JOIN orders o ON o.id = i.order_id WHERE o.status <> 'cancelled' GROUP BY i.goods",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?
    .into_iter()
    .collect();
    let empty: Vec<(i64,)> = sqlx::query_as(
        "SELECT o.id FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE i.id IS NULL",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?;
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
    let mut drift = Vec::new();
    let mut units = 0;
    for (id, stock) in now {
        let s = sold.get(&id).copied().unwrap_or(0);
        units += s;
        let before = initial.get(&id).copied().unwrap_or(0);
        if stock + s != before || stock < 0 {
            drift.push(format!(
                "goods {id}: {before} at start, {stock} now, {s} sold"
            ));
        }
    }
    if !empty.is_empty() {
        drift.push(format!("{} orders without items", empty.len()));
    }
    if drift.is_empty() {
        Ok(format!(
            "OK: {orders} orders, {units} units sold, stock + sold == initial stock for every goods, no empty order"
        ))
    } else {
        Err(drift.join("; "))
    }
}

async fn stock_at_start(url: &str) -> Result<HashMap<i64, i64>, String> {
    let db = wxrest::db::Db::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, stock FROM goods")
        .fetch_all(db.pool())
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.into_iter().collect())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let initial = match &args.database {
        Some(url) => match stock_at_start(url).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("soak: reading the stock: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let stats = Arc::new(Stats::default());
    let client = Arc::new(Client {
        http,
        base: args.base.clone(),
        stats: stats.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|id| tokio::spawn(worker(id, client.clone(), stop.clone(), args.max_requests)))
        .collect();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let by_route = stats.by_route.lock().map(|m| m.clone()).unwrap_or_default();
    let total: u64 = by_route.values().sum();
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    for ((_, status), n) in &by_route {
        *by_status.entry(*status).or_default() += n;
    }
    let server_errors: u64 = by_status
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    let transport = stats.transport_errors.load(Ordering::Relaxed);
    println!(
        "duration: {elapsed:.1} s, connections: {}",
        args.connections
    );
    println!(
        "requests answered: {total} ({:.0}/s), transport errors: {transport}",
        total as f64 / elapsed
    );
    println!("by status: {by_status:?}");
    for ((route, status), n) in &by_route {
        println!("  {route:<10} {status}: {n}");
    }
    println!("5xx: {server_errors}");
    let mut ok = server_errors == 0 && transport == 0;
    if let (Some(url), Some(initial)) = (&args.database, &initial) {
        match reconcile(url, initial).await {
            Ok(line) => println!("reconciliation: {line}"),
            Err(e) => {
                println!("reconciliation: FAILED: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
