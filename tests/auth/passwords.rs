//! Passwords over `POST /auth/token/`: hashes written by Django log in and are upgraded to
//! argon2id, wrong or unusable ones fail exactly as today, verification takes the same time
//! whatever the stored value, and the hashing bound answers overload with 503.

use std::time::{Duration, Instant};

use crate::auth_fixtures::jwt;
use crate::databases;
use crate::oneshot::{post_json, send};
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use axum::Router;
use http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wxrest::auth::{TokenService, token_routes};
use wxrest::db::Db;
use wxrest::user::password::PasswordHashing;
use wxrest::user::{NewUser, UserStore};

/// Django's `make_password("lètmein", "seasalt", "pbkdf2_sha256")` (its tests, Django 4.1).
const DJANGO_PBKDF2_SHA256: &str =
    "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=";
/// Django's `PBKDF2SHA1PasswordHasher().encode("lètmein", "seasalt2")` (its tests).
const DJANGO_PBKDF2_SHA1: &str = "pbkdf2_sha1$390000$seasalt2$aDapRanzW8aHTz97v2TcfHzWD+I=";
/// Django's tests: "secret" with Django's default argon2 parameters (100 MiB, 2 passes, 8 lanes).
const DJANGO_ARGON2ID: &str =
    "argon2$argon2id$v=19$m=102400,t=2,p=8$Y041dExhNkljRUUy$TMa6A8fPJhCAUXRhJXCXdw";
/// Django's tests: "secret", an old argon2i hash with a version attribute.
const DJANGO_ARGON2I: &str = "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q";
/// Django's tests: "secret", an old argon2i hash without a version attribute (version 0x10).
const DJANGO_ARGON2I_NO_VERSION: &str = "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg";
/// Django's `make_password("lètmein", "seasalt", "scrypt")` (Django 4+, its defaults n=2**14,
/// r=8, p=1, dklen=64; the value in Django's own tests). Made again with Python's
/// `hashlib.scrypt("lètmein".encode(), salt=b"seasalt", n=2**14, r=8, p=1, dklen=64)`,
/// base64, as `"scrypt$%d$%s$%d$%d$%s" % (n, salt, r, p, hash)`.
const DJANGO_SCRYPT: &str = "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==";
/// The same password and salt with `p=5` (what some Django forks write), made the same way.
const DJANGO_SCRYPT_P5: &str = "scrypt$16384$seasalt$8$5$ECMIUp+LMxMSK8xB/IVyba+KYGTI7FTnet025q/1f/vBAVnnP3hdYqJuRi+mJn6ji6ze3Fbb7JEFPKGpuEf5vw==";
/// OpenWall's bcrypt test vector for "U*U", as Django's `BCryptPasswordHasher` stores it.
const DJANGO_BCRYPT: &str = "bcrypt$$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

const BAD_CREDENTIALS: &str = "Unable to log in with provided credentials.";

/// Django's `BCryptSHA256PasswordHasher().encode(password, salt)`: bcrypt over the lowercase
/// hex SHA-256 of the password, prefixed with `bcrypt_sha256$`.
fn django_bcrypt_sha256(password: &str, cost: u32, salt: [u8; 16]) -> String {
    let hex: String = Sha256::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bcrypt = bcrypt::hash_with_salt(hex, cost, salt)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB);
    format!("bcrypt_sha256${bcrypt}")
}

struct Fixture {
    app: Router,
    users: UserStore,
    hashing: PasswordHashing,
    db: Db,
}

impl Fixture {
    fn new(db: &Db, hashing: PasswordHashing) -> Self {
        let users = UserStore::new(db.clone()).password_hashing(hashing.clone());
        let tokens = TokenService::new(jwt()).with_users(users.clone());
        let app = Router::new().nest("/auth", token_routes(tokens));
        Self {
            app,
            users,
            hashing,
            db: db.clone(),
        }
    }

    /// A bound with no floor: tests that do not measure time stay fast.
    fn unpadded(db: &Db) -> Self {
        Self::new(db, PasswordHashing::new().floor(Duration::ZERO))
    }

