//! Scale out: two (or three) mall instances in one process, on 127.0.0.1:0, sharing one fresh
//! PostgreSQL schema, one Redis (under a key prefix unique to each test) and one FakeWeChat.
//! Whatever one instance learns that another needs must reach it through PostgreSQL or Redis.
//!
//! Needs `WXREST_TEST_POSTGRES` and `WXREST_TEST_REDIS`; skips with a message when either is
//! unset, and fails under `CI=true`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::databases;
use crate::running_mall::{
    ADMIN_PASSWORD, RunningMall, assert_no_oversell, assert_throttled, demo_config,
};
use crate::shop;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use wxrest::wechat::{FakeWeChat, Script};

/// Two instances on one schema, one Redis prefix and one FakeWeChat.
struct Cluster {
    a: RunningMall,
    b: RunningMall,
    db: wxrest::db::Db,
    fake: FakeWeChat,
    prefix: String,
    /// Dropped last: removes the schema.
    _target: databases::Target,
}

impl Cluster {
    /// Starts A (which creates the admin and the demo catalogue), then B, with `redis_url` as
    /// the instances' Redis (the real one, or a proxy in front of it).
    async fn start(redis_url: &str) -> Self {
        Self::start_with(redis_url, |_| {}).await
    }

    /// [`start`](Self::start) with the configuration adjusted by `adjust`.
    async fn start_with(redis_url: &str, adjust: impl Fn(&mut shop::Config)) -> Self {
        let target = databases::fresh_target("postgres").await;
        let fake = FakeWeChat::builder().dev_mode(true).start().await;
        let prefix = format!("wxrest:test:{}:", uuid::Uuid::new_v4().simple());
        let mut config = demo_config(&target.url);
        config.redis_url = Some(redis_url.to_owned());
        config.redis_prefix = prefix.clone();
        config.wx = Some(fake.config());
        adjust(&mut config);
        let a = RunningMall::serve(&config).await;
        config.admin_password = None;
        config.seed_demo = false;
        let b = RunningMall::serve(&config).await;
        Self {
            db: a.db.clone(),
            a,
            b,
            fake,
            prefix,
            _target: target,
        }
    }

    /// RunningMall A for even `i`, B for odd.
    fn pick(&self, i: usize) -> &RunningMall {
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
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let cluster = Cluster::start(&redis).await;
    let (a, b) = (&cluster.a, &cluster.b);

    // Logout on A: B refuses the token on the very next request.
    let token = a.wx_login("logout-1").await;
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
    let on_a = a.wx_login("logout-2").await;
    let on_b = b.wx_login("logout-3").await;
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
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let cluster = Cluster::start(&redis).await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(cluster.pick(i).wx_login(&format!("phone-user-{i}")).await);
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
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let cluster = Cluster::start(&redis).await;
    let fake = &cluster.fake;

    // Two codes of one WeChat user, logged in at once on A and on B.
    fake.script_code("twin-a", Script::session("openid-twin"));
    fake.script_code("twin-b", Script::session("openid-twin"));
    let (first, second) = tokio::join!(
        cluster.a.wx_login_answer("twin-a"),
        cluster.b.wx_login_answer("twin-b")
    );
    assert_eq!(first["user"]["id"], second["user"]["id"]);
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM users WHERE openid = 'openid-twin'")
            .await,
        1
    );

    // A code used on A, retried on B: the same user, no second jscode2session.
    let before = fake.code2session_calls();
    let on_a = cluster.a.wx_login_answer("retried-code").await;
    let on_b = cluster.b.wx_login_answer("retried-code").await;
    assert_eq!(on_a["user"]["id"], on_b["user"]["id"]);
    assert_eq!(
        (on_a["created"].clone(), on_b["created"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(fake.code2session_calls() - before, 1);

    // The same new code on both instances at once: one call too.
    let before = fake.code2session_calls();
    let (x, y) = tokio::join!(
        cluster.a.wx_login_answer("double-tap"),
        cluster.b.wx_login_answer("double-tap")
    );
    assert_eq!(x["user"]["id"], y["user"]["id"]);
    assert_eq!(fake.code2session_calls() - before, 1);
    cluster.clean_redis(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_split_across_instances_never_oversell() {
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let cluster = Cluster::start(&redis).await;
    assert_no_oversell("two instances", &[cluster.a.clone(), cluster.b.clone()]).await;
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
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let target = databases::fresh_target("postgres").await;
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
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
    let mut proxy = RedisProxy::start(&host_port(&redis)).await;
    let cluster = Cluster::start(&proxy.url()).await;
    let (a, b) = (&cluster.a, &cluster.b);
    let token = a.wx_login("outage-1").await;
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
    let Some(redis) = databases::postgres_and_redis() else {
        return;
    };
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
        assert_throttled(status, &body);
    }
    cluster.clean_redis(&redis).await;
}
