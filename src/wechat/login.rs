//! `WxLoginService`: WeChat login codes to users and tokens.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::StatusCode;
use moka::ops::compute::Op;
use serde::Serialize;
use serde_json::{Map, Value};

use super::client::WxClient;
use super::code_cache::{CodeCache, CodeEntry, MemoryCodeCache, code_digest};
use super::crypto;
use super::error::WxError;
use crate::auth::{AuthUser, Identity, IsAuthenticated, JwtAuthLayer, TokenService};
use crate::error::ApiError;
use crate::parsers::JsonBody;
use crate::validation::{FieldError, Fields};
use async_trait::async_trait;

use crate::error::BackendError;
use crate::user::{ProfileUpdate, User, UserStore, WxSession};

/// The longest an exchange stays in the in-process map: a backstop only. A flight is removed
/// as soon as it finishes (its leader answered; retries of the code then read the
/// [`CodeCache`]), so this bounds only exchanges whose leader never came back.
const FLIGHT_TTL: Duration = Duration::from_secs(10);

/// Login codes are 32 characters; anything much longer is not one.
const MAX_CODE_CHARS: usize = 256;

/// How often a waiting instance looks for another instance's answer.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// An in-process exchange of one code, shared by every concurrent request with that code.
#[derive(Clone)]
struct Flight(Shared<BoxFuture<'static, Result<Resolved, ApiError>>>);

/// What a code resolved to: the user after the upsert (or lookup), and whether it was created.
#[derive(Clone)]
struct Resolved {
    user: User,
    created: bool,
}

/// The answer of a login: `{"token", "refresh", "user", "created"}` (and `"openid"` only when
/// [`expose_openid`](WxLoginService::expose_openid) is on).
///
/// `Debug` does not show the tokens.
#[derive(Clone, Serialize)]
pub struct LoginOutcome {
    /// The access token (`Authorization: JWT <token>`).
    pub token: String,
    /// The refresh token.
    pub refresh: String,
    /// The user, as the profile endpoints show it.
    pub user: User,
    /// Whether this login created the user.
    pub created: bool,
    /// The openid, when the service exposes it (off by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
}

impl fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginOutcome")
            .field("token", &"[redacted]")
            .field("refresh", &"[redacted]")
            .field("user", &self.user.id)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Where [`WxLoginService`] keeps its users: the seam for storing WeChat users your own way.
/// [`UserStore`] implements it on the crate's `users` table; implement it to keep them in your
/// existing tables (a Django `auth_user` with an openid column, a separate profile table, ...).
///
/// ```
/// use async_trait::async_trait;
/// use wxrest::BackendError;
/// use wxrest::user::{ProfileUpdate, User, UserStore, WxSession};
/// use wxrest::wechat::WxUsers;
///
/// /// The crate's store, logging every new user.
/// struct Announcing(UserStore);
///
/// #[async_trait]
/// impl WxUsers for Announcing {
///     async fn upsert_by_openid(&self, session: &WxSession, profile: Option<&ProfileUpdate>)
///         -> Result<(User, bool), BackendError> {
///         let (user, created) = self.0.upsert_by_openid(session, profile).await?;
///         if created {
///             tracing::info!(user_id = user.id, "a new WeChat user");
///         }
///         Ok((user, created))
///     }
///     async fn get(&self, id: i64) -> Result<Option<User>, BackendError> { self.0.get(id).await }
///     async fn get_by_openid(&self, openid: &str) -> Result<Option<User>, BackendError> {
///         self.0.get_by_openid(openid).await
///     }
///     async fn update_profile(&self, id: i64, profile: &ProfileUpdate)
///         -> Result<Option<User>, BackendError> { self.0.update_profile(id, profile).await }
///     async fn session_key(&self, id: i64) -> Result<Option<String>, BackendError> {
///         self.0.session_key(id).await
///     }
///     async fn set_phone(&self, id: i64, phone: &str, country_code: &str)
///         -> Result<bool, BackendError> { self.0.set_phone(id, phone, country_code).await }
/// }
/// ```
#[async_trait]
pub trait WxUsers: Send + Sync + 'static {
    /// The user of this openid, created if new (one row per openid, even under concurrent
    /// logins), with the session_key stored and `profile` applied; `true` when created.
    async fn upsert_by_openid(
        &self,
        session: &WxSession,
        profile: Option<&ProfileUpdate>,
    ) -> Result<(User, bool), BackendError>;

    /// The user with this id.
    async fn get(&self, id: i64) -> Result<Option<User>, BackendError>;

    /// The user with this openid.
    async fn get_by_openid(&self, openid: &str) -> Result<Option<User>, BackendError>;

    /// Applies `profile`; the user after it, `None` when there is no such user.
    async fn update_profile(
        &self,
        id: i64,
        profile: &ProfileUpdate,
    ) -> Result<Option<User>, BackendError>;

    /// The stored session_key (for `encryptedData`); never returned to clients.
    async fn session_key(&self, id: i64) -> Result<Option<String>, BackendError>;

    /// Stores a verified phone number; `false` when there is no such user.
    async fn set_phone(
        &self,
        id: i64,
        phone: &str,
        country_code: &str,
    ) -> Result<bool, BackendError>;
}