    /// A user whose `password` column holds `stored` as Django (or an import) wrote it.
    async fn user_with_stored(&self, username: &str, stored: &str) -> i64 {
        let user = self
            .users
            .create_user(NewUser::new(username))
            .await
            .unwrap();
        let d = self.db.dialect();
        let sql = format!(
            "UPDATE users SET password = {} WHERE id = {}",
            d.placeholder(1),
            d.placeholder(2)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stored.to_owned())
            .bind(user.id)
            .execute(self.db.pool())
            .await
            .unwrap();
        user.id
    }

    async fn stored(&self, id: i64) -> String {
        let sql = format!(
            "SELECT password FROM users WHERE id = {}",
            self.db.dialect().placeholder(1)
        );
        let row: (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(self.db.pool())
            .await
            .unwrap();
        row.0
    }

    async fn login(&self, username: &str, password: &str) -> (StatusCode, http::HeaderMap, Value) {
        let body = json!({"username": username, "password": password});
        send(&self.app, post_json("/auth/token/", None, body)).await
    }

    /// Logs in with the right password, checks that the stored hash became this crate's
    /// argon2id, and that the new hash logs in too.
    async fn assert_logs_in_and_is_upgraded(&self, username: &str, password: &str, id: i64) {
        let (status, _, body) = self.login(username, password).await;
        assert_eq!(status, 200, "{username}: {body}");
        assert!(body["token"].is_string(), "{body}");
        let upgraded = self.stored(id).await;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{username}: not upgraded: {upgraded}"
        );
        let (status, _, body) = self.login(username, password).await;
        assert_eq!(status, 200, "{username} after upgrade: {body}");
        assert_eq!(self.stored(id).await, upgraded, "upgraded only once");
    }

    async fn assert_refused(&self, username: &str, password: &str) {
        let (status, _, body) = self.login(username, password).await;
        assert_eq!(status, 400, "{username}: {body}");
        assert_eq!(
            body,
            json!({"non_field_errors": [BAD_CREDENTIALS]}),
            "{username}"
        );
    }
}

async fn sqlite() -> databases::TestDb {
    databases::fresh_db("sqlite-memory").await
}

#[tokio::test]
async fn django_pbkdf2_sha256_hash_logs_in_and_is_upgraded_to_argon2id() {
    for t in databases::each_backend().await {
        let f = Fixture::unpadded(&t);
        let id = f.user_with_stored("django", DJANGO_PBKDF2_SHA256).await;
        f.assert_logs_in_and_is_upgraded("django", "lètmein", id)
            .await;
    }
}

#[tokio::test]
async fn django_pbkdf2_sha1_hash_logs_in_and_is_upgraded() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let id = f.user_with_stored("sha1", DJANGO_PBKDF2_SHA1).await;
    f.assert_logs_in_and_is_upgraded("sha1", "lètmein", id)
        .await;
}

#[tokio::test]
async fn django_argon2id_hash_with_djangos_default_parameters_logs_in_and_is_upgraded() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let id = f.user_with_stored("argon", DJANGO_ARGON2ID).await;
    f.assert_logs_in_and_is_upgraded("argon", "secret", id)
        .await;
}

#[tokio::test]
async fn old_django_argon2i_hashes_with_and_without_version_log_in() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let id = f.user_with_stored("v19", DJANGO_ARGON2I).await;
    f.assert_logs_in_and_is_upgraded("v19", "secret", id).await;
    let id = f.user_with_stored("v16", DJANGO_ARGON2I_NO_VERSION).await;
    f.assert_logs_in_and_is_upgraded("v16", "secret", id).await;
}

#[tokio::test]
async fn django_bcrypt_sha256_hash_logs_in_and_is_upgraded() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let stored = django_bcrypt_sha256("lètmein", 12, *b"0123456789abcdef");
    assert!(stored.starts_with("bcrypt_sha256$$2b$12$"), "{stored}");
    let id = f.user_with_stored("bsha", &stored).await;
    f.assert_logs_in_and_is_upgraded("bsha", "lètmein", id)
        .await;
}

