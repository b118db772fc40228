//! A running app over real HTTP: a FakeWeChat, a database, the login and profile routers and a
//! protected probe route, served on `127.0.0.1:0` and called with reqwest.
#![allow(dead_code)]

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use wxrest::auth::{Identity, IsAuthenticated, JwtAuthLayer, TokenService};
use wxrest::db::Db;
use wxrest::user::{UserStore, profile_routes};
use wxrest::wechat::{FakeWeChat, WxClient, WxConfig, WxLoginService, crypto};

use crate::auth_fixtures::jwt;
use crate::databases::sqlite_memory;

/// One running instance of the app.
pub struct App {
    pub base: String,
    pub users: UserStore,
    pub tokens: TokenService,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn probe(user: Identity) -> Json<Value> {
    Json(json!({ "user_id": user.user_id }))
}

/// The app's router: `/auth` (login, phone), `/users` (profile), `/probe` (JWT protected).
pub fn router(login: WxLoginService, users: UserStore, tokens: TokenService) -> Router {
    let probe = Router::new()
        .route("/probe", get(probe))
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated));
    Router::new()
        .nest("/auth", login.router())
        .nest("/users", profile_routes(users, tokens))
        .merge(probe)
}

pub fn tokens_for(users: &UserStore) -> TokenService {
    TokenService::new(jwt()).with_users(users.clone())
}

/// The app on `db` with `config` (a fake's), the login service adjusted by `configure`.
pub async fn start_with(
    db: Db,
    config: WxConfig,
    configure: impl FnOnce(WxLoginService) -> WxLoginService,
) -> App {
    let users = UserStore::new(db);
    let tokens = tokens_for(&users);
    let client = WxClient::new(config).unwrap();
    let login = configure(WxLoginService::new(client, users.clone(), tokens.clone()));
    serve(router(login, users.clone(), tokens.clone()), users, tokens).await
}

/// The default app against `fake`, on in-memory SQLite.
pub async fn start(fake: &FakeWeChat) -> App {
    start_with(sqlite_memory().await, fake.config(), |l| l).await
}

pub async fn serve(router: Router, users: UserStore, tokens: TokenService) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    // reqwest is built with `rustls-no-provider` (wxrest's TLS is rustls on ring): like any
    // app building its own clients, pick the process's crypto provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    App {
        base: format!("http://{addr}"),
        users,
        tokens,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        server,
    }
}

/// Status and body (JSON, or the text as a JSON string), and the raw text.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// DRF's answer to a request without credentials: 401 `not_authenticated`, with the
    /// `WWW-Authenticate` challenge.
    pub fn assert_not_authenticated(&self) {
        assert_eq!(self.status, 401, "{}", self.text);
        let detail = "Authentication credentials were not provided.";
        assert_eq!(
            self.body,
            json!({"detail": detail, "code": "not_authenticated"})
        );
        assert_eq!(self.headers["www-authenticate"], "JWT realm=\"api\"");
    }

    /// DRF's answer to a body that is not JSON: 400 `parse_error`.
    pub fn assert_parse_error(&self) {
        assert_eq!(self.status, 400, "{}", self.text);
        assert_eq!(self.body["code"], "parse_error");
        let detail = self.body["detail"].as_str().unwrap();
        assert!(detail.starts_with("JSON parse error - "), "{detail}");
    }
}

/// The IV the encrypted phone data of these tests is encrypted with.
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";

/// What `wx.getPhoneNumber` encrypts (+86 13900139000), with the watermark of `appid`.
fn phone_data(appid: &str) -> Value {
    json!({
        "phoneNumber": "+86 13900139000", "purePhoneNumber": "13900139000", "countryCode": "86",
        "watermark": { "appid": appid, "timestamp": 1_700_000_000 }
    })
}

/// The body of `POST /auth/wx-phone/` with `wx.getPhoneNumber`'s encrypted data, encrypted
/// with the session key `key` under the watermark of `appid`.
pub fn encrypted_phone(key: &str, appid: &str) -> Value {
    let data = crypto::encrypt(key, IV, &phone_data(appid)).unwrap();
    json!({"encryptedData": data, "iv": IV})
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    Answer {
        status,
        body,
        text,
        headers,
    }
}

fn with_auth(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.header("authorization", format!("JWT {token}")),
        None => request,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        let request = with_auth(self.http.post(self.url(path)), token).json(&body);
        answer(request.send().await.unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: &'static str) -> Answer {
        let request = with_auth(self.http.post(self.url(path)), token)
            .header("content-type", "application/json")
            .body(body);
        answer(request.send().await.unwrap()).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        let request = with_auth(self.http.patch(self.url(path)), token).json(&body);
        answer(request.send().await.unwrap()).await
    }

    pub async fn patch_raw(&self, path: &str, token: Option<&str>, body: &'static str) -> Answer {
        let request = with_auth(self.http.patch(self.url(path)), token)
            .header("content-type", "application/json")
            .body(body);
        answer(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let request = with_auth(self.http.get(self.url(path)), token);
        answer(request.send().await.unwrap()).await
    }

    /// `POST /auth/wx-phone/` as `token` with [`encrypted_phone`]`(key, appid)`.
    pub async fn post_encrypted_phone(&self, token: &str, key: &str, appid: &str) -> Answer {
        let body = encrypted_phone(key, appid);
        self.post("/auth/wx-phone/", Some(token), body).await
    }

    /// `POST /auth/wx-login/ {"code": code}`.
    pub async fn login(&self, code: &str) -> Answer {
        self.post("/auth/wx-login/", None, json!({ "code": code }))
            .await
    }

    /// Logs in with `code` (which must succeed) and returns the access token and user id.
    pub async fn logged_in(&self, code: &str) -> (String, i64) {
        let answer = self.login(code).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        (
            answer.body["token"].as_str().unwrap().to_owned(),
            answer.body["user"]["id"].as_i64().unwrap(),
        )
    }
}
