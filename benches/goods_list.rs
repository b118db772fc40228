//! A goods list through a `ModelViewSet` on SQLite with 10,000 rows: a page of 10 plus the
//! count, plain and with `search` + a filter + `ordering`; uncached, cached, cached right after
//! a stock change of one listed row, and the same list written by hand with axum + sqlx (the
//! floor: same statements, same JSON). Run with
//! `cargo bench --bench goods_list -- --warm-up-time 1 --measurement-time 3`; see BENCHMARKS.md.

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use wxrest::db::Db;
use wxrest::viewset::{Field, ListCache, Lookup, Model, ModelViewSet, PageNumber, Schema};

#[derive(Serialize, Deserialize)]
struct Goods {
    id: i64,
    name: String,
    description: String,
    price: i64,
    stock: i64,
    on_sale: bool,
}

impl Model for Goods {
    fn schema() -> Schema {
        Schema::new("bench_goods")
            .field(Field::id())
            .field(Field::text("name").search().order())
            .field(Field::text("description").search())
            .field(
                Field::int("price")
                    .filter([Lookup::Gte, Lookup::Lte])
                    .order(),
            )
            .field(Field::int("stock"))
            .field(Field::bool("on_sale").filter([Lookup::Exact]))
            .default_ordering(["-id"])
    }
}

/// The filtered list by hand: `?search=&price__gte=` ordered by `-price`, page 1 of 10, the
/// COUNT and the page as two statements, rows decoded straight into `Goods` and serialised once.
async fn hand_written(
    State(db): State<Db>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    let pattern = format!("%{}%", q.get("search").map_or("", String::as_str));
    let min: i64 = q
        .get("price__gte")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let filter = "WHERE (LOWER(name) LIKE LOWER(?) ESCAPE '!' OR LOWER(description) LIKE LOWER(?) \
                  ESCAPE '!') AND price >= ?";
    let count: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM bench_goods {filter}"
    )))
    .bind(&pattern)
    .bind(&pattern)
    .bind(min)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let rows: Vec<(i64, String, String, i64, i64, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, name, description, price, stock, on_sale FROM bench_goods {filter} \
             ORDER BY price DESC, id DESC LIMIT 10 OFFSET 0"
        )))
        .bind(&pattern)
        .bind(&pattern)
        .bind(min)
        .fetch_all(db.pool())
        .await
        .unwrap();
    let results: Vec<Goods> = rows
        .into_iter()
        .map(|(id, name, description, price, stock, on_sale)| Goods {
            id,
            name,
            description,
            price,
            stock,
            on_sale: on_sale != 0,
        })
        .collect();
    #[derive(Serialize)]
    struct PageOut {
        count: i64,
        next: Option<String>,
        previous: Option<String>,
        results: Vec<Goods>,
    }
    let next = (count.0 > 10).then(|| {
        format!(
            "http://bench/goods/?ordering=-price&price__gte={min}&search={}&page=2",
            q.get("search").map_or("", String::as_str)
        )
    });
    let body = serde_json::to_vec(&PageOut {
        count: count.0,
        next,
        previous: None,
        results,
    })
    .unwrap();
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

struct Apps {
    plain: Router,
    cached: Router,
    floor: Router,
    cache: ListCache,
}

async fn setup() -> Apps {
    let path = std::env::temp_dir().join(format!("wxrest-bench-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let db = Db::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE bench_goods (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, \
         description TEXT NOT NULL, price BIGINT NOT NULL, stock BIGINT NOT NULL, on_sale INTEGER NOT NULL);
         CREATE INDEX bench_goods_price ON bench_goods(price);",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let words = [
        "tea", "cup", "pot", "tray", "green", "black", "oolong", "jasmine", "cake", "box",
    ];
    let mut tx = db.pool().begin().await.unwrap();
    for i in 0..10_000i64 {
        let name = format!(
            "{} {} {i}",
            words[(i % 10) as usize],
            words[((i / 10) % 10) as usize]
        );
        sqlx::query("INSERT INTO bench_goods (name, description, price, stock, on_sale) VALUES (?, ?, ?, ?, ?)")
            .bind(name)
            .bind(format!("item number {i} of the benchmark catalogue"))
            .bind((i * 37) % 50_000)
            .bind(i % 100)
            .bind(i % 3 != 0)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let plain = ModelViewSet::<Goods>::new(db.clone())
        .pagination(PageNumber::size(10).max(100))
        .routes_at("/goods");
    let cache = ListCache::memory(64 << 20);
    let cached = ModelViewSet::<Goods>::new(db.clone())
        .pagination(PageNumber::size(10).max(100))
        .cache(cache.clone())
        .routes_at("/goods");
    let floor = Router::new()
        .route("/goods/", get(hand_written))
        .with_state(db);
    Apps {
        plain,
        cached,
        floor,
        cache,
    }
}

fn list(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let apps = rt.block_on(setup());
    let mut group = c.benchmark_group("goods_list_10k_sqlite");
    let filtered = "/goods/?search=tea&price__gte=10000&ordering=-price";
    // The floor answers the same JSON as the viewset.
    let (a, b) = rt.block_on(async {
        (
            body(&apps.floor, filtered).await,
            body(&apps.plain, filtered).await,
        )
    });
    assert_eq!(
        a, b,
        "the hand-written list must answer what the viewset answers"
    );
    let first_id: i64 =
        serde_json::from_slice::<serde_json::Value>(&a).unwrap()["results"][0]["id"]
            .as_i64()
            .unwrap();
    for (name, app, uri) in [
        ("page_plain", &apps.plain, "/goods/?page=3"),
        ("search_filter_ordering", &apps.plain, filtered),
        ("search_filter_ordering_hand_written", &apps.floor, filtered),
        ("search_filter_ordering_cached", &apps.cached, filtered),
    ] {
        group.bench_function(name, |b| b.to_async(&rt).iter(|| body(app, uri)));
    }
    // Every list follows a stock change of one of its rows (as orders do): the page stays
    // cached, that row is read again.
    group.bench_function("search_filter_ordering_cached_after_stock_change", |b| {
        b.to_async(&rt).iter(|| async {
            apps.cache
                .changed("bench_goods", &["stock"], &[first_id])
                .await
                .unwrap();
            body(&apps.cached, filtered).await
        })
    });
    group.finish();
}

async fn body(app: &Router, uri: &str) -> bytes::Bytes {
    let response = app
        .clone()
        .oneshot(
            Request::get(uri)
                .header("host", "bench")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes()
}

criterion_group!(benches, list);
criterion_main!(benches);
