//! The quick start: JWT auth on an axum app, with the auth core alone
//! (`wxrest = { git = "https://github.com/wxrest/wxrest", default-features = false }` until
//! it is on crates.io).
//!
//! `cargo run --example quickstart` listens on `127.0.0.1:3000` (the example mall keeps 8000),
//! then, in another shell:
//!
//! ```text
//! TOKEN=$(curl -s -X POST localhost:3000/auth/token/ -H 'content-type: application/json' \
//!      -d '{"username":"demo","password":"demo-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
//! curl -s localhost:3000/me -H "Authorization: JWT $TOKEN"
//! ```
//!
//! `cargo run --example quickstart -- --self-test` does the same in process and exits 0 when
//! the protected route answered 200 (CI runs it).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wxrest::auth::{AuthUser, TokenService, UserLookup, token_routes};
use wxrest::prelude::*;
use wxrest::{BackendError, async_trait};

/// One demo account in memory (use `wxrest::user::UserStore` for real ones).
struct DemoUsers(HashMap<String, (AuthUser, String)>);

#[async_trait]
impl UserLookup for DemoUsers {
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .0
            .values()
            .find(|(u, _)| u.id == id)
            .map(|(u, _)| u.clone()))
    }
    async fn by_username(&self, name: &str) -> Result<Option<AuthUser>, BackendError> {
        Ok(self.0.get(name).map(|(u, _)| u.clone()))
    }
    async fn verify_password(
        &self,
        name: &str,
        pw: &str,
    ) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .0
            .get(name)
            .filter(|(_, p)| p == pw)
            .map(|(u, _)| u.clone()))
    }
    async fn bump_token_version(&self, _id: i64) -> Result<Option<i64>, BackendError> {
        Ok(None)
    }
}

async fn me(user: Identity) -> Json<Value> {
    Json(json!({ "id": user.user_id, "username": user.username }))
}

/// The app: `/auth/token/` (and the other token routes) and a protected `/me`.
fn app(secret: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let demo = AuthUser {
        id: 1,
        username: "demo".into(),
        email: String::new(),
        is_staff: false,
        is_superuser: false,
        is_active: true,
        token_version: 0,
    };
    let users = DemoUsers(HashMap::from([(
        "demo".into(),
        (demo, "demo-password".into()),
    )]));
    let tokens = TokenService::new(JwtConfig::hs256(secret)?).with_users(users);
    Ok(Router::new()
        .route("/me", get(me))
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated))
        .nest("/auth", token_routes(tokens)))
}

/// Logs in and calls `/me` without a socket; the status and body of `/me`.
async fn self_test(app: Router) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let login = Request::post("/auth/token/")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"username": "demo", "password": "demo-password"}).to_string(),
        ))?;
    let answer = app.clone().oneshot(login).await?;
    let body: Value = serde_json::from_slice(&answer.into_body().collect().await?.to_bytes())?;
    let token = body["token"]
        .as_str()
        .ok_or("no token in the login answer")?;
    let me = Request::get("/me")
        .header("authorization", format!("JWT {token}"))
        .body(Body::empty())?;
    let answer = app.oneshot(me).await?;
    let status = answer.status().as_u16();
    let body = serde_json::from_slice(&answer.into_body().collect().await?.to_bytes())?;
    Ok((status, body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Set JWT_SECRET (32 bytes or more) in earnest; this one is for trying it on loopback.
    let secret = std::env::var("JWT_SECRET")
        .unwrap_or_else(|_| "dev-only-secret-change-me-0123456789abcdef".into());
    let app = app(&secret)?;
    if std::env::args().any(|a| a == "--self-test") {
        let (status, body) = self_test(app).await?;
        println!("GET /me -> {status} {body}");
        return if status == 200 {
            Ok(())
        } else {
            Err("the protected route did not answer 200".into())
        };
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000 (user demo, password demo-password)");
    // With the peer address (`ConnectInfo`): per-client limits (throttles, the login lock-out,
    // each client's share of password hashing) tell clients apart by it. Plain
    // `axum::serve(listener, app)` would put every client under one key.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
