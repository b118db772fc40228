//! The versions cached lists are keyed by: per table a membership version and an all-rows
//! version, per column and per row a version. Every bump takes the next value of one
//! monotonic clock, so "has anything this entry depends on changed?" is "is the largest of
//! its versions still the same?": an entry is keyed by one number, the maximum.
//!
//! In memory the clock starts at the wall clock in microseconds and row versions are bounded
//! in number: past [`MAX_ROW_VERSIONS`] they are all dropped and every row not bumped since
//! reads as the clock's value then (the floor), so a dropped version never lets an older body
//! answer. In Redis the clock is a key advanced by a script to at least Redis' own `TIME` in
//! microseconds (so a flushed Redis never hands out a version again), and versions expire
//! after [`VERSION_TTL`], more than twice [`ENTRY_TTL`](super::ENTRY_TTL): by the time an
//! expired version reads as 0 again, every entry made under an older value is gone.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "redis")]
use redis::aio::ConnectionManager;

use crate::error::BackendError;

/// Row versions a [`ListCache::memory`](super::ListCache::memory) keeps at most (each ~50
/// bytes). Past it they are all dropped at once, and every row not bumped since reads as the
/// clock's value at that moment (the floor): newer than any version handed out before, so a
/// body cached under a forgotten version is never served again.
pub const MAX_ROW_VERSIONS: usize = 100_000;

/// How long a version lives in Redis after its last bump: more than twice
/// [`ENTRY_TTL`](super::ENTRY_TTL), so by the time an expired version reads as 0 again every
/// entry made under an older value has expired too. The clock key never expires, and is
/// advanced to at least Redis' own time in microseconds, so a flushed Redis never hands out an
/// old version again.
pub const VERSION_TTL: Duration = Duration::from_secs(120);

/// What one write changed in one table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub table: &'a str,
    /// Rows came or went (or anything may have changed): every page of the table is stale.
    pub membership: bool,
    /// Any row may have changed: every row body of the table is stale.
    pub all_rows: bool,
    pub columns: &'a [&'a str],
    pub ids: &'a [i64],
}

impl<'a> Change<'a> {
    /// `columns` of the rows `ids` changed.
    pub fn rows(table: &'a str, columns: &'a [&'a str], ids: &'a [i64]) -> Self {
        Self {
            table,
            membership: false,
            all_rows: false,
            columns,
            ids,
        }
    }

    /// Anything in `table` may have changed.
    pub fn everything(table: &'a str) -> Self {
        Self {
            membership: true,
            all_rows: true,
            ..Self::rows(table, &[], &[])
        }
    }
}

/// The versions read before a page's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The largest version the page depends on.
    pub page: u64,
    /// The clock: a row body read after this stamp may be kept under its row's version only
    /// if that version is not newer than this (no write to it since the stamp).
    pub clock: u64,
}

pub(crate) enum Versions {
    Memory(RwLock<Memory>),
    #[cfg(feature = "redis")]
    Redis {
        conn: ConnectionManager,
        prefix: String,
        bump: redis::Script,
    },
}

#[derive(Default)]
pub(crate) struct Memory {
    clock: u64,
    floor: u64,
    rows: usize,
    tables: HashMap<Box<str>, Table>,
}

#[derive(Default)]
struct Table {
    membership: u64,
    all_rows: u64,
    columns: HashMap<Box<str>, u64>,
    rows: HashMap<i64, u64>,
}

/// Advances the clock to at least Redis' time in microseconds, sets every key to it with a
/// TTL, returns it.
#[cfg(feature = "redis")]
const BUMP_SCRIPT: &str = r"
local t = redis.call('TIME')
local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('INCR', KEYS[1])
if v < floor then
  redis.call('SET', KEYS[1], floor)
  v = floor
end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], v, 'EX', ARGV[1])
end
return v
";

