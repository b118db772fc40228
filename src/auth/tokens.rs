//! [`TokenService`] (documented in the `auth` module).

use std::sync::Arc;

use super::account::{AuthUser, LoginAttempts, UserLookup};
use super::error::AuthError;
use super::identity::{Identity, Scheme};
use super::jwt::{Claims, JwtConfig, TokenPair, TokenType, UserIdClaim, now};
use super::revocation::{AccessState, MemoryRevocationStore, RevocationStore, Rotation};

/// Issues and checks tokens against a [`JwtConfig`], a [`RevocationStore`] and (for
/// djangorestframework-jwt tokens, refresh and token versions) a [`UserLookup`].
///
/// Cheap to clone.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    jwt: JwtConfig,
    store: Arc<dyn RevocationStore>,
    users: Option<Arc<dyn UserLookup>>,
    login_attempts: Option<Arc<dyn LoginAttempts>>,
    /// Access checks that passed, by token, stamped with the store's local epoch: while the
    /// epoch is unchanged (no revocation, no version change) the check need not run again.
    passed: moka::sync::Cache<Box<str>, (Identity, u64)>,
    passed_ttl: std::time::Duration,
}

/// How long a passed access check is reused while nothing changed in this process: with the
/// store's version TTL, the most a change made elsewhere takes to end a token.
pub const PASSED_TTL: std::time::Duration = std::time::Duration::from_secs(10);

fn passed_cache(ttl: std::time::Duration) -> moka::sync::Cache<Box<str>, (Identity, u64)> {
    moka::sync::Cache::builder()
        .max_capacity(super::jwt::VERIFIED_CACHE_CAPACITY)
        .time_to_live(ttl)
        .build()
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("jwt", &self.inner.jwt)
            .field("users", &self.inner.users.is_some())
            .finish()
    }
}

impl From<JwtConfig> for TokenService {
    fn from(jwt: JwtConfig) -> Self {
        TokenService::new(jwt)
    }
}

