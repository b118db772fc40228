//! Database faults on PostgreSQL (runs when `WXREST_TEST_POSTGRES` is set): the mall's
//! connections are killed mid-run and the database becomes unreachable (a TCP proxy this test
//! runs between the mall and PostgreSQL is stopped, then restarted). Requests answer 503 JSON
//! or succeed, never 500; `/readyz` fails while the database is away and recovers without a
//! restart; no partial order and no duplicate user is ever written.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::databases;
use crate::running_mall::RunningMall;
use crate::shop;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A TCP forwarder `127.0.0.1:port -> upstream` that can be cut and restored on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            task: Mutex::new(None),
        });
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every forwarded connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Cuts every connection and refuses new ones.
    fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn restart(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        let mut tries = 0;
        let listener = loop {
            match socket.bind(self.addr) {
                Ok(()) => break socket.listen(128).unwrap(),
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind the proxy: {e}"),
            }
        };
        self.serve(listener);
    }
}

/// `POST /mall/orders/` of one unit of `goods`: (status, body).
async fn order(mall: &RunningMall, token: &str, goods: i64) -> (u16, Value) {
    let items = json!({"items": [{"goods": goods, "quantity": 1}]});
    let (status, body) = mall.post("/mall/orders/", Some(token), items).await;
    (status.as_u16(), body)
}

/// `POST /auth/wx-login/` (which may fail here): (status, body).
async fn login(mall: &RunningMall, code: &str) -> (u16, Value) {
    let (status, body) = mall
        .post("/auth/wx-login/", None, json!({"code": code}))
        .await;
    (status.as_u16(), body)
}

async fn ready(mall: &RunningMall) -> (u16, Value) {
    let (status, body) = mall.call(Method::GET, "/readyz", None, None).await;
    (status.as_u16(), body)
}

/// Every answer of the run must be one of these, and a 503 must be DRF's JSON.
fn assert_acceptable(what: &str, status: u16, body: &Value, allowed: &[u16]) {
    assert!(allowed.contains(&status), "{what}: {status} {body}");
    if status == 503 {
        assert_eq!(body["code"], "service_unavailable", "{what}: {body}");
        assert!(body["detail"].is_string(), "{what}: {body}");
    }
}

async fn admin(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.unwrap()
}

