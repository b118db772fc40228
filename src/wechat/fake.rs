//! The fake WeChat server ([`FakeWeChat`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::WxConfig;
use super::token::unix_now;

/// How the fake answers a scripted login code (or the next requests, with
/// [`FakeWeChat::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Log in as `openid` (with `unionid`).
    Session {
        /// The openid to answer.
        openid: String,
        /// The unionid to answer, if any.
        unionid: Option<String>,
    },
    /// Answer `{"errcode": n, "errmsg": ...}`.
    Error(i64),
    /// Wait this long, then answer normally (a scripted code logs in as `fake-openid-{code}`).
    Delay(Duration),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Answer with this HTTP status (e.g. 500) and a non-JSON body.
    Status(u16),
}

impl Script {
    /// [`Script::Session`] with no unionid.
    pub fn session(openid: impl Into<String>) -> Self {
        Self::Session {
            openid: openid.into(),
            unionid: None,
        }
    }
}

/// Configures a [`FakeWeChat`] before starting it.
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeWeChatBuilder {
    appid: String,
    secret: String,
    dev_mode: bool,
}

impl Default for FakeWeChatBuilder {
    fn default() -> Self {
        Self {
            appid: "wxfake00000000000".to_owned(),
            secret: "fake-app-secret-0123456789abcdef".to_owned(),
            dev_mode: false,
        }
    }
}

impl FakeWeChatBuilder {
    /// The appid the fake accepts (others get errcode 40013).
    pub fn appid(mut self, appid: impl Into<String>) -> Self {
        self.appid = appid.into();
        self
    }

    /// The appsecret the fake accepts (others get errcode 40125).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// Dev mode: any unscripted code `X` logs in as `fake-openid-X` (codes starting with `bad`
    /// answer 40029, "invalid code"; codes starting with `used` answer 40163, "code been
    /// used", as a code `wx.login()` handed out twice would), and any phone code gives a
    /// deterministic number.
    pub fn dev_mode(mut self, on: bool) -> Self {
        self.dev_mode = on;
        self
    }

    /// Binds `127.0.0.1:0` and serves until the fake is dropped or shut down.
    ///
    /// # Panics
    /// If no local port can be bound (a broken test environment).
    pub async fn start(self) -> FakeWeChat {
        let shared = Arc::new(Shared {
            appid: self.appid,
            secret: self.secret,
            dev_mode: self.dev_mode,
            state: Mutex::new(FakeState::default()),
            used_codes: bounded(Duration::from_secs(CODE_LIFETIME_SECS)),
            session_keys: bounded(Duration::from_secs(24 * 3600)),
            code2session_calls: AtomicU64::new(0),
            stable_token_calls: AtomicU64::new(0),
            classic_token_calls: AtomicU64::new(0),
            phone_calls: AtomicU64::new(0),
        });
        shared.lock().current_token = new_token();
        let router = Router::new()
            .route("/sns/jscode2session", get(jscode2session))
            .route("/cgi-bin/token", get(classic_token))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/wxa/business/getuserphonenumber", post(phone_number))
            .with_state(shared.clone());
        #[allow(clippy::expect_used)]
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("FakeWeChat: cannot bind 127.0.0.1:0");
        #[allow(clippy::expect_used)]
        let addr = listener
            .local_addr()
            .expect("FakeWeChat: bound socket has no address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(err) = server.await {
                tracing::warn!(error = %err, "FakeWeChat server stopped");
            }
        });
        FakeWeChat {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
            _registration: crate::dev::FakeRegistration::new("FakeWeChat"),
        }
    }
}

/// An in-process HTTP server speaking WeChat's login, access_token and phone number protocol,
/// with scripted errors and latency, for tests and local development. Stops when dropped.
/// Needs feature `fake-wechat`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wxrest::wechat::WxError> {
/// use wxrest::wechat::{FakeWeChat, Script, WxClient, WxError};
///
/// let fake = FakeWeChat::builder().dev_mode(true).start().await;
/// let client = WxClient::new(fake.config())?;
/// assert_eq!(client.code2session("abc").await?.openid, "fake-openid-abc");
/// assert_eq!(client.code2session("abc").await, Err(WxError::CodeUsed));
/// assert_eq!(client.code2session("bad-1").await, Err(WxError::InvalidCode));
/// assert_eq!(client.code2session("used-1").await, Err(WxError::CodeUsed));
/// fake.script_code("busy", Script::Error(-1));
/// assert_eq!(client.code2session("busy").await, Err(WxError::Busy));
/// # Ok(()) }
/// ```
pub struct FakeWeChat {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Keeps [`Server`](crate::server::Server) from serving (without development on) while it runs.
    _registration: crate::dev::FakeRegistration,
}

