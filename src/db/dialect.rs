//! The SQL differences between SQLite, PostgreSQL and MySQL/MariaDB, in one place.
//!
//! Everything that writes SQL for more than one database (the user store, the viewset SQL
//! builder) asks the [`Dialect`] instead of spelling a placeholder, a quoted name, an upsert or a
//! `LIKE` pattern itself:
//!
//! ```
//! use wxrest::db::Dialect;
//!
//! let pg = Dialect::Postgres;
//! assert_eq!(pg.placeholder(2), "$2");
//! assert_eq!(Dialect::MySql.quote_ident("order"), "`order`");
//! assert_eq!(
//!     pg.contains_ci("\"name\"", &pg.placeholder(1)),
//!     "LOWER(\"name\") LIKE LOWER($1) ESCAPE '!'"
//! );
//! assert_eq!(Dialect::contains_pattern("50%_off"), "%50!%!_off%");
//! ```
//!
//! Storage conventions shared by every dialect: timestamps are `BIGINT` unix seconds; booleans
//! are `BOOLEAN` on PostgreSQL, `INTEGER` 0/1 on SQLite and `TINYINT(1)` on MySQL. sqlx's `Any`
//! driver cannot decode MySQL's `TINYINT`, so boolean columns are selected through
//! [`Dialect::select_bool`] and decoded with [`decode_bool`], which accepts a boolean or an
//! integer.

use sqlx::Row;
use sqlx::any::AnyRow;

/// The SQL dialect of a database, chosen from its URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (`sqlite:`).
    Sqlite,
    /// PostgreSQL (`postgres:` or `postgresql:`).
    Postgres,
    /// MySQL or MariaDB (`mysql:` or `mariadb:`).
    MySql,
}

/// The escape character used in every `LIKE` pattern built here.
///
/// Not a backslash: MySQL also treats backslashes specially inside string literals, and `!`
/// means the same thing to all three databases.
pub const LIKE_ESCAPE: char = '!';

impl Dialect {
    /// The dialect for a database URL, or `None` when the scheme is not supported.
    ///
    /// ```
    /// use wxrest::db::Dialect;
    /// assert_eq!(Dialect::from_url("sqlite::memory:"), Some(Dialect::Sqlite));
    /// assert_eq!(Dialect::from_url("postgresql://localhost/shop"), Some(Dialect::Postgres));
    /// assert_eq!(Dialect::from_url("mariadb://localhost/shop"), Some(Dialect::MySql));
    /// assert_eq!(Dialect::from_url("redis://localhost"), None);
    /// ```
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// A short lowercase name (`sqlite`, `postgres`, `mysql`), for logs and labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }

