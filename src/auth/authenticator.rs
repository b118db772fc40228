//! Authenticators (documented in the `auth` module).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use http::{HeaderName, HeaderValue, header};

use super::account::{LoginAttempts, UserLookup, check_password};
use super::error::AuthError;
use super::identity::{Identity, Scheme};
use super::tokens::TokenService;

/// A boxed future, as authenticators return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of one authenticator.
pub type AuthResult = Result<Option<Identity>, AuthError>;

/// DRF's `BaseAuthentication`.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(None)` when the request carries no credentials of this kind.
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, AuthResult>;

    /// The answer without waiting, when this authenticator has it at once (no credentials of
    /// its kind, a token it verified before); `None` (the default) sends the request to
    /// [`authenticate`](Self::authenticate). The auth layer decides a request without any
    /// allocation when every authenticator it asks answers here.
    fn authenticate_now(&self, parts: &Parts) -> Option<AuthResult> {
        let _ = parts;
        None
    }

    /// DRF's `authenticate_header`: the `WWW-Authenticate` value for a 401. `None` turns
    /// "not authenticated" into 403, as in DRF.
    fn challenge(&self, parts: &Parts) -> Option<HeaderValue> {
        let _ = parts;
        None
    }
}

impl<F, Fut> Authenticator for F
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthResult> + Send + 'static,
{
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, AuthResult> {
        Box::pin(self(parts))
    }
}

/// Where a [`JwtAuthenticator`] looks for the token, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: <prefix> <token>` with the configured prefixes, DRF's header parsing
    /// and messages.
    Authorization,
    /// A header holding only the token (e.g. `X-Token`, common in mini-program code).
    Header(HeaderName),
    /// A cookie (a web admin). A browser sends cookies with requests other sites make, so a
    /// request authenticated by the cookie with an unsafe method (not GET, HEAD, OPTIONS,
    /// TRACE) must prove it came from the site's own script, as DRF's `SessionAuthentication`
    /// enforces CSRF: a JSON body (`Content-Type: application/json`, which a cross-site form
    /// cannot send) or an `X-CSRFToken` or `X-Requested-With` header (which a cross-site
    /// request cannot set without CORS allowing it). Otherwise 403, `csrf_failed`.
    Cookie(String),
    /// A query parameter (WebSocket upgrades). Tokens in URLs end up in logs: opt in per route.
    Query(String),
}

impl TokenSource {
    /// A header source; panics only on a header name that is not valid HTTP (a programming
    /// error at start-up).
    pub fn header(name: &'static str) -> Self {
        TokenSource::Header(HeaderName::from_static(name))
    }
}

/// djangorestframework-jwt's `JSONWebTokenAuthentication`, with token sources and our checks.
///
/// ```
/// use wxrest::auth::{JwtAuthenticator, JwtConfig, TokenSource};
///
/// let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
/// let auth = JwtAuthenticator::new(jwt)
///     .sources([TokenSource::Authorization, TokenSource::header("x-token")]);
/// # let _ = auth;
/// ```
#[derive(Clone, Debug)]
pub struct JwtAuthenticator {
    tokens: TokenService,
    sources: Arc<[TokenSource]>,
    /// Each accepted prefix with its `WWW-Authenticate` challenge; the first is the default.
    prefixes: Arc<[(String, HeaderValue)]>,
}

impl JwtAuthenticator {
    /// Reads `Authorization: JWT|Bearer <token>` (the configured prefixes).
    pub fn new(tokens: impl Into<TokenService>) -> Self {
        let tokens = tokens.into();
        let mut prefixes: Vec<(String, HeaderValue)> = tokens
            .jwt()
            .prefixes()
            .iter()
            .map(|p| (p.clone(), challenge_for(p)))
            .collect();
        if prefixes.is_empty() {
            prefixes.push(("JWT".into(), challenge_for("JWT")));
        }
        Self {
            tokens,
            sources: Arc::from([TokenSource::Authorization]),
            prefixes: prefixes.into(),
        }
    }