impl fmt::Debug for FakeWeChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeWeChat")
            .field("appid", &self.shared.appid)
            .field("addr", &self.addr)
            .field("dev_mode", &self.shared.dev_mode)
            .finish_non_exhaustive()
    }
}

struct Shared {
    appid: String,
    secret: String,
    dev_mode: bool,
    state: Mutex<FakeState>,
    /// Codes already exchanged, kept as long as WeChat keeps a code (5 minutes) and bounded:
    /// a long dev session must not grow the fake without limit.
    used_codes: moka::sync::Cache<String, ()>,
    /// The latest session_key per openid, bounded the same way.
    session_keys: moka::sync::Cache<String, String>,
    code2session_calls: AtomicU64,
    stable_token_calls: AtomicU64,
    classic_token_calls: AtomicU64,
    phone_calls: AtomicU64,
}

#[derive(Default)]
struct FakeState {
    scripts: HashMap<String, Script>,
    fail_next: Vec<(u64, Script)>,
    current_token: String,
    valid_tokens: HashSet<String>,
    phones: HashMap<String, String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The global failure to apply to this request, if one is pending.
    fn take_fail_next(&self) -> Option<Script> {
        let mut state = self.lock();
        let (remaining, script) = state.fail_next.first_mut()?;
        let script = script.clone();
        *remaining -= 1;
        if *remaining == 0 {
            state.fail_next.remove(0);
        }
        Some(script)
    }

    /// `Some(error answer)` when appid/secret are missing or wrong.
    fn check_credentials(&self, appid: Option<&str>, secret: Option<&str>) -> Option<Response> {
        match (appid, secret) {
            (None, _) => Some(error(41002, "appid missing")),
            (_, None) => Some(error(41004, "appsecret missing")),
            (Some(a), _) if a != self.appid => Some(error(40013, "invalid appid")),
            (_, Some(s)) if s != self.secret => Some(error(40125, "invalid appsecret")),
            _ => None,
        }
    }
}

/// How long WeChat keeps a login code, and so how long the fake remembers a used one.
const CODE_LIFETIME_SECS: u64 = 5 * 60;
/// Entries in each of the fake's maps at most.
const MAX_ENTRIES: u64 = 100_000;
/// Classic access_tokens that stay valid at once (each call of the classic endpoint adds one).
const MAX_VALID_TOKENS: usize = 64;

fn bounded<V: Clone + Send + Sync + 'static>(ttl: Duration) -> moka::sync::Cache<String, V> {
    moka::sync::Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(ttl)
        .build()
}

fn new_token() -> String {
    format!("fake-token-{}", uuid::Uuid::new_v4().simple())
}

fn new_session_key() -> String {
    STANDARD.encode(uuid::Uuid::new_v4().into_bytes())
}

/// WeChat answers JSON as `text/plain`.
fn text_json(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], value.to_string()).into_response()
}

fn error(errcode: i64, errmsg: &str) -> Response {
    text_json(&json!({ "errcode": errcode, "errmsg": format!("{errmsg} rid: fake") }))
}

/// Answers a non-session script; `None` for `Session` and after a `Delay`.
async fn apply(script: &Script) -> Option<Response> {
    match script {
        Script::Session { .. } => None,
        Script::Error(code) => Some(error(*code, "scripted error")),
        Script::Delay(d) => {
            tokio::time::sleep(*d).await;
            None
        }
        Script::Malformed => Some(
            (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>upstream hiccup</body></html>",
            )
                .into_response(),
        ),
        Script::Status(status) => Some(
            (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>server error</body></html>",
            )
                .into_response(),
        ),
    }
}

