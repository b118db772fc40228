//! The `mall` binary as an operator runs it: `--help` for every command, `migrate` and
//! `createsuperuser` on a SQLite file, `serve` writing JSON logs whose request span carries
//! the request id, and `serve` refusing development defaults without `MALL_DEV=1`.
//!
//! Every command starts from a clean environment without `MALL_DEV` (which the repository's
//! `.cargo/config.toml` sets for `cargo run` and `cargo test`): the binary as deployed.
//!
//! Runs the example binary `cargo test` builds next to the test executables
//! (`target/debug/examples/mall`). With `cargo test --test mall_cli` alone, build it first:
//! `cargo build --example mall`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `target/debug/examples/mall`, found from this test's own path (`target/debug/deps/...`).
fn mall_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("mall{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds it; alone, run `cargo build --example mall` first",
        binary.display()
    );
    binary
}

/// A temp SQLite file, removed on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "wxrest-mall-cli-{}.db",
            uuid::Uuid::new_v4().simple()
        )))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

/// A `mall` command with a clean environment of its own.
fn mall(db: Option<&TempDb>) -> Command {
    let mut cmd = Command::new(mall_binary());
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_PREFIX",
        "JWT_SECRET",
        "WX_APPID",
        "WX_SECRET",
        "MALL_ADMIN_PASSWORD",
        "MALL_SEED_DEMO",
        "LOG_FORMAT",
        "WXREST_BIND",
        "MALL_DEV",
        "MALL_HEADER_TIMEOUT",
        "MALL_WRITE_TIMEOUT",
        "MALL_MAX_CONNECTIONS",
        "MALL_MAX_CONNECTIONS_PER_IP",
        "MALL_TRUST_PROXY",
        "MALL_METRICS_BIND",
        "MALL_METRICS_TOKEN",
        "WX_API_BASE",
        "WXPAY_MCHID",
        "WXPAY_NOTIFY_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn");
    if let Some(db) = db {
        cmd.env("DATABASE_URL", db.url());
    }
    cmd
}

fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mall");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for mall")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_describes_every_command_and_the_configuration() {
    let out = run(mall(None).arg("--help"), "");
    assert_eq!(out.status.code(), Some(0));
    let usage = text(&out.stdout);
    for needle in [
        "usage: mall",
        "createsuperuser --username NAME",
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_PREFIX",
        "JWT_SECRET",
        "WX_APPID",
    ] {
        assert!(usage.contains(needle), "--help lacks {needle}:\n{usage}");
    }
    for (command, needle) in [
        ("serve", "usage: mall serve"),
        ("migrate", "usage: mall migrate"),
        (
            "createsuperuser",
            "usage: mall createsuperuser --username NAME",
        ),
        ("seed-demo", "usage: mall seed-demo"),
    ] {
        for flag in ["--help", "-h"] {
            let out = run(mall(None).args([command, flag]), "");
            assert_eq!(out.status.code(), Some(0), "{command} {flag}");
            let help = text(&out.stdout);
            assert!(help.contains(needle), "{command} {flag}:\n{help}");
        }
    }
}

#[test]
fn an_unknown_command_fails_with_the_usage() {
    let out = run(mall(None).arg("frobnicate"), "");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("unknown command \"frobnicate\"") && err.contains("usage: mall"));
}

