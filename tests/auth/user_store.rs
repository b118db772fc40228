//! The user store and database specification, run on every available backend
//! (see `tests/databases/mod.rs`).

use std::collections::HashSet;

use crate::databases;
use crate::databases::{each_backend, fresh_target, server_labels};
use sqlx::Row;
use wxrest::auth::UserLookup;
use wxrest::db::Db;
use wxrest::user::{NewUser, ProfileUpdate, UserError, UserStore, WxSession};

async fn count_users(db: &Db, where_sql: &str, bind: &str) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM users WHERE {where_sql} = {}",
        db.dialect().placeholder(1)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(bind.to_owned())
        .fetch_one(db.pool())
        .await
        .expect("count")
        .try_get::<i64, _>("n")
        .expect("count is an integer")
}

#[tokio::test]
async fn migrations_apply_twice_idempotently() {
    for t in each_backend().await {
        UserStore::setup(t.db.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.label));
        UserStore::setup(t.db.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.label));
        let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
            .fetch_one(t.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(applied, 1, "{}", t.label);
        // A second Db on the same database migrates again without harm.
        if t.label != "sqlite-memory" {
            let again = Db::connect(t.url()).await.unwrap();
            UserStore::setup(again).await.unwrap();
        }
    }
}

#[tokio::test]
async fn ping_answers_on_a_live_database() {
    for t in each_backend().await {
        t.ping()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.label));
    }
}

#[tokio::test]
async fn connecting_to_a_dead_server_fails_within_the_acquire_timeout() {
    let options =
        wxrest::db::DbOptions::default().acquire_timeout(std::time::Duration::from_secs(1));
    let started = std::time::Instant::now();
    let result = Db::connect_with("postgres://nobody@127.0.0.1:1/none", options).await;
    assert!(result.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn sqlite_memory_is_shared_by_every_pooled_connection() {
    let db = Db::connect_with(
        "sqlite::memory:",
        wxrest::db::DbOptions::default().max_connections(4),
    )
    .await
    .unwrap();
    let users = UserStore::setup(db.clone()).await.unwrap();
    users.create_user(NewUser::new("shared")).await.unwrap();
    // Hold three connections so queries run on different ones.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(db.pool().acquire().await.unwrap());
    }
    for conn in &mut held {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&mut **conn)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 1);
    }
}

#[tokio::test]
async fn sqlite_file_uses_wal_and_foreign_keys() {
    let t = databases::fresh_db("sqlite-file").await;
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>(0).unwrap().to_lowercase(), "wal");
    let row = sqlx::query("PRAGMA foreign_keys")
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>(0).unwrap(), 1);
    let row = sqlx::query("PRAGMA busy_timeout")
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>(0).unwrap(), 5000);
}

#[tokio::test]
async fn created_user_is_found_by_id_and_username() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let created = users
            .create_user(
                NewUser::new("alice")
                    .password("correct horse")
                    .email("alice@example.com")
                    .staff(true),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.label));
        assert_eq!(created.username, "alice", "{}", t.label);
        assert_eq!(created.email, "alice@example.com");
        assert!(created.is_staff && !created.is_superuser && created.is_active);
        assert_eq!(created.openid, None);
        assert_eq!(created.token_version, 0);
        assert_eq!(created.last_login, None);
        assert!((created.date_joined - chrono::Utc::now().timestamp()).abs() < 60);

        let by_id = users.get(created.id).await.unwrap();
        assert_eq!(by_id.as_ref(), Some(&created), "{}", t.label);
        let by_name = users.get_by_username("alice").await.unwrap();
        assert_eq!(by_name, Some(created.clone()), "{}", t.label);
        assert_eq!(
            users.get_by_username("Alice").await.unwrap(),
            None,
            "{}: case-sensitive",
            t.label
        );
        assert_eq!(users.get(created.id + 1000).await.unwrap(), None);
        let auth = users.by_id(created.id).await.unwrap().unwrap();
        assert_eq!(auth.username, "alice");
        assert!(auth.is_staff);
    }
}

#[tokio::test]
async fn duplicate_username_is_username_taken() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        users.create_user(NewUser::new("bob")).await.unwrap();
        let err = users.create_user(NewUser::new("bob")).await.unwrap_err();
        assert!(
            matches!(err, UserError::UsernameTaken),
            "{}: {err:?}",
            t.label
        );
        assert_eq!(count_users(&t, "username", "bob").await, 1);
    }
}