#[async_trait]
impl WxUsers for UserStore {
    async fn upsert_by_openid(
        &self,
        session: &WxSession,
        profile: Option<&ProfileUpdate>,
    ) -> Result<(User, bool), BackendError> {
        UserStore::upsert_by_openid(self, session, profile).await
    }

    async fn get(&self, id: i64) -> Result<Option<User>, BackendError> {
        UserStore::get(self, id).await
    }

    async fn get_by_openid(&self, openid: &str) -> Result<Option<User>, BackendError> {
        UserStore::get_by_openid(self, openid).await
    }

    async fn update_profile(
        &self,
        id: i64,
        profile: &ProfileUpdate,
    ) -> Result<Option<User>, BackendError> {
        UserStore::update_profile(self, id, profile).await
    }

    async fn session_key(&self, id: i64) -> Result<Option<String>, BackendError> {
        UserStore::session_key(self, id).await
    }

    async fn set_phone(
        &self,
        id: i64,
        phone: &str,
        country_code: &str,
    ) -> Result<bool, BackendError> {
        UserStore::set_phone(self, id, phone, country_code).await
    }
}

/// WeChat mini-program login: exchanges `wx.login()` codes for users and tokens, and serves
/// the login and phone endpoints ([`router`](Self::router)). Cheap to clone.
///
/// [`WxLoginService`]: the mini-program login. `code -> openid -> user -> tokens`, a code
/// cache so a retried code answers the same login, and the phone number endpoint.
///
/// | route | body | answer |
/// |---|---|---|
/// | `POST /wx-login/` | `{"code", "userInfo"?}` | `{"token", "refresh", "user", "created"}` |
/// | `POST /wx-phone/` (JWT) | `{"code"}` or `{"encryptedData", "iv"}` | the updated user |
///
/// Every route answers with and without the trailing slash. WeChat's errors become
/// responses through [`ApiError`]'s `From<WxError>` (40029 -> 400 `wechat_code_invalid`,
/// 40163 -> 400 `wechat_code_used`, 45011 -> 429, 40226 -> 403, busy or timeout -> 503, broken
/// answers -> 502).
///
/// **A retried code just works.** Mini-programs send one login twice (a retry after a slow
/// network, a double tap). WeChat refuses a code's second use (40163), so the service
/// remembers what each code resolved to (`{openid, unionid}` in a [`CodeCache`], never a token
/// or the `session_key`) for [`code_ttl`](WxLoginService::code_ttl): a repeated code gets the
/// same user with fresh tokens, and concurrent requests with one new code make exactly one
/// `jscode2session` call (in process; across instances too with a [`RedisCodeCache`]).
///
/// The `session_key` is stored server-side for decrypting `encryptedData`; it, the appsecret,
/// the codes and the tokens are never logged.
///
/// ```
/// # #[cfg(not(feature = "fake-wechat"))] fn main() {}
/// # #[cfg(feature = "fake-wechat")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::Router;
/// use wxrest::auth::{JwtConfig, TokenService};
/// use wxrest::db::Db;
/// use wxrest::user::UserStore;
/// use wxrest::wechat::{FakeWeChat, Script, WxClient, WxLoginService};
///
/// let fake = FakeWeChat::start().await;
/// fake.script_code("code-1", Script::session("openid-1"));
/// let users = UserStore::setup(Db::connect("sqlite::memory:").await?).await?;
/// let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!")?)
///     .with_users(users.clone());
/// let login = WxLoginService::new(WxClient::new(fake.config())?, users, tokens);
///
/// let first = login.login("code-1", None).await?;
/// let again = login.login("code-1", None).await?; // a retried code: same user, new tokens
/// assert!(first.created && first.user.id == again.user.id && first.token != again.token);
/// assert_eq!(fake.code2session_calls(), 1);
///
/// let app: Router = Router::new().nest("/auth", login.router());
/// # Ok(())
/// # }
/// ```
///
#[cfg_attr(feature = "redis", doc = "[`RedisCodeCache`]: super::RedisCodeCache")]
#[cfg_attr(not(feature = "redis"), doc = "[`RedisCodeCache`]: crate")]
#[derive(Clone)]
pub struct WxLoginService {
    client: WxClient,
    users: Arc<dyn WxUsers>,
    tokens: TokenService,
    cache: Arc<dyn CodeCache>,
    code_ttl: Duration,
    claim_wait: Duration,
    expose_openid: bool,
    flights: moka::future::Cache<String, Flight>,
}