#[test]
fn migrate_then_createsuperuser_on_a_sqlite_file() {
    let db = TempDb::new();
    let out = run(mall(Some(&db)).arg("migrate"), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "migrations applied");
    assert!(db.0.exists());
    // Again: nothing to do, still fine.
    assert_eq!(
        run(mall(Some(&db)).arg("migrate"), "").status.code(),
        Some(0)
    );

    // Password from stdin.
    let out = run(
        mall(Some(&db)).args(["createsuperuser", "--username", "boss"]),
        "a-long-enough-password\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.starts_with("superuser boss (id ") && said.trim_end().ends_with(") ready"),
        "{said}"
    );
    assert!(text(&out.stderr).contains("password (one line on stdin):"));

    // Password from MALL_ADMIN_PASSWORD; stdin is not read.
    let out = run(
        mall(Some(&db))
            .args(["createsuperuser", "--username", "ops"])
            .env("MALL_ADMIN_PASSWORD", "another-long-password"),
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("superuser ops (id "));

    // Refusals: exit 1 and a reason.
    let out = run(
        mall(Some(&db)).arg("createsuperuser"),
        "whatever-password\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("createsuperuser needs --username NAME"));
    let out = run(
        mall(Some(&db)).args(["createsuperuser", "--username", "short"]),
        "short\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("at least 8 characters"));

    // Both accounts are staff superusers in the file.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Booleans are integers in SQLite.
    let rows: Vec<(String, i64, i64)> = rt.block_on(async {
        let db = wxrest::db::Db::connect(&db.url()).await.unwrap();
        sqlx::query_as("SELECT username, is_staff, is_superuser FROM users ORDER BY username")
            .fetch_all(db.pool())
            .await
            .unwrap()
    });
    assert_eq!(
        rows,
        vec![("boss".to_owned(), 1, 1), ("ops".to_owned(), 1, 1)]
    );
}

/// A `mall serve` child, killed on drop; its stdout lines arrive on `lines`.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// In development mode, on loopback.
    fn start(db: &TempDb) -> Self {
        Self::start_with(db, &[("WXREST_BIND", "127.0.0.1:0"), ("MALL_DEV", "1")])
    }

    fn start_with(db: &TempDb, env: &[(&str, &str)]) -> Self {
        let mut child = mall(Some(db))
            .arg("serve")
            .envs(env.iter().copied())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("MALL_ACCESS_LOG", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mall serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 30 s) for a log line satisfying `pred`.
    /// Waits for the "mall listening" line; its address.
    fn listening(&mut self) -> String {
        let line = self.wait_for("\"mall listening\"", |v| {
            v["fields"]["message"] == "mall listening"
        });
        line["fields"]["addr"]
            .as_str()
            .expect("the listening line names the address")
            .to_owned()
    }

    fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let value: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                    if pred(&value) {
                        return value;
                    }
                }
                Err(_) => panic!(
                    "no log line {what} within 30 s; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_logs_json_with_the_request_id_in_the_request_span() {
    let db = TempDb::new();
    let mut server = Server::start(&db);
    let addr = server.listening();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // reqwest is built with `rustls-no-provider` (wxrest's TLS is rustls on ring): like any
    // app building its own clients, pick the process's crypto provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echoed = rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .header("x-request-id", "trace-me-42")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.headers()["x-request-id"].to_str().unwrap().to_owned()
    });
    assert_eq!(echoed, "trace-me-42");
    let finished = server.wait_for("for the request", |v| {
        v["span"]["request_id"] == "trace-me-42"
    });
    assert_eq!(finished["span"]["path"], "/healthz");
    assert_eq!(finished["span"]["method"], "GET");
}

/// `mall serve` that is expected to refuse to start: its output once it has exited (killed
/// after 60 s if it serves instead).
fn refused_serve(db: &TempDb, env: &[(&str, &str)]) -> Output {
    let mut child = mall(Some(db))
        .arg("serve")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mall serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll mall").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("mall output")
}

const A_SECRET: &str = "a-production-secret-of-at-least-32-bytes";