    /// The configured prefix `word` matches (case-insensitively), with its challenge.
    fn prefix(&self, word: &[u8]) -> Option<&(String, HeaderValue)> {
        self.prefixes
            .iter()
            .find(|(p, _)| p.as_bytes().eq_ignore_ascii_case(word))
    }

    /// Looks for the token in these sources, in order.
    #[must_use]
    pub fn sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// The token service behind it.
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// The token from the first source that has one.
    pub fn extract<'a>(&self, parts: &'a Parts) -> Result<Option<Cow<'a, str>>, AuthError> {
        for source in self.sources.iter() {
            let found = match source {
                TokenSource::Authorization => self.authorization_header(parts)?,
                TokenSource::Header(name) => parts
                    .headers
                    .get(name)
                    .map(|v| token_text(v.as_bytes()))
                    .transpose()?
                    .filter(|t| !t.is_empty())
                    .map(Cow::Borrowed),
                TokenSource::Cookie(name) => match from_cookie(parts, name) {
                    Some(_) if !parts.method.is_safe() && !proves_same_origin(parts) => {
                        return Err(AuthError::CsrfFailed);
                    }
                    found => found.map(Cow::Owned),
                },
                TokenSource::Query(name) => parts.uri.query().and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| Cow::<str>::Owned(v.into_owned()))
                        .filter(|v| !v.is_empty())
                }),
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// djangorestframework-jwt's `get_jwt_value`.
    fn authorization_header<'a>(
        &self,
        parts: &'a Parts,
    ) -> Result<Option<Cow<'a, str>>, AuthError> {
        let mut words = authorization_words(parts);
        let Some(prefix) = words.next() else {
            return Ok(None);
        };
        if self.prefix(prefix).is_none() {
            return Ok(None);
        }
        let token = words.next().ok_or(AuthError::NoCredentials)?;
        if words.next().is_some() {
            return Err(AuthError::CredentialsWithSpaces);
        }
        token_text(token).map(|t| Some(Cow::Borrowed(t)))
    }
}

/// DRF's `get_authorization_header(request).split()`: the words of the `Authorization` header
/// (none when it is absent).
fn authorization_words(parts: &Parts) -> impl Iterator<Item = &[u8]> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .map_or(&[][..], |v| v.as_bytes())
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
}

fn token_text(bytes: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(bytes)
        .map(str::trim)
        .map_err(|_| AuthError::DecodeError)
}

fn from_cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether an unsafe request carries what a cross-site form or simple request cannot: a JSON
/// media type, or a header only a script allowed by CORS can set.
fn proves_same_origin(parts: &Parts) -> bool {
    const HEADERS: [&str; 2] = ["x-csrftoken", "x-requested-with"];
    if HEADERS
        .iter()
        .any(|h| parts.headers.get(*h).is_some_and(|v| !v.is_empty()))
    {
        return true;
    }
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .is_some_and(|media| {
            media == "application/json"
                || (media.starts_with("application/") && media.ends_with("+json"))
        })
}

fn challenge_for(scheme: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{scheme} realm=\"api\""))
        .unwrap_or_else(|_| HeaderValue::from_static("JWT realm=\"api\""))
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            match self.extract(parts)? {
                None => Ok(None),
                Some(token) => self.tokens.authenticate(&token).await.map(Some),
            }
        })
    }

    /// No token, a malformed header, or a token whose checks passed moments ago.
    fn authenticate_now(&self, parts: &Parts) -> Option<AuthResult> {
        match self.extract(parts) {
            Err(err) => Some(Err(err)),
            Ok(None) => Some(Ok(None)),
            Ok(Some(token)) => self.tokens.authenticate_now(&token).map(|r| r.map(Some)),
        }
    }

    /// `JWT realm="api"`, or `Bearer realm="api"` when the request used `Bearer`.
    fn challenge(&self, parts: &Parts) -> Option<HeaderValue> {
        let used = authorization_words(parts)
            .next()
            .and_then(|word| self.prefix(word));
        used.or_else(|| self.prefixes.first())
            .map(|(_, challenge)| challenge.clone())
    }
}