impl fmt::Debug for WxLoginService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxLoginService")
            .field("client", &self.client)
            .field("code_ttl", &self.code_ttl)
            .field("claim_wait", &self.claim_wait)
            .field("expose_openid", &self.expose_openid)
            .finish_non_exhaustive()
    }
}

fn new_flights(ttl: Duration) -> moka::future::Cache<String, Flight> {
    moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(ttl.clamp(Duration::from_millis(1), FLIGHT_TTL))
        .build()
}

/// 503 `wechat_unavailable`: used when another instance holds a code and did not answer.
fn wechat_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "wechat_unavailable",
        "WeChat is temporarily unavailable, try again later.",
    )
}

impl WxLoginService {
    /// A login service for `client`'s mini-program, storing users in `users` and issuing
    /// tokens with `tokens`. Codes are remembered in memory for 5 minutes; the openid is not
    /// part of the answer.
    ///
    /// `users` is a [`UserStore`], or your own [`WxUsers`] to keep WeChat users elsewhere.
    pub fn new(client: WxClient, users: impl WxUsers, tokens: TokenService) -> Self {
        let code_ttl = Duration::from_secs(5 * 60);
        Self {
            client,
            users: Arc::new(users),
            tokens,
            cache: Arc::new(MemoryCodeCache::new()),
            code_ttl,
            claim_wait: Duration::from_secs(3),
            expose_openid: false,
            flights: new_flights(code_ttl),
        }
    }

    /// Remembers resolved codes in `cache` (e.g. a [`RedisCodeCache`] shared by every
    /// instance; an `Arc` of a cache shares it between services).
    ///
    #[cfg_attr(feature = "redis", doc = "[`RedisCodeCache`]: super::RedisCodeCache")]
    #[cfg_attr(not(feature = "redis"), doc = "[`RedisCodeCache`]: crate")]
    #[must_use]
    pub fn code_cache(mut self, cache: impl CodeCache) -> Self {
        self.cache = Arc::new(cache);
        self
    }

