//! Databases for tests, one fresh database per test on every available backend, and Redis.
//!
//! SQLite (a temp file and `sqlite::memory:`) always runs. PostgreSQL runs when
//! `WXREST_TEST_POSTGRES` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`; each test gets
//! a schema `t_<random>`), MySQL/MariaDB when `WXREST_TEST_MYSQL` is set (e.g.
//! `mysql://root@127.0.0.1:3306/test`; each test gets a database `wxrest_t_<random>`), Redis
//! when `WXREST_TEST_REDIS` is set (each test uses its own key prefix). When a variable is unset
//! the backend is skipped with a message, except under `CI=true`, where skipping would hide
//! failures and the test panics instead.
//!
//! A skip is reported where `cargo test` shows it, not in the captured output of a passing
//! test: a `SKIPPED: <test>: set <VAR> …` line on the terminal as it happens, and, after the
//! binary's `test result:` line, `skipped: N tests of this binary lacked a server (…)`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::ops::Deref;
use std::sync::{Mutex, Once, PoisonError};

use sqlx::Connection;
use wxrest::db::Db;

const POSTGRES: &str = "WXREST_TEST_POSTGRES";
const MYSQL: &str = "WXREST_TEST_MYSQL";
const REDIS: &str = "WXREST_TEST_REDIS";

/// The server URL in `var`; `None` with a printed reason when it is unset, a panic when
/// `CI=true` (CI must run every backend).
fn configured(var: &str) -> Option<String> {
    if let Some(url) = env_url(var) {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{var} is not set but CI=true: the tests needing it must run in CI");
    }
    skipped(var);
    None
}

/// The tests of this binary that skipped something, and the variables they lacked.
static SKIPS: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

/// Reports that the running test skips what needs `var`: on the terminal at once (written to
/// the process's stderr, which the test harness does not capture, unlike `eprintln!`), and
/// counted for the line printed when the binary exits.
pub fn skipped(var: &str) {
    // The harness names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("a test")
        .to_owned();
    let new = SKIPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((test.clone(), var.to_owned()));
    if new {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: set {var} to a server URL to run what needs it"
        );
    }
    static REPORT_AT_EXIT: Once = Once::new();
    REPORT_AT_EXIT.call_once(|| {
        unsafe extern "C" {
            fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
        }
        // SAFETY: `atexit` from the C library std links; the callback is a plain function
        // that only reads a static and writes to stderr.
        unsafe {
            atexit(report_skips);
        }
    });
}

/// Prints how many tests of this binary skipped and what they lacked, after the harness's
/// own summary.
extern "C" fn report_skips() {
    let skips = SKIPS.lock().unwrap_or_else(PoisonError::into_inner);
    let tests: BTreeSet<&str> = skips.iter().map(|(test, _)| test.as_str()).collect();
    let vars: BTreeSet<&str> = skips.iter().map(|(_, var)| var.as_str()).collect();
    let vars: Vec<&str> = vars.into_iter().collect();
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {} tests of this binary lacked a server (set {})\n",
        tests.len(),
        vars.join(", ")
    );
}

/// Labels of the backends this run covers.
pub fn backend_labels() -> Vec<&'static str> {
    let mut labels = vec!["sqlite-file", "sqlite-memory"];
    for (label, var) in [("postgres", POSTGRES), ("mysql", MYSQL)] {
        if configured(var).is_some() {
            labels.push(label);
        }
    }
    labels
}

/// Labels of the server backends (PostgreSQL, MySQL) this run covers.
pub fn server_labels() -> Vec<&'static str> {
    backend_labels()
        .into_iter()
        .filter(|l| !l.starts_with("sqlite"))
        .collect()
}

/// Whether PostgreSQL is configured (skipping or failing as [`configured`] does).
pub fn postgres() -> bool {
    configured(POSTGRES).is_some()
}

/// The Redis URL from `WXREST_TEST_REDIS`, or `None` (skip) as for the SQL servers.
pub fn redis_url() -> Option<String> {
    configured(REDIS)
}

/// The Redis URL when PostgreSQL and Redis are both configured (for tests of several
/// instances sharing them); `None` (skip) as for each server alone.
pub fn postgres_and_redis() -> Option<String> {
    if !postgres() {
        return None;
    }
    redis_url()
}

/// The column types a test table needs on `dialect`: an auto-increment primary key and a boolean.
pub fn id_and_bool(dialect: wxrest::db::Dialect) -> (&'static str, &'static str) {
    use wxrest::db::Dialect;
    match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
        Dialect::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BOOLEAN",
        ),
        Dialect::MySql => ("BIGINT AUTO_INCREMENT PRIMARY KEY", "TINYINT(1)"),
    }
}

/// A key prefix unique to one test, so tests share one Redis without colliding.
pub fn unique_prefix(test: &str) -> String {
    format!("wxrest-test:{test}:{}:", uuid::Uuid::new_v4().simple())
}

