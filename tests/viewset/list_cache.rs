//! The list cache invalidates by what changed: pages by the versions of the columns their
//! membership and order read, row bodies by row version. Observed through the public API:
//! list bodies over `oneshot`, and `ListCache::stats` (which pages and rows were reused).

use axum::Router;
use axum::body::Body;
use http::{Method, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wxrest::ApiError;
use wxrest::db::Db;
use wxrest::viewset::*;

#[derive(Debug, Serialize, Deserialize)]
struct Goods {
    id: i64,
    name: String,
    price: i64,
    stock: i64,
    on_sale: bool,
    category: i64,
}

impl Model for Goods {
    fn schema() -> Schema {
        Schema::new("lc_goods")
            .field(Field::id())
            .field(Field::text("name").max_length(50).search().order())
            .field(
                Field::int("price")
                    .min(0)
                    .filter([Lookup::Gte, Lookup::Lte])
                    .order(),
            )
            .field(Field::int("stock").min(0).default(0).order())
            .field(Field::bool("on_sale").default(true).filter([Lookup::Exact]))
            .field(Field::int("category").default(1).filter([Lookup::Exact]))
            .default_ordering(["id"])
    }
}

/// An order: its create hook takes stock with raw SQL and declares what it changed, as the
/// mall's order placement does.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: i64,
    goods: i64,
    quantity: i64,
}

impl Model for Order {
    fn schema() -> Schema {
        Schema::new("lc_orders")
            .field(Field::id())
            .field(Field::int("goods"))
            .field(Field::int("quantity").min(1))
    }
}

