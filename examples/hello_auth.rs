//! The smallest protected API: `cargo run --example hello_auth`, then
//!
//! ```text
//! curl -s -X POST localhost:8000/auth/token/ -H 'content-type: application/json' \
//!      -d '{"username":"demo","password":"demo-password"}'
//! curl -s localhost:8000/me -H "Authorization: JWT <token>"
//! ```

use std::collections::HashMap;

use async_trait::async_trait;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use wxrest::BackendError;
use wxrest::auth::{AuthUser, TokenService, UserLookup, token_routes};
use wxrest::prelude::*;

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("JWT_SECRET")
        .unwrap_or_else(|_| "dev-only-secret-change-me-0123456789abcdef".into());
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
    let app = Router::new()
        .route("/me", get(me))
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated))
        .nest("/auth", token_routes(tokens));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    println!("listening on http://127.0.0.1:8000");
    axum::serve(listener, app).await?;
    Ok(())
}
