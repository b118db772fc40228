//! The SQL database: one pool over SQLite, PostgreSQL or MySQL/MariaDB, chosen from the URL,
//! the dialect differences, and the migration runner each table owner (the
//! [`UserStore`](crate::user::UserStore), an application) uses for its own migrations.
//! Needs feature `sqlite`, `postgres` or `mysql`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wxrest::BackendError> {
//! use wxrest::db::{Db, Dialect};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! assert_eq!(db.dialect(), Dialect::Sqlite);
//! db.ping().await?;
//! # Ok(())
//! # }
//! ```
//!
//! SQLite is set up for a server: `sqlite::memory:` becomes one named shared-cache database that
//! every pooled connection sees (kept alive as long as any clone of the [`Db`] lives), a file is
//! created when missing, switched to WAL, and every connection waits up to 5 s for a lock
//! (`busy_timeout`) instead of failing, with foreign keys on.

mod dialect;
mod value;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor};

use crate::error::BackendError;

pub use dialect::{Dialect, LIKE_ESCAPE, decode_bool};
pub(crate) use value::bind_all;
pub use value::{SqlType, SqlValue};

/// Now, as the unix seconds every timestamp column holds.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Serialises migrations between processes on MySQL/MariaDB (waits up to 10 minutes).
const MYSQL_MIGRATION_LOCK: &str =
    "SELECT GET_LOCK(CONCAT('wxrest_migrate_', MD5(DATABASE())), 600)";
const MYSQL_MIGRATION_UNLOCK: &str =
    "SELECT RELEASE_LOCK(CONCAT('wxrest_migrate_', MD5(DATABASE())))";

/// How long a SQLite connection waits for another writer's lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

/// How to open a [`Db`]: pool size and acquire timeout.
///
/// ```
/// use std::time::Duration;
/// use wxrest::db::DbOptions;
///
/// let options = DbOptions::default()
///     .max_connections(16)
///     .acquire_timeout(Duration::from_secs(2));
/// assert_eq!(options.get_max_connections(), Some(16));
/// ```
#[derive(Debug, Clone)]
pub struct DbOptions {
    max_connections: Option<u32>,
    acquire_timeout: Duration,
}

