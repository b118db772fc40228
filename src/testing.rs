//! A test kit for apps built on this crate (feature `testing`): what this crate's own tests
//! use to log in and call protected routes, without a socket.
//!
//! - [`TestApp`]: your routes behind the token routes (`/auth/token/`, ...), a [`TokenService`]
//!   over [`MemoryUsers`] holding a plain user and a staff user, called in process through
//!   `tower::ServiceExt::oneshot`; [`user_token`](TestApp::user_token) and
//!   [`staff_token`](TestApp::staff_token) log them in over `POST /auth/token/`.
//! - [`TestClient`] / [`TestResponse`]: requests to any `Router` and the answer as status,
//!   headers and JSON.
//! - [`MemoryUsers`], [`user`], [`staff`], [`inactive`]: a [`UserLookup`] in memory.
//! - The fakes of WeChat and WeChat Pay are `wxrest::wechat::FakeWeChat` (feature
//!   `fake-wechat`) and `wxrest::pay::FakeWeChatPay` (feature `fake-pay`).
//!
//! Add it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! wxrest = { git = "https://github.com/wxrest/wxrest", features = ["testing"] }
//! ```
//!
//! ```
//! use axum::{Router, routing::get};
//! use wxrest::prelude::*;
//! use wxrest::testing::TestApp;
//!
//! async fn me(user: Identity) -> String {
//!     user.username
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = TestApp::new(|tokens| {
//!     Router::new()
//!         .route("/me", get(me))
//!         .layer(JwtAuthLayer::new(tokens).permission(IsAuthenticated))
//! });
//! assert_eq!(app.get("/me", None).await.status, 401);
//! let token = app.user_token().await;
//! let answer = app.get("/me", Some(&token)).await;
//! assert_eq!((answer.status.as_u16(), answer.text.as_str()), (200, "alice"));
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth::{AuthUser, JwtConfig, TokenService, UserLookup, token_routes};
use crate::error::BackendError;

/// The HS256 secret of [`test_jwt`]: public, for tests only.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// A JWT configuration signing with [`TEST_SECRET`].
///
/// ```
/// let tokens = wxrest::auth::TokenService::new(wxrest::testing::test_jwt());
/// # let _ = tokens;
/// ```
pub fn test_jwt() -> JwtConfig {
    JwtConfig::hs256(TEST_SECRET).expect("TEST_SECRET is long enough")
}

/// An active, non-staff user `name` with id `id` (e-mail `name@example.com`).
///
/// ```
/// let alice = wxrest::testing::user(1, "alice");
/// assert!(alice.is_active && !alice.is_staff);
/// ```
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

/// A staff user (DRF's `IsAdminUser` lets it through).
///
/// ```
/// assert!(wxrest::testing::staff(2, "boss").is_staff);
/// ```
pub fn staff(id: i64, name: &str) -> AuthUser {
    AuthUser {
        is_staff: true,
        ..user(id, name)
    }
}

/// A deactivated user.
///
/// ```
/// assert!(!wxrest::testing::inactive(3, "gone").is_active);
/// ```
pub fn inactive(id: i64, name: &str) -> AuthUser {
    AuthUser {
        is_active: false,
        ..user(id, name)
    }
}

/// Users kept in memory with their passwords in clear (tests only): a [`UserLookup`].
///
/// ```
/// use std::sync::Arc;
/// use wxrest::auth::TokenService;
/// use wxrest::testing::{MemoryUsers, test_jwt, user};
///
/// let users = Arc::new(MemoryUsers::with([(user(1, "alice"), "pw")]));
/// let tokens = TokenService::new(test_jwt()).with_users(users.clone());
/// users.set_active(1, false); // as a deactivation would
/// # let _ = tokens;
/// ```
#[derive(Debug, Default)]
pub struct MemoryUsers {
    users: Mutex<HashMap<i64, (AuthUser, String)>>,
}

impl MemoryUsers {
    /// A directory of `users`, each with its password.
    pub fn with<'a>(users: impl IntoIterator<Item = (AuthUser, &'a str)>) -> Self {
        let map = users
            .into_iter()
            .map(|(u, p)| (u.id, (u, p.to_owned())))
            .collect();
        Self {
            users: Mutex::new(map),
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (AuthUser, String)>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) a user.
    pub fn insert(&self, user: AuthUser, password: &str) {
        self.users().insert(user.id, (user, password.to_owned()));
    }

    /// Activates or deactivates a user, ending its tokens (its token version moves on), as
    /// `UserStore::set_active` does.
    pub fn set_active(&self, id: i64, active: bool) {
        if let Some((u, _)) = self.users().get_mut(&id) {
            u.is_active = active;
            u.token_version += 1;
        }
    }

    /// Changes the staff flags as a direct database update would (a Django admin sharing the
    /// database): the token version stays.
    pub fn set_staff_directly(&self, id: i64, staff: bool) {
        if let Some((u, _)) = self.users().get_mut(&id) {
            u.is_staff = staff;
            u.is_superuser = staff && u.is_superuser;
        }
    }

    /// Removes a user.
    pub fn remove(&self, id: i64) {
        self.users().remove(&id);
    }
}

#[async_trait]
impl UserLookup for MemoryUsers {
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
        Ok(self.users().get(&id).map(|(u, _)| u.clone()))
    }
    async fn by_username(&self, username: &str) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .users()
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
            .users()
            .values()
            .find(|(u, p)| u.username == username && p == password)
            .map(|(u, _)| u.clone()))
    }
    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        Ok(self.users().get_mut(&id).map(|(u, _)| {
            u.token_version += 1;
            u.token_version
        }))
    }
}