async fn terminate(admin: &mut sqlx::PgConnection, app_name: &str) -> i64 {
    // Only this mall's connections: other test runs share the server.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1",
    )
    .bind(app_name)
    .fetch_all(admin)
    .await
    .unwrap();
    killed.len() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_unreachable_database_gives_503s_and_no_partial_writes() {
    if !databases::postgres() {
        return;
    }
    let target = databases::fresh_target("postgres").await;
    let app_name = format!("wxrest_fault_{}", uuid::Uuid::new_v4().simple());
    let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    assert!(
        target.url.contains("127.0.0.1:5432"),
        "this test proxies 127.0.0.1:5432; WXREST_TEST_POSTGRES is {}",
        target.url
    );
    let proxy = Proxy::start(upstream).await;
    let url = format!(
        "{}&application_name={app_name}",
        target
            .url
            .replace("127.0.0.1:5432", &proxy.addr.to_string())
    );
    let mut config = shop::Config::for_database(&url);
    config.seed_demo = true;
    // This test hammers logins from one IP on purpose; throttling is tested elsewhere.
    config.throttle_login = "100000/min".parse().unwrap();
    config.throttle_anon = "100000/min".parse().unwrap();
    let mall = RunningMall::serve(&config).await;

    let mut direct = admin(&target.url).await;
    let initial: Vec<(i64, i64)> = sqlx::query_as("SELECT id, stock FROM goods ORDER BY id")
        .fetch_all(&mut direct)
        .await
        .unwrap();
    let goods: Vec<i64> = initial.iter().map(|g| g.0).collect();
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (status, body) = login(&mall, &format!("fault-buyer-{i}")).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }

    // Orders (and logins of one openid) keep coming while the database is hurt.
    let running = Arc::new(AtomicBool::new(true));
    let statuses: Arc<Mutex<BTreeMap<(&'static str, u16), usize>>> = Arc::default();
    let mut workers = JoinSet::new();
    for (w, token) in tokens.iter().cloned().enumerate() {
        let (mall, running, statuses, goods) = (
            mall.clone(),
            running.clone(),
            statuses.clone(),
            goods.clone(),
        );
        workers.spawn(async move {
            let mut n = w;
            while running.load(Ordering::SeqCst) {
                n += 1;
                let gid = goods[n % goods.len()];
                let (status, body) = order(&mall, &token, gid).await;
                assert_acceptable("order", status, &body, &[201, 409, 503]);
                *statuses
                    .lock()
                    .unwrap()
                    .entry(("order", status))
                    .or_default() += 1;
                let (status, body) = login(&mall, "fault-same-openid").await;
                assert_acceptable("login", status, &body, &[200, 503]);
                *statuses
                    .lock()
                    .unwrap()
                    .entry(("login", status))
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    // 1. Kill the mall's backends, twice.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        terminate(&mut direct, &app_name).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    // 2. Make the database unreachable: readiness fails, as JSON.
    proxy.stop();
    let (status, body) = ready(&mall).await;
    assert_eq!(
        (status, body["code"].clone()),
        (503, json!("service_unavailable"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = ready(&mall).await;
    assert_eq!(status, 503, "{body}");

    // 3. Bring it back: readiness recovers without a restart.
    proxy.restart().await;
    let started = Instant::now();
    loop {
        let (status, _) = ready(&mall).await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::SeqCst);
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    // The mall serves orders again.
    let (status, body) = order(&mall, &tokens[0], goods[0]).await;
    assert!(status == 201 || status == 409, "{status} {body}");
    let seen = statuses.lock().unwrap().clone();
    eprintln!("statuses during the faults: {seen:?}");
    assert!(
        seen.contains_key(&("order", 503)),
        "the faults were never felt: {seen:?}"
    );
    assert!(seen.contains_key(&("order", 201)), "{seen:?}");

    // Reconcile: every order has items; stock + ordered == initial stock, per goods.
    let empty: Vec<(i64,)> = sqlx::query_as(
        "SELECT o.id FROM orders o LEFT JOIN order_items i ON i.order_id = o.id \
         WHERE i.id IS NULL",
    )
    .fetch_all(&mut direct)
    .await
    .unwrap();
    assert!(empty.is_empty(), "orders without items: {empty:?}");
    let ordered: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT i.goods, CAST(SUM(i.quantity) AS BIGINT) FROM order_items i \
         JOIN orders o ON o.id = i.order_id WHERE o.status <> 'cancelled' GROUP BY i.goods",
    )
    .fetch_all(&mut direct)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let now: Vec<(i64, i64)> = sqlx::query_as("SELECT id, stock FROM goods ORDER BY id")
        .fetch_all(&mut direct)
        .await
        .unwrap();
    for ((id, before), (_, after)) in initial.iter().zip(&now) {
        let sold = ordered.get(id).copied().unwrap_or(0);
        assert_eq!(
            after + sold,
            *before,
            "goods {id}: stock {after} + sold {sold}"
        );
    }
    let totals: Vec<(i64,)> = sqlx::query_as(
        "SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id \
         GROUP BY o.id, o.total HAVING o.total <> CAST(SUM(i.price * i.quantity) AS BIGINT)",
    )
    .fetch_all(&mut direct)
    .await
    .unwrap();
    assert!(
        totals.is_empty(),
        "orders whose total disagrees with their items: {totals:?}"
    );
    let orders: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut direct)
        .await
        .unwrap();
    assert!(orders.0 > 0, "no order got through at all");
    let duplicates: Vec<(String, i64)> = sqlx::query_as(
        "SELECT openid, COUNT(*) FROM users WHERE openid IS NOT NULL \
         GROUP BY openid HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut direct)
    .await
    .unwrap();
    assert!(duplicates.is_empty(), "duplicate users: {duplicates:?}");
    let _ = direct.close().await;
    proxy.stop();
}