impl Versions {
    pub fn memory() -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Versions::Memory(RwLock::new(Memory {
            clock: start,
            floor: 0,
            ..Memory::default()
        }))
    }

    #[cfg(feature = "redis")]
    pub fn redis(conn: ConnectionManager, prefix: String) -> Self {
        Versions::Redis {
            conn,
            prefix,
            bump: redis::Script::new(BUMP_SCRIPT),
        }
    }

    /// Uses `prefix` for Redis keys (no effect in memory).
    pub fn with_prefix(self, new: String) -> Self {
        match self {
            #[cfg(feature = "redis")]
            Versions::Redis { conn, bump, .. } => Versions::Redis {
                conn,
                prefix: new,
                bump,
            },
            other => {
                let _ = new;
                other
            }
        }
    }

    /// The stamp of a page of `table` whose membership and order depend on `columns`.
    pub async fn stamp(&self, table: &str, columns: &[&str]) -> Result<Stamp, BackendError> {
        match self {
            Versions::Memory(lock) => {
                let m = lock.read().map_err(poisoned)?;
                let t = m.tables.get(table);
                let page = t.map_or(0, |t| {
                    columns
                        .iter()
                        .filter_map(|c| t.columns.get(*c))
                        .fold(t.membership, |a, b| a.max(*b))
                });
                Ok(Stamp {
                    page,
                    clock: m.clock,
                })
            }
            #[cfg(feature = "redis")]
            Versions::Redis { conn, prefix, .. } => {
                let mut keys = Vec::with_capacity(columns.len() + 2);
                keys.push(clock_key(prefix));
                keys.push(format!("{prefix}lv:{table}:m"));
                keys.extend(columns.iter().map(|c| format!("{prefix}lv:{table}:c:{c}")));
                let values: Vec<Option<u64>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut conn.clone())
                    .await?;
                let mut values = values.into_iter().map(Option::unwrap_or_default);
                let clock = values.next().unwrap_or_default();
                Ok(Stamp {
                    page: values.max().unwrap_or_default(),
                    clock,
                })
            }
        }
    }

    /// The version of each row `ids` of `table` (its own, or the table's all-rows version if
    /// newer).
    pub async fn rows(&self, table: &str, ids: &[i64]) -> Result<Vec<u64>, BackendError> {
        match self {
            Versions::Memory(lock) => {
                let m = lock.read().map_err(poisoned)?;
                let t = m.tables.get(table);
                Ok(ids
                    .iter()
                    .map(|id| match t {
                        Some(t) => t.rows.get(id).copied().unwrap_or(m.floor).max(t.all_rows),
                        None => m.floor,
                    })
                    .collect())
            }
            #[cfg(feature = "redis")]
            Versions::Redis { conn, prefix, .. } => {
                let mut keys = Vec::with_capacity(ids.len() + 1);
                keys.push(format!("{prefix}lv:{table}:a"));
                keys.extend(ids.iter().map(|id| format!("{prefix}lv:{table}:r:{id}")));
                let values: Vec<Option<u64>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut conn.clone())
                    .await?;
                let mut values = values.into_iter().map(Option::unwrap_or_default);
                let all = values.next().unwrap_or_default();
                Ok(values.map(|v| v.max(all)).collect())
            }
        }
    }

    /// Bumps what `change` names to the next clock value.
    pub async fn bump(&self, change: Change<'_>) -> Result<(), BackendError> {
        match self {
            Versions::Memory(lock) => {
                let mut guard = lock.write().map_err(poisoned)?;
                let m = &mut *guard;
                m.clock += 1;
                let v = m.clock;
                if m.rows + change.ids.len() > MAX_ROW_VERSIONS {
                    // Every row version goes; rows read as the floor from now on, newer than
                    // any version handed out so far.
                    for t in m.tables.values_mut() {
                        t.rows = HashMap::new();
                    }
                    m.rows = 0;
                    m.floor = v;
                }
                let t = m.tables.entry(change.table.into()).or_default();
                if change.membership {
                    t.membership = v;
                }
                if change.all_rows {
                    t.all_rows = v;
                }
                for c in change.columns {
                    t.columns.insert((*c).into(), v);
                }
                for id in change.ids {
                    if t.rows.insert(*id, v).is_none() {
                        m.rows += 1;
                    }
                }
                Ok(())
            }
            #[cfg(feature = "redis")]
            Versions::Redis { conn, prefix, bump } => {
                let table = change.table;
                let mut invocation = bump.prepare_invoke();
                invocation.key(clock_key(prefix));
                if change.membership {
                    invocation.key(format!("{prefix}lv:{table}:m"));
                }
                if change.all_rows {
                    invocation.key(format!("{prefix}lv:{table}:a"));
                }
                for c in change.columns {
                    invocation.key(format!("{prefix}lv:{table}:c:{c}"));
                }
                for id in change.ids {
                    invocation.key(format!("{prefix}lv:{table}:r:{id}"));
                }
                invocation.arg(VERSION_TTL.as_secs());
                let _: u64 = invocation.invoke_async(&mut conn.clone()).await?;
                Ok(())
            }
        }
    }
}

#[cfg(feature = "redis")]
fn clock_key(prefix: &str) -> String {
    format!("{prefix}lv:clock")
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> BackendError {
    BackendError::Other("list cache versions poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::{Change, MAX_ROW_VERSIONS, Versions};

    fn rows<'a>(table: &'a str, columns: &'a [&'a str], ids: &'a [i64]) -> Change<'a> {
        Change::rows(table, columns, ids)
    }

    #[tokio::test]
    async fn a_write_after_a_stamp_is_newer_than_its_clock() {
        // The race a list must not lose: versions read, then a write, then the list's query
        // result is stored. The write's versions exceed the stamp, so nothing read before it is
        // kept under them.
        let v = Versions::memory();
        let stamp = v.stamp("goods", &["price"]).await.unwrap();
        v.bump(rows("goods", &["stock"], &[7])).await.unwrap();
        let [row] = v.rows("goods", &[7]).await.unwrap()[..] else {
            panic!("one version per id")
        };
        assert!(row > stamp.clock);
        // A column the page does not read leaves its stamp alone; one it reads moves it.
        assert_eq!(v.stamp("goods", &["price"]).await.unwrap().page, stamp.page);
        v.bump(rows("goods", &["price"], &[7])).await.unwrap();
        assert!(v.stamp("goods", &["price"]).await.unwrap().page > stamp.page);
    }

    #[tokio::test]
    async fn dropping_row_versions_raises_every_row_above_what_it_was() {
        let v = Versions::memory();
        v.bump(rows("goods", &[], &[1])).await.unwrap();
        let before = v.rows("goods", &[1, 2]).await.unwrap();
        let many: Vec<i64> = (10..10 + MAX_ROW_VERSIONS as i64).collect();
        v.bump(rows("other", &[], &many)).await.unwrap();
        let after = v.rows("goods", &[1, 2]).await.unwrap();
        assert!(
            after[0] > before[0] && after[1] > before[1],
            "{before:?} -> {after:?}"
        );
    }

    #[tokio::test]
    async fn touch_makes_every_row_newer() {
        let v = Versions::memory();
        let before = v.rows("goods", &[1, 2]).await.unwrap();
        v.bump(Change::everything("goods")).await.unwrap();
        let after = v.rows("goods", &[1, 2]).await.unwrap();
        assert!(after.iter().zip(&before).all(|(a, b)| a > b));
    }
}