#[tokio::test]
async fn django_bcrypt_sha256_does_not_truncate_long_passwords() {
    // Django's test: the SHA-256 step means the first 72 bytes are not enough.
    let password = "VSK0UYV6FFQVZ0KG88DYN9WADAADZO1CTSIVDJUNZSUML6IBX7LN7ZS3R5\
                    JGB3RGZ7VI7G7DJQ9NI8BQFSRPTG6UWTTVESA5ZPUN";
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let id = f
        .user_with_stored("long", &django_bcrypt_sha256(password, 4, [7; 16]))
        .await;
    f.assert_refused("long", &password[..72]).await;
    f.assert_logs_in_and_is_upgraded("long", password, id).await;
}

#[tokio::test]
async fn django_bcrypt_hash_logs_in_and_is_upgraded() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let id = f.user_with_stored("bcrypt", DJANGO_BCRYPT).await;
    f.assert_logs_in_and_is_upgraded("bcrypt", "U*U", id).await;
}

#[tokio::test]
async fn native_argon2id_with_older_parameters_is_upgraded() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let weak = Params::new(64, 1, 1, None).unwrap();
    let stored = Argon2::new(Algorithm::Argon2id, Version::V0x13, weak)
        .hash_password(b"native-pass")
        .unwrap()
        .to_string();
    let id = f.user_with_stored("native", &stored).await;
    f.assert_logs_in_and_is_upgraded("native", "native-pass", id)
        .await;
}

#[tokio::test]
async fn django_scrypt_hash_logs_in_and_is_upgraded() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let id = f.user_with_stored("scrypt", DJANGO_SCRYPT).await;
    f.assert_logs_in_and_is_upgraded("scrypt", "lètmein", id)
        .await;
    let id = f.user_with_stored("scrypt5", DJANGO_SCRYPT_P5).await;
    f.assert_logs_in_and_is_upgraded("scrypt5", "lètmein", id)
        .await;
}

#[tokio::test]
async fn scrypt_hash_asking_for_a_gigabyte_is_refused_without_running() {
    // n=2**20, r=8: 1 GiB while it runs. Refused unread (above MAX_SCRYPT_MEMORY), so it gets
    // the usual 400 and the row is kept.
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    let hostile = DJANGO_SCRYPT.replacen("16384", "1048576", 1);
    let id = f.user_with_stored("greedy", &hostile).await;
    f.assert_refused("greedy", "lètmein").await;
    assert_eq!(f.stored(id).await, hostile);
}

#[tokio::test]
async fn wrong_passwords_against_django_hashes_get_the_usual_400_and_keep_the_hash() {
    for t in databases::each_backend().await {
        let f = Fixture::unpadded(&t);
        for (name, stored) in [
            ("pbkdf2", DJANGO_PBKDF2_SHA256.to_owned()),
            ("sha1", DJANGO_PBKDF2_SHA1.to_owned()),
            ("argon2", DJANGO_ARGON2I.to_owned()),
            ("bsha", django_bcrypt_sha256("lètmein", 4, [1; 16])),
            ("bcrypt", DJANGO_BCRYPT.to_owned()),
            ("scrypt", DJANGO_SCRYPT.to_owned()),
        ] {
            let id = f.user_with_stored(name, &stored).await;
            f.assert_refused(name, "lètmeinz").await;
            assert_eq!(f.stored(id).await, stored, "{}: {name}", t.label);
        }
    }
}

