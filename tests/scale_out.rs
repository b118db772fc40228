//! Scale out: two (or three) mall instances in one process, on 127.0.0.1:0, sharing one fresh
//! PostgreSQL schema, one Redis (under a key prefix unique to each test) and one FakeWeChat.
//! Whatever one instance learns that another needs must reach it through PostgreSQL or Redis.
//!
//! Needs `WXREST_TEST_POSTGRES` and `WXREST_TEST_REDIS`; skips with a message when either is
//! unset, and fails under `CI=true`.

mod common;

#[allow(dead_code)]
#[path = "../examples/mall/shop/mod.rs"]
mod shop;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use wxrest::wechat::{FakeWeChat, Script};

const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The Redis URL when both servers are configured; `None` (with a message) to skip.
fn servers() -> Option<String> {
    let set = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let (postgres, redis) = (set("WXREST_TEST_POSTGRES"), set("WXREST_TEST_REDIS"));
    if let (Some(_), Some(redis)) = (postgres, &redis) {
        return Some(redis.clone());
    }
    let reason = "scale-out tests need WXREST_TEST_POSTGRES and WXREST_TEST_REDIS";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}, and CI=true: they must run in CI");
    }
    eprintln!("skipping: {reason}");
    None
}

/// One running instance, reached over HTTP.
#[derive(Clone)]
struct Instance {
    base: String,
    http: reqwest::Client,
}