#[test]
fn serve_on_a_public_address_without_jwt_secret_exits_before_migrating() {
    let db = TempDb::new();
    let out = refused_serve(&db, &[("WXREST_BIND", "0.0.0.0:0")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("JWT_SECRET is not set"), "{err}");
    assert!(
        !db.0.exists(),
        "the database was touched before the refusal"
    );
}

#[test]
fn serve_on_a_public_address_without_wx_appid_refuses_the_fake_wechat() {
    let db = TempDb::new();
    let out = refused_serve(
        &db,
        &[("WXREST_BIND", "0.0.0.0:0"), ("JWT_SECRET", A_SECRET)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("WX_APPID is not set"), "{err}");
    assert!(
        !db.0.exists(),
        "the database was touched before the refusal"
    );
}

#[test]
fn a_blank_jwt_secret_is_refused_even_on_loopback() {
    let db = TempDb::new();
    for blank in ["", "   "] {
        let out = refused_serve(
            &db,
            &[("WXREST_BIND", "127.0.0.1:0"), ("JWT_SECRET", blank)],
        );
        assert_eq!(out.status.code(), Some(1), "{blank:?}");
        assert!(text(&out.stderr).contains("JWT_SECRET is set but blank"));
    }
}

#[test]
fn malformed_limits_are_start_up_errors() {
    let db = TempDb::new();
    for (var, value) in [
        ("MALL_HEADER_TIMEOUT", "soon"),
        ("MALL_WRITE_TIMEOUT", "30s"),
        ("MALL_MAX_CONNECTIONS", "-1"),
        ("MALL_MAX_CONNECTIONS_PER_IP", "many"),
        ("MALL_TRUST_PROXY", "yes"),
        ("MALL_BODY_LIMIT", "1MB"),
    ] {
        let out = refused_serve(&db, &[("WXREST_BIND", "127.0.0.1:0"), (var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        assert!(
            text(&out.stderr).contains(var),
            "{var}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn mall_dev_allows_development_defaults_on_a_public_address() {
    let db = TempDb::new();
    let mut server = Server::start_with(&db, &[("WXREST_BIND", "0.0.0.0:0"), ("MALL_DEV", "1")]);
    server.wait_for("warning about MALL_DEV", |v| {
        v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("MALL_DEV=1"))
    });
}

#[test]
fn without_mall_dev_serve_refuses_development_defaults_on_every_address() {
    let db = TempDb::new();
    // Loopback is what a host behind nginx binds: it is no development switch.
    for bind in ["127.0.0.1:0", "localhost:0", "[::1]:0", "0.0.0.0:0"] {
        let out = refused_serve(&db, &[("WXREST_BIND", bind)]);
        assert_eq!(out.status.code(), Some(1), "{bind}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("JWT_SECRET is not set"), "{bind}: {err}");
        assert!(err.contains("MALL_DEV=1"), "{bind}: {err}");

        let out = refused_serve(&db, &[("WXREST_BIND", bind), ("JWT_SECRET", A_SECRET)]);
        assert_eq!(out.status.code(), Some(1), "{bind}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("WX_APPID is not set"), "{bind}: {err}");
    }
    assert!(
        !db.0.exists(),
        "the database was touched before the refusal"
    );
}

#[test]
fn without_mall_dev_and_without_a_merchant_payment_is_disabled_not_faked() {
    let db = TempDb::new();
    let mut server = Server::start_with(
        &db,
        &[
            ("WXREST_BIND", "127.0.0.1:0"),
            ("JWT_SECRET", A_SECRET),
            ("WX_APPID", "wx-production-appid"),
            ("WX_SECRET", "production-appsecret"),
            // Never reached: nothing logs in.
            ("WX_API_BASE", "http://127.0.0.1:9"),
        ],
    );
    server.wait_for("that payment is disabled", |v| {
        v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("WXPAY_MCHID is not set: payment is disabled"))
    });
    server.listening();
    assert!(
        !server
            .seen
            .iter()
            .any(|line| line.contains("fake") && !line.contains("payment is disabled")),
        "a fake runs without MALL_DEV:\n{}",
        server.seen.join("\n")
    );
}

#[test]
fn cargo_commands_run_the_mall_in_development_mode() {
    // The README's `cargo run --example mall` must keep working with no configuration: the
    // repository's cargo configuration switches development on for cargo's commands only.
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.cargo/config.toml"))
            .expect(".cargo/config.toml");
    let env_table = config
        .split_once("[env]")
        .map(|(_, rest)| rest)
        .expect("an [env] table");
    assert!(
        env_table
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .any(|l| l.replace(' ', "") == "MALL_DEV=\"1\""),
        "{config}"
    );
}

#[test]
fn a_short_admin_password_is_refused_at_serve_start_up() {
    let db = TempDb::new();
    let out = refused_serve(
        &db,
        &[
            ("WXREST_BIND", "127.0.0.1:0"),
            ("MALL_DEV", "1"),
            ("MALL_ADMIN_PASSWORD", "short"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("MALL_ADMIN_PASSWORD: the password must be at least 8 characters"),
        "{err}"
    );
    assert!(
        !db.0.exists(),
        "the database was touched before the refusal"
    );
}

/// `(is_staff, is_active)` of `username` in `db`.
fn staff_and_active(db: &TempDb, username: &str) -> (i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = wxrest::db::Db::connect(&db.url()).await.unwrap();
        sqlx::query_as("SELECT is_staff, is_active FROM users WHERE username = ?")
            .bind(username)
            .fetch_one(db.pool())
            .await
            .unwrap()
    })
}

#[test]
fn serve_creates_admin_once_and_a_restart_keeps_an_operators_revocation() {
    let db = TempDb::new();
    let env = [
        ("WXREST_BIND", "127.0.0.1:0"),
        ("MALL_DEV", "1"),
        ("MALL_ADMIN_PASSWORD", "admin-password-1"),
    ];
    let mut first = Server::start_with(&db, &env);
    first.listening();
    drop(first);
    assert_eq!(staff_and_active(&db, "admin"), (1, 1));

    // The operator takes the staff rights away ...
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = wxrest::db::Db::connect(&db.url()).await.unwrap();
        sqlx::query("UPDATE users SET is_staff = 0, is_superuser = 0 WHERE username = 'admin'")
            .execute(pool.pool())
            .await
            .unwrap();
    });
    // ... and a restart with the variable still set does not give them back.
    let mut second = Server::start_with(&db, &env);
    second.listening();
    drop(second);
    assert_eq!(staff_and_active(&db, "admin"), (0, 1));
}