/// DRF's `BasicAuthentication` against a [`UserLookup`].
///
/// ```
/// # use async_trait::async_trait;
/// # use wxrest::{BackendError, auth::{AuthUser, UserLookup}};
/// # struct Nobody;
/// # #[async_trait]
/// # impl UserLookup for Nobody {
/// #   async fn by_id(&self, _: i64) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
/// #   async fn by_username(&self, _: &str) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
/// #   async fn verify_password(&self, _: &str, _: &str) -> Result<Option<AuthUser>, BackendError> { Ok(None) }
/// #   async fn bump_token_version(&self, _: i64) -> Result<Option<i64>, BackendError> { Ok(None) }
/// # }
/// use wxrest::auth::{AuthLayer, BasicAuthenticator, IsAuthenticated};
/// let layer = AuthLayer::new()
///     .authenticator(BasicAuthenticator::new(Nobody))
///     .permission(IsAuthenticated);
/// # let _ = layer;
/// ```
///
/// Every Basic password check is a password login: give it the same lock-out as the token
/// view with [`login_attempts`](Self::login_attempts) (a `wxrest::throttle::UsernameThrottle`),
/// since a failed authentication is
/// answered before any throttle layer inside the auth layer counts the request.
#[derive(Clone)]
pub struct BasicAuthenticator {
    users: Arc<dyn UserLookup>,
    login_attempts: Option<Arc<dyn LoginAttempts>>,
}

impl BasicAuthenticator {
    /// Checks `Authorization: Basic` credentials with `users`.
    pub fn new(users: impl UserLookup) -> Self {
        Self::shared(Arc::new(users))
    }

    /// Shares an existing lookup.
    pub fn shared(users: Arc<dyn UserLookup>) -> Self {
        Self {
            users,
            login_attempts: None,
        }
    }

    /// Runs `check` around every password check (asked before, told of failures), as
    /// [`TokenService::with_login_attempts`](super::TokenService::with_login_attempts) does for `POST /token/`; pass an `Arc` to share
    /// one with the token service. Over its limits, 429 `throttled` with `Retry-After`.
    #[must_use]
    pub fn login_attempts(mut self, check: impl LoginAttempts) -> Self {
        self.login_attempts = Some(Arc::new(check));
        self
    }
}

impl Authenticator for BasicAuthenticator {
    fn authenticate<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, AuthResult> {
        Box::pin(async move {
            let mut words = authorization_words(parts);
            match words.next() {
                Some(p) if p.eq_ignore_ascii_case(b"basic") => {}
                _ => return Ok(None),
            }
            let encoded = words.next().ok_or(AuthError::BasicNoCredentials)?;
            if words.next().is_some() {
                return Err(AuthError::BasicWithSpaces);
            }
            let decoded = STANDARD
                .decode(encoded)
                .map_err(|_| AuthError::BasicNotBase64)?;
            // DRF tries UTF-8, then latin-1.
            let text = match String::from_utf8(decoded) {
                Ok(text) => text,
                Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
            };
            let (username, password) = text.split_once(':').ok_or(AuthError::BasicNotBase64)?;
            let attempts = self.login_attempts.as_deref();
            let user = check_password(&*self.users, attempts, parts, username, password)
                .await?
                .ok_or(AuthError::InvalidCredentials)?;
            if !user.is_active {
                return Err(AuthError::UserInactive);
            }
            Ok(Some(Identity::from_user(&user, Scheme::Basic)))
        })
    }

    fn challenge(&self, _parts: &Parts) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"api\""))
    }
}