async fn jscode2session(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    shared.code2session_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(script) = shared.take_fail_next()
        && let Some(response) = apply(&script).await
    {
        return response;
    }
    if let Some(response) = shared.check_credentials(
        q.get("appid").map(String::as_str),
        q.get("secret").map(String::as_str),
    ) {
        return response;
    }
    let Some(code) = q.get("js_code").filter(|c| !c.is_empty()) else {
        return error(41008, "missing code");
    };
    let script = shared.lock().scripts.get(code).cloned();
    let (openid, unionid) = match script {
        Some(Script::Session { openid, unionid }) => (openid, unionid),
        Some(other) => {
            if let Some(response) = apply(&other).await {
                return response;
            }
            (format!("fake-openid-{code}"), None)
        }
        None if shared.dev_mode && code.starts_with("used") => {
            return error(40163, "code been used");
        }
        None if shared.dev_mode && !code.starts_with("bad") => {
            (format!("fake-openid-{code}"), None)
        }
        None => return error(40029, "invalid code"),
    };
    let session_key = new_session_key();
    if !shared
        .used_codes
        .entry(code.clone())
        .or_insert(())
        .is_fresh()
    {
        return error(40163, "code been used");
    }
    shared
        .session_keys
        .insert(openid.clone(), session_key.clone());
    let mut answer = json!({ "openid": openid, "session_key": session_key });
    if let Some(unionid) = unionid {
        answer["unionid"] = Value::String(unionid);
    }
    text_json(&answer)
}

fn token_answer(token: &str) -> Response {
    text_json(&json!({ "access_token": token, "expires_in": 7200 }))
}

async fn classic_token(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    shared.classic_token_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(script) = shared.take_fail_next()
        && let Some(response) = apply(&script).await
    {
        return response;
    }
    if q.get("grant_type").map(String::as_str) != Some("client_credential") {
        return error(40002, "invalid grant_type");
    }
    if let Some(response) = shared.check_credentials(
        q.get("appid").map(String::as_str),
        q.get("secret").map(String::as_str),
    ) {
        return response;
    }
    // The classic endpoint issues a new token on every call.
    let mut state = shared.lock();
    let token = new_token();
    state.current_token = token.clone();
    if state.valid_tokens.len() >= MAX_VALID_TOKENS {
        state.valid_tokens.clear();
    }
    state.valid_tokens.insert(token.clone());
    drop(state);
    token_answer(&token)
}

async fn stable_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    shared.stable_token_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(script) = shared.take_fail_next()
        && let Some(response) = apply(&script).await
    {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(47001, "data format error");
    };
    if body.get("grant_type").and_then(Value::as_str) != Some("client_credential") {
        return error(40002, "invalid grant_type");
    }
    if let Some(response) = shared.check_credentials(
        body.get("appid").and_then(Value::as_str),
        body.get("secret").and_then(Value::as_str),
    ) {
        return response;
    }
    let force = body
        .get("force_refresh")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut state = shared.lock();
    if force || !state.valid_tokens.contains(&state.current_token) {
        state.valid_tokens.clear();
        state.current_token = new_token();
    }
    let token = state.current_token.clone();
    state.valid_tokens.insert(token.clone());
    drop(state);
    token_answer(&token)
}

async fn phone_number(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    shared.phone_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(script) = shared.take_fail_next()
        && let Some(response) = apply(&script).await
    {
        return response;
    }
    let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
        return error(41001, "access_token missing");
    };
    if !shared.lock().valid_tokens.contains(token) {
        return error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    }
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("code").and_then(Value::as_str).map(str::to_owned));
    let Some(code) = code.filter(|c| !c.is_empty()) else {
        return error(47001, "data format error");
    };
    let scripted = shared.lock().phones.get(&code).cloned();
    let pure = match scripted {
        Some(phone) => phone,
        None if shared.dev_mode && !code.starts_with("bad") => {
            let n = code
                .bytes()
                .fold(0u32, |acc, b| (acc * 31 + u32::from(b)) % 100);
            format!("138001380{n:02}")
        }
        None => return error(40029, "invalid code"),
    };
    text_json(&json!({
        "errcode": 0,
        "errmsg": "ok",
        "phone_info": {
            "phoneNumber": format!("+86 {pure}"),
            "purePhoneNumber": pure,
            "countryCode": "86",
            "watermark": { "timestamp": unix_now(), "appid": shared.appid },
        }
    }))
}

