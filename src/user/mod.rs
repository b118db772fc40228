//! User accounts: Django's user fields plus the WeChat identity and profile, stored through
//! [`Db`] on SQLite, PostgreSQL or MySQL.
//! Needs feature `sqlite`, `postgres` or `mysql`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wxrest::db::Db;
//! use wxrest::user::{NewUser, ProfileUpdate, UserStore, WxSession};
//!
//! // Creates (or updates) the users table: the store owns its migrations.
//! let users = UserStore::setup(Db::connect("sqlite::memory:").await?).await?;
//!
//! // A WeChat login: one row per openid, ever.
//! let session = WxSession::new("o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "key-from-wechat");
//! let (user, created) = users.upsert_by_openid(&session, None).await?;
//! assert!(created);
//! assert_eq!(user.username, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M");
//!
//! let profile = ProfileUpdate { nickname: Some("Tea Lover".into()), ..Default::default() };
//! profile.validate()?;
//! let user = users.update_profile(user.id, &profile).await?.expect("user exists");
//! assert_eq!(user.nickname, "Tea Lover");
//!
//! // A password account.
//! let admin = users.create_user(NewUser::new("admin").password("s3cret-pass")).await?;
//! assert!(users.get_by_username("admin").await?.is_some());
//! # let _ = admin;
//! # Ok(())
//! # }
//! ```
//!
//! The users table's migrations live beside this module (`src/user/migrations/<dialect>/`) and
//! are recorded in sqlx's `_sqlx_migrations` table; an application's own tables use
//! [`Db::migrate_app`](crate::db::Db::migrate_app) with a table of their own.
//!
//! The WeChat `session_key`, the password hash, the openid, the unionid and the token version
//! are never part of the serialized [`User`].

mod model;
pub mod password;
mod views;

pub use model::{NewUser, ProfileUpdate, User, WxSession};
pub use views::profile_routes;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};

use crate::auth::{AuthUser, RevocationStore, UserLookup};
use crate::db::{Db, Dialect, SqlValue, bind_all, decode_bool, now};
use crate::error::{ApiError, BackendError};
use password::{PasswordHashing, Verdict};

/// Why [`UserStore::create_user`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// Another account already has this username.
    #[error("a user with that username already exists")]
    UsernameTaken,
    /// The database failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<sqlx::Error> for UserError {
    fn from(err: sqlx::Error) -> Self {
        UserError::Backend(err.into())
    }
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::UsernameTaken => {
                ApiError::validation([("username", "A user with that username already exists.")])
            }
            UserError::Backend(err) => err.into(),
        }
    }
}

/// User accounts in the database. Cheap to clone.
#[derive(Clone)]
pub struct UserStore {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    db: Db,
    /// `SELECT <user columns> FROM users`
    select: String,
    /// Told when a user's tokens end, so cached token versions do not outlive the change.
    revocations: Option<Arc<dyn RevocationStore>>,
    /// The bound every password hash of this store goes through.
    hashing: PasswordHashing,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore")
            .field("db", &self.inner.db)
            .field("hashing", &self.inner.hashing)
            .finish()
    }
}

const USER_COLUMNS: [&str; 20] = [
    "id",
    "username",
    "email",
    "is_staff",
    "is_superuser",
    "is_active",
    "date_joined",
    "last_login",
    "openid",
    "unionid",
    "nickname",
    "avatar_url",
    "gender",
    "country",
    "province",
    "city",
    "language",
    "phone",
    "phone_country_code",
    "token_version",
];

const BOOL_COLUMNS: [&str; 3] = ["is_staff", "is_superuser", "is_active"];

/// The users table, per dialect (sqlx's multi-database example: each component owns its
/// migrations). Versions and SQL text never change once released: sqlx refuses a database whose
/// applied migration's checksum differs.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("src/user/migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("src/user/migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("src/user/migrations/mysql");

fn migrator(dialect: Dialect) -> &'static Migrator {
    match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATIONS,
        Dialect::Postgres => &POSTGRES_MIGRATIONS,
        Dialect::MySql => &MYSQL_MIGRATIONS,
    }
}

