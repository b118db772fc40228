//! Categories and goods: read by any logged-in user, written by staff (the seed's
//! `IsAuthenticated` plus staff-only writes).

use axum::Router;
use serde::{Deserialize, Serialize};
use wxrest::auth::{IsAdminUser, IsAuthenticated};
use wxrest::db::Db;
use wxrest::openapi::ApiDoc;
use wxrest::viewset::ListCache;
use wxrest::viewset::{Action, Auto, Field, Lookup, Model, ModelViewSet, PageNumber, Schema};

/// A category of goods.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub sort_order: i64,
}

impl Model for Category {
    fn schema() -> Schema {
        Schema::new("categories")
            .field(Field::id())
            .field(Field::text("name").max_length(50).search().order())
            .field(Field::int("sort_order").default(0).order())
            .default_ordering(["sort_order", "id"])
    }
}

/// A product. `price` is integer fen (cents), never a float.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goods {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub stock: i64,
    pub category: i64,
    pub on_sale: bool,
    pub created_at: String,
}

impl Model for Goods {
    fn schema() -> Schema {
        Schema::new("goods")
            .field(Field::id())
            .field(Field::text("name").max_length(100).search().order())
            .field(
                Field::text("description")
                    .max_length(2000)
                    .allow_blank()
                    .default("")
                    .search(),
            )
            .field(
                Field::int("price")
                    .min(0)
                    .max(100_000_000)
                    .filter([Lookup::Gte, Lookup::Lte])
                    .order(),
            )
            .field(Field::int("stock").min(0).max(1_000_000_000).default(0))
            .field(Field::foreign_key("category", "categories").filter([Lookup::Exact, Lookup::In]))
            .field(Field::bool("on_sale").default(true).filter([Lookup::Exact]))
            .field(
                Field::timestamp("created_at")
                    .auto(Auto::NowOnCreate)
                    .order(),
            )
            .default_ordering(["-created_at"])
    }
}

pub fn routes(db: &Db, doc: ApiDoc, lists: &ListCache) -> (Router, ApiDoc) {
    let categories = ModelViewSet::<Category>::new(db.clone())
        .permission(IsAuthenticated)
        .permission_for(Action::WRITES, IsAdminUser)
        .pagination(PageNumber::size(50).max(100))
        .cache(lists.clone());
    let goods = ModelViewSet::<Goods>::new(db.clone())
        .permission(IsAuthenticated)
        .permission_for(Action::WRITES, IsAdminUser)
        .pagination(PageNumber::size(10).max(100))
        .cache(lists.clone());
    let doc = doc
        .merge(categories.openapi("/mall/categories"))
        .merge(goods.openapi("/mall/goods"));
    let router = categories
        .routes_at("/mall/categories")
        .merge(goods.routes_at("/mall/goods"));
    (router, doc)
}

/// Demo data for an empty catalogue: returns how many goods were added.
pub async fn seed_demo(db: &Db) -> Result<usize, wxrest::BackendError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM goods")
        .fetch_one(db.pool())
        .await?;
    if count > 0 {
        return Ok(0);
    }
    let d = db.dialect();
    let categories = ["Tea", "Teaware", "Snacks"];
    let goods: [(&str, &str, i64, i64, usize); 12] = [
        (
            "West Lake Longjing",
            "Green tea from Hangzhou, spring harvest",
            12800,
            50,
            0,
        ),
        (
            "Tieguanyin",
            "Oolong from Anxi, lightly roasted",
            9800,
            80,
            0,
        ),
        ("Pu'er Cake 2015", "Aged ripe Pu'er, 357 g", 26800, 20, 0),
        (
            "Jasmine Pearls",
            "Green tea scented with jasmine",
            6800,
            120,
            0,
        ),
        ("Keemun Black", "Qimen black tea, malty", 7800, 60, 0),
        ("Gaiwan Set", "Porcelain gaiwan with two cups", 15800, 30, 1),
        ("Yixing Teapot", "Purple clay teapot, 150 ml", 39800, 10, 1),
        ("Bamboo Tea Tray", "Tray with drainage, 40 cm", 8800, 25, 1),
        ("Glass Pitcher", "Fairness pitcher, 300 ml", 3900, 100, 1),
        ("Sesame Crisps", "Black sesame crisps, 200 g", 1800, 200, 2),
        (
            "Mung Bean Cakes",
            "Traditional pastry, box of 12",
            2600,
            150,
            2,
        ),
        ("Candied Ginger", "Ginger slices, 150 g", 1500, 0, 2),
    ];
    let mut tx = db.pool().begin().await?;
    let mut ids = Vec::new();
    for (i, name) in categories.iter().enumerate() {
        let sql = format!(
            "INSERT INTO categories (name, sort_order) VALUES ({})",
            d.placeholders(1, 2)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(*name)
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT id FROM categories WHERE name = {}",
            d.placeholder(1)
        );
        let (id,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(*name)
            .fetch_one(&mut *tx)
            .await?;
        ids.push(id);
    }
    let now = chrono::Utc::now().timestamp();
    for (i, (name, description, price, stock, category)) in goods.iter().enumerate() {
        let sql = format!(
            "INSERT INTO goods (name, description, price, stock, category, on_sale, created_at) VALUES ({})",
            d.placeholders(1, 7)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(*name)
            .bind(*description)
            .bind(*price)
            .bind(*stock)
            .bind(ids[*category])
            .bind(true)
            .bind(now - (goods.len() - i) as i64 * 60)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(goods.len())
}
