//! The caller's cart: only their own rows; adding goods already in the cart adds to the
//! quantity; a quantity must stay within 1..=stock.

use axum::Router;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use wxrest::auth::IsAuthenticated;
use wxrest::db::{Db, Dialect, SqlValue};
use wxrest::openapi::ApiDoc;
use wxrest::viewset::ListCache;
use wxrest::viewset::{
    Auto, Field, Lookup, Model, ModelViewSet, Pagination, Schema, Validated, WriteContext,
};
use wxrest::{ApiError, BackendError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CartItem {
    pub id: i64,
    pub user_id: i64,
    pub goods: i64,
    pub quantity: i64,
    pub created_at: String,
}

impl Model for CartItem {
    fn schema() -> Schema {
        Schema::new("cart_items")
            .field(Field::id())
            .field(Field::int("user_id").read_only())
            .field(Field::foreign_key("goods", "goods").filter([Lookup::Exact]))
            .field(Field::int("quantity").min(1).max(10_000))
            .field(Field::timestamp("created_at").auto(Auto::NowOnCreate))
            .default_ordering(["created_at"])
    }
}

pub fn routes(db: &Db, doc: ApiDoc, lists: &ListCache) -> (Router, ApiDoc) {
    let cart = ModelViewSet::<CartItem>::new(db.clone())
        .permission(IsAuthenticated)
        .owner_field("user_id")
        .pagination(Pagination::None)
        .cache(lists.clone())
        .on_create(add)
        .on_update(
            |ctx: WriteContext, item: CartItem, values: Validated| async move {
                // Moving an item to other goods is checked like adding them: on sale, and
                // the quantity within their stock.
                if values.int("quantity").is_some() || values.int("goods").is_some() {
                    let goods = values.int("goods").unwrap_or(item.goods);
                    let quantity = values.int("quantity").unwrap_or(item.quantity);
                    check_stock(&ctx.db, goods, quantity).await?;
                }
                ctx.update(item.id, &values).await
            },
        );
    let doc = doc.merge(cart.openapi("/mall/cart"));
    (cart.routes_at("/mall/cart"), doc)
}

/// Stock and sale state of one goods row, or `None` when it does not exist.
pub async fn goods_state(db: &Db, goods: i64) -> Result<Option<(i64, bool)>, ApiError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT stock, {} FROM goods WHERE id = {}",
        d.select_bool("on_sale"),
        d.placeholder(1)
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(goods)
        .fetch_optional(db.pool())
        .await
        .map_err(BackendError::from)?;
    match row {
        None => Ok(None),
        Some(row) => {
            let stock: i64 = sqlx::Row::try_get(&row, 0).map_err(BackendError::from)?;
            let on_sale = wxrest::db::decode_bool(&row, "on_sale").map_err(BackendError::from)?;
            Ok(Some((stock, on_sale)))
        }
    }
}

async fn check_stock(db: &Db, goods: i64, quantity: i64) -> Result<(), ApiError> {
    match goods_state(db, goods).await? {
        None => Err(ApiError::validation([(
            "goods",
            format!("Invalid pk \"{goods}\" - object does not exist."),
        )])),
        Some((_, false)) => Err(ApiError::validation([(
            "goods",
            "These goods are not on sale.",
        )])),
        Some((stock, _)) if quantity > stock => Err(ApiError::validation([(
            "quantity",
            format!("Ensure this value is less than or equal to {stock}."),
        )])),
        Some(_) => Ok(()),
    }
}

/// Adds to the cart: one upsert on (user, goods), then the stock check on the new total, in
/// one transaction.
async fn add(ctx: WriteContext, values: Validated) -> Result<i64, ApiError> {
    let (Some(goods), Some(quantity), Some(user)) = (
        values.int("goods"),
        values.int("quantity"),
        values.int("user_id"),
    ) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Incomplete cart item.",
        ));
    };
    check_stock(&ctx.db, goods, quantity).await?;
    let d = ctx.db.dialect();
    let now = match values.get("created_at") {
        Some(SqlValue::Int(t)) => *t,
        _ => chrono::Utc::now().timestamp(),
    };
    let upsert = match d {
        Dialect::MySql => {
            "INSERT INTO cart_items (user_id, goods, quantity, created_at) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity)"
                .to_owned()
        }
        _ => format!(
            "INSERT INTO cart_items (user_id, goods, quantity, created_at) VALUES ({}) \
             ON CONFLICT (user_id, goods) DO UPDATE SET quantity = cart_items.quantity + excluded.quantity",
            d.placeholders(1, 4)
        ),
    };
    let mut tx = ctx.db.pool().begin().await.map_err(BackendError::from)?;
    sqlx::query(sqlx::AssertSqlSafe(upsert))
        .bind(user)
        .bind(goods)
        .bind(quantity)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(wxrest::viewset::write_error)?;
    let sql = format!(
        "SELECT c.id, c.quantity, g.stock FROM cart_items c JOIN goods g ON g.id = c.goods \
         WHERE c.user_id = {} AND c.goods = {}",
        d.placeholder(1),
        d.placeholder(2)
    );
    let (id, total, stock): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(goods)
        .fetch_one(&mut *tx)
        .await
        .map_err(BackendError::from)?;
    if total > stock {
        tx.rollback().await.map_err(BackendError::from)?;
        return Err(ApiError::validation([(
            "quantity",
            format!("Ensure this value is less than or equal to {stock}."),
        )]));
    }
    tx.commit().await.map_err(BackendError::from)?;
    Ok(id)
}