#[tokio::test]
async fn password_verification_accepts_only_the_right_password() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let carol = users
            .create_user(NewUser::new("carol").password("right-password"))
            .await
            .unwrap();
        let ok = users
            .verify_password("carol", "right-password")
            .await
            .unwrap();
        assert_eq!(ok.map(|u| u.id), Some(carol.id), "{}", t.label);
        assert_eq!(
            users
                .verify_password("carol", "wrong-password")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            users
                .verify_password("nobody", "right-password")
                .await
                .unwrap(),
            None
        );

        // No usable password: nothing matches, not even the empty string.
        let wx = users
            .create_user(NewUser::new("no-password"))
            .await
            .unwrap();
        assert_eq!(
            users.verify_password("no-password", "").await.unwrap(),
            None
        );
        assert!(users.get(wx.id).await.unwrap().is_some());

        users.set_password(wx.id, "now-one").await.unwrap();
        assert!(
            users
                .verify_password("no-password", "now-one")
                .await
                .unwrap()
                .is_some()
        );

        // Through the UserLookup trait as the auth layer uses it.
        let lookup: &dyn UserLookup = &users;
        let auth = lookup
            .verify_password("carol", "right-password")
            .await
            .unwrap();
        assert_eq!(auth.map(|a| a.id), Some(carol.id), "{}", t.label);
    }
}

#[tokio::test]
async fn inactive_user_is_still_returned_by_password_verification() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let dave = users
            .create_user(NewUser::new("dave").password("dave-password"))
            .await
            .unwrap();
        assert!(users.set_active(dave.id, false).await.unwrap());
        let found = users
            .verify_password("dave", "dave-password")
            .await
            .unwrap();
        let found = found.unwrap_or_else(|| panic!("{}: inactive user not returned", t.label));
        assert!(!found.is_active, "{}", t.label);
    }
}

#[tokio::test]
async fn ensure_admin_creates_then_promotes_and_resets_password() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let admin = users.ensure_admin("admin", "first-password").await.unwrap();
        assert!(
            admin.is_staff && admin.is_superuser && admin.is_active,
            "{}",
            t.label
        );
        assert!(
            users
                .verify_password("admin", "first-password")
                .await
                .unwrap()
                .is_some()
        );

        users.set_active(admin.id, false).await.unwrap();
        users.set_staff(admin.id, false).await.unwrap();
        let again = users
            .ensure_admin("admin", "second-password")
            .await
            .unwrap();
        assert_eq!(again.id, admin.id, "{}", t.label);
        assert!(
            again.is_staff && again.is_superuser && again.is_active,
            "{}",
            t.label
        );
        assert!(
            users
                .verify_password("admin", "second-password")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            users
                .verify_password("admin", "first-password")
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn upsert_by_openid_creates_then_updates() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let profile = ProfileUpdate {
            nickname: Some("Tea Lover".into()),
            avatar_url: Some("https://wx.qlogo.cn/a.png".into()),
            gender: Some(2),
            city: Some("Hangzhou".into()),
            ..Default::default()
        };
        let first = WxSession::new("oOPENID_case_A", "key-1").unionid("union-1");
        let (created, was_created) = users
            .upsert_by_openid(&first, Some(&profile))
            .await
            .unwrap();
        assert!(was_created, "{}", t.label);
        assert_eq!(created.username, "oOPENID_case_A");
        assert_eq!(created.openid.as_deref(), Some("oOPENID_case_A"));
        assert_eq!(created.unionid.as_deref(), Some("union-1"));
        assert_eq!(created.nickname, "Tea Lover");
        assert_eq!(created.gender, 2);
        assert_eq!(created.city, "Hangzhou");
        assert!(created.is_active && !created.is_staff);
        assert!(created.last_login.is_some());
        assert_eq!(
            users.session_key(created.id).await.unwrap().as_deref(),
            Some("key-1")
        );
        // No usable password: an openid is not a password.
        assert_eq!(
            users.verify_password("oOPENID_case_A", "").await.unwrap(),
            None,
            "{}",
            t.label
        );

        // Second login: no unionid, no profile. Keeps both, rotates the session key.
        sqlx::query("UPDATE users SET last_login = 1")
            .execute(t.pool())
            .await
            .unwrap();
        let second = WxSession::new("oOPENID_case_A", "key-2");
        let (updated, was_created) = users.upsert_by_openid(&second, None).await.unwrap();
        assert!(!was_created, "{}", t.label);
        assert_eq!(updated.id, created.id);
        assert_eq!(
            updated.unionid.as_deref(),
            Some("union-1"),
            "{}: unionid kept",
            t.label
        );
        assert_eq!(updated.nickname, "Tea Lover", "{}", t.label);
        assert_eq!(updated.city, "Hangzhou");
        assert_eq!(updated.date_joined, created.date_joined);
        assert!(
            updated.last_login.is_some_and(|l| l > 1),
            "{}: last_login",
            t.label
        );
        assert_eq!(
            users.session_key(created.id).await.unwrap().as_deref(),
            Some("key-2")
        );

        // Third login: only the given profile fields change.
        let nickname_only = ProfileUpdate {
            nickname: Some("New Name".into()),
            ..Default::default()
        };
        let third = WxSession::new("oOPENID_case_A", "key-3").unionid("union-2");
        let (updated, was_created) = users
            .upsert_by_openid(&third, Some(&nickname_only))
            .await
            .unwrap();
        assert!(!was_created);
        assert_eq!(updated.nickname, "New Name", "{}", t.label);
        assert_eq!(
            updated.avatar_url, "https://wx.qlogo.cn/a.png",
            "{}",
            t.label
        );
        assert_eq!(updated.gender, 2);
        assert_eq!(updated.unionid.as_deref(), Some("union-2"));

        // Openids are case-sensitive: a different case is a different user.
        let (other, was_created) = users
            .upsert_by_openid(&WxSession::new("oopenid_CASE_a", "k"), None)
            .await
            .unwrap();
        assert!(
            was_created,
            "{}: case-variant openid must be a new user",
            t.label
        );
        assert_ne!(other.id, created.id);
        assert_eq!(
            users
                .get_by_openid("oOPENID_case_A")
                .await
                .unwrap()
                .map(|u| u.id),
            Some(created.id)
        );
    }
}