impl TokenService {
    /// A service with an in-memory revocation store and no user lookup: tokens are trusted
    /// on their claims, djangorestframework-jwt tokens are not checked against users.
    pub fn new(jwt: JwtConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                jwt,
                store: Arc::new(MemoryRevocationStore::new()),
                users: None,
                login_attempts: None,
                passed: passed_cache(PASSED_TTL),
                passed_ttl: PASSED_TTL,
            }),
        }
    }

    /// Uses `store` for revocations and the token-version cache; pass an `Arc` of a store to
    /// share one with the user store (`UserStore::with_revocations`) or another service.
    #[must_use]
    pub fn with_store(mut self, store: impl RevocationStore) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.store = Arc::new(store);
        inner.passed = passed_cache(inner.passed_ttl);
        self
    }

    /// Resolves users through `users`: token versions, djangorestframework-jwt tokens (by the
    /// `username` claim), refresh re-checks and password login.
    #[must_use]
    pub fn with_users(mut self, users: impl UserLookup) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.users = Some(Arc::new(users));
        inner.passed = passed_cache(inner.passed_ttl);
        self
    }

    /// How long an access check that passed is reused while nothing changed in this process
    /// (default [`PASSED_TTL`]); with the store's version TTL, the longest a change made in
    /// the database directly (or on another instance without Redis) takes to end a token.
    #[must_use]
    pub fn recheck_after(mut self, ttl: std::time::Duration) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.passed_ttl = ttl;
        inner.passed = passed_cache(ttl);
        self
    }

    /// Runs `check` before every password login (`POST /token/`), e.g. a [`UsernameThrottle`].
    ///
    #[cfg_attr(
        feature = "throttle",
        doc = "[`UsernameThrottle`]: crate::throttle::UsernameThrottle"
    )]
    #[cfg_attr(not(feature = "throttle"), doc = "[`UsernameThrottle`]: crate")]
    #[must_use]
    pub fn with_login_attempts(mut self, check: impl LoginAttempts) -> Self {
        Arc::make_mut(&mut self.inner).login_attempts = Some(Arc::new(check));
        self
    }

    /// The check run before password logins, if configured.
    pub fn login_attempts(&self) -> Option<&Arc<dyn LoginAttempts>> {
        self.inner.login_attempts.as_ref()
    }

    /// The JWT configuration.
    pub fn jwt(&self) -> &JwtConfig {
        &self.inner.jwt
    }

    /// The user lookup, if configured.
    pub fn users(&self) -> Option<&Arc<dyn UserLookup>> {
        self.inner.users.as_ref()
    }

    /// The revocation store.
    pub fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.inner.store
    }

    /// Issues an access/refresh pair for a new login (a new session).
    pub async fn issue(&self, user: &AuthUser) -> Result<TokenPair, AuthError> {
        if !user.is_active {
            return Err(AuthError::UserDisabled);
        }
        let family = uuid::Uuid::new_v4().simple().to_string();
        // A store outage must not stop logins: the access token works without the record, and
        // the refresh token of a session the store never recorded is refused later (fails
        // closed), so the client logs in again when its access token expires.
        if let Err(err) = self
            .inner
            .store
            .start_family(&family, self.session_expiry())
            .await
        {
            tracing::warn!(error = %err, user_id = user.id, "session not recorded; its refresh token will not refresh");
        }
        self.issue_in_family(user, &family, 0, now())
    }

    /// Until when a session must be remembered if its refresh token is issued now: the refresh
    /// token's life, plus that of an access token refreshed at its last moment.
    fn session_expiry(&self) -> i64 {
        let jwt = &self.inner.jwt;
        now() + (jwt.refresh_ttl() + jwt.access_ttl()).as_secs() as i64
    }

    /// Until when a session revoked now must be remembered: the last access token issued in it
    /// expires by then (its lifetime plus the leeway).
    fn revoked_until(&self) -> i64 {
        let jwt = &self.inner.jwt;
        now() + jwt.access_ttl().as_secs() as i64 + jwt.leeway_secs() + 1
    }

    fn issue_in_family(
        &self,
        user: &AuthUser,
        family: &str,
        generation: u64,
        orig_iat: i64,
    ) -> Result<TokenPair, AuthError> {
        let jwt = &self.inner.jwt;
        let iat = now();
        let access_exp = iat + jwt.access_ttl().as_secs() as i64;
        let refresh_exp = iat + jwt.refresh_ttl().as_secs() as i64;
        let base = Claims {
            user_id: UserIdClaim::Int(user.id),
            username: user.username.clone(),
            exp: access_exp,
            email: user.email.clone(),
            orig_iat: Some(orig_iat),
            iat: Some(iat),
            jti: Some(new_jti()),
            token_type: Some(TokenType::Access),
            ver: Some(user.token_version),
            fam: Some(family.to_owned()),
            generation: None,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            iss: jwt.issuer_claim(),
            aud: jwt.audience_claim(),
        };
        let refresh = Claims {
            exp: refresh_exp,
            jti: Some(new_jti()),
            token_type: Some(TokenType::Refresh),
            generation: Some(generation),
            is_staff: false,
            is_superuser: false,
            ..base.clone()
        };
        Ok(TokenPair {
            token: jwt.encode(&base)?,
            refresh: jwt.encode(&refresh)?,
            access_expires_at: access_exp,
            refresh_expires_at: refresh_exp,
        })
    }

    /// Verifies an access token (signature, expiry, type, revocation, token version; and for
    /// djangorestframework-jwt tokens, the user by username) and returns who it is.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(passed) = self.authenticate_now(token) {
            return passed;
        }
        // Read the epoch before checking, so a revocation racing with the check is never
        // stamped as seen.
        let epoch = self.inner.store.local_epoch();
        let claims = self.inner.jwt.decode_shared(token)?;
        let identity = self.identity_for(claims).await?;
        if let Some(epoch) = epoch
            && token.len() <= 4096
        {
            self.inner
                .passed
                .insert(token.into(), (identity.clone(), epoch));
        }
        Ok(identity)
    }

    /// [`authenticate`](Self::authenticate) without waiting: the identity of a token whose
    /// checks passed within the recheck period while nothing changed in this process, or
    /// `None` when the checks must run.
    pub(crate) fn authenticate_now(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        let epoch = self.inner.store.local_epoch()?;
        let (identity, seen) = self.inner.passed.get(token)?;
        let exp = identity.claims.as_ref().map_or(0, |c| c.exp);
        (seen == epoch && !self.inner.jwt.is_expired(exp)).then_some(Ok(identity))
    }

    /// The identity behind already-verified claims of an access token.
    pub async fn identity_for(&self, claims: Arc<Claims>) -> Result<Identity, AuthError> {
        match claims.token_type {
            Some(TokenType::Refresh) => Err(AuthError::WrongTokenType),
            None => self.legacy_identity(claims).await,
            Some(TokenType::Access) if claims.ver.is_none() && self.inner.users.is_some() => {
                self.django_identity(claims).await
            }
            Some(TokenType::Access) => {
                let user_id = claims.user_id.as_i64().ok_or(AuthError::InvalidPayload)?;
                let state = match claims.fam.as_deref() {
                    Some(family) => self.inner.store.access_state(family, user_id).await?,
                    // Minted elsewhere with our key but outside any session of ours: its own
                    // session (by `jti`), which a logout with it ends; the token version too.
                    None => match token_session(&claims) {
                        Some(session) => self.inner.store.access_state(&session, user_id).await?,
                        None => AccessState::default(),
                    },
                };
                if state.revoked {
                    return Err(AuthError::TokenRevoked);
                }
                let current = match state.token_version {
                    Some(v) => Some(v),
                    None => self.load_version(user_id, &claims).await?,
                };
                if let Some(current) = current
                    && claims.ver.unwrap_or(0) < current
                {
                    return Err(AuthError::TokenRevoked);
                }
                Ok(Identity {
                    user_id,
                    username: claims.username.clone(),
                    is_staff: claims.is_staff,
                    is_superuser: claims.is_superuser,
                    is_active: true,
                    scheme: Scheme::Jwt,
                    claims: Some(claims),
                })
            }
        }
    }

    /// Reads a user's token version from the database into the cache. `None` without a user
    /// lookup; a deleted user counts as revoked.
    ///
    /// Staff rights that `claims` carry but the database no longer grants were withdrawn
    /// there directly (not through `UserStore`, which bumps the version itself): the version
    /// is bumped now, ending every token that carries them.
    async fn load_version(&self, user_id: i64, claims: &Claims) -> Result<Option<i64>, AuthError> {
        let Some(users) = &self.inner.users else {
            return Ok(None);
        };
        match users.by_id(user_id).await? {
            Some(user)
                if user.is_active
                    && ((claims.is_staff && !user.is_staff)
                        || (claims.is_superuser && !user.is_superuser)) =>
            {
                tracing::info!(
                    user_id,
                    "staff rights withdrawn in the database; ending the user's tokens"
                );
                let version = users
                    .bump_token_version(user_id)
                    .await?
                    .ok_or(AuthError::UnknownUser)?;
                self.inner.store.set_token_version(user_id, version).await?;
                Ok(Some(version))
            }
            Some(user) if user.is_active => {
                self.inner
                    .store
                    .fill_token_version(user_id, user.token_version)
                    .await?;
                Ok(Some(user.token_version))
            }
            _ => {
                // Deleted or inactive: cache a version no token can carry.
                self.inner
                    .store
                    .fill_token_version(user_id, i64::MAX)
                    .await?;
                Ok(Some(i64::MAX))
            }
        }
    }

    /// A djangorestframework-simplejwt access token (typed, but without our `ver`): the user,
    /// and their staff and active state, come from the user store, never from the token. It
    /// is ended by logout (its own session), logout-all and deactivation (any token version
    /// above 0), like ours.
    async fn django_identity(&self, claims: Arc<Claims>) -> Result<Identity, AuthError> {
        let user = self.django_user(&claims).await?;
        let session = token_session(&claims).ok_or(AuthError::InvalidPayload)?;
        if self
            .inner
            .store
            .access_state(&session, user.id)
            .await?
            .revoked
        {
            return Err(AuthError::TokenRevoked);
        }
        let mut identity = Identity::from_user(&user, Scheme::Jwt);
        identity.claims = Some(claims);
        Ok(identity)
    }

    /// The active user a token minted by Django names, as of now.
    async fn django_user(&self, claims: &Claims) -> Result<AuthUser, AuthError> {
        let users = self.inner.users.as_ref().ok_or(AuthError::CannotIssue)?;
        let user_id = claims.user_id.as_i64().ok_or(AuthError::InvalidPayload)?;
        let user = users.by_id(user_id).await?.ok_or(AuthError::UnknownUser)?;
        if !user.is_active {
            return Err(AuthError::UserDisabled);
        }
        // Django's tokens predate every version bump of ours (logout-all, deactivation).
        if user.token_version > 0 {
            return Err(AuthError::TokenRevoked);
        }
        Ok(user)
    }

    /// djangorestframework-jwt's `authenticate_credentials`: find the user by `username`. The
    /// token is ended by logout (its login's session, see [`legacy_session`]), logout-all and
    /// deactivation.
    async fn legacy_identity(&self, claims: Arc<Claims>) -> Result<Identity, AuthError> {
        if claims.username.is_empty() {
            return Err(AuthError::InvalidPayload);
        }
        let Some(users) = &self.inner.users else {
            let user_id = claims.user_id.as_i64().ok_or(AuthError::InvalidPayload)?;
            self.check_legacy_session(user_id, &claims).await?;
            return Ok(Identity {
                user_id,
                username: claims.username.clone(),
                is_staff: false,
                is_superuser: false,
                is_active: true,
                scheme: Scheme::LegacyJwt,
                claims: Some(claims),
            });
        };
        let user = users
            .by_username(&claims.username)
            .await?
            .ok_or(AuthError::UnknownUser)?;
        if !user.is_active {
            return Err(AuthError::UserDisabled);
        }
        if claims.ver.unwrap_or(0) < user.token_version {
            return Err(AuthError::TokenRevoked);
        }
        self.check_legacy_session(user.id, &claims).await?;
        let mut identity = Identity::from_user(&user, Scheme::LegacyJwt);
        identity.claims = Some(claims);
        Ok(identity)
    }

    /// Refuses a djangorestframework-jwt token whose login was logged out.
    async fn check_legacy_session(&self, user_id: i64, claims: &Claims) -> Result<(), AuthError> {
        let session = legacy_session(user_id, claims);
        if self
            .inner
            .store
            .access_state(&session, user_id)
            .await?
            .revoked
        {
            return Err(AuthError::TokenRevoked);
        }
        Ok(())
    }

    /// Rotation: presents `refresh` (exactly once, atomically) and issues a new pair in the
    /// same session. A refresh token presented a second time revokes the whole session.
    pub async fn refresh(&self, refresh: &str) -> Result<(TokenPair, AuthUser), AuthError> {
        let claims = self.inner.jwt.decode(refresh)?;
        if claims.token_type != Some(TokenType::Refresh) {
            return Err(AuthError::WrongTokenType);
        }
        if claims.ver.is_none() && claims.fam.is_none() && self.inner.users.is_some() {
            return self.refresh_django(refresh, &claims).await;
        }
        let (Some(family), Some(generation), Some(user_id)) = (
            claims.fam.as_deref(),
            claims.generation,
            claims.user_id.as_i64(),
        ) else {
            return Err(AuthError::InvalidPayload);
        };
        match self
            .inner
            .store
            .rotate_family(
                family,
                generation,
                self.session_expiry(),
                self.revoked_until(),
            )
            .await?
        {
            Rotation::Rotated => {}
            Rotation::Reused => {
                tracing::warn!(user_id, "refresh token reuse detected; session revoked");
                return Err(AuthError::TokenRevoked);
            }
            Rotation::Ended => return Err(AuthError::TokenRevoked),
        }
        let user = match &self.inner.users {
            Some(users) => {
                let user = users.by_id(user_id).await?.ok_or(AuthError::UnknownUser)?;
                if !user.is_active {
                    return Err(AuthError::UserDisabled);
                }
                if claims.ver.unwrap_or(0) < user.token_version {
                    return Err(AuthError::TokenRevoked);
                }
                user
            }
            None => AuthUser {
                id: user_id,
                username: claims.username.clone(),
                email: claims.email.clone(),
                is_staff: false,
                is_superuser: false,
                is_active: true,
                token_version: claims.ver.unwrap_or(0),
            },
        };
        let orig_iat = claims.orig_iat.unwrap_or_else(now);
        let pair = self.issue_in_family(&user, family, generation + 1, orig_iat)?;
        Ok((pair, user))
    }

    /// A djangorestframework-simplejwt refresh token: simplejwt does not rotate by default, so
    /// its clients reuse one refresh token until it expires. It buys a new access token (in the
    /// session named after the refresh token, so logging out with that access token ends the
    /// refresh token too) and is handed back unchanged.
    async fn refresh_django(
        &self,
        refresh: &str,
        claims: &Claims,
    ) -> Result<(TokenPair, AuthUser), AuthError> {
        let user = self.django_user(claims).await?;
        // Named with the refresh token's `exp`: a logout with an access token minted here
        // keeps the refresh token revoked until then.
        let session = token_session(claims).ok_or(AuthError::InvalidPayload)?;
        if self
            .inner
            .store
            .access_state(&session, user.id)
            .await?
            .revoked
        {
            return Err(AuthError::TokenRevoked);
        }
        let orig_iat = claims.iat.unwrap_or_else(now);
        let mut pair = self.issue_in_family(&user, &session, 0, orig_iat)?;
        pair.refresh = refresh.to_owned();
        pair.refresh_expires_at = claims.exp;
        Ok((pair, user))
    }

    /// djangorestframework-jwt's refresh: a valid, unexpired token refreshed within
    /// `orig_iat` + the refresh lifetime gets a new token with the same `orig_iat`.
    ///
    /// An access token of ours keeps its session, and is refreshed only while that session
    /// lives in the store: no longer than its refresh token could refresh (rotation extends
    /// it, expiry, logout, reuse detection or eviction end it). One minted from a
    /// djangorestframework-simplejwt refresh token is refreshed only until that token's `exp`.
    /// Other typed tokens (simplejwt's own access tokens, ours minted outside a session) are
    /// refused: they refresh with their refresh token.
    pub async fn refresh_legacy(&self, token: &str) -> Result<String, LegacyRefreshError> {
        let claims = self.inner.jwt.decode(token)?;
        if claims.token_type == Some(TokenType::Refresh)
            || (claims.token_type.is_some() && claims.fam.is_none())
        {
            return Err(AuthError::WrongTokenType.into());
        }
        let orig_iat = claims.orig_iat.ok_or(LegacyRefreshError::NoOrigIat)?;
        if now() > orig_iat.saturating_add(self.inner.jwt.refresh_ttl().as_secs() as i64) {
            return Err(LegacyRefreshError::Expired);
        }
        if let Some(family) = claims.fam.as_deref() {
            match django_refresh_end(family) {
                Some(end) if now() > end => return Err(LegacyRefreshError::Expired),
                Some(_) => {}
                None if !self
                    .inner
                    .store
                    .session_live(family)
                    .await
                    .map_err(AuthError::from)? =>
                {
                    return Err(AuthError::TokenRevoked.into());
                }
                None => {}
            }
        }
        let identity = self.identity_for(Arc::new(claims.clone())).await?;
        let mut next = claims;
        next.exp = now() + self.inner.jwt.access_ttl().as_secs() as i64;
        next.iat = Some(now());
        if next.jti.is_some() {
            next.jti = Some(new_jti());
        }
        next.is_staff = identity.is_staff && next.token_type.is_some();
        Ok(self.inner.jwt.encode(&next)?)
    }

    /// Logout: ends the session behind `identity` (every token of that login), and the session
    /// of `refresh` if it is another one of the same user. Every kind of token accepted is
    /// ended: ours (their session), djangorestframework-simplejwt's (by `jti`, until their
    /// `exp`; the refresh token too when given) and djangorestframework-jwt's (their login, by
    /// `orig_iat`, until the last refresh of it expires).
    ///
    /// A token whose end lies beyond what the store keeps (later than now plus the refresh
    /// and access lifetimes, or any token of Django's when expiry is not verified) is not
    /// ended: [`AuthError::NotRevocable`], and nothing is revoked.
    pub async fn revoke(
        &self,
        identity: &Identity,
        refresh: Option<&str>,
    ) -> Result<(), AuthError> {
        let mut endings = Vec::with_capacity(2);
        if let Some(claims) = &identity.claims {
            endings.push(self.ending(identity.user_id, claims)?);
        }
        if let Some(refresh) = refresh {
            // Only a token whose signature verified is revoked: its `exp` is the signer's.
            let claims = self.inner.jwt.decode(refresh)?;
            if claims.token_type != Some(TokenType::Refresh)
                || claims.user_id.as_i64() != Some(identity.user_id)
            {
                return Err(AuthError::WrongTokenType);
            }
            endings.push(self.ending(identity.user_id, &claims)?);
        }
        for (session, until) in endings {
            self.inner.store.revoke_family(&session, until).await?;
        }
        Ok(())
    }

    /// The session a logout with a token of these (verified) claims ends, and until when it
    /// must be remembered as revoked.
    fn ending(&self, user_id: i64, claims: &Claims) -> Result<(String, i64), AuthError> {
        match (&claims.fam, claims.token_type) {
            (Some(family), _) => {
                let until = match django_refresh_end(family) {
                    // Minted from a simplejwt refresh token: that token works until its `exp`.
                    Some(end) => self.revoked_until_exp(end)?,
                    // Ours: the session's record goes, so its refresh token is refused at once
                    // and only its access tokens need the marker.
                    None => self.revoked_until(),
                };
                Ok((family.clone(), until))
            }
            (None, Some(_)) => {
                let session = token_session(claims).ok_or(AuthError::NotRevocable)?;
                Ok((session, self.revoked_until_exp(claims.exp)?))
            }
            (None, None) => Ok((
                legacy_session(user_id, claims),
                self.revoked_until_exp(self.legacy_end(claims))?,
            )),
        }
    }

    /// Until when a token ending at `exp` must be remembered as revoked: past its `exp` and the
    /// leeway, but never beyond what the store keeps for our own sessions.
    fn revoked_until_exp(&self, exp: i64) -> Result<i64, AuthError> {
        let jwt = &self.inner.jwt;
        let until = exp.saturating_add(jwt.leeway_secs() + 1);
        let horizon = self.session_expiry() + jwt.leeway_secs() + 1;
        if !jwt.verifies_expiration() || until > horizon {
            return Err(AuthError::NotRevocable);
        }
        Ok(until)
    }

    /// When the last token of a djangorestframework-jwt login can expire: refreshable (here)
    /// until `orig_iat` plus the refresh lifetime, each new token living one access lifetime.
    fn legacy_end(&self, claims: &Claims) -> i64 {
        let jwt = &self.inner.jwt;
        match claims.orig_iat {
            Some(orig_iat) => {
                let window = (jwt.refresh_ttl() + jwt.access_ttl()).as_secs() as i64;
                claims.exp.max(orig_iat.saturating_add(window))
            }
            None => claims.exp,
        }
    }

    /// Logout everywhere: bumps the user's token version in the database and the cache, ending
    /// every access and refresh token issued before.
    pub async fn logout_all(&self, user_id: i64) -> Result<(), AuthError> {
        let users = self.inner.users.as_ref().ok_or(AuthError::CannotIssue)?;
        match users.bump_token_version(user_id).await? {
            Some(version) => {
                self.inner.store.set_token_version(user_id, version).await?;
                Ok(())
            }
            None => Err(AuthError::UnknownUser),
        }
    }

    /// Call after changing a user's state in the database (deactivation, staff flag): the next
    /// request re-reads the token version instead of trusting the cache.
    pub async fn user_changed(&self, user_id: i64) -> Result<(), AuthError> {
        self.inner.store.forget_token_version(user_id).await?;
        Ok(())
    }
}

