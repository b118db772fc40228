//! Orders: `POST` turns the cart (or a given item list) into an order in one transaction that
//! checks and decrements stock, so concurrent orders never oversell; totals are computed here,
//! in fen. Owners see their orders, staff see all. The lifecycle after that (`pay`, `ship`,
//! `confirm`, `cancel`) is in [`payment`](super::payment).

use std::collections::BTreeMap;

use axum::Router;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Any, Transaction};
use wxrest::auth::IsAuthenticated;
use wxrest::db::{Db, Dialect};
use wxrest::openapi::ApiDoc;
use wxrest::viewset::ListCache;
use wxrest::viewset::{
    Action, Auto, Field, Lookup, Model, ModelViewSet, PageNumber, Schema, Validated, WriteContext,
};
use wxrest::{ApiError, BackendError};

use super::payment::{self, Payments};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderItem {
    pub goods: i64,
    pub name: String,
    pub price: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub status: String,
    pub total: i64,
    pub created_at: String,
    /// The order's number at WeChat Pay.
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub items: Vec<OrderItem>,
}

impl Model for Order {
    fn schema() -> Schema {
        Schema::new("orders")
            .field(Field::id())
            .field(Field::int("user_id").read_only().filter([Lookup::Exact]))
            .field(Field::text("status").read_only().filter([Lookup::Exact]))
            .field(Field::int("total").read_only().order())
            .field(Field::text("out_trade_no").read_only().nullable())
            .field(
                Field::timestamp("created_at")
                    .auto(Auto::NowOnCreate)
                    .order(),
            )
            .default_ordering(["-created_at"])
    }
}

pub const PENDING: &str = "pending";
pub const CANCELLED: &str = "cancelled";

pub fn routes(db: &Db, doc: ApiDoc, lists: &ListCache, payments: &Payments) -> (Router, ApiDoc) {
    let (p1, p2, p3, p4) = (
        payments.clone(),
        payments.clone(),
        payments.clone(),
        payments.clone(),
    );
    let orders = ModelViewSet::<Order>::new(db.clone())
        .actions([Action::List, Action::Create, Action::Retrieve])
        .permission(IsAuthenticated)
        .owner_field_staff_sees_all("user_id")
        .pagination(PageNumber::size(10).max(50))
        .cache(lists.clone())
        .on_create(place)
        .with_related(|db, orders| async move { load_items(&db, orders).await })
        .action("pay", true, Method::POST, move |ctx| {
            payment::pay(p1.clone(), ctx)
        })
        .action("ship", true, Method::POST, move |ctx| {
            payment::ship(p2.clone(), ctx)
        })
        .action("confirm", true, Method::POST, move |ctx| {
            payment::confirm(p3.clone(), ctx)
        })
        .action("cancel", true, Method::POST, move |ctx| {
            payment::cancel(p4.clone(), ctx)
        });
    let doc = doc.merge(orders.openapi("/mall/orders"));
    (orders.routes_at("/mall/orders"), doc)
}

fn db_err(e: sqlx::Error) -> ApiError {
    BackendError::from(e).into()
}

/// The wanted (goods, quantity) pairs: the body's `items`, else the caller's cart.
async fn wanted(ctx: &WriteContext, user: i64) -> Result<(BTreeMap<i64, i64>, bool), ApiError> {
    let mut wanted = BTreeMap::new();
    match ctx.data.get("items") {
        Some(Value::Array(items)) => {
            for item in items {
                let goods = item.get("goods").and_then(Value::as_i64);
                let quantity = item.get("quantity").and_then(Value::as_i64);
                match (goods, quantity) {
                    (Some(g), Some(q)) if (1..=10_000).contains(&q) => {
                        let total = wanted.entry(g).or_insert(0);
                        *total += q;
                    }
                    _ => {
                        return Err(ApiError::validation([(
                            "items",
                            "Each item needs a goods id and a quantity between 1 and 10000.",
                        )]));
                    }
                }
            }
            Ok((wanted, false))
        }
        Some(_) => Err(ApiError::validation([(
            "items",
            "Expected a list of items.",
        )])),
        None => {
            let d = ctx.db.dialect();
            let sql = format!(
                "SELECT goods, quantity FROM cart_items WHERE user_id = {}",
                d.placeholder(1)
            );
            let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user)
                .fetch_all(ctx.db.pool())
                .await
                .map_err(db_err)?;
            wanted.extend(rows);
            Ok((wanted, true))
        }
    }
}