#[tokio::test]
async fn upsert_does_not_touch_an_account_whose_username_is_the_openid() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let squatter = users
            .create_user(NewUser::new("oVictimOpenid").password("squatter-pw"))
            .await
            .unwrap();
        let result = users
            .upsert_by_openid(&WxSession::new("oVictimOpenid", "victim-key"), None)
            .await;
        assert!(
            result.is_err(),
            "{}: must not log into another account",
            t.label
        );
        assert_eq!(
            users.session_key(squatter.id).await.unwrap(),
            None,
            "{}",
            t.label
        );
        let squatter_now = users.get(squatter.id).await.unwrap().unwrap();
        assert_eq!(squatter_now.openid, None, "{}", t.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_new_openid_create_exactly_one_row() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let users = users.clone();
            tasks.push(tokio::spawn(async move {
                users
                    .upsert_by_openid(
                        &WxSession::new("oConcurrentOpenid", format!("key-{i}")),
                        None,
                    )
                    .await
            }));
        }
        let mut ids = HashSet::new();
        let mut created = 0;
        for task in tasks {
            let (user, was_created) = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{}: upsert failed: {e}", t.label));
            ids.insert(user.id);
            created += usize::from(was_created);
        }
        assert_eq!(ids.len(), 1, "{}", t.label);
        assert_eq!(created, 1, "{}: exactly one call reports created", t.label);
        assert_eq!(
            count_users(&t, "openid", "oConcurrentOpenid").await,
            1,
            "{}",
            t.label
        );
    }
}

#[tokio::test]
async fn set_active_and_set_staff_bump_the_token_version() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let erin = users.create_user(NewUser::new("erin")).await.unwrap();
        assert_eq!(erin.token_version, 0);

        assert!(users.set_active(erin.id, false).await.unwrap());
        let now = users.get(erin.id).await.unwrap().unwrap();
        assert!(!now.is_active, "{}", t.label);
        assert_eq!(now.token_version, 1, "{}", t.label);

        assert!(users.set_staff(erin.id, true).await.unwrap());
        let now = users.get(erin.id).await.unwrap().unwrap();
        assert!(now.is_staff, "{}", t.label);
        assert_eq!(now.token_version, 2, "{}", t.label);

        assert!(!users.set_active(erin.id + 1000, true).await.unwrap());
    }
}

#[tokio::test]
async fn bump_token_version_returns_the_new_value_or_none() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let frank = users.create_user(NewUser::new("frank")).await.unwrap();
        assert_eq!(
            users.bump_token_version(frank.id).await.unwrap(),
            Some(1),
            "{}",
            t.label
        );
        assert_eq!(
            users.bump_token_version(frank.id).await.unwrap(),
            Some(2),
            "{}",
            t.label
        );
        let lookup: &dyn UserLookup = &users;
        assert_eq!(lookup.bump_token_version(frank.id).await.unwrap(), Some(3));
        assert_eq!(
            users.bump_token_version(frank.id + 1000).await.unwrap(),
            None,
            "{}",
            t.label
        );
        assert_eq!(users.get(frank.id).await.unwrap().unwrap().token_version, 3);
    }
}