impl Instance {
    async fn start(config: &shop::Config) -> (Self, wxrest::db::Db) {
        let shop = shop::build(config)
            .await
            .unwrap_or_else(|e| panic!("build: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = shop.router.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        (Self { base, http }, shop.db)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("JWT {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Logs in with a `wx.login()` code: (access token, whole answer).
    async fn wx_login(&self, code: &str) -> (String, Value) {
        let (status, body) = self
            .post("/auth/wx-login/", None, json!({"code": code}))
            .await;
        assert_eq!(status, 200, "wx-login {code}: {body}");
        (body["token"].as_str().unwrap().to_owned(), body)
    }

    async fn admin(&self) -> String {
        let (status, body) = self
            .post(
                "/auth/token/",
                None,
                json!({"username": "admin", "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

/// Two instances on one schema, one Redis prefix and one FakeWeChat.
struct Cluster {
    a: Instance,
    b: Instance,
    db: wxrest::db::Db,
    fake: FakeWeChat,
    prefix: String,
    /// Dropped last: removes the schema.
    _target: common::Target,
}

impl Cluster {
    /// Starts A (which creates the admin and the demo catalogue), then B, with `redis_url` as
    /// the instances' Redis (the real one, or a proxy in front of it).
    async fn start(redis_url: &str) -> Self {
        Self::start_with(redis_url, |_| {}).await
    }

    /// [`start`](Self::start) with the configuration adjusted by `adjust`.
    async fn start_with(redis_url: &str, adjust: impl Fn(&mut shop::Config)) -> Self {
        let target = common::fresh_target("postgres").await;
        let fake = FakeWeChat::builder().dev_mode(true).start().await;
        let prefix = format!("wxrest:test:{}:", uuid::Uuid::new_v4().simple());
        let mut config = shop::Config::for_database(&target.url);
        config.redis_url = Some(redis_url.to_owned());
        config.redis_prefix = prefix.clone();
        config.wx = Some(fake.config());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.seed_demo = true;
        adjust(&mut config);
        let (a, db) = Instance::start(&config).await;
        config.admin_password = None;
        config.seed_demo = false;
        let (b, _) = Instance::start(&config).await;
        Self {
            a,
            b,
            db,
            fake,
            prefix,
            _target: target,
        }
    }

    /// Instance A for even `i`, B for odd.
    fn pick(&self, i: usize) -> &Instance {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }

    /// Removes this test's Redis keys.
    async fn clean_redis(&self, redis_url: &str) {
        let client = redis::Client::open(redis_url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_honoured_by_the_other_at_once() {
    let Some(redis) = servers() else { return };
    let cluster = Cluster::start(&redis).await;
    let (a, b) = (&cluster.a, &cluster.b);

    // Logout on A: B refuses the token on the very next request.
    let (token, _) = a.wx_login("logout-1").await;
    assert_eq!(b.get("/users/me/", &token).await.0, 200);
    let (status, body) = a.post("/auth/logout/", Some(&token), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.get("/users/me/", &token).await;
    assert_eq!(
        (status.as_u16(), body["code"].clone()),
        (401, json!("token_revoked"))
    );

    // Logout-all on B ends the session opened on A (same user, another login).
    cluster
        .fake
        .script_code("logout-2", Script::session("openid-two-devices"));
    cluster
        .fake
        .script_code("logout-3", Script::session("openid-two-devices"));
    let (on_a, _) = a.wx_login("logout-2").await;
    let (on_b, _) = b.wx_login("logout-3").await;
    assert_eq!(a.get("/users/me/", &on_a).await.0, 200, "warms A's cache");
    let (status, body) = b.post("/auth/logout-all/", Some(&on_b), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.get("/users/me/", &on_a).await;
    assert_eq!(
        (status.as_u16(), body["code"].clone()),
        (401, json!("token_revoked"))
    );
    cluster.clean_redis(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wechat_access_token_is_fetched_once_for_all_instances() {
    let Some(redis) = servers() else { return };
    let cluster = Cluster::start(&redis).await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(cluster.pick(i).wx_login(&format!("phone-user-{i}")).await.0);
    }
    let phones = |round: usize| {
        let tasks: Vec<JoinHandle<(StatusCode, Value)>> = (0..20)
            .map(|i| {
                let code = format!("phone-{round}-{i}");
                cluster
                    .fake
                    .script_phone(&code, format!("1380013{round}{i:03}"));
                let instance = cluster.pick(i).clone();
                let token = users[i % users.len()].clone();
                tokio::spawn(async move {
                    instance
                        .post("/auth/wx-phone/", Some(&token), json!({ "code": code }))
                        .await
                })
            })
            .collect();
        async move {
            for task in tasks {
                let (status, body) = task.await.unwrap();
                assert_eq!(status, 200, "{body}");
                assert!(
                    body["phone"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("1380013"))
                );
            }
        }
    };
    phones(1).await;
    assert_eq!(
        cluster.fake.token_calls(),
        1,
        "20 phone requests over 2 instances share one access_token"
    );
    cluster.fake.invalidate_access_tokens();
    phones(2).await;
    assert_eq!(
        cluster.fake.token_calls(),
        2,
        "an invalidated access_token is refetched once in total"
    );
    cluster.clean_redis(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_openid_across_instances_is_one_user_and_a_retried_code_one_wechat_call() {
    let Some(redis) = servers() else { return };
    let cluster = Cluster::start(&redis).await;
    let fake = &cluster.fake;

    // Two codes of one WeChat user, logged in at once on A and on B.
    fake.script_code("twin-a", Script::session("openid-twin"));
    fake.script_code("twin-b", Script::session("openid-twin"));
    let (first, second) = tokio::join!(cluster.a.wx_login("twin-a"), cluster.b.wx_login("twin-b"));
    assert_eq!(first.1["user"]["id"], second.1["user"]["id"]);
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM users WHERE openid = 'openid-twin'")
            .await,
        1
    );

    // A code used on A, retried on B: the same user, no second jscode2session.
    let before = fake.code2session_calls();
    let (_, on_a) = cluster.a.wx_login("retried-code").await;
    let (_, on_b) = cluster.b.wx_login("retried-code").await;
    assert_eq!(on_a["user"]["id"], on_b["user"]["id"]);
    assert_eq!(
        (on_a["created"].clone(), on_b["created"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(fake.code2session_calls() - before, 1);

    // The same new code on both instances at once: one call too.
    let before = fake.code2session_calls();
    let (x, y) = tokio::join!(
        cluster.a.wx_login("double-tap"),
        cluster.b.wx_login("double-tap")
    );
    assert_eq!(x.1["user"]["id"], y.1["user"]["id"]);
    assert_eq!(fake.code2session_calls() - before, 1);
    cluster.clean_redis(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_split_across_instances_never_oversell() {
    let Some(redis) = servers() else { return };
    let cluster = Arc::new(Cluster::start(&redis).await);
    let admin = cluster.a.admin().await;
    let (_, found) = cluster.a.get("/mall/goods/?search=Gaiwan", &admin).await;
    let gid = found["results"][0]["id"].as_i64().unwrap();
    let (status, _) = cluster
        .b
        .call(
            Method::PATCH,
            &format!("/mall/goods/{gid}/"),
            Some(&admin),
            Some(json!({"stock": 50})),
        )
        .await;
    assert_eq!(status, 200);
    let mut buyers = Vec::new();
    for i in 0..8 {
        buyers.push(cluster.pick(i).wx_login(&format!("buyer-{i}")).await.0);
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let cluster = cluster.clone();
            let token = buyers[i % buyers.len()].clone();
            tokio::spawn(async move {
                cluster
                    .pick(i)
                    .post(
                        "/mall/orders/",
                        Some(&token),
                        json!({"items": [{"goods": gid, "quantity": 1}]}),
                    )
                    .await
            })
        })
        .collect();
    let (mut sold, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (StatusCode::CREATED, _) => sold += 1,
            (StatusCode::CONFLICT, _) => refused += 1,
            (other, body) => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((sold, refused), (50, 150));
    let stock = cluster
        .b
        .get(&format!("/mall/goods/{gid}/"), &admin)
        .await
        .1["stock"]
        .clone();
    assert_eq!(stock, 0);
    let items: i64 = sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM order_items WHERE goods = $1",
    )
    .bind(gid)
    .fetch_one(cluster.db.pool())
    .await
    .unwrap();
    assert_eq!(items, 50, "order items reconcile with the stock sold");
    cluster.clean_redis(&redis).await;
}

/// How many migration files `dir` (relative to the crate) holds.
fn migration_files(dir: &str) -> i64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_an_empty_schema_migrate_once() {
    let Some(redis) = servers() else { return };
    let target = common::fresh_target("postgres").await;
    let fake = FakeWeChat::builder().dev_mode(true).start().await;
    let mut config = shop::Config::for_database(&target.url);
    config.redis_url = Some(redis.clone());
    config.redis_prefix = format!("wxrest:test:{}:", uuid::Uuid::new_v4().simple());
    config.wx = Some(fake.config());
    // Concurrent on one task (`shop::build` is not provably `Send` to the compiler): the
    // three starts still race for the schema on three connections.
    let starts = (0..3).map(|_| async {
        let shop = shop::build(&config)
            .await
            .unwrap_or_else(|e| panic!("a concurrent start failed: {e}"));
        // The moment build returns, the instance may serve: every table is there.
        sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM goods) \
             + (SELECT COUNT(*) FROM order_items)",
        )
        .fetch_one(shop.db.pool())
        .await
        .unwrap_or_else(|e| panic!("tables missing right after build: {e}"));
        shop.db
    });
    let dbs = futures_util::future::join_all(starts).await;
    for (table, dir) in [
        ("_sqlx_migrations", "src/user/migrations/postgres"),
        ("_mall_migrations", "examples/mall/migrations/postgres"),
    ] {
        let (rows, versions): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), COUNT(DISTINCT version) FROM {table} WHERE success"
        )))
        .fetch_one(dbs[0].pool())
        .await
        .unwrap();
        assert_eq!(
            (rows, versions),
            (migration_files(dir), migration_files(dir)),
            "{table}"
        );
    }
}

/// A TCP proxy to Redis that can be stopped (closing every connection) and restarted on the
/// same port, to play Redis going away and coming back.
struct RedisProxy {
    addr: SocketAddr,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl RedisProxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = Self {
            addr: listener.local_addr().unwrap(),
            upstream: upstream.to_owned(),
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task: aborts every open connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    /// Closes the port and every connection through it.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind the Redis proxy on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

/// `redis://host:port[/db]` -> `host:port`.
fn host_port(redis_url: &str) -> String {
    let rest = redis_url
        .split_once("://")
        .map_or(redis_url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_answers_503_and_recovers_without_restart() {
    let Some(redis) = servers() else { return };
    let mut proxy = RedisProxy::start(&host_port(&redis)).await;
    let cluster = Cluster::start(&proxy.url()).await;
    let (a, b) = (&cluster.a, &cluster.b);
    let (token, _) = a.wx_login("outage-1").await;
    assert_eq!(b.get("/users/me/", &token).await.0, 200);

    proxy.stop().await;
    // Authenticated requests fail closed: a revoked token must never slip through.
    for instance in [a, b] {
        for path in ["/users/me/", "/mall/goods/", "/mall/orders/"] {
            let (status, body) = instance.get(path, &token).await;
            assert_eq!(
                (status.as_u16(), body["code"].clone()),
                (503, json!("service_unavailable")),
                "{path}: {body}"
            );
        }
    }
    // Logins still work: the login-code cache falls back to asking WeChat directly, and
    // issuing tokens needs no Redis.
    let (status, body) = b
        .post("/auth/wx-login/", None, json!({"code": "outage-2"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a
        .post(
            "/auth/token/",
            None,
            json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(
        status, 200,
        "password login needs only the database: {body}"
    );
    // Anonymous and health endpoints are unaffected.
    let health = a
        .http
        .get(format!("{}/healthz", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    proxy.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    for instance in [a, b] {
        loop {
            let (status, body) = instance.get("/users/me/", &token).await;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "while reconnecting: {body}");
            assert!(
                Instant::now() < deadline,
                "{} did not recover after Redis came back",
                instance.base
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Revocation works again across instances.
    assert_eq!(
        a.post("/auth/logout/", Some(&token), json!({})).await.0,
        200
    );
    assert_eq!(b.get("/users/me/", &token).await.0, 401);
    cluster.clean_redis(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_counters_are_shared_across_instances() {
    let Some(redis) = servers() else { return };
    let cluster = Cluster::start_with(&redis, |config| {
        config.throttle_login = wxrest::throttle::Rate::parse("4/min").unwrap();
    })
    .await;
    // Four logins split over A and B use up one shared budget...
    for i in 0..4 {
        let (status, body) = cluster
            .pick(i)
            .post(
                "/auth/wx-login/",
                None,
                json!({"code": format!("throttle-{i}")}),
            )
            .await;
        assert_eq!(status, 200, "login {i}: {body}");
    }
    // ...so the fifth is refused on either instance, with DRF's body and Retry-After.
    for instance in [&cluster.a, &cluster.b] {
        let (status, body) = instance
            .post("/auth/wx-login/", None, json!({"code": "throttle-over"}))
            .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["code"], "throttled");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Request was throttled. Expected available in ")
        );
    }
    cluster.clean_redis(&redis).await;
}
