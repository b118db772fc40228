//! Reading and writing a model's rows: the SQL a viewset runs, built from the [`Schema`] and
//! always parameterised.

use serde_json::{Map, Value};
use sqlx::Row;

use super::query::{Where, row_to_json, select_list};
use super::schema::{Auto, Schema};
use super::validation::Validated;
use crate::db::{Db, Dialect, SqlValue, bind_all, now};
use crate::error::{ApiError, BackendError};

/// A schema's precomputed SQL pieces.
#[derive(Debug)]
pub(crate) struct Table {
    pub schema: Schema,
    pub dialect: Dialect,
    pub select: String,
    pub table: String,
}

impl Table {
    pub fn new(schema: Schema, dialect: Dialect) -> Self {
        Self {
            select: select_list(&schema, dialect),
            table: dialect.quote_ident(schema.table),
            schema,
            dialect,
        }
    }
}

/// Maps a database error of a write: constraint violations are the client's (400), anything
/// else is the server's (503).
pub fn write_error(err: sqlx::Error) -> ApiError {
    if let sqlx::Error::Database(db) = &err {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return ApiError::validation([(
                    "non_field_errors",
                    "A record with these values already exists.",
                )]);
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return ApiError::validation([(
                    "non_field_errors",
                    "This record is referenced by or refers to another record.",
                )]);
            }
            sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
                return ApiError::validation([("non_field_errors", "Invalid values.")]);
            }
            _ => {}
        }
    }
    BackendError::from(err).into()
}

/// Fills `Auto` timestamps.
pub(crate) fn apply_auto(schema: &Schema, values: &mut Validated, creating: bool) {
    for f in &schema.fields {
        match f.auto {
            Some(Auto::NowOnSave) => values.set(f.name, SqlValue::Int(now())),
            Some(Auto::NowOnCreate) if creating => values.set(f.name, SqlValue::Int(now())),
            _ => {}
        }
    }
}

/// One row by id within `scope`, as JSON.
pub(crate) async fn fetch_one(
    db: &Db,
    table: &Table,
    id: i64,
    mut scope: Where,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let d = table.dialect;
    let p = scope.param(d, SqlValue::Int(id));
    scope.push(format!("{} = {p}", d.quote_ident("id")));
    let sql = format!(
        "SELECT {} FROM {}{}",
        table.select,
        table.table,
        scope.sql()
    );
    let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &scope.binds)
        .fetch_optional(db.pool())
        .await
        .map_err(BackendError::from)?;
    row.map(|r| row_to_json(&table.schema, &r))
        .transpose()
        .map_err(|e| BackendError::from(e).into())
}

/// The rows `ids` (in no particular order; missing ones are left out), as JSON.
pub(crate) async fn fetch_many(
    db: &Db,
    table: &Table,
    ids: &[i64],
) -> Result<Vec<Map<String, Value>>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let d = table.dialect;
    let sql = format!(
        "SELECT {} FROM {} WHERE {} IN ({})",
        table.select,
        table.table,
        d.quote_ident("id"),
        d.placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query
        .fetch_all(db.pool())
        .await
        .map_err(BackendError::from)?;
    rows.iter()
        .map(|r| row_to_json(&table.schema, r))
        .collect::<Result<_, _>>()
        .map_err(|e| BackendError::from(e).into())
}

/// Inserts `values` and returns the new id.
pub async fn insert(db: &Db, schema: &Schema, values: &Validated) -> Result<i64, ApiError> {
    let d = db.dialect();
    let columns: Vec<String> = values
        .values
        .iter()
        .map(|(n, _)| d.quote_ident(n))
        .collect();
    let binds: Vec<SqlValue> = values.values.iter().map(|(_, v)| v.clone()).collect();
    let table = d.quote_ident(schema.table);
    let sql = if columns.is_empty() {
        match d {
            Dialect::MySql => format!("INSERT INTO {table} () VALUES ()"),
            _ => format!("INSERT INTO {table} DEFAULT VALUES"),
        }
    } else {
        format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            d.placeholders(1, columns.len())
        )
    };
    match d {
        Dialect::MySql => {
            let result = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
                .execute(db.pool())
                .await
                .map_err(write_error)?;
            result
                .last_insert_id()
                .ok_or_else(|| BackendError::Other("no id returned by insert".into()).into())
        }
        _ => {
            let sql = format!("{sql} RETURNING {}", d.quote_ident("id"));
            let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
                .fetch_one(db.pool())
                .await
                .map_err(write_error)?;
            row.try_get::<i64, _>(0)
                .map_err(|e| BackendError::from(e).into())
        }
    }
}

/// Updates the row `id` with `values`.
pub async fn update(db: &Db, schema: &Schema, id: i64, values: &Validated) -> Result<(), ApiError> {
    if values.values.is_empty() {
        return Ok(());
    }
    let d = db.dialect();
    let mut clause = Where::default();
    let sets: Vec<String> = values
        .values
        .iter()
        .map(|(n, v)| {
            let p = clause.param(d, v.clone());
            format!("{} = {p}", d.quote_ident(n))
        })
        .collect();
    let p = clause.param(d, SqlValue::Int(id));
    let sql = format!(
        "UPDATE {} SET {} WHERE {} = {p}",
        d.quote_ident(schema.table),
        sets.join(", "),
        d.quote_ident("id")
    );
    bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clause.binds)
        .execute(db.pool())
        .await
        .map_err(write_error)?;
    Ok(())
}

/// Deletes the row `id`.
pub async fn delete(db: &Db, schema: &Schema, id: i64) -> Result<(), ApiError> {
    let d = db.dialect();
    let sql = format!(
        "DELETE FROM {} WHERE {} = {}",
        d.quote_ident(schema.table),
        d.quote_ident("id"),
        d.placeholder(1)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(db.pool())
        .await
        .map_err(write_error)?;
    Ok(())
}

/// Checks that every foreign key in `values` points at an existing row.
pub(crate) async fn check_references(
    db: &Db,
    schema: &Schema,
    values: &Validated,
) -> Result<(), ApiError> {
    let d = db.dialect();
    let mut errors = Vec::new();
    for f in schema.fields.iter().filter(|f| f.references.is_some()) {
        let (Some(table), Some(SqlValue::Int(id))) = (f.references, values.get(f.name)) else {
            continue;
        };
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} = {}",
            d.quote_ident(table),
            d.quote_ident("id"),
            d.placeholder(1)
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(*id)
            .fetch_optional(db.pool())
            .await
            .map_err(BackendError::from)?;
        if found.is_none() {
            errors.push((
                f.name,
                format!("Invalid pk \"{id}\" - object does not exist."),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}