    /// How long a resolved code answers again (default 5 minutes, WeChat's code lifetime).
    #[must_use]
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self.flights = new_flights(ttl);
        self
    }

    /// How long a request waits for another instance that is exchanging the same code
    /// (default 3 s) before answering 503 `wechat_unavailable`.
    #[must_use]
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Whether the login answer carries the user's `openid` (default `false`).
    #[must_use]
    pub fn expose_openid(mut self, expose: bool) -> Self {
        self.expose_openid = expose;
        self
    }

    /// The WeChat client.
    pub fn client(&self) -> &WxClient {
        &self.client
    }

    /// Logs in with a `wx.login()` code, applying `profile` (a validated `userInfo`) when
    /// given.
    ///
    /// # Errors
    /// 400 `{"code": ["This field may not be blank."]}` for a blank code (WeChat is not
    /// called); WeChat's errors as described in the [type docs](WxLoginService); 401 `user_inactive`
    /// for a deactivated user; 503 when the database fails.
    pub async fn login(
        &self,
        code: &str,
        profile: Option<&ProfileUpdate>,
    ) -> Result<LoginOutcome, ApiError> {
        if code.trim().is_empty() {
            return Err(FieldError::Blank.for_field("code"));
        }
        if code.chars().count() > MAX_CODE_CHARS {
            return Err(FieldError::MaxLength(MAX_CODE_CHARS).for_field("code"));
        }
        if let Some(profile) = profile {
            profile.validate()?;
        }
        let digest = code_digest(code);
        let entry = self
            .flights
            .entry(digest.clone())
            .or_insert_with(async { self.start_flight(code, &digest, profile) })
            .await;
        let leader = entry.is_fresh();
        let flight = entry.into_value();
        let resolved = match flight.0.clone().await {
            Ok(resolved) => resolved,
            Err(err) => {
                self.forget_flight(&digest, &flight).await;
                return Err(err);
            }
        };
        if leader {
            // Answered: later retries of this code read the code cache, so the flight (and the
            // user it holds) need not stay in memory for its whole window.
            self.forget_flight(&digest, &flight).await;
        }
        let user = if leader {
            resolved.user
        } else {
            // A repeated code: answer the user as they are now, with this request's profile.
            let fresh = match profile.filter(|p| !p.is_empty()) {
                Some(profile) => self.users.update_profile(resolved.user.id, profile).await?,
                None => self.users.get(resolved.user.id).await?,
            };
            fresh.ok_or_else(|| ApiError::from(WxError::CodeUsed))?
        };
        let pair = self.tokens.issue(&AuthUser::from(&user)).await?;
        tracing::info!(
            user_id = user.id,
            created = resolved.created,
            "WeChat login"
        );
        let openid = if self.expose_openid {
            user.openid.clone()
        } else {
            None
        };
        Ok(LoginOutcome {
            token: pair.token,
            refresh: pair.refresh,
            user,
            created: resolved.created,
            openid,
        })
    }

    /// Starts resolving `code` on its own task, so a client hanging up does not lose an
    /// answer WeChat gave only once.
    fn start_flight(&self, code: &str, digest: &str, profile: Option<&ProfileUpdate>) -> Flight {
        let service = self.clone();
        let code = code.to_owned();
        let digest = digest.to_owned();
        let profile = profile.cloned();
        let task =
            tokio::spawn(async move { service.resolve(&code, &digest, profile.as_ref()).await });
        let joined = async move {
            task.await.unwrap_or_else(|err| {
                tracing::error!(error = %err, "WeChat login task failed");
                Err(ApiError::unavailable())
            })
        };
        Flight(joined.boxed().shared())
    }

    /// Drops a finished flight (errors are not remembered; answers live on in the code cache),
    /// unless a newer one replaced it.
    async fn forget_flight(&self, digest: &str, flight: &Flight) {
        self.flights
            .entry(digest.to_owned())
            .and_compute_with(|current| {
                let op = match current {
                    Some(entry) if entry.value().0.ptr_eq(&flight.0) => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
    }

    /// The cache, or one exchange with WeChat coordinated through the cache's claim.
    async fn resolve(
        &self,
        code: &str,
        digest: &str,
        profile: Option<&ProfileUpdate>,
    ) -> Result<Resolved, ApiError> {
        let appid = self.client.appid();
        match self.cache.get(appid, digest).await {
            Ok(Some(entry)) => return self.resolve_entry(entry, profile).await,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "login code cache unavailable; asking WeChat directly");
                return self.exchange(code, digest, profile, false).await;
            }
        }
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let claim_ttl = self.client.config().timeout + Duration::from_secs(5);
        match self.cache.claim(appid, digest, &owner, claim_ttl).await {
            Ok(true) => {
                // Another instance may have finished between our look and our claim.
                let result = match self.cache.get(appid, digest).await {
                    Ok(Some(entry)) => self.resolve_entry(entry, profile).await,
                    _ => self.exchange(code, digest, profile, true).await,
                };
                if let Err(err) = self.cache.release(appid, digest, &owner).await {
                    tracing::warn!(error = %err, "could not release a login code claim");
                }
                result
            }
            Ok(false) => self.wait_for_other(digest, profile).await,
            Err(err) => {
                tracing::warn!(error = %err, "login code cache unavailable; asking WeChat directly");
                self.exchange(code, digest, profile, false).await
            }
        }
    }

    /// Another instance is exchanging this code: wait (bounded) for the answer it stores. Never
    /// asks WeChat, which would refuse the code's second use.
    async fn wait_for_other(
        &self,
        digest: &str,
        profile: Option<&ProfileUpdate>,
    ) -> Result<Resolved, ApiError> {
        let appid = self.client.appid();
        let deadline = Instant::now() + self.claim_wait;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL_EVERY).await;
            match self.cache.get(appid, digest).await {
                Ok(Some(entry)) => return self.resolve_entry(entry, profile).await,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "login code cache failed while waiting");
                    return Err(wechat_unavailable());
                }
            }
            if let Ok(false) = self.cache.is_claimed(appid, digest).await {
                // The other instance gave up without an answer (WeChat refused or failed).
                break;
            }
        }
        if let Ok(Some(entry)) = self.cache.get(appid, digest).await {
            return self.resolve_entry(entry, profile).await;
        }
        tracing::warn!("gave up waiting for another instance's WeChat login answer");
        Err(wechat_unavailable())
    }

    /// Asks WeChat, records the login, and remembers the code (when `remember`).
    async fn exchange(
        &self,
        code: &str,
        digest: &str,
        profile: Option<&ProfileUpdate>,
        remember: bool,
    ) -> Result<Resolved, ApiError> {
        let session = self.client.code2session(code).await?;
        let (user, created) = self.users.upsert_by_openid(&session, profile).await?;
        if remember {
            let entry = CodeEntry {
                openid: session.openid,
                unionid: session.unionid,
                created,
            };
            if let Err(err) = self
                .cache
                .put(self.client.appid(), digest, &entry, self.code_ttl)
                .await
            {
                tracing::warn!(error = %err, "could not remember a login code");
            }
        }
        Ok(Resolved { user, created })
    }

    /// The login a remembered code stands for.
    async fn resolve_entry(
        &self,
        entry: CodeEntry,
        profile: Option<&ProfileUpdate>,
    ) -> Result<Resolved, ApiError> {
        let user = self
            .users
            .get_by_openid(&entry.openid)
            .await?
            .ok_or_else(|| ApiError::from(WxError::CodeUsed))?;
        let user = match profile.filter(|p| !p.is_empty()) {
            Some(profile) => self
                .users
                .update_profile(user.id, profile)
                .await?
                .ok_or_else(|| ApiError::from(WxError::CodeUsed))?,
            None => user,
        };
        Ok(Resolved {
            user,
            created: entry.created,
        })
    }

    /// Stores the caller's phone number from a `getPhoneNumber` button `code`, or from
    /// legacy `encryptedData` + `iv` decrypted with the caller's stored session_key.
    ///
    /// # Errors
    /// 400 `session_key_stale` when no session_key is stored or it does not decrypt the data;
    /// 400 `invalid_encrypted_data` for data of another app or malformed input; WeChat's
    /// errors for the code; 404 when the user is gone.
    pub async fn set_phone(&self, user_id: i64, source: PhoneSource<'_>) -> Result<User, ApiError> {
        let info = match source {
            PhoneSource::Code(code) => self.client.phone_number(code).await?,
            PhoneSource::Encrypted { data, iv } => {
                let key = self
                    .users
                    .session_key(user_id)
                    .await?
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| ApiError::from(WxError::Decrypt))?;
                crypto::decrypt_phone_for(self.client.appid(), &key, data, iv)?
            }
        };
        if !self
            .users
            .set_phone(user_id, &info.pure_phone_number, &info.country_code)
            .await?
        {
            return Err(ApiError::not_found());
        }
        tracing::info!(user_id, "phone number stored");
        self.users
            .get(user_id)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// The login and phone endpoints (see the [type docs](WxLoginService)); nest it under `/auth`.
    pub fn router(self) -> Router {
        let phone = Router::new()
            .route("/wx-phone", post(phone_view))
            .route("/wx-phone/", post(phone_view))
            .route_layer(JwtAuthLayer::new(self.tokens.clone()).permission(IsAuthenticated));
        Router::new()
            .route("/wx-login", post(login_view))
            .route("/wx-login/", post(login_view))
            .merge(phone)
            .with_state(self)
    }
}