    /// The `n`th (1-based) bind parameter: `$n` on PostgreSQL, `?` elsewhere.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::Sqlite | Self::MySql => "?".to_owned(),
        }
    }

    /// The placeholders `1..=N`, to name them in a statement.
    ///
    /// ```
    /// use wxrest::db::Dialect;
    /// let [status, id] = Dialect::Postgres.numbered();
    /// assert_eq!(format!("UPDATE orders SET status = {status} WHERE id = {id}"),
    ///            "UPDATE orders SET status = $1 WHERE id = $2");
    /// let [status, id] = Dialect::MySql.numbered();
    /// assert_eq!((status.as_str(), id.as_str()), ("?", "?"));
    /// ```
    pub fn numbered<const N: usize>(self) -> [String; N] {
        std::array::from_fn(|i| self.placeholder(i + 1))
    }

    /// `count` comma-separated placeholders numbered from `first`, e.g. for `VALUES (...)` or
    /// `IN (...)`.
    ///
    /// ```
    /// use wxrest::db::Dialect;
    /// assert_eq!(Dialect::Postgres.placeholders(3, 2), "$3, $4");
    /// assert_eq!(Dialect::Sqlite.placeholders(3, 2), "?, ?");
    /// ```
    pub fn placeholders(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| self.placeholder(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// An identifier quoted for this dialect: `"name"` (SQLite, PostgreSQL) or `` `name` ``
    /// (MySQL), doubling any quote character inside it.
    pub fn quote_ident(self, name: &str) -> String {
        match self {
            Self::Sqlite | Self::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Self::MySql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// In an upsert's update part, the value the failed insert wanted to write to `column`:
    /// `excluded."c"` or `` VALUES(`c`) ``.
    pub fn inserted(self, column: &str) -> String {
        match self {
            Self::Sqlite | Self::Postgres => format!("excluded.{}", self.quote_ident(column)),
            Self::MySql => format!("VALUES({})", self.quote_ident(column)),
        }
    }

    /// In an upsert's update part, the current value of `column` in the existing row:
    /// `"table"."c"` or `` `c` ``.
    pub fn existing(self, table: &str, column: &str) -> String {
        match self {
            Self::Sqlite | Self::Postgres => {
                format!("{}.{}", self.quote_ident(table), self.quote_ident(column))
            }
            Self::MySql => self.quote_ident(column),
        }
    }

    /// The clause that turns an `INSERT` into an upsert on `conflict_column`, applying the
    /// given `column = expression` assignments to the existing row.
    ///
    /// On MySQL this is `ON DUPLICATE KEY UPDATE`, which fires on a conflict with *any* unique
    /// key of the table, not only `conflict_column`: guard assignments accordingly when the
    /// table has several unique keys.
    ///
    /// ```
    /// use wxrest::db::Dialect;
    /// let set = |d: Dialect| vec![format!("{} = {}", d.quote_ident("c"), d.inserted("c"))];
    /// assert_eq!(
    ///     Dialect::Sqlite.upsert("k", &set(Dialect::Sqlite)),
    ///     "ON CONFLICT (\"k\") DO UPDATE SET \"c\" = excluded.\"c\""
    /// );
    /// assert_eq!(
    ///     Dialect::MySql.upsert("k", &set(Dialect::MySql)),
    ///     "ON DUPLICATE KEY UPDATE `c` = VALUES(`c`)"
    /// );
    /// ```
    pub fn upsert(self, conflict_column: &str, assignments: &[String]) -> String {
        let set = assignments.join(", ");
        match self {
            Self::Sqlite | Self::Postgres => format!(
                "ON CONFLICT ({}) DO UPDATE SET {set}",
                self.quote_ident(conflict_column)
            ),
            Self::MySql => format!("ON DUPLICATE KEY UPDATE {set}"),
        }
    }

    /// [`upsert`](Self::upsert) overwriting each of `columns` with the inserted value.
    pub fn upsert_overwrite(self, conflict_column: &str, columns: &[&str]) -> String {
        let set: Vec<String> = columns
            .iter()
            .map(|c| format!("{} = {}", self.quote_ident(c), self.inserted(c)))
            .collect();
        self.upsert(conflict_column, &set)
    }

    /// Escapes `%`, `_` and the escape character itself so `text` matches literally inside a
    /// `LIKE ... ESCAPE '!'` pattern.
    ///
    /// ```
    /// use wxrest::db::Dialect;
    /// assert_eq!(Dialect::escape_like(r"100%_a!b\c"), r"100!%!_a!!b\c");
    /// ```
    pub fn escape_like(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 4);
        for ch in text.chars() {
            if ch == '%' || ch == '_' || ch == LIKE_ESCAPE {
                out.push(LIKE_ESCAPE);
            }
            out.push(ch);
        }
        out
    }

    /// The bind value for a "contains `text`" pattern: `%` + escaped text + `%`.
    pub fn contains_pattern(text: &str) -> String {
        format!("%{}%", Self::escape_like(text))
    }

    /// A case-insensitive "contains" condition: `LOWER(column) LIKE LOWER(param) ESCAPE '!'`.
    ///
    /// `column_sql` is an already-quoted column expression and `param` a placeholder whose
    /// bound value comes from [`contains_pattern`](Self::contains_pattern).
    pub fn contains_ci(self, column_sql: &str, param: &str) -> String {
        format!("LOWER({column_sql}) LIKE LOWER({param}) ESCAPE '{LIKE_ESCAPE}'")
    }

    /// A boolean column in a select list, named `column` in the result, in a form the `Any`
    /// driver can decode ([`decode_bool`]): MySQL's `TINYINT(1)` is cast to a `BIGINT`.
    pub fn select_bool(self, column: &str) -> String {
        let quoted = self.quote_ident(column);
        match self {
            Self::Sqlite | Self::Postgres => quoted,
            Self::MySql => format!("CAST({quoted} AS SIGNED) AS {quoted}"),
        }
    }

    /// A boolean literal: `TRUE`/`FALSE` on PostgreSQL, `1`/`0` elsewhere.
    pub fn bool_literal(self, value: bool) -> &'static str {
        match (self, value) {
            (Self::Postgres, true) => "TRUE",
            (Self::Postgres, false) => "FALSE",
            (_, true) => "1",
            (_, false) => "0",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a boolean column whatever the database stored: a boolean (PostgreSQL) or an integer
/// where non-zero is true (SQLite, MySQL through [`Dialect::select_bool`]).
pub fn decode_bool(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => Ok(row.try_get::<i64, _>(column)? != 0),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_embedded_quotes() {
        assert_eq!(Dialect::Postgres.quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::MySql.quote_ident("a`b"), "`a``b`");
    }

    #[test]
    fn upsert_clause_names_the_conflict_column_outside_mysql() {
        let d = Dialect::Postgres;
        assert_eq!(
            d.upsert_overwrite("openid", &["nickname"]),
            "ON CONFLICT (\"openid\") DO UPDATE SET \"nickname\" = excluded.\"nickname\""
        );
        assert_eq!(
            Dialect::MySql.upsert_overwrite("openid", &["nickname"]),
            "ON DUPLICATE KEY UPDATE `nickname` = VALUES(`nickname`)"
        );
    }

    #[test]
    fn existing_value_is_table_qualified_outside_mysql() {
        assert_eq!(Dialect::Sqlite.existing("users", "c"), "\"users\".\"c\"");
        assert_eq!(Dialect::MySql.existing("users", "c"), "`c`");
    }
}
