//! The floor the mall's middleware stack is measured against: a bare axum handler serving
//! `GET /open` with the body of the mall's `/bench/open`, through the same server and
//! allocator, on `WXREST_BIND` (default `127.0.0.1:8001`). See BENCHMARKS.md.
//!
//! ```text
//! WXREST_BIND=127.0.0.1:8001 cargo run --release --example floor
//! wrk -t2 -c32 -d10s http://127.0.0.1:8001/open
//! ```

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bind = std::env::var("WXREST_BIND").unwrap_or_else(|_| "127.0.0.1:8001".into());
    let app = Router::new().route("/open", get(|| async { Json(json!({"hello": "world"})) }));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("floor listening on {}", listener.local_addr()?);
    let stop = async {
        tokio::signal::ctrl_c().await.ok();
    };
    wxrest::server::Server::new()
        .serve(listener, app, stop)
        .await?;
    Ok(())
}