#[tokio::test]
async fn update_profile_changes_only_given_fields() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let (user, _) = users
            .upsert_by_openid(&WxSession::new("oProfile", "k"), None)
            .await
            .unwrap();
        let first = ProfileUpdate {
            nickname: Some("名字 🍵".into()),
            country: Some("China".into()),
            language: Some("zh_CN".into()),
            ..Default::default()
        };
        let after = users
            .update_profile(user.id, &first)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.nickname, "名字 🍵", "{}", t.label);
        assert_eq!(after.country, "China");
        let second = ProfileUpdate {
            gender: Some(1),
            ..Default::default()
        };
        let after = users
            .update_profile(user.id, &second)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.gender, 1);
        assert_eq!(after.nickname, "名字 🍵", "{}", t.label);
        assert_eq!(after.language, "zh_CN");
        assert_eq!(
            users.update_profile(user.id + 1000, &second).await.unwrap(),
            None
        );

        assert!(users.set_phone(user.id, "13800138000", "86").await.unwrap());
        assert!(users.touch_login(user.id).await.unwrap());
        let after = users.get(user.id).await.unwrap().unwrap();
        assert_eq!(after.phone, "13800138000", "{}", t.label);
        assert_eq!(after.phone_country_code, "86");
    }
}

#[tokio::test]
async fn user_json_never_contains_secrets() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let (user, _) = users
            .upsert_by_openid(
                &WxSession::new("oSecretOpenid", "SECRET-SESSION-KEY").unionid("SECRET-UNIONID"),
                None,
            )
            .await
            .unwrap();
        users
            .set_password(user.id, "SECRET-PASSWORD")
            .await
            .unwrap();
        let user = users.get(user.id).await.unwrap().unwrap();
        let json = serde_json::to_string(&user).unwrap();
        for secret in [
            "password",
            "session_key",
            "SECRET-SESSION-KEY",
            "openid\"",
            "unionid",
            "SECRET-UNIONID",
            "token_version",
            "argon2",
        ] {
            assert!(!json.contains(secret), "{}: {secret} in {json}", t.label);
        }
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["id"], user.id);
        assert_eq!(value["is_active"], true);
        assert!(
            value["date_joined"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z') && s.contains('T'))
        );
        assert!(value["last_login"].is_string());
    }
}

#[test]
fn profile_validation_reports_drf_field_errors() {
    let update = ProfileUpdate {
        nickname: Some("n".repeat(65)),
        avatar_url: Some("a".repeat(513)),
        gender: Some(7),
        city: Some("杭".repeat(64)),
        ..Default::default()
    };
    let err = update.validate().unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.code(), "invalid");
    assert_eq!(
        err.body(),
        serde_json::json!({
            "nickname": ["Ensure this field has no more than 64 characters."],
            "avatar_url": ["Ensure this field has no more than 512 characters."],
            "gender": ["\"7\" is not a valid choice."],
        })
    );
    let ok = ProfileUpdate {
        nickname: Some("名".repeat(64)),
        ..Default::default()
    };
    assert!(ok.validate().is_ok(), "limits count characters, not bytes");
}