#[tokio::test]
async fn unusable_unsupported_and_malformed_hashes_never_match() {
    let t = sqlite().await;
    let f = Fixture::unpadded(&t);
    for (name, stored, password) in [
        ("unusable", "!lètmein", "!lètmein"),
        ("empty", "", "anything"),
        // Django's own vectors for "lètmein" with hashers this crate does not verify.
        (
            "md5",
            "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3",
            "lètmein",
        ),
        (
            "unsalted-md5",
            "88a434c88cca4e900f7874cd98123f43",
            "lètmein",
        ),
        (
            "unsalted-sha1",
            "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b",
            "lètmein",
        ),
        (
            "sha1",
            "sha1$seasalt$cff36ea83f5706ce9aa7454e63e431fc726b2dc8",
            "lètmein",
        ),
        // A truncated PBKDF2 hash and one with an absurd work factor.
        (
            "truncated",
            "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ",
            "lètmein",
        ),
        (
            "too-slow",
            "pbkdf2_sha256$999999999$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            "lètmein",
        ),
    ] {
        let id = f.user_with_stored(name, stored).await;
        f.assert_refused(name, password).await;
        assert_eq!(f.stored(id).await, stored, "{name}");
    }
    f.assert_refused("nobody-at-all", "lètmein").await;
}

#[tokio::test]
async fn every_verification_takes_the_floor_whatever_the_stored_hash() {
    let floor = Duration::from_millis(700);
    let t = sqlite().await;
    let f = Fixture::new(&t, PasswordHashing::new().floor(floor));
    f.users
        .create_user(NewUser::new("native").password("native-pass"))
        .await
        .unwrap();
    f.user_with_stored(
        "pbkdf2",
        "pbkdf2_sha256$1000$seasalt$JgZryXe2Ga8ysg6XbzkLpTdyPQrHqsinbL9BnnhgX4A=",
    )
    .await;
    f.user_with_stored("bcrypt", DJANGO_BCRYPT).await;
    f.user_with_stored("unusable", "!x").await;
    for username in ["native", "pbkdf2", "bcrypt", "unusable", "nobody"] {
        let started = Instant::now();
        f.assert_refused(username, "wrong guess").await;
        let took = started.elapsed();
        assert!(
            took >= floor && took < floor + Duration::from_millis(500),
            "{username}: took {took:?}, floor {floor:?}"
        );
    }
}

