//! The model both viewset test files serve: an `Item` with every kind of field (text with
//! search and ordering, integers with range lookups, a boolean, a nullable foreign key, choices,
//! a read-only owner, an automatic timestamp), a public `ItemCard` over the same table without
//! the owner and the description, and its tables and seed rows.

use serde::{Deserialize, Serialize};
use wxrest::db::Db;
use wxrest::viewset::*;

#[derive(Debug, Serialize, Deserialize)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub on_sale: bool,
    pub category: Option<i64>,
    pub size: String,
    pub owner_id: i64,
    pub created_at: String,
}

impl Model for Item {
    fn schema() -> Schema {
        Schema::new("items")
            .field(Field::id())
            .field(
                Field::text("name")
                    .max_length(20)
                    .filter([Lookup::Exact, Lookup::IContains])
                    .search()
                    .order(),
            )
            .field(
                Field::text("description")
                    .allow_blank()
                    .default("")
                    .search(),
            )
            .field(
                Field::int("price")
                    .min(0)
                    .filter({
                        use Lookup::*;
                        [Exact, Gt, Gte, Lt, Lte, In]
                    })
                    .order(),
            )
            .field(Field::bool("on_sale").default(true).filter([Lookup::Exact]))
            .field(
                Field::foreign_key("category", "categories")
                    .nullable()
                    .filter([Lookup::Exact, Lookup::IsNull, Lookup::In]),
            )
            .field(Field::text("size").choices(["S", "M", "L"]).default("M"))
            .field(Field::int("owner_id").read_only())
            .field(
                Field::timestamp("created_at")
                    .auto(Auto::NowOnCreate)
                    .order()
                    .filter([Lookup::Gte, Lookup::Lte]),
            )
            .default_ordering(["-price"])
    }
}

/// The public view of the `items` table: what a shop shows anyone (no owner, no description),
/// as a second viewset over the table an admin viewset of [`Item`] serves.
#[derive(Debug, Serialize, Deserialize)]
pub struct ItemCard {
    pub id: i64,
    pub name: String,
    pub price: i64,
}

impl Model for ItemCard {
    fn schema() -> Schema {
        Schema::new("items")
            .field(Field::id())
            .field(Field::text("name").max_length(20).search().order())
            .field(Field::int("price").min(0).filter([Lookup::Gte]).order())
            .default_ordering(["-price"])
    }
}

/// Creates `categories` (with `tea` and `cups`) and `items` for [`Item`].
pub async fn create_tables(db: &Db) {
    let (id, boolean) = crate::databases::id_and_bool(db.dialect());
    for sql in [
        format!("CREATE TABLE categories (id {id}, name VARCHAR(50) NOT NULL)"),
        format!(
            "CREATE TABLE items (id {id}, name VARCHAR(20) NOT NULL, description VARCHAR(200) NOT NULL, \
             price BIGINT NOT NULL, on_sale {boolean} NOT NULL, category BIGINT NULL REFERENCES categories(id), \
             size VARCHAR(1) NOT NULL DEFAULT 'M', owner_id BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL)"
        ),
        "INSERT INTO categories (name) VALUES ('tea')".to_owned(),
        "INSERT INTO categories (name) VALUES ('cups')".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(db.pool())
            .await
            .unwrap();
    }
}

/// Seeds items owned by alice (1) and bob (2): (name, description, price, on_sale, category).
pub async fn seed(db: &Db) {
    let rows = [
        (
            "Green Tea",
            "from Hangzhou",
            100,
            true,
            Some(1),
            1,
            1_700_000_000,
        ),
        (
            "Black Tea",
            "strong 50% off",
            250,
            true,
            Some(1),
            1,
            1_700_000_100,
        ),
        ("Tea Cup", "porcelain", 80, false, Some(2), 2, 1_700_000_200),
        ("Kettle", "steel_body", 300, true, None, 2, 1_700_000_300),
        (
            "Oolong",
            "Tea from Fujian",
            180,
            true,
            Some(1),
            1,
            1_700_000_400,
        ),
    ];
    let d = db.dialect();
    for (name, desc, price, on_sale, cat, owner, at) in rows {
        let sql = format!(
            "INSERT INTO items (name, description, price, on_sale, category, owner_id, created_at) VALUES ({})",
            d.placeholders(1, 7)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(desc)
            .bind(price as i64)
            .bind(on_sale)
            .bind(cat.map(|c: i64| c))
            .bind(owner as i64)
            .bind(at as i64)
            .execute(db.pool())
            .await
            .unwrap();
    }
}
