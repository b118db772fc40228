//! Fixtures shared by the auth tests: an in-memory user directory, token minting, and
//! request helpers over `tower::ServiceExt::oneshot`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use wxrest::BackendError;
use wxrest::auth::{AuthUser, JwtConfig, UserLookup};

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

pub fn jwt() -> JwtConfig {
    JwtConfig::hs256(SECRET).unwrap()
}

/// Users kept in memory, passwords in clear (tests only).
#[derive(Default)]
pub struct MemoryUsers {
    users: Mutex<HashMap<i64, (AuthUser, String)>>,
}

impl MemoryUsers {
    pub fn with(users: impl IntoIterator<Item = (AuthUser, &'static str)>) -> Self {
        let map = users
            .into_iter()
            .map(|(u, p)| (u.id, (u, p.to_owned())))
            .collect();
        Self {
            users: Mutex::new(map),
        }
    }

    pub fn set_active(&self, id: i64, active: bool) {
        let mut users = self.users.lock().unwrap();
        if let Some((u, _)) = users.get_mut(&id) {
            u.is_active = active;
            u.token_version += 1;
        }
    }

    pub fn remove(&self, id: i64) {
        self.users.lock().unwrap().remove(&id);
    }
}

pub fn user(id: i64, name: &str) -> AuthUser {
    AuthUser {
        id,
        username: name.into(),
        email: format!("{name}@example.com"),
        is_staff: false,
        is_superuser: false,
        is_active: true,
        token_version: 0,
    }
}

pub fn staff(id: i64, name: &str) -> AuthUser {
    AuthUser {
        is_staff: true,
        ..user(id, name)
    }
}

pub fn inactive(id: i64, name: &str) -> AuthUser {
    AuthUser {
        is_active: false,
        ..user(id, name)
    }
}

#[async_trait]
impl UserLookup for MemoryUsers {
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
        Ok(self.users.lock().unwrap().get(&id).map(|(u, _)| u.clone()))
    }
    async fn by_username(&self, username: &str) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .users
            .lock()
            .unwrap()
            .values()
            .find(|(u, _)| u.username == username)
            .map(|(u, _)| u.clone()))
    }
    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .users
            .lock()
            .unwrap()
            .values()
            .find(|(u, p)| u.username == username && p == password)
            .map(|(u, _)| u.clone()))
    }
    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        let mut users = self.users.lock().unwrap();
        Ok(users.get_mut(&id).map(|(u, _)| {
            u.token_version += 1;
            u.token_version
        }))
    }
}

/// Sends `req` to `app` and returns status, headers and JSON body (Null when empty).
pub async fn send(app: &Router, req: Request<Body>) -> (http::StatusCode, http::HeaderMap, Value) {
    let response: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, body)
}

pub fn get(uri: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).unwrap()
}

/// Redis URL for tests: `None` (with a printed reason) when unset; a panic when `CI=true`.
pub fn redis_url() -> Option<String> {
    match std::env::var("WXREST_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("WXREST_TEST_REDIS must be set when CI=true");
            }
            eprintln!("skipping Redis part: WXREST_TEST_REDIS is not set");
            None
        }
    }
}

/// A key prefix unique to one test, so tests share one Redis without colliding.
pub fn unique_prefix(test: &str) -> String {
    format!("wxrest-test:{test}:{}:", uuid::Uuid::new_v4().simple())
}

pub fn post_json(uri: &str, auth: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::from(body.to_string())).unwrap()
}