#[tokio::test]
async fn concurrent_migrations_on_one_fresh_database_both_succeed() {
    for label in server_labels() {
        let target = fresh_target(label).await;
        let a = Db::connect(&target.url).await.unwrap();
        let b = Db::connect(&target.url).await.unwrap();
        let (users, other) = tokio::join!(UserStore::setup(a.clone()), UserStore::setup(b.clone()));
        let users = users.unwrap_or_else(|e| panic!("{label}: first migrator: {e}"));
        other.unwrap_or_else(|e| panic!("{label}: second migrator: {e}"));
        users.create_user(NewUser::new("after-race")).await.unwrap();
        assert!(
            UserStore::new(b.clone())
                .get_by_username("after-race")
                .await
                .unwrap()
                .is_some(),
            "{label}"
        );
        let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
            .fetch_one(a.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(applied, 1, "{label}");
        a.pool().close().await;
        b.pool().close().await;
    }
}

mod deactivation {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use wxrest::auth::{
        AuthUser, JwtConfig, MemoryRevocationStore, RedisRevocationStore, RevocationStore,
        TokenService,
    };

    const SECRET: &str = "deactivation-secret-0123456789abcdef";

    fn tokens(users: &UserStore, store: Arc<dyn RevocationStore>) -> TokenService {
        TokenService::new(JwtConfig::hs256(SECRET).unwrap())
            .with_store(store)
            .with_users(users.clone())
    }

    async fn login(tokens: &TokenService, users: &UserStore, name: &str) -> (i64, String) {
        let user = users.create_user(NewUser::new(name)).await.unwrap();
        let pair = tokens.issue(&AuthUser::from(user.clone())).await.unwrap();
        // The first request caches the token version.
        tokens.authenticate(&pair.token).await.unwrap();
        (user.id, pair.token)
    }

    #[tokio::test]
    async fn deactivation_through_the_store_ends_tokens_at_once() {
        for t in each_backend().await {
            let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::new());
            let users = UserStore::new(t.db.clone()).with_revocations(store.clone());
            let tokens = tokens(&users, store);
            let (id, token) = login(&tokens, &users, "grace").await;
            users.set_active(id, false).await.unwrap();
            assert!(tokens.authenticate(&token).await.is_err(), "{}", t.label);
            // Staff changes end tokens too (the claim changed).
            let (id, token) = login(&tokens, &users, "heidi").await;
            users.set_staff(id, true).await.unwrap();
            assert!(tokens.authenticate(&token).await.is_err(), "{}", t.label);
        }
    }

    #[tokio::test]
    async fn with_redis_every_instance_sees_a_deactivation_at_once() {
        let Some(url) = databases::redis_url() else {
            return;
        };
        let db = databases::fresh_db("sqlite-file").await;
        let prefix = format!("wxrest-test-deactivate-{}:", uuid::Uuid::new_v4().simple());
        let redis = || -> Arc<dyn RevocationStore> {
            Arc::new(
                RedisRevocationStore::open(&url)
                    .unwrap()
                    .prefix(prefix.clone()),
            )
        };
        let (a_store, b_store) = (redis(), redis());
        let a_users = UserStore::new(db.db.clone()).with_revocations(a_store.clone());
        let b_users = UserStore::new(db.db.clone()).with_revocations(b_store.clone());
        let (a, b) = (tokens(&a_users, a_store), tokens(&b_users, b_store));
        let (id, token) = login(&a, &a_users, "ivan").await;
        b.authenticate(&token).await.unwrap();
        a_users.set_active(id, false).await.unwrap();
        assert!(b.authenticate(&token).await.is_err());
    }

    #[tokio::test]
    async fn a_change_made_in_the_database_directly_takes_effect_within_the_version_ttl() {
        for t in each_backend().await {
            let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::with_limits(
                1_000,
                Duration::from_secs(1),
            ));
            let users = UserStore::new(t.db.clone());
            let tokens = tokens(&users, store).recheck_after(Duration::from_millis(200));
            let (id, token) = login(&tokens, &users, "judy").await;
            // A Django admin sharing the database deactivates the user.
            let sql = format!(
                "UPDATE users SET is_active = {} WHERE id = {}",
                t.db.dialect().placeholder(1),
                t.db.dialect().placeholder(2)
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(false)
                .bind(id)
                .execute(t.db.pool())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(tokens.authenticate(&token).await.is_err(), "{}", t.label);
        }
    }
}

/// The test databases' own URL rewriting (one MySQL database per test).
#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        databases::with_database("mysql://root@127.0.0.1:3306/test", "x"),
        "mysql://root@127.0.0.1:3306/x"
    );
    assert_eq!(
        databases::with_database("mysql://u:p@h/test?ssl-mode=disabled", "x"),
        "mysql://u:p@h/x?ssl-mode=disabled"
    );
    assert_eq!(databases::with_database("mysql://h", "x"), "mysql://h/x");
}

#[tokio::test]
async fn lookups_are_exact_trailing_spaces_included() {
    for t in each_backend().await {
        let users = UserStore::new(t.db.clone());
        let admin = users
            .create_user(NewUser::new("admin").password("right-password"))
            .await
            .unwrap();
        for other in ["admin ", "admin  ", "Admin"] {
            assert!(
                users.get_by_username(other).await.unwrap().is_none(),
                "{}: {other:?} found admin",
                t.label
            );
            assert!(
                users
                    .verify_password(other, "right-password")
                    .await
                    .unwrap()
                    .is_none(),
                "{}: {other:?} logged in as admin",
                t.label
            );
        }
        let found = users.get_by_username("admin").await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(admin.id), "{}", t.label);

        let session = WxSession::new("o-openid", "key");
        users.upsert_by_openid(&session, None).await.unwrap();
        assert!(
            users.get_by_openid("o-openid ").await.unwrap().is_none(),
            "{}",
            t.label
        );
        assert!(users.get_by_openid("o-openid").await.unwrap().is_some());
    }
}