/// A migrated in-memory SQLite database, shared by every connection of its pool.
pub async fn sqlite_memory() -> Db {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    wxrest::user::UserStore::setup(db.clone()).await.unwrap();
    db
}

fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// What to remove when a test database is dropped.
#[derive(Debug, Clone)]
enum Cleanup {
    None,
    File(std::path::PathBuf),
    PgSchema { admin_url: String, schema: String },
    MySqlDatabase { admin_url: String, database: String },
}

/// A fresh, empty (not yet migrated) database for one test; removed on drop.
#[derive(Debug)]
pub struct Target {
    /// Backend label (`sqlite-file`, `sqlite-memory`, `postgres`, `mysql`).
    pub label: String,
    /// URL to connect to it.
    pub url: String,
    cleanup: Cleanup,
}

/// Creates a fresh database for the backend `label`.
pub async fn fresh_target(label: &str) -> Target {
    let suffix = random_suffix();
    let (url, cleanup) = match label {
        "sqlite-file" => {
            let path = std::env::temp_dir().join(format!("wxrest-test-{suffix}.db"));
            (format!("sqlite://{}", path.display()), Cleanup::File(path))
        }
        "sqlite-memory" => ("sqlite::memory:".to_owned(), Cleanup::None),
        "postgres" => {
            let admin_url = env_url(POSTGRES).expect(POSTGRES);
            let schema = format!("t_{suffix}");
            let mut conn = sqlx::postgres::PgConnection::connect(&admin_url)
                .await
                .expect("connect to WXREST_TEST_POSTGRES");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .expect("create test schema");
            let _ = conn.close().await;
            let separator = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
            (url, Cleanup::PgSchema { admin_url, schema })
        }
        "mysql" => {
            let admin_url = env_url(MYSQL).expect(MYSQL);
            let database = format!("wxrest_t_{suffix}");
            let mut conn = sqlx::mysql::MySqlConnection::connect(&admin_url)
                .await
                .expect("connect to WXREST_TEST_MYSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {database} CHARACTER SET utf8mb4"
            )))
            .execute(&mut conn)
            .await
            .expect("create test database");
            let _ = conn.close().await;
            let url = with_database(&admin_url, &database);
            (
                url,
                Cleanup::MySqlDatabase {
                    admin_url,
                    database,
                },
            )
        }
        other => panic!("unknown backend label {other}"),
    };
    Target {
        label: label.to_owned(),
        url,
        cleanup,
    }
}

/// `scheme://auth@host/db?query` with the database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{database}?{q}"),
        None => format!("{host_part}/{database}"),
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::None);
        match cleanup {
            Cleanup::None => {}
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    let _ = std::fs::remove_file(name);
                }
            }
            server => {
                // Drop may run inside a runtime: clean up from a thread with its own.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(drop_server_database(server));
                })
                .join();
            }
        }
    }
}

async fn drop_server_database(cleanup: Cleanup) {
    match cleanup {
        Cleanup::PgSchema { admin_url, schema } => {
            if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await;
                let _ = conn.close().await;
            }
        }
        Cleanup::MySqlDatabase {
            admin_url,
            database,
        } => {
            if let Ok(mut conn) = sqlx::mysql::MySqlConnection::connect(&admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {database}"
                )))
                .execute(&mut conn)
                .await;
                let _ = conn.close().await;
            }
        }
        Cleanup::None | Cleanup::File(_) => {}
    }
}

/// A migrated test database; dereferences to [`Db`]. Removed on drop.
#[derive(Debug)]
pub struct TestDb {
    /// Backend label, for assertion messages.
    pub label: String,
    /// The database.
    pub db: Db,
    /// Declared last so the pool is dropped before the database is removed.
    target: Target,
}

impl TestDb {
    /// The URL of this database (to open more `Db`s on it).
    pub fn url(&self) -> &str {
        &self.target.url
    }
}

impl Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

/// A fresh, migrated database on the backend `label`.
pub async fn fresh_db(label: &str) -> TestDb {
    let target = fresh_target(label).await;
    let db = Db::connect(&target.url)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect: {e}"));
    wxrest::user::UserStore::setup(db.clone())
        .await
        .unwrap_or_else(|e| panic!("{label}: migrate: {e}"));
    if label == "postgres" {
        let row: (String,) = sqlx::query_as("SELECT current_schema()::text")
            .fetch_one(db.pool())
            .await
            .expect("current_schema");
        assert!(
            target.url.contains(&row.0),
            "postgres: search_path option not applied (current schema {})",
            row.0
        );
    }
    TestDb {
        label: label.to_owned(),
        db,
        target,
    }
}

/// A fresh, migrated database on every available backend.
pub async fn each_backend() -> Vec<TestDb> {
    let mut dbs = Vec::new();
    for label in backend_labels() {
        dbs.push(fresh_db(label).await);
    }
    dbs
}