/// How often a statement the database aborted to break a deadlock is retried.
const DEADLOCK_RETRIES: usize = 5;

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        is_staff: decode_bool(row, "is_staff")?,
        is_superuser: decode_bool(row, "is_superuser")?,
        is_active: decode_bool(row, "is_active")?,
        date_joined: row.try_get("date_joined")?,
        last_login: row.try_get("last_login")?,
        openid: row.try_get("openid")?,
        unionid: row.try_get("unionid")?,
        nickname: row.try_get("nickname")?,
        avatar_url: row.try_get("avatar_url")?,
        gender: row.try_get("gender")?,
        country: row.try_get("country")?,
        province: row.try_get("province")?,
        city: row.try_get("city")?,
        language: row.try_get("language")?,
        phone: row.try_get("phone")?,
        phone_country_code: row.try_get("phone_country_code")?,
        token_version: row.try_get("token_version")?,
    })
}

/// Whether `found` (a row matched by `column = value`) is exactly `wanted`. MySQL and MariaDB
/// compare `utf8mb4_bin` with PAD SPACE, so `WHERE username = 'admin '` finds `admin`: a
/// lookup keeps the index and is checked here. The unique key treats the two as one value as
/// well, so when the row found differs there is no exact match.
fn exact(found: &str, wanted: &str) -> bool {
    found.as_bytes() == wanted.as_bytes()
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A deadlock or serialization failure: the database rolled the statement back and it can be
/// run again (InnoDB aborts one of several concurrent upserts of the same key this way).
fn is_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01" | "1213"))
        }
        _ => false,
    }
}

impl UserStore {
    /// Creates or updates the `users` table on `db` (applying the store's pending migrations),
    /// then returns the store: the one call an application makes at start-up.
    ///
    /// Safe to call repeatedly and from several processes at once (see
    /// [`Db::migrate_app`](crate::db::Db::migrate_app) for the locking).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wxrest::BackendError> {
    /// use wxrest::{db::Db, user::UserStore};
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// let users = UserStore::setup(db.clone()).await?;
    /// assert!(users.get_by_username("nobody").await?.is_none());
    /// UserStore::setup(db).await?; // nothing left to apply
    /// # Ok(())
    /// # }
    /// ```
    pub async fn setup(db: Db) -> Result<Self, BackendError> {
        db.run_migrator(migrator(db.dialect())).await?;
        Ok(Self::new(db))
    }

    /// A store on `db` whose `users` table is already there (made by [`setup`](Self::setup),
    /// e.g. in another process or by `mall migrate`); use `setup` when in doubt.
    pub fn new(db: Db) -> Self {
        let d = db.dialect();
        let columns: Vec<String> = USER_COLUMNS
            .iter()
            .map(|c| {
                if BOOL_COLUMNS.contains(c) {
                    d.select_bool(c)
                } else {
                    (*c).to_owned()
                }
            })
            .collect();
        let select = format!("SELECT {} FROM users", columns.join(", "));
        Self {
            inner: Arc::new(Inner {
                db,
                select,
                revocations: None,
                hashing: PasswordHashing::shared(),
            }),
        }
    }

    /// Tells `store` (the one the [`TokenService`](crate::auth::TokenService) uses, see
    /// [`TokenService::store`](crate::auth::TokenService::store); pass an `Arc` of it to share
    /// it) whenever this store ends a
    /// user's tokens ([`set_active`](Self::set_active), [`set_staff`](Self::set_staff),
    /// [`bump_token_version`](Self::bump_token_version)): the change then takes effect at once
    /// in this process, and with Redis on every instance. Without it, and for changes made in
    /// the database directly, it takes effect when the cached version expires
    /// ([`DEFAULT_VERSION_TTL`](crate::auth::DEFAULT_VERSION_TTL) plus
    /// [`PASSED_TTL`](crate::auth::PASSED_TTL)).
    ///
    /// ```
    /// # async fn run(db: wxrest::db::Db) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use wxrest::auth::{JwtConfig, MemoryRevocationStore, TokenService};
    /// use wxrest::user::UserStore;
    ///
    /// let revocations = Arc::new(MemoryRevocationStore::new());
    /// let users = UserStore::new(db).with_revocations(revocations.clone());
    /// let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!")?)
    ///     .with_store(revocations)
    ///     .with_users(users.clone());
    /// # let _ = tokens; Ok(()) }
    /// ```
    #[must_use]
    pub fn with_revocations(mut self, store: impl RevocationStore) -> Self {
        Arc::make_mut(&mut self.inner).revocations = Some(Arc::new(store));
        self
    }