/// A djangorestframework-jwt refresh failure: these answer 400 `non_field_errors`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyRefreshError {
    /// The token itself failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No `orig_iat` in the token.
    #[error("orig_iat field is required.")]
    NoOrigIat,
    /// Past `orig_iat` + the refresh lifetime.
    #[error("Refresh has expired.")]
    Expired,
}

fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The session a typed token outside any session of ours stands for (one minted by
/// djangorestframework-simplejwt, and the access tokens we issue from a simplejwt refresh
/// token): its own `jti`, with its `exp` so that a logout with one of those access tokens
/// keeps the refresh token revoked until it expires. `None` without a `jti`.
fn token_session(claims: &Claims) -> Option<String> {
    let jti = claims.jti.as_deref()?;
    Some(format!("dj-{jti}.{}", claims.exp))
}

/// The `exp` a [`token_session`] name carries; `None` for the sessions of our logins.
fn django_refresh_end(family: &str) -> Option<i64> {
    let (_, exp) = family.strip_prefix("dj-")?.rsplit_once('.')?;
    exp.parse().ok()
}

/// The session of a djangorestframework-jwt token: its login (the user and `orig_iat`, kept by
/// every refresh), or the token alone (by its `exp`) when it cannot be refreshed. Two logins
/// of one user in the same second share it.
fn legacy_session(user_id: i64, claims: &Claims) -> String {
    match claims.orig_iat {
        Some(orig_iat) => format!("djl-{user_id}-o{orig_iat}"),
        None => format!("djl-{user_id}-e{}", claims.exp),
    }
}