/// An answer: status, headers, the body as JSON (`Null` when empty, a JSON string when it is
/// not JSON) and as text.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub text: String,
}

/// Sends requests to a `Router` in process (`tower::ServiceExt::oneshot`, no socket).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::{Router, routing::get};
/// use wxrest::testing::TestClient;
///
/// let client = TestClient::new(Router::new().route("/ping", get(|| async { "pong" })));
/// let answer = client.get("/ping", None).await;
/// assert_eq!((answer.status.as_u16(), answer.text.as_str()), (200, "pong"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TestClient {
    app: Router,
}

impl TestClient {
    /// A client of `app`.
    pub fn new(app: Router) -> Self {
        Self { app }
    }

    /// Sends `request` and reads the whole answer.
    ///
    /// # Panics
    /// When the router fails or its body cannot be read (a test failure).
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("a Router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("the response body is readable")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()))
        };
        TestResponse {
            status,
            headers,
            body,
            text,
        }
    }

    /// `GET path`, with `Authorization: JWT <token>` when a token is given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(request("GET", path, token, None)).await
    }

    /// `POST path` with a JSON body, with `Authorization: JWT <token>` when a token is given.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.send(request("POST", path, token, Some(body))).await
    }
}

/// A request to `path`, JSON when `body` is given.
///
/// # Panics
/// When `path` or `method` is not valid in a request line.
pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, format!("JWT {token}"));
    }
    let body = match body {
        Some(body) => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).expect("a valid method and path")
}

/// Your routes with the token routes at `/auth`, over [`MemoryUsers`] holding the user
/// `alice` (id 1, password [`TestApp::PASSWORD`]) and the staff user `admin` (id 2, the same
/// password), called in process. See the [module docs](self) for an example.
#[derive(Clone)]
pub struct TestApp {
    client: TestClient,
    /// The token service the routes were built with.
    pub tokens: TokenService,
    /// The users it knows.
    pub users: Arc<MemoryUsers>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// The password of the test users.
    pub const PASSWORD: &'static str = "test-password";

    /// Builds the app: `routes` gets the token service (for its `JwtAuthLayer`), and the token
    /// routes are nested at `/auth`.
    pub fn new(routes: impl FnOnce(TokenService) -> Router) -> Self {
        let users = Arc::new(MemoryUsers::with([
            (user(1, "alice"), Self::PASSWORD),
            (staff(2, "admin"), Self::PASSWORD),
        ]));
        let tokens = TokenService::new(test_jwt()).with_users(users.clone());
        let app = routes(tokens.clone()).nest("/auth", token_routes(tokens.clone()));
        Self {
            client: TestClient::new(app),
            tokens,
            users,
        }
    }

    /// The client of the app.
    pub fn client(&self) -> &TestClient {
        &self.client
    }

    /// Logs `username` in over `POST /auth/token/` and returns the access token.
    ///
    /// # Panics
    /// When the login is refused (a test failure).
    pub async fn login(&self, username: &str, password: &str) -> String {
        let answer = self
            .client
            .post(
                "/auth/token/",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "login refused: {}",
            answer.text
        );
        answer.body["token"]
            .as_str()
            .expect("a token in the login answer")
            .to_owned()
    }

    /// An access token of the plain user `alice`.
    pub async fn user_token(&self) -> String {
        self.login("alice", Self::PASSWORD).await
    }

    /// An access token of the staff user `admin`.
    pub async fn staff_token(&self) -> String {
        self.login("admin", Self::PASSWORD).await
    }

    /// `GET path` (see [`TestClient::get`]).
    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.client.get(path, token).await
    }

    /// `POST path` with a JSON body (see [`TestClient::post`]).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.client.post(path, token, body).await
    }
}
