//! The list cache invalidates by what changed: pages by the versions of the columns their
//! membership and order read, row bodies by row version; and it keeps them apart by what
//! decides them: the viewset (model, pagination, scope), which rows the caller sees, the
//! canonical query, never the request's origin. Observed through the public API: list bodies
//! over `oneshot`, and `ListCache::stats` (which pages and rows were reused).

use axum::Router;
use axum::body::Body;
use http::{Method, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wxrest::ApiError;
use wxrest::auth::{JwtAuthLayer, TokenService};
use wxrest::db::Db;
use wxrest::viewset::*;

use crate::item::{Item, ItemCard};

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

/// The caches a test runs on, as (label, this instance's, another instance's): one cache in
/// memory (one instance), or two `ListCache`s sharing Redis (two instances).
fn instances(test: &str) -> Vec<(&'static str, ListCache, ListCache)> {
    let memory = ListCache::memory(16 << 20);
    let mut out = vec![("memory", memory.clone(), memory)];
    if let Some(url) = crate::databases::redis_url() {
        let prefix = crate::databases::unique_prefix(test);
        let open = || {
            ListCache::open(&url)
                .unwrap()
                .prefix(prefix.clone())
                .max_bytes(16 << 20)
        };
        out.push(("redis", open(), open()));
    }
    out
}

/// A fresh SQLite database with the seeded `items` table.
async fn items_db() -> crate::databases::TestDb {
    let db = crate::databases::fresh_db("sqlite-file").await;
    crate::item::create_tables(&db.db).await;
    crate::item::seed(&db.db).await;
    db
}

/// The field names of a page's results, all rows together.
fn keys(page: &Value) -> Vec<String> {
    let mut keys: Vec<String> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_object().unwrap().keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The shop's admin list of `Item` and its public list of `ItemCard`: one table, one cache.
fn admin_and_public(db: &Db, cache: &ListCache) -> Router {
    let admin = ModelViewSet::<Item>::new(db.clone())
        .cache(cache.clone())
        .routes_at("/admin/items");
    let public = ModelViewSet::<ItemCard>::new(db.clone())
        .actions([Action::List])
        .cache(cache.clone())
        .routes_at("/items");
    admin.merge(public)
}

#[tokio::test]
async fn a_second_model_over_one_table_never_serves_the_first_ones_rows() {
    let admin_fields = [
        "category",
        "created_at",
        "description",
        "id",
        "name",
        "on_sale",
        "owner_id",
        "price",
        "size",
    ];
    let public_fields = ["id", "name", "price"];
    for (label, here, there) in instances("second_model") {
        let db = items_db().await;
        let app = admin_and_public(&db.db, &here);
        let other = admin_and_public(&db.db, &there);
        for _ in 0..2 {
            assert_eq!(keys(&list(&app, "/admin/items/").await), admin_fields);
            assert_eq!(keys(&list(&app, "/items/").await), public_fields, "{label}");
        }
        // One row changes (on the other instance, with Redis); the admin list reads it first.
        let change = json!({"name": "Jade Tea"});
        let status = call(&other, Method::PATCH, "/admin/items/1/", Some(change)).await;
        assert_eq!(status, 200);
        let admin = list(&app, "/admin/items/").await;
        assert_eq!(keys(&admin), admin_fields, "{label}");
        let public = list(&app, "/items/").await;
        assert_eq!(keys(&public), public_fields, "{label}: {public}");
        assert_eq!(field(&public, 1, "name"), "Jade Tea", "{label}");
    }
}

/// `GET uri` as `who` (an `Authorization` value), anonymous without one.
async fn list_as(app: &Router, uri: &str, who: Option<&str>) -> Value {
    let mut req = Request::get(uri).header("host", "shop.test");
    if let Some(token) = who {
        req = req.header("authorization", token);
    }
    let (status, _, body) = crate::oneshot::send(app, req.body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200, "{uri} as {who:?}: {body}");
    body
}

/// The test token service, and an `Authorization` value for `user`.
async fn bearer(tokens: &TokenService, user: wxrest::auth::AuthUser) -> String {
    format!("JWT {}", tokens.issue(&user).await.unwrap().token)
}

#[tokio::test]
async fn anonymous_callers_and_unscoped_staff_never_share_a_page() {
    for (label, here, _) in instances("scope_states") {
        let db = items_db().await;
        let tokens = TokenService::new(crate::auth_fixtures::jwt());
        // Lists admit anyone; staff see every owner's items, users their own, anonymous
        // callers none.
        let app = ModelViewSet::<Item>::new(db.db.clone())
            .owner_field_staff_sees_all("owner_id")
            .cache(here)
            .routes_at("/items")
            .layer(JwtAuthLayer::new(tokens.clone()));
        let boss = bearer(&tokens, crate::auth_fixtures::staff(3, "boss")).await;
        let alice = bearer(&tokens, crate::auth_fixtures::user(1, "alice")).await;
        // Staff first: an anonymous caller must not get staff's page...
        assert_eq!(list_as(&app, "/items/", Some(&boss)).await["count"], 5);
        assert_eq!(list_as(&app, "/items/", None).await["count"], 0, "{label}");
        assert_eq!(list_as(&app, "/items/", Some(&alice)).await["count"], 3);
        // ...nor, the other way round, staff an anonymous caller's empty page.
        let uri = "/items/?price__gte=100";
        assert_eq!(list_as(&app, uri, None).await["count"], 0);
        assert_eq!(list_as(&app, uri, Some(&boss)).await["count"], 4, "{label}");
    }
}

#[tokio::test]
async fn two_viewsets_at_one_path_never_share_pages() {
    // One cache behind two apps (two API versions, or hosts routed to different routers) that
    // serve the same table at the same path with different pagination and scopes.
    let db = items_db().await;
    let cache = ListCache::memory(16 << 20);
    let tokens = TokenService::new(crate::auth_fixtures::jwt());
    let app = |viewset: ModelViewSet<Item>| {
        viewset
            .cache(cache.clone())
            .routes_at("/items")
            .layer(JwtAuthLayer::new(tokens.clone()))
    };
    let pages_of_two = app(ModelViewSet::new(db.db.clone()).pagination(PageNumber::size(2)));
    let pages_of_three = app(ModelViewSet::new(db.db.clone()).pagination(PageNumber::size(3)));
    assert_eq!(ids(&list(&pages_of_two, "/items/").await).len(), 2);
    assert_eq!(ids(&list(&pages_of_three, "/items/").await).len(), 3);
    // Scoped by different columns, both to the caller's id.
    let by_owner = app(ModelViewSet::new(db.db.clone()).owner_field("owner_id"));
    let by_category =
        app(ModelViewSet::new(db.db.clone())
            .scope_by("category", |identity| Some(identity.user_id)));
    let bob = bearer(&tokens, crate::auth_fixtures::user(2, "bob")).await;
    assert_eq!(
        ids(&list_as(&by_owner, "/items/", Some(&bob)).await),
        [4, 3]
    );
    assert_eq!(
        ids(&list_as(&by_category, "/items/", Some(&bob)).await),
        [3]
    );
}

/// Request headers as (name, value).
type Headers<'a> = &'a [(&'a str, &'a str)];

/// A GET of `uri` with `headers` (none: no `Host`, as HTTP/2 sends the authority in the URI).
async fn next_link(app: &Router, uri: &str, headers: Headers<'_>) -> Value {
    let mut req = Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let (status, _, body) = crate::oneshot::send(app, req.body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200, "{uri}: {body}");
    body["next"].clone()
}

#[tokio::test]
async fn a_cached_page_answers_every_origin_with_its_own_links() {
    let shop = Shop::sqlite().await;
    let mut stats = ListCacheStats::default();
    // A client names another host: its answer carries it, and nobody else's does.
    let first = next_link(&shop.app, "http://evil.test/goods/", &[]).await;
    assert_eq!(first, "http://evil.test/goods/?page=2");
    let cases: [(&str, Headers, &str); 4] = [
        (
            "http://shop.test/goods/",
            &[],
            "http://shop.test/goods/?page=2",
        ),
        (
            "/goods/",
            &[("host", "shop.test")],
            "http://shop.test/goods/?page=2",
        ),
        (
            "/goods/",
            &[("host", "other.test"), ("x-forwarded-proto", "https")],
            "https://other.test/goods/?page=2",
        ),
        (
            "/goods/",
            &[("host", "shop.test"), ("x-forwarded-proto", "gopher")],
            "http://shop.test/goods/?page=2",
        ),
    ];
    for (uri, headers, next) in cases {
        assert_eq!(
            next_link(&shop.app, uri, headers).await,
            next,
            "{uri} {headers:?}"
        );
    }
    // One page for them all: hosts and schemes make no entries.
    assert_eq!(shop.since(&mut stats), (4, 1, 0, 0));
}

#[tokio::test]
async fn every_spelling_of_one_query_is_one_cached_page() {
    let db = items_db().await;
    let cache = ListCache::memory(16 << 20);
    let app = ModelViewSet::<Item>::new(db.db.clone())
        .pagination(PageNumber::size(2).max(3))
        .cache(cache.clone())
        .routes_at("/items");
    // Each group is one query spelled differently; the first spelling is the canonical one
    // its links carry.
    let groups: &[&[&str]] = &[
        &[
            "/items/?page=2&price__gte=100",
            "/items/?price__gte=0100&page=02",
            "/items/?page=%202&price__gte=%2B100&ordering=nonsense&search=%20,&page_size=2",
            "/items/?price__gte=100&page=1&page=2&on_sale=&junk=1",
        ],
        &[
            "/items/?category__in=1,2&on_sale=true",
            "/items/?category__in=2,1,1,&on_sale=True",
            "/items/?on_sale=on&category__in=%202,1&page=1",
        ],
        &[
            "/items/?created_at__gte=2023-11-14T22:15:00Z&ordering=-created_at,name",
            "/items/?created_at__gte=1700000100&ordering=-created_at,-created_at,%20name",
            "/items/?created_at__gte=2023-11-14T23:15:00%2B01:00&ordering=-created_at,bogus,name",
        ],
        &[
            "/items/?page_size=3&search=black%20tea",
            "/items/?search=tea,black,tea&page_size=30",
            "/items/?search=%20tea%20%20black&page_size=%2B3",
        ],
        &[
            "/items/?category__isnull=false",
            "/items/?category__isnull=False",
            "/items/?category__isnull=%20no",
        ],
    ];
    for group in groups {
        let before = cache.stats();
        let canonical = list(&app, group[0]).await;
        for uri in &group[1..] {
            assert_eq!(list(&app, uri).await, canonical, "{uri} vs {}", group[0]);
        }
        let after = cache.stats();
        assert_eq!(
            (
                after.page_misses - before.page_misses,
                after.page_hits - before.page_hits
            ),
            (1, group.len() as u64 - 1),
            "{group:?}"
        );
    }
    // Links carry the canonical spelling.
    let page = list(&app, "/items/?price__gte=0100&page=02").await;
    assert_eq!(page["previous"], "http://shop.test/items/?price__gte=100");
    let page = list(
        &app,
        "/items/?price__gte=0100&page=001&ordering=-price,-price",
    )
    .await;
    assert_eq!(
        page["next"],
        "http://shop.test/items/?ordering=-price&price__gte=100&page=2"
    );
}

#[tokio::test]
async fn tenants_on_one_cache_never_see_each_others_rows() {
    // One process serving two shops' databases (same table name, same ids) with one cache:
    // the table's versions are shared, its rows are not.
    let (a, b) = (items_db().await, items_db().await);
    sqlx::query("UPDATE items SET name = 'Shop B tea'")
        .execute(b.db.pool())
        .await
        .unwrap();
    let cache = ListCache::memory(16 << 20);
    let shop = |db: &Db, at: &str| {
        ModelViewSet::<Item>::new(db.clone())
            .cache(cache.clone())
            .routes_at(at)
    };
    let app = shop(&a.db, "/a/items").merge(shop(&b.db, "/b/items"));
    for _ in 0..2 {
        assert_eq!(
            field(&list(&app, "/a/items/").await, 2, "name"),
            "Black Tea"
        );
        assert_eq!(
            field(&list(&app, "/b/items/").await, 2, "name"),
            "Shop B tea"
        );
    }
    // A change the page's order does not read: the page stays, its other rows come from the
    // cache.
    let change = json!({"name": "Jade Tea"});
    assert_eq!(
        call(&app, Method::PATCH, "/a/items/1/", Some(change)).await,
        200
    );
    let page = list(&app, "/a/items/").await;
    assert_eq!(field(&page, 1, "name"), "Jade Tea");
    assert_eq!(field(&page, 2, "name"), "Black Tea", "{page}");
}
