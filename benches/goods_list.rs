//! A goods list through a `ModelViewSet` on SQLite with 10,000 rows: a page of 10 plus the
//! count, plain and with `search` + a filter + `ordering`. Run with
//! `cargo bench --bench goods_list`; see BENCHMARKS.md.

use axum::Router;
use axum::body::Body;
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

async fn setup() -> (Router, Router) {
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
    let cached = ModelViewSet::<Goods>::new(db)
        .pagination(PageNumber::size(10).max(100))
        .cache(ListCache::memory(64 << 20))
        .routes_at("/goods");
    (plain, cached)
}

fn list(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (plain, cached) = rt.block_on(setup());
    let mut group = c.benchmark_group("goods_list_10k_sqlite");
    let filtered = "/goods/?search=tea&price__gte=10000&ordering=-price";
    for (name, app, uri) in [
        ("page_plain", &plain, "/goods/?page=3"),
        ("search_filter_ordering", &plain, filtered),
        ("search_filter_ordering_cached", &cached, filtered),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let app = app.clone();
                async move {
                    let response = app
                        .oneshot(
                            Request::get(uri)
                                .header("host", "bench")
                                .body(Body::empty())
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    response
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, list);
criterion_main!(benches);