/// Where a phone number comes from (see [`WxLoginService::set_phone`]).
#[derive(Clone, Copy)]
pub enum PhoneSource<'a> {
    /// The `code` of a `getPhoneNumber` button (`getuserphonenumber`).
    Code(&'a str),
    /// Legacy `encryptedData` and its `iv`, encrypted with the user's session_key.
    Encrypted {
        /// `encryptedData`, base64.
        data: &'a str,
        /// `iv`, base64.
        iv: &'a str,
    },
}

impl fmt::Debug for PhoneSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneSource::Code(_) => f.write_str("PhoneSource::Code(..)"),
            PhoneSource::Encrypted { .. } => f.write_str("PhoneSource::Encrypted { .. }"),
        }
    }
}

/// Nests a field-error body under `field` (DRF's nested serializer errors).
fn nested(field: &str, err: ApiError) -> ApiError {
    if err.detail().is_some() {
        return err;
    }
    let mut map = Map::new();
    map.insert(field.to_owned(), err.body());
    ApiError::fields(map)
}

async fn login_view(
    State(service): State<WxLoginService>,
    JsonBody(data): JsonBody,
) -> Result<Json<LoginOutcome>, ApiError> {
    let mut fields = Fields::new(&data);
    let code = fields.required_str("code");
    let info = fields.optional_object("userInfo");
    fields.finish()?;
    let profile = info
        .map(ProfileUpdate::from_json)
        .transpose()
        .map_err(|e| nested("userInfo", e))?;
    Ok(Json(service.login(&code, profile.as_ref()).await?))
}

async fn phone_view(
    State(service): State<WxLoginService>,
    identity: Identity,
    JsonBody(data): JsonBody,
) -> Result<Json<User>, ApiError> {
    let mut fields = Fields::new(&data);
    let has = |name: &str| !matches!(data.get(name), None | Some(Value::Null));
    let source_code;
    let (encrypted, iv);
    let source = if has("code") || !has("encryptedData") {
        source_code = fields.required_str("code");
        fields.finish()?;
        PhoneSource::Code(&source_code)
    } else {
        encrypted = fields.required_str("encryptedData");
        iv = fields.required_str("iv");
        fields.finish()?;
        PhoneSource::Encrypted {
            data: &encrypted,
            iv: &iv,
        }
    };
    Ok(Json(service.set_phone(identity.user_id, source).await?))
}