    /// Drops the cached token version of `id` after a change ended their tokens.
    async fn tokens_ended(&self, id: i64) -> Result<(), BackendError> {
        match &self.inner.revocations {
            Some(store) => store.forget_token_version(id).await,
            None => Ok(()),
        }
    }

    /// Hashes this store's passwords through `hashing` instead of the process-wide
    /// [`PasswordHashing::shared`] bound (e.g. a smaller bound in tests).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wxrest::db::Db;
    /// use wxrest::user::UserStore;
    /// use wxrest::user::password::PasswordHashing;
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// let users = UserStore::new(db).password_hashing(PasswordHashing::new().permits(1));
    /// # let _ = users;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn password_hashing(mut self, hashing: PasswordHashing) -> Self {
        Arc::make_mut(&mut self.inner).hashing = hashing;
        self
    }

    /// The database this store uses.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    fn dialect(&self) -> Dialect {
        self.inner.db.dialect()
    }

    fn ph(&self, n: usize) -> String {
        self.dialect().placeholder(n)
    }

    async fn fetch_user_where(
        &self,
        condition: &str,
        value: SqlValue,
    ) -> Result<Option<User>, BackendError> {
        let sql = format!("{} WHERE {condition} = {}", self.inner.select, self.ph(1));
        let query = bind_all(sqlx::query(AssertSqlSafe(sql)), &[value]);
        let row = query.fetch_optional(self.inner.db.pool()).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// The user with this id.
    pub async fn get(&self, id: i64) -> Result<Option<User>, BackendError> {
        self.fetch_user_where("id", SqlValue::Int(id)).await
    }

    /// The user with exactly this username (case-sensitive, trailing spaces included, on
    /// every backend: the row found is compared byte for byte, since MySQL's `utf8mb4_bin`
    /// ignores trailing spaces in `=`).
    pub async fn get_by_username(&self, username: &str) -> Result<Option<User>, BackendError> {
        let user = self
            .fetch_user_where("username", SqlValue::Text(username.to_owned()))
            .await?;
        Ok(user.filter(|u| exact(&u.username, username)))
    }

    /// The user with exactly this WeChat openid.
    pub async fn get_by_openid(&self, openid: &str) -> Result<Option<User>, BackendError> {
        let user = self
            .fetch_user_where("openid", SqlValue::Text(openid.to_owned()))
            .await?;
        Ok(user.filter(|u| u.openid.as_deref().is_some_and(|o| exact(o, openid))))
    }

    /// Creates an active password account (or one without a usable password).
    pub async fn create_user(&self, new: NewUser) -> Result<User, UserError> {
        let stored = match &new.password {
            Some(pw) => self
                .inner
                .hashing
                .hash(pw)
                .await
                .map_err(BackendError::from)?,
            None => password::unusable(),
        };
        let d = self.dialect();
        let sql = format!(
            "INSERT INTO users (username, password, email, is_staff, is_superuser, \
             date_joined, is_active) VALUES ({}, {})",
            d.placeholders(1, 6),
            d.bool_literal(true),
        );
        let result = sqlx::query(AssertSqlSafe(sql))
            .bind(new.username.clone())
            .bind(stored)
            .bind(new.email)
            .bind(new.is_staff)
            .bind(new.is_superuser)
            .bind(now())
            .execute(self.inner.db.pool())
            .await;
        match result {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => return Err(UserError::UsernameTaken),
            Err(err) => return Err(err.into()),
        }
        self.get_by_username(&new.username)
            .await?
            .ok_or_else(|| BackendError::Other("created user not found".into()).into())
    }

    /// Sets the user's password; `false` when there is no such user.
    ///
    /// Existing tokens stay valid; call [`bump_token_version`](Self::bump_token_version) to
    /// end them too.
    pub async fn set_password(&self, id: i64, password: &str) -> Result<bool, BackendError> {
        let stored = self.inner.hashing.hash(password).await?;
        let sql = format!(
            "UPDATE users SET password = {} WHERE id = {}",
            self.ph(1),
            self.ph(2)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(stored)
            .bind(id)
            .execute(self.inner.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Creates `username` as an active staff superuser with this password, or makes the
    /// existing account one and sets its password (e.g. from `MALL_ADMIN_PASSWORD` at start-up).
    pub async fn ensure_admin(&self, username: &str, password: &str) -> Result<User, BackendError> {
        let stored = self.inner.hashing.hash(password).await?;
        let d = self.dialect();
        let yes = d.bool_literal(true);
        let set: Vec<String> = vec![
            format!("password = {}", d.inserted("password")),
            format!("is_staff = {yes}"),
            format!("is_superuser = {yes}"),
            format!("is_active = {yes}"),
        ];
        let sql = format!(
            "INSERT INTO users (username, password, is_staff, is_superuser, is_active, \
             date_joined) VALUES ({}, {yes}, {yes}, {yes}, {}) {}",
            d.placeholders(1, 2),
            d.placeholder(3),
            d.upsert("username", &set),
        );
        self.with_deadlock_retry(|| {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(username.to_owned())
                .bind(stored.clone())
                .bind(now())
        })
        .await?;
        self.get_by_username(username)
            .await?
            .ok_or_else(|| BackendError::Other("admin user not found after upsert".into()))
    }

    async fn with_deadlock_retry<'q, F>(
        &self,
        make: F,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error>
    where
        F: Fn() -> Query<'q, Any, AnyArguments>,
    {
        let mut attempt = 0;
        loop {
            match make().execute(self.inner.db.pool()).await {
                Err(err) if is_retryable(&err) && attempt < DEADLOCK_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "retrying a statement aborted by a deadlock");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempt as u64)).await;
                }
                other => return other,
            }
        }
    }

    /// Records a WeChat login: creates the user for a new openid or updates the existing one,
    /// in ONE `INSERT ... ON CONFLICT (openid) DO UPDATE` (`ON DUPLICATE KEY UPDATE` on MySQL)
    /// statement, so concurrent logins of a new openid create exactly one row. Returns the user
    /// and whether this call created it.
    ///
    /// Sets `session_key` and `last_login`; sets `unionid` when given (keeps the old one
    /// otherwise) and the profile fields that are given. A new user gets `username = openid`
    /// (the Django seed's convention), no usable password and `is_active = true`.
    ///
    /// *Created* is exact under concurrency: the insert writes a fresh random nonce into the
    /// `created_nonce` column, which an update never touches; this call created the row iff
    /// the row read back carries its nonce.
    ///
    /// Fails if a different account already uses the openid as its username.
    pub async fn upsert_by_openid(
        &self,
        session: &WxSession,
        profile: Option<&ProfileUpdate>,
    ) -> Result<(User, bool), BackendError> {
        let d = self.dialect();
        let at = now();
        let nonce = uuid::Uuid::new_v4().to_string();

        let mut insert: Vec<(&str, SqlValue)> = vec![
            ("username", SqlValue::Text(session.openid.clone())),
            ("password", SqlValue::Text(password::unusable())),
            ("is_active", SqlValue::Bool(true)),
            ("date_joined", SqlValue::Int(at)),
            ("last_login", SqlValue::Int(at)),
            ("openid", SqlValue::Text(session.openid.clone())),
            ("unionid", SqlValue::from(session.unionid.clone())),
            ("session_key", SqlValue::Text(session.session_key.clone())),
            ("created_nonce", SqlValue::Text(nonce.clone())),
        ];
        let mut set: Vec<(&str, String)> = vec![
            ("session_key", d.inserted("session_key")),
            ("last_login", d.inserted("last_login")),
            (
                "unionid",
                format!(
                    "COALESCE({}, {})",
                    d.inserted("unionid"),
                    d.existing("users", "unionid")
                ),
            ),
        ];
        for (column, value) in profile.map(ProfileUpdate::fields).unwrap_or_default() {
            set.push((column, d.inserted(column)));
            insert.push((column, value));
        }

        let assignments: Vec<String> = set
            .into_iter()
            .map(|(column, expr)| {
                let quoted = d.quote_ident(column);
                match d {
                    // ON DUPLICATE KEY fires on the username key too: only ever change the
                    // row that has this openid.
                    Dialect::MySql => format!(
                        "{quoted} = IF({openid} <=> {new_openid}, {expr}, {quoted})",
                        openid = d.quote_ident("openid"),
                        new_openid = d.inserted("openid"),
                    ),
                    Dialect::Sqlite | Dialect::Postgres => format!("{quoted} = {expr}"),
                }
            })
            .collect();
        let columns: Vec<&str> = insert.iter().map(|(c, _)| *c).collect();
        let sql = format!(
            "INSERT INTO users ({}) VALUES ({}) {}",
            columns.join(", "),
            d.placeholders(1, columns.len()),
            d.upsert("openid", &assignments),
        );
        let values: Vec<SqlValue> = insert.into_iter().map(|(_, v)| v).collect();
        self.with_deadlock_retry(|| bind_all(sqlx::query(AssertSqlSafe(sql.clone())), &values))
            .await?;

        let sql = format!(
            "{}, created_nonce FROM users WHERE openid = {}",
            self.inner.select.trim_end_matches(" FROM users"),
            d.placeholder(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(session.openid.clone())
            .fetch_optional(self.inner.db.pool())
            .await?
            .ok_or_else(|| {
                BackendError::Other("another account already uses this openid as username".into())
            })?;
        let user = user_from_row(&row)?;
        let stored_nonce: Option<String> = row.try_get("created_nonce")?;
        Ok((user, stored_nonce.as_deref() == Some(nonce.as_str())))
    }

    /// Changes only the given profile fields; `None` when there is no such user.
    ///
    /// Call [`ProfileUpdate::validate`] first: the database may reject or truncate
    /// over-long values.
    pub async fn update_profile(
        &self,
        id: i64,
        profile: &ProfileUpdate,
    ) -> Result<Option<User>, BackendError> {
        let fields = profile.fields();
        if fields.is_empty() {
            return self.get(id).await;
        }
        let d = self.dialect();
        let set: Vec<String> = fields
            .iter()
            .enumerate()
            .map(|(i, (column, _))| format!("{} = {}", d.quote_ident(column), d.placeholder(i + 1)))
            .collect();
        let sql = format!(
            "UPDATE users SET {} WHERE id = {}",
            set.join(", "),
            d.placeholder(fields.len() + 1)
        );
        let mut values: Vec<SqlValue> = fields.into_iter().map(|(_, v)| v).collect();
        values.push(SqlValue::Int(id));
        bind_all(sqlx::query(AssertSqlSafe(sql)), &values)
            .execute(self.inner.db.pool())
            .await?;
        self.get(id).await
    }

    /// Sets the phone number (e.g. from `getuserphonenumber`); `false` when there is no such
    /// user.
    pub async fn set_phone(
        &self,
        id: i64,
        phone: &str,
        country_code: &str,
    ) -> Result<bool, BackendError> {
        let sql = format!(
            "UPDATE users SET phone = {}, phone_country_code = {} WHERE id = {}",
            self.ph(1),
            self.ph(2),
            self.ph(3)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(phone.to_owned())
            .bind(country_code.to_owned())
            .bind(id)
            .execute(self.inner.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The user's current WeChat session key (for decrypting `encryptedData`); never put it in
    /// a response, a log or a token.
    pub async fn session_key(&self, id: i64) -> Result<Option<String>, BackendError> {
        let sql = format!("SELECT session_key FROM users WHERE id = {}", self.ph(1));
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.inner.db.pool())
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<String>, _>("session_key")?,
            None => None,
        })
    }

    /// Sets `last_login` to now; `false` when there is no such user.
    pub async fn touch_login(&self, id: i64) -> Result<bool, BackendError> {
        let sql = format!(
            "UPDATE users SET last_login = {} WHERE id = {}",
            self.ph(1),
            self.ph(2)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(now())
            .bind(id)
            .execute(self.inner.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_flag_and_bump(
        &self,
        column: &'static str,
        id: i64,
        value: bool,
    ) -> Result<bool, BackendError> {
        let sql = format!(
            "UPDATE users SET {column} = {}, token_version = token_version + 1 WHERE id = {}",
            self.ph(1),
            self.ph(2)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .bind(id)
            .execute(self.inner.db.pool())
            .await?;
        let changed = done.rows_affected() > 0;
        if changed {
            self.tokens_ended(id).await?;
        }
        Ok(changed)
    }

    /// Activates or deactivates the user and, in the same statement, ends their tokens
    /// (increments `token_version`). `false` when there is no such user.
    pub async fn set_active(&self, id: i64, active: bool) -> Result<bool, BackendError> {
        self.set_flag_and_bump("is_active", id, active).await
    }

    /// Grants or revokes staff and, in the same statement, ends the user's tokens (their
    /// `is_staff` claim changed). `false` when there is no such user.
    pub async fn set_staff(&self, id: i64, staff: bool) -> Result<bool, BackendError> {
        self.set_flag_and_bump("is_staff", id, staff).await
    }

    /// Increments the user's token version ("log out everywhere") and returns the new value,
    /// `None` when there is no such user.
    pub async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        let version = self.bump_version_in_db(id).await?;
        if version.is_some() {
            self.tokens_ended(id).await?;
        }
        Ok(version)
    }

    async fn bump_version_in_db(&self, id: i64) -> Result<Option<i64>, BackendError> {
        let d = self.dialect();
        match d {
            Dialect::Sqlite | Dialect::Postgres => {
                let sql = format!(
                    "UPDATE users SET token_version = token_version + 1 WHERE id = {} \
                     RETURNING token_version",
                    d.placeholder(1)
                );
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(self.inner.db.pool())
                    .await?;
                Ok(row
                    .map(|r| r.try_get::<i64, _>("token_version"))
                    .transpose()?)
            }
            Dialect::MySql => {
                // No RETURNING on UPDATE: the row lock taken by the update holds until commit,
                // so the select reads exactly this increment.
                let mut tx = self.inner.db.pool().begin().await?;
                let done =
                    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let row = sqlx::query("SELECT token_version FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(row.try_get::<i64, _>("token_version")?))
            }
        }
    }

    /// The user if `password` is theirs, inactive users included.
    ///
    /// Runs one verification through the store's [`PasswordHashing`] bound whether or not the
    /// user exists or has a usable password, so it takes the same time either way; fails with
    /// [`BackendError::Busy`] when the bound is full. The stored value may be this crate's
    /// argon2id or one of Django's hashes (see [`password`]); a matching Django hash (or an
    /// argon2id hash with older parameters) is replaced by a fresh argon2id one.
    pub async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, BackendError> {
        self.verify_password_from(username, password, None).await
    }

    /// [`verify_password`](Self::verify_password) for a request from `client`: the check
    /// takes one of the client's slots in the hashing bound
    /// ([`PasswordHashing::per_client`]), and fails with [`BackendError::ClientBusy`] when the
    /// client's slots are all in use.
    pub async fn verify_password_from(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<User>, BackendError> {
        let sql = format!(
            "{}, password FROM users WHERE username = {}",
            self.inner.select.trim_end_matches(" FROM users"),
            self.ph(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(username.to_owned())
            .fetch_optional(self.inner.db.pool())
            .await?;
        let (user, stored) = match row.filter(|row| {
            row.try_get::<String, _>("username")
                .is_ok_and(|found| exact(&found, username))
        }) {
            Some(row) => (
                Some(user_from_row(&row)?),
                Some(row.try_get::<String, _>("password")?),
            ),
            None => (None, None),
        };
        let verdict = self
            .inner
            .hashing
            .verify_from(client, password, stored.as_deref())
            .await?;
        let (Some(user), Some(stored)) = (user, stored) else {
            return Ok(None);
        };
        match verdict {
            Verdict::Mismatch => return Ok(None),
            Verdict::Match => {}
            Verdict::Outdated => self.upgrade_password(user.id, &stored, password).await,
        }
        Ok(Some(user))
    }

    /// Replaces `old` (which `password` matched) by a fresh hash of `password`, unless the
    /// password changed meanwhile. Best effort: the login it follows succeeds either way, and
    /// the next one tries again.
    async fn upgrade_password(&self, id: i64, old: &str, password: &str) {
        let fresh = match self.inner.hashing.hash(password).await {
            Ok(fresh) => fresh,
            Err(err) => {
                tracing::debug!(error = %err, user_id = id, "password hash not upgraded");
                return;
            }
        };
        let sql = format!(
            "UPDATE users SET password = {} WHERE id = {} AND password = {}",
            self.ph(1),
            self.ph(2),
            self.ph(3)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(fresh)
            .bind(id)
            .bind(old.to_owned())
            .execute(self.inner.db.pool())
            .await;
        if let Err(err) = done {
            tracing::warn!(error = %err, user_id = id, "could not store the upgraded password hash");
        }
    }
}

#[async_trait]
impl UserLookup for UserStore {
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
        Ok(self.get(id).await?.map(AuthUser::from))
    }

    async fn by_username(&self, username: &str) -> Result<Option<AuthUser>, BackendError> {
        Ok(self.get_by_username(username).await?.map(AuthUser::from))
    }

    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AuthUser>, BackendError> {
        Ok(UserStore::verify_password(self, username, password)
            .await?
            .map(AuthUser::from))
    }

    async fn verify_password_from(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<AuthUser>, BackendError> {
        Ok(
            UserStore::verify_password_from(self, username, password, client)
                .await?
                .map(AuthUser::from),
        )
    }

    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        UserStore::bump_token_version(self, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sqlx recorded in `_sqlx_migrations` for databases migrated by earlier releases
    /// (the files then lived in `/migrations/<dialect>/`): sqlx refuses to start on a database
    /// whose applied migration's checksum differs, so these must never change.
    const RELEASED: [(Dialect, i64, &str); 3] = [
        (
            Dialect::Sqlite,
            20261126000001,
            "0ab07467e765739aba3e5847b78c3c1fe600548ac84d73a96a5f64e6e2e297abac8b8da6fbb37f5a202ea10c0dcb427c",
        ),
        (
            Dialect::Postgres,
            20261126000001,
            "d51ff1da07381befd54a096e46cd5f29a0efcbbec701be017969c7637052e1ff216df6825ab39852c6217a81d483bf0d",
        ),
        (
            Dialect::MySql,
            20261126000001,
            "a9c513a67195e3f16be3e7a05380aa8edf1d5d80ecbbc82cf6fafa19a28af65ede8cd5d5505dccd5654593ec717544e8",
        ),
    ];

    #[test]
    fn released_migrations_keep_their_versions_and_checksums() {
        for (dialect, version, checksum) in RELEASED {
            let migration = migrator(dialect)
                .iter()
                .find(|m| m.version == version)
                .unwrap_or_else(|| panic!("{dialect:?}: migration {version} is missing"));
            let hex: String = migration
                .checksum
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(hex, checksum, "{dialect:?}: migration {version} changed");
        }
    }
}