impl FakeWeChat {
    /// A fake with the default appid and secret, not in dev mode.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Configures a fake (appid, secret, dev mode).
    pub fn builder() -> FakeWeChatBuilder {
        FakeWeChatBuilder::default()
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The appid the fake accepts.
    pub fn appid(&self) -> &str {
        &self.shared.appid
    }

    /// A client configuration pointing at this fake with its appid and secret.
    pub fn config(&self) -> WxConfig {
        WxConfig::new(self.shared.appid.clone(), self.shared.secret.clone())
            .api_base(self.base_url())
    }

    /// Scripts how `jscode2session` answers `code`.
    pub fn script_code(&self, code: impl Into<String>, script: Script) {
        self.shared.lock().scripts.insert(code.into(), script);
    }

    /// The next `n` requests to any endpoint answer `script` (e.g. `-1` twice).
    pub fn fail_next(&self, n: u64, script: Script) {
        if n > 0 {
            self.shared.lock().fail_next.push((n, script));
        }
    }

    /// The latest session_key issued to `openid` (to build `encryptedData` in tests).
    pub fn session_key_of(&self, openid: &str) -> Option<String> {
        self.shared.session_keys.get(openid)
    }

    /// Makes `getuserphonenumber` answer `code` with this pure phone number (e.g. `13800138000`).
    pub fn script_phone(&self, code: impl Into<String>, phone: impl Into<String>) {
        self.shared.lock().phones.insert(code.into(), phone.into());
    }

    /// Invalidates every issued access_token, as when another server refreshed it: they now
    /// answer 40001, and the token endpoints hand out a new current token.
    pub fn invalidate_access_tokens(&self) {
        let mut state = self.shared.lock();
        state.valid_tokens.clear();
        state.current_token = new_token();
        let current = state.current_token.clone();
        state.valid_tokens.insert(current);
    }

    /// How many `jscode2session` requests arrived.
    pub fn code2session_calls(&self) -> u64 {
        self.shared.code2session_calls.load(Ordering::SeqCst)
    }

    /// How many access_token requests arrived (stable and classic).
    pub fn token_calls(&self) -> u64 {
        self.stable_token_calls() + self.classic_token_calls()
    }

    /// How many `POST /cgi-bin/stable_token` requests arrived.
    pub fn stable_token_calls(&self) -> u64 {
        self.shared.stable_token_calls.load(Ordering::SeqCst)
    }

    /// How many `GET /cgi-bin/token` requests arrived.
    pub fn classic_token_calls(&self) -> u64 {
        self.shared.classic_token_calls.load(Ordering::SeqCst)
    }

    /// How many `getuserphonenumber` requests arrived.
    pub fn phone_calls(&self) -> u64 {
        self.shared.phone_calls.load(Ordering::SeqCst)
    }

    /// Stops the server and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FakeWeChat {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_a_long_dev_session_leaves_behind_is_bounded() {
        let fake = FakeWeChat::builder().dev_mode(true).start().await;
        let shared = &fake.shared;
        for cache in [shared.used_codes.policy(), shared.session_keys.policy()] {
            assert_eq!(cache.max_capacity(), Some(MAX_ENTRIES));
            assert!(cache.time_to_live().is_some());
        }
        assert_eq!(
            shared.used_codes.policy().time_to_live(),
            Some(Duration::from_secs(CODE_LIFETIME_SECS))
        );
        // Classic tokens: each call adds one, but only the newest few stay valid.
        let http = crate::upstream::http_client_builder()
            .unwrap()
            .build()
            .unwrap();
        let url = format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            fake.base_url(),
            shared.appid,
            shared.secret
        );
        for _ in 0..(MAX_VALID_TOKENS * 2) {
            http.get(&url).send().await.unwrap();
        }
        assert!(shared.lock().valid_tokens.len() <= MAX_VALID_TOKENS);
    }
}