impl Default for DbOptions {
    /// Pool of 4 on SQLite and 10 elsewhere, 5 s acquire timeout.
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl DbOptions {
    /// Caps the pool at `n` connections (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// How long a query waits for a free connection, or for a new one to open, before failing
    /// (so a dead database gives an error rather than a hang).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The configured pool cap, `None` for the dialect's default.
    pub fn get_max_connections(&self) -> Option<u32> {
        self.max_connections
    }

    fn pool_size(&self, dialect: Dialect) -> u32 {
        self.max_connections.unwrap_or(match dialect {
            Dialect::Sqlite => 4,
            Dialect::Postgres | Dialect::MySql => 10,
        })
    }
}

/// A connection pool to the application's SQL database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    /// Holds a `sqlite::memory:` database open while the pool's connections come and go.
    _memory_keeper: Option<Arc<Mutex<AnyConnection>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.dialect)
            .field("size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Connects with [`DbOptions::default`]. Tables are created by their owners' migrations
    /// (the users table by [`UserStore::setup`](crate::user::UserStore::setup)).
    ///
    /// `url` is `sqlite:<path>` (created if missing), `sqlite::memory:`,
    /// `postgres://...`/`postgresql://...` or `mysql://...`/`mariadb://...`.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Self::connect_with(url, DbOptions::default()).await
    }

    /// Connects with the given options.
    ///
    /// Fails (after at most the acquire timeout) when the database cannot be reached. Errors
    /// never contain the URL.
    pub async fn connect_with(url: &str, options: DbOptions) -> Result<Self, BackendError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url).ok_or_else(|| {
            BackendError::Other(
                "unsupported database URL scheme (expected sqlite:, postgres:, mysql:)".into(),
            )
        })?;

        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.pool_size(dialect))
            .acquire_timeout(options.acquire_timeout);

        let mut url = url.to_owned();
        let mut memory_keeper = None;
        if dialect == Dialect::Sqlite {
            let sqlite = sqlite_url(&url);
            url = sqlite.url;
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
                    )))
                    .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    // With WAL, NORMAL syncs at checkpoints instead of every commit: safe
                    // against application crashes and corruption; an OS crash or power loss
                    // may lose the last commits. Use PostgreSQL when that matters.
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
            let mut first =
                tokio::time::timeout(options.acquire_timeout, AnyConnection::connect(&url))
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??;
            if sqlite.memory {
                memory_keeper = Some(Arc::new(Mutex::new(first)));
            } else if sqlite.read_only {
                first.close().await?;
            } else {
                // WAL is a property of the file: set once, it stays. Readers then never block
                // the writer and vice versa.
                first.execute("PRAGMA journal_mode = WAL").await?;
                first.close().await?;
            }
        }

        let pool = pool_options.connect(&url).await?;
        Ok(Self {
            pool,
            dialect,
            _memory_keeper: memory_keeper,
        })
    }

    /// Applies an application's own migrations (its tables beside the crate's), recorded in
    /// their own bookkeeping table `table` so they never mix with the crate's. Pick the
    /// migrator for [`dialect`](Self::dialect).
    ///
    /// Safe to call repeatedly, and from several processes at once on PostgreSQL and MySQL:
    /// sqlx's migrator holds the database's advisory lock while it works. On MySQL/MariaDB an
    /// extra named lock is held around the migrator: sqlx asks for its lock with
    /// `GET_LOCK(name, -1)`, which MariaDB answers with `NULL` at once instead of waiting, so
    /// two starting processes would otherwise both apply the same migration.
    ///
    /// ```
    /// # async fn run() -> Result<(), wxrest::BackendError> {
    /// use wxrest::db::{Db, Dialect};
    /// static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("examples/mall/migrations/sqlite");
    /// let db = Db::connect("sqlite::memory:").await?;
    /// // The mall's tables refer to the users table: create it first.
    /// let users = wxrest::user::UserStore::setup(db.clone()).await?;
    /// if db.dialect() == Dialect::Sqlite {
    ///     db.migrate_app(&SQLITE, "_shop_migrations").await?;
    /// }
    /// # let _ = users; Ok(()) }
    /// ```
    pub async fn migrate_app(
        &self,
        migrator: &Migrator,
        table: &'static str,
    ) -> Result<(), BackendError> {
        let mut migrator = Migrator {
            migrations: migrator.migrations.clone(),
            ignore_missing: migrator.ignore_missing,
            locking: migrator.locking,
            no_tx: migrator.no_tx,
            table_name: migrator.table_name.clone(),
            create_schemas: migrator.create_schemas.clone(),
        };
        migrator.dangerous_set_table_name(table);
        self.run_migrator(&migrator).await
    }

    /// Applies `migrator` under its own bookkeeping table, with the locking of
    /// [`migrate_app`](Self::migrate_app).
    pub(crate) async fn run_migrator(&self, migrator: &Migrator) -> Result<(), BackendError> {
        let migrate_err = |err: sqlx::migrate::MigrateError| BackendError::Database(err.into());
        match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => {
                migrator.run(&self.pool).await.map_err(migrate_err)
            }
            Dialect::MySql => {
                let mut conn = self.pool.acquire().await?;
                let got: Option<i64> = sqlx::query_scalar(MYSQL_MIGRATION_LOCK)
                    .fetch_one(&mut *conn)
                    .await?;
                if got != Some(1) {
                    return Err(BackendError::Other(
                        "timed out waiting for another process's migrations".into(),
                    ));
                }
                let result = migrator.run(&mut *conn).await.map_err(migrate_err);
                let released = sqlx::query(MYSQL_MIGRATION_UNLOCK)
                    .execute(&mut *conn)
                    .await;
                result?;
                released?;
                Ok(())
            }
        }
    }

    /// Checks the database answers (for a readiness probe such as `/readyz`).
    pub async fn ping(&self) -> Result<(), BackendError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The underlying sqlx pool, for queries of your own.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which SQL dialect the database speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

struct SqliteUrl {
    url: String,
    memory: bool,
    /// `mode=ro`: the journal mode cannot be changed.
    read_only: bool,
}

/// Rewrites a SQLite URL for pooled use.
///
/// `sqlite::memory:` opens a *different* database on each connection, so it becomes a uniquely
/// named shared-cache in-memory database; a file URL without `mode=` gets `mode=rwc` so the file
/// is created when missing.
fn sqlite_url(url: &str) -> SqliteUrl {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let memory = path == ":memory:" || params.contains(&"mode=memory");
    if memory {
        let name = format!("file:wxrest-memory-{}", uuid::Uuid::new_v4().simple());
        return SqliteUrl {
            url: format!("sqlite:{name}?mode=memory&cache=shared"),
            memory: true,
            read_only: false,
        };
    }
    let url = if params.iter().any(|p| p.starts_with("mode=")) {
        url.to_owned()
    } else if query.is_empty() {
        format!("{}?mode=rwc", url.trim_end_matches('?'))
    } else {
        format!("{url}&mode=rwc")
    };
    SqliteUrl {
        url,
        memory: false,
        read_only: params.contains(&"mode=ro"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_url_becomes_a_named_shared_database() {
        let a = sqlite_url("sqlite::memory:");
        let b = sqlite_url("sqlite::memory:");
        assert!(a.memory);
        assert!(a.url.starts_with("sqlite:file:wxrest-memory-"));
        assert!(a.url.ends_with("?mode=memory&cache=shared"));
        assert_ne!(a.url, b.url, "each Db gets its own memory database");
    }

    #[test]
    fn file_url_creates_the_file_unless_a_mode_is_given() {
        assert_eq!(
            sqlite_url("sqlite://shop.db").url,
            "sqlite://shop.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite:shop.db?cache=private").url,
            "sqlite:shop.db?cache=private&mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite:shop.db?mode=ro").url,
            "sqlite:shop.db?mode=ro"
        );
    }
}