async fn create_tables(db: &Db) {
    let (id, boolean) = crate::databases::id_and_bool(db.dialect());
    for sql in [
        format!(
            "CREATE TABLE lc_goods (id {id}, name VARCHAR(50) NOT NULL, price BIGINT NOT NULL, \
             stock BIGINT NOT NULL, on_sale {boolean} NOT NULL, category BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE lc_orders (id {id}, goods BIGINT NOT NULL, quantity BIGINT NOT NULL)"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(db.pool())
            .await
            .unwrap();
    }
    let d = db.dialect();
    // Ten goods: id n has price 100 * n, stock 50.
    for n in 1..=10i64 {
        let sql = format!(
            "INSERT INTO lc_goods (name, price, stock, on_sale, category) VALUES ({})",
            d.placeholders(1, 5)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(format!("Tea {n}"))
            .bind(100 * n)
            .bind(50i64)
            .bind(true)
            .bind(1 + n % 2)
            .execute(db.pool())
            .await
            .unwrap();
    }
}

async fn place(ctx: WriteContext, values: Validated) -> Result<i64, ApiError> {
    let goods = values.int("goods").unwrap_or_default();
    let quantity = values.int("quantity").unwrap_or_default();
    let d = ctx.db.dialect();
    let sql = format!(
        "UPDATE lc_goods SET stock = stock - {} WHERE id = {}",
        d.placeholder(1),
        d.placeholder(2)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(quantity)
        .bind(goods)
        .execute(ctx.db.pool())
        .await
        .map_err(|e| ApiError::from(wxrest::BackendError::from(e)))?;
    ctx.changed("lc_goods", &["stock"], &[goods]).await;
    ctx.insert(&values).await
}

/// The shop's goods and orders over one cache.
fn shop(db: Db, cache: &ListCache) -> Router {
    let goods = ModelViewSet::<Goods>::new(db.clone())
        .pagination(PageNumber::size(5).max(100))
        .cache(cache.clone())
        .routes_at("/goods");
    let orders = ModelViewSet::<Order>::new(db)
        .actions([Action::Create])
        .cache(cache.clone())
        .on_create(place)
        .routes_at("/orders");
    goods.merge(orders)
}

/// A shop on a fresh database of backend `label`, with its cache.
struct Shop {
    label: String,
    app: Router,
    cache: ListCache,
    db: crate::databases::TestDb,
}

impl Shop {
    async fn on(label: &str, cache: ListCache) -> Self {
        let db = crate::databases::fresh_db(label).await;
        create_tables(&db).await;
        Self {
            label: label.to_owned(),
            app: shop(db.db.clone(), &cache),
            cache,
            db,
        }
    }

    async fn sqlite() -> Self {
        Self::on("sqlite-file", ListCache::memory(16 << 20)).await
    }

    async fn get(&self, uri: &str) -> Value {
        list(&self.app, uri).await
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> u16 {
        call(&self.app, method, uri, body).await
    }

    /// Page hits, page misses, row hits and row misses since `before`, which becomes now.
    fn since(&self, before: &mut ListCacheStats) -> (u64, u64, u64, u64) {
        let now = self.cache.stats();
        let delta = (
            now.page_hits - before.page_hits,
            now.page_misses - before.page_misses,
            now.row_hits - before.row_hits,
            now.row_misses - before.row_misses,
        );
        *before = now;
        delta
    }
}

async fn list(app: &Router, uri: &str) -> Value {
    let req = Request::get(uri)
        .header("host", "shop.test")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = crate::oneshot::send(app, req).await;
    assert_eq!(status, 200, "{uri}: {body}");
    body
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "shop.test")
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    crate::oneshot::send(app, req).await.0.as_u16()
}

fn field(page: &Value, id: i64, name: &str) -> Value {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id)
        .map_or(Value::Null, |g| g[name].clone())
}

fn ids(page: &Value) -> Vec<i64> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn every_listed_field_changed_through_the_viewset_shows_on_the_next_read() {
    for label in crate::databases::backend_labels() {
        let shop = Shop::on(label, ListCache::memory(16 << 20)).await;
        let uri = "/goods/?page_size=20";
        let before = shop.get(uri).await;
        assert_eq!(field(&before, 3, "name"), "Tea 3", "{label}");
        for (change, name) in [
            (json!({"price": 333}), "price"),
            (json!({"name": "Jade Tea"}), "name"),
            (json!({"on_sale": false}), "on_sale"),
            (json!({"category": 7}), "category"),
            (json!({"stock": 9}), "stock"),
        ] {
            assert_eq!(
                shop.call(Method::PATCH, "/goods/3/", Some(change.clone()))
                    .await,
                200
            );
            let page = shop.get(uri).await;
            assert_eq!(field(&page, 3, name), change[name], "{label}: {change}");
        }
    }
}

#[tokio::test]
async fn an_order_changing_stock_keeps_unrelated_pages_and_rereads_only_its_row() {
    let shop = Shop::sqlite().await;
    let mut stats = ListCacheStats::default();
    let uri = "/goods/?price__gte=200";
    let first = shop.get(uri).await;
    assert_eq!(ids(&first), [2, 3, 4, 5, 6]);
    // Ordered by stock: this page depends on the stock column.
    let by_stock = "/goods/?ordering=stock";
    shop.get(by_stock).await;
    shop.since(&mut stats);
    shop.get(uri).await;
    // The page as assembled, its rows unchanged: no row is even looked up.
    assert_eq!(shop.since(&mut stats), (1, 0, 0, 0), "page reused whole");

    let order = json!({"goods": 4, "quantity": 2});
    assert_eq!(shop.call(Method::POST, "/orders/", Some(order)).await, 201);
    let page = shop.get(uri).await;
    // The buyer's next read shows its order's stock change...
    assert_eq!(field(&page, 4, "stock"), 48);
    assert_eq!(page["count"], first["count"]);
    // ...from the same cached page, with only the ordered goods read again.
    assert_eq!(shop.since(&mut stats), (1, 0, 4, 1));
    // Assembled again, the page answers whole until a row changes.
    assert_eq!(field(&shop.get(uri).await, 4, "stock"), 48);
    assert_eq!(shop.since(&mut stats), (1, 0, 0, 0));
    // A page ordered by stock is evaluated again.
    let page = shop.get(by_stock).await;
    assert_eq!(shop.since(&mut stats).1, 1);
    assert_eq!(ids(&page)[0], 4, "the lowest stock first");
}

#[tokio::test]
async fn a_price_change_reevaluates_pages_filtered_or_ordered_by_price() {
    let shop = Shop::sqlite().await;
    let uri = "/goods/?price__gte=500";
    let before = shop.get(uri).await;
    assert_eq!(before["count"], 6);
    assert!(ids(&before).contains(&5));
    let by_price = shop.get("/goods/?ordering=-price").await;
    assert_eq!(ids(&by_price)[0], 10);
    // Goods 5 drops below the filter; goods 1 becomes the dearest.
    assert_eq!(
        shop.call(Method::PATCH, "/goods/5/", Some(json!({"price": 50})))
            .await,
        200
    );
    assert_eq!(
        shop.call(Method::PATCH, "/goods/1/", Some(json!({"price": 5000})))
            .await,
        200
    );
    let after = shop.get(uri).await;
    assert_eq!(after["count"], 6, "5 left, 1 came in");
    assert!(!ids(&after).contains(&5));
    assert_eq!(ids(&after)[0], 1);
    assert_eq!(ids(&shop.get("/goods/?ordering=-price").await)[0], 1);
}

#[tokio::test]
async fn creates_and_deletes_change_counts_and_links() {
    let shop = Shop::sqlite().await;
    let uri = "/goods/?price__gte=600";
    let before = shop.get(uri).await;
    assert_eq!(before["count"], 5);
    assert!(before["next"].is_null());
    let new = json!({"name": "New Tea", "price": 700, "stock": 1});
    assert_eq!(shop.call(Method::POST, "/goods/", Some(new)).await, 201);
    let after = shop.get(uri).await;
    assert_eq!(after["count"], 6);
    assert_eq!(
        after["next"],
        "http://shop.test/goods/?price__gte=600&page=2"
    );
    assert_eq!(shop.call(Method::DELETE, "/goods/6/", None).await, 204);
    assert_eq!(shop.call(Method::DELETE, "/goods/7/", None).await, 204);
    let after = shop.get(uri).await;
    assert_eq!(after["count"], 4);
    assert!(!ids(&after).contains(&6));
}

#[tokio::test]
async fn touch_makes_every_page_and_row_of_the_table_stale() {
    let shop = Shop::sqlite().await;
    let uri = "/goods/?on_sale=true";
    assert_eq!(field(&shop.get(uri).await, 2, "name"), "Tea 2");
    // A raw write nobody declared: the cache still answers the old page...
    sqlx::query("UPDATE lc_goods SET name = 'Raw Tea', on_sale = 0 WHERE id = 1")
        .execute(shop.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE lc_goods SET name = 'Raw Tea' WHERE id = 2")
        .execute(shop.db.pool())
        .await
        .unwrap();
    let stale = shop.get(uri).await;
    assert_eq!(field(&stale, 2, "name"), "Tea 2");
    assert_eq!(stale["count"], 10);
    // ...until the table is touched: membership and every row are read again.
    shop.cache.touch("lc_goods").await.unwrap();
    let fresh = shop.get(uri).await;
    assert_eq!(fresh["count"], 9);
    assert_eq!(field(&fresh, 2, "name"), "Raw Tea");
}

#[tokio::test]
async fn dropped_row_versions_never_revive_an_older_body() {
    let shop = Shop::sqlite().await;
    let uri = "/goods/?price__gte=100";
    // Bodies cached under "never changed".
    assert_eq!(field(&shop.get(uri).await, 2, "name"), "Tea 2");
    assert_eq!(
        shop.call(
            Method::PATCH,
            "/goods/2/",
            Some(json!({"name": "Jade Tea"}))
        )
        .await,
        200
    );
    assert_eq!(field(&shop.get(uri).await, 2, "name"), "Jade Tea");
    // So many rows change that the bounded row versions are all dropped: goods 2's version is
    // forgotten, and must not read as "never changed" again.
    let many: Vec<i64> = (1_000_000..1_000_001 + MAX_ROW_VERSIONS as i64).collect();
    shop.cache.changed("lc_goods", &[], &many).await.unwrap();
    assert_eq!(field(&shop.get(uri).await, 2, "name"), "Jade Tea");
}

#[tokio::test]
async fn pages_and_row_bodies_stay_within_one_byte_bound() {
    let budget = 16 * 1024;
    let shop = Shop::on("sqlite-file", ListCache::memory(budget)).await;
    for n in 0..300 {
        shop.get(&format!("/goods/?price__gte={n}&page_size=10"))
            .await;
        shop.get(&format!("/goods/?search=tea%20{}", n % 10)).await;
    }
    let used = shop.cache.weighted_size();
    assert!(used <= budget, "{}: {used} bytes cached", shop.label);
    assert!(used > budget / 4, "{used} bytes: the cache was barely used");
}

#[tokio::test]
async fn instances_sharing_redis_see_each_others_writes() {
    let Some(url) = crate::databases::redis_url() else {
        return;
    };
    let prefix = crate::databases::unique_prefix("list_cache");
    let open = || {
        ListCache::open(&url)
            .unwrap()
            .prefix(prefix.clone())
            .max_bytes(16 << 20)
    };
    let a = Shop::on("sqlite-file", open()).await;
    let b = shop(a.db.db.clone(), &open());
    let uri = "/goods/?price__gte=300";
    let page = |app| async move { list(app, uri).await };
    // B caches the page and its rows.
    let before = page(&b).await;
    assert_eq!(before["count"], 8);
    page(&b).await;
    // A: a viewset write of a listed field, an order through a hook, a filtered column.
    assert_eq!(
        a.call(
            Method::PATCH,
            "/goods/3/",
            Some(json!({"name": "Jade Tea"}))
        )
        .await,
        200
    );
    assert_eq!(field(&page(&b).await, 3, "name"), "Jade Tea");
    let order = json!({"goods": 4, "quantity": 5});
    assert_eq!(a.call(Method::POST, "/orders/", Some(order)).await, 201);
    assert_eq!(field(&page(&b).await, 4, "stock"), 45);
    assert_eq!(
        a.call(Method::PATCH, "/goods/5/", Some(json!({"price": 1})))
            .await,
        200
    );
    let after = page(&b).await;
    assert_eq!(after["count"], 7);
    assert!(!ids(&after).contains(&5));
    // And the other way round.
    assert_eq!(call(&b, Method::DELETE, "/goods/6/", None).await, 204);
    assert_eq!(a.get(uri).await["count"], 6);
}