#[tokio::test]
async fn overload_answers_503_with_retry_after_and_a_drf_body() {
    let t = sqlite().await;
    let f = Fixture::new(
        &t,
        PasswordHashing::new()
            .permits(1)
            .queue(1)
            .floor(Duration::ZERO),
    );
    f.users
        .create_user(NewUser::new("alice").password("alice-pass"))
        .await
        .unwrap();
    let attempts = (0..24).map(|_| {
        let app = f.app.clone();
        tokio::spawn(async move {
            let body = json!({"username": "alice", "password": "guess"});
            send(&app, post_json("/auth/token/", None, body)).await
        })
    });
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(attempts),
    )
    .await
    .expect("no login hangs");
    let (mut refused, mut busy) = (0, 0);
    for answer in answers {
        let (status, headers, body) = answer.unwrap();
        match status.as_u16() {
            400 => {
                assert_eq!(body, json!({"non_field_errors": [BAD_CREDENTIALS]}));
                refused += 1;
            }
            503 => {
                assert_eq!(
                    body,
                    json!({
                        "detail": "Too many password checks are running, try again in a moment.",
                        "code": "password_checks_busy",
                    })
                );
                assert_eq!(headers["retry-after"], "1");
                busy += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused >= 1, "some guesses were checked");
    assert!(busy >= 1, "the rest were turned away at once");
    assert_eq!(f.hashing.running(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_never_run_more_hashes_than_the_permits() {
    let t = sqlite().await;
    let f = Fixture::new(
        &t,
        PasswordHashing::new()
            .permits(2)
            .queue(64)
            .floor(Duration::ZERO),
    );
    f.users
        .create_user(NewUser::new("alice").password("alice-pass"))
        .await
        .unwrap();
    f.user_with_stored("django", &django_bcrypt_sha256("x", 6, [3; 16]))
        .await;
    let attempts = (0..16).map(|i| {
        let app = f.app.clone();
        let username = if i % 2 == 0 { "alice" } else { "django" };
        tokio::spawn(async move {
            let body = json!({"username": username, "password": "guess"});
            send(&app, post_json("/auth/token/", None, body)).await.0
        })
    });
    for status in futures_util::future::join_all(attempts).await {
        assert_eq!(
            status.unwrap(),
            400,
            "every guess is checked (the queue holds them)"
        );
    }
    let peak = f.hashing.peak_running();
    assert!((1..=2).contains(&peak), "peak {peak} hashes at once");
}

/// A guess against this stored value runs Django's PBKDF2 with the most iterations we verify
/// (seconds of one core): an imported account a guesser keeps the bound busy with.
fn slow_django_hash() -> String {
    format!(
        "pbkdf2_sha256${}$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        wxrest::user::password::MAX_PBKDF2_ITERATIONS
    )
}

/// A login to the token route from `ip`.
fn login_from(username: &str, password: &str, ip: &str) -> http::Request<axum::body::Body> {
    let body = json!({"username": username, "password": password});
    let mut req = post_json("/auth/token/", None, body);
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessing_client_holds_only_its_share_and_other_clients_log_in() {
    let t = sqlite().await;
    // One hash at a time, two waiting: the whole bound is three slots.
    let f = Fixture::new(
        &t,
        PasswordHashing::new()
            .permits(1)
            .queue(2)
            .per_client(1)
            .per_client_queue(2)
            .floor(Duration::ZERO),
    );
    f.users
        .create_user(NewUser::new("staff").password("staff-pass"))
        .await
        .unwrap();
    f.user_with_stored("imported", &slow_django_hash()).await;

    // One client sends six slow guesses at once.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let guesses: Vec<_> = (0..6)
        .map(|_| {
            let (app, answered) = (f.app.clone(), answered.clone());
            tokio::spawn(async move {
                let answer = send(&app, login_from("imported", "guess", "10.0.0.66")).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                answer
            })
        })
        .collect();
    // Wait until each guess runs, waits, or was answered at once.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let done = answered.load(std::sync::atomic::Ordering::SeqCst);
            // One runs, two wait for the client's slot, three were refused at once.
            if f.hashing.running() == 1 && f.hashing.waiting() == 0 && done == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the guesses settle");

    // Another client is queued behind the guess that runs, not turned away.
    let (status, _, body) = send(&f.app, login_from("staff", "staff-pass", "10.0.0.7")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());

    let mut statuses = Vec::new();
    for guess in futures_util::future::join_all(guesses).await {
        let (status, headers, body) = guess.unwrap();
        if status == 429 {
            assert_eq!(body["code"], "throttled", "{body}");
            assert_eq!(headers["retry-after"], "1");
        }
        statuses.push(status.as_u16());
    }
    statuses.sort_unstable();
    // The client's one slot checked the first guess; two waited for it (and were checked in
    // turn, or refused when the slow hash kept them past the client wait); three were refused
    // at once (counted above). None was turned away as "busy" (503).
    assert_eq!(statuses[0], 400, "{statuses:?}");
    assert!(
        statuses[..3].iter().all(|s| [400, 429].contains(s)) && statuses[3..] == [429, 429, 429],
        "{statuses:?}"
    );
    assert_eq!((f.hashing.running(), f.hashing.waiting()), (0, 0));
}

#[tokio::test]
async fn logins_from_one_address_at_once_wait_for_its_share_instead_of_failing() {
    let t = sqlite().await;
    // Staff behind one office address log in together: the client's one slot takes them in
    // turn (each padded to the floor), nobody is refused.
    let f = Fixture::new(
        &t,
        PasswordHashing::new()
            .per_client(1)
            .floor(Duration::from_millis(200)),
    );
    for name in ["ann", "bob", "cat"] {
        f.users
            .create_user(NewUser::new(name).password("office-pass"))
            .await
            .unwrap();
    }
    let logins =
        ["ann", "bob", "cat"].map(|name| send(&f.app, login_from(name, "office-pass", "10.0.0.9")));
    for (status, _, body) in futures_util::future::join_all(logins).await {
        assert_eq!(status, 200, "{body}");
        assert!(body["token"].is_string());
    }
}