/// Places the order: in one transaction, decrement each stock only where enough remains, price
/// the items, write the order and its items, and empty the cart.
async fn place(ctx: WriteContext, values: Validated) -> Result<i64, ApiError> {
    let user = values.int("user_id").ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
        )
    })?;
    let (wanted, from_cart) = wanted(&ctx, user).await?;
    if wanted.is_empty() {
        return Err(ApiError::validation([("items", "Your cart is empty.")]));
    }
    let d = ctx.db.dialect();
    let mut tx = ctx.db.pool().begin().await.map_err(db_err)?;
    let mut lines = Vec::new();
    let mut total: i64 = 0;
    // Ascending goods ids: every transaction locks rows in the same order (no deadlocks).
    for (&goods, &quantity) in &wanted {
        let sql = format!(
            "UPDATE goods SET stock = stock - {p1} WHERE id = {p2} AND stock >= {p3} AND on_sale = {t}",
            p1 = d.placeholder(1),
            p2 = d.placeholder(2),
            p3 = d.placeholder(3),
            t = d.bool_literal(true),
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(quantity)
            .bind(goods)
            .bind(quantity)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let sql = format!(
            "SELECT name, price FROM goods WHERE id = {}",
            d.placeholder(1)
        );
        let row: Option<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(goods)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some((name, price)) = row else {
            return Err(ApiError::validation([(
                "items",
                format!("Invalid pk \"{goods}\" - object does not exist."),
            )]));
        };
        if done.rows_affected() != 1 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "out_of_stock",
                format!("Not enough stock for \"{name}\"."),
            ));
        }
        total = price
            .checked_mul(quantity)
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| ApiError::validation([("items", "The order total is too large.")]))?;
        lines.push(OrderItem {
            goods,
            name,
            price,
            quantity,
        });
    }
    let now = chrono::Utc::now().timestamp();
    let order_id = insert_returning_id(
        &mut tx,
        d,
        &format!(
            "INSERT INTO orders (user_id, status, total, created_at) VALUES ({})",
            d.placeholders(1, 4)
        ),
        |q| q.bind(user).bind(PENDING).bind(total).bind(now),
    )
    .await?;
    payment::assign_out_trade_no(&mut tx, d, order_id)
        .await
        .map_err(db_err)?;
    for line in &lines {
        let sql = format!(
            "INSERT INTO order_items (order_id, goods, name, price, quantity) VALUES ({})",
            d.placeholders(1, 5)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .bind(line.goods)
            .bind(line.name.clone())
            .bind(line.price)
            .bind(line.quantity)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    if from_cart {
        let sql = format!(
            "DELETE FROM cart_items WHERE user_id = {}",
            d.placeholder(1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    // Stock and the cart changed outside their viewsets. Only the ordered goods' stock
    // changed: pages that do not filter or order by stock stay cached.
    let goods: Vec<i64> = lines.iter().map(|line| line.goods).collect();
    ctx.changed("goods", &["stock"], &goods).await;
    if from_cart {
        ctx.touch("cart_items").await;
    }
    tracing::info!(order_id, user_id = user, total, "order placed");
    Ok(order_id)
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

async fn insert_returning_id(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    sql: &str,
    bind: impl for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
) -> Result<i64, ApiError> {
    match d {
        Dialect::MySql => {
            let done = bind(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())))
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
            done.last_insert_id().ok_or_else(ApiError::unavailable)
        }
        _ => {
            let sql = format!("{sql} RETURNING id");
            let row = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
                .fetch_one(&mut **tx)
                .await
                .map_err(db_err)?;
            sqlx::Row::try_get::<i64, _>(&row, 0).map_err(db_err)
        }
    }
}

/// Loads the items of every order in one query.
pub async fn load_items(db: &Db, mut orders: Vec<Order>) -> Result<Vec<Order>, ApiError> {
    if orders.is_empty() {
        return Ok(orders);
    }
    let d = db.dialect();
    let sql = format!(
        "SELECT order_id, goods, name, price, quantity FROM order_items WHERE order_id IN ({}) ORDER BY id",
        d.placeholders(1, orders.len())
    );
    let mut query = sqlx::query_as::<_, (i64, i64, String, i64, i64)>(sqlx::AssertSqlSafe(sql));
    for order in &orders {
        query = query.bind(order.id);
    }
    let rows = query.fetch_all(db.pool()).await.map_err(db_err)?;
    for (order_id, goods, name, price, quantity) in rows {
        if let Some(order) = orders.iter_mut().find(|o| o.id == order_id) {
            order.items.push(OrderItem {
                goods,
                name,
                price,
                quantity,
            });
        }
    }
    Ok(orders)
}
