//! JWT configuration, claims and signing (documented in the `auth` module).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::AuthError;

/// The shortest HMAC secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// A start-up configuration error (never a request error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An HMAC secret shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes long (got {0})")]
    SecretTooShort(usize),
    /// A PEM key that could not be read.
    #[error("invalid {0} key: {1}")]
    InvalidKey(&'static str, String),
    /// A lifetime outside the allowed range.
    #[error("{0}")]
    Lifetime(String),
}

/// `user_id` as djangorestframework-jwt writes it: an integer, or a string for UUID keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserIdClaim {
    /// An integer primary key (ours, and Django's default).
    Int(i64),
    /// A string primary key (UUID).
    Str(String),
}

impl UserIdClaim {
    /// The integer id, when it is one (or a string holding one).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            UserIdClaim::Int(id) => Some(*id),
            UserIdClaim::Str(s) => s.parse().ok(),
        }
    }
}

/// Which kind of token a token of ours is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Authenticates requests.
    Access,
    /// Only buys a new pair at the refresh endpoint.
    Refresh,
}

/// The claims of a token. Tokens without `token_type` are djangorestframework-jwt's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's primary key.
    pub user_id: UserIdClaim,
    /// The username (djangorestframework-jwt resolves users by it).
    #[serde(default)]
    pub username: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// E-mail (drf-jwt always writes it, possibly empty).
    #[serde(default)]
    pub email: String,
    /// When the login that started this token chain happened (drf-jwt's refresh window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_iat: Option<i64>,
    /// Issued at, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Unique token id, for revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `access` or `refresh`; absent on djangorestframework-jwt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<TokenType>,
    /// The user's token version when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
    /// The session (one per login) every token of ours belongs to, however it was refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// The generation of a refresh token within its session (0, 1, 2, ...).
    #[serde(rename = "gen", default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Django's `is_staff`, on our access tokens.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_staff: bool,
    /// Django's `is_superuser`, on our access tokens.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_superuser: bool,
    /// Issuer, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Claims {
    /// True for djangorestframework-jwt tokens (no `token_type`).
    pub fn is_legacy(&self) -> bool {
        self.token_type.is_none()
    }
}

/// A freshly issued access/refresh pair.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    /// The access token (`token`, as djangorestframework-jwt names it).
    pub token: String,
    /// The refresh token.
    pub refresh: String,
    /// When the access token expires, unix seconds.
    #[serde(skip)]
    pub access_expires_at: i64,
    /// When the refresh token expires, unix seconds.
    #[serde(skip)]
    pub refresh_expires_at: i64,
}

/// JWT settings: algorithm and keys, lifetimes, header prefixes, leeway, issuer and audience.
///
/// Cheap to clone. The algorithm is pinned: tokens whose header names another algorithm
/// (including `none`) are rejected before any signature check.
#[derive(Clone)]
pub struct JwtConfig {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    algorithm: Algorithm,
    alg_name: &'static str,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    header_prefixes: Vec<String>,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    /// djangorestframework-simplejwt's `USER_ID_CLAIM` and `TOKEN_TYPE_CLAIM`, when not the
    /// defaults (`user_id`, `token_type`).
    claim_names: Option<(String, String)>,
    /// Tokens whose signature and claims were verified, by token text: a hit skips the
    /// signature and JSON work but still checks `exp`. Shared by clones.
    verified: moka::sync::Cache<Box<str>, Arc<Claims>>,
    /// HS256's precomputed key, for [`JwtConfig::decode`]'s direct path.
    hs256: Option<Hs256>,
}

/// HS256 verified directly: the HMAC key hashed into its inner and outer states once (each
/// verification clones that state instead of keying HMAC again), and the encodings of the
/// headers djangorestframework-jwt (PyJWT) and we write, recognised without parsing.
#[derive(Clone)]
struct Hs256 {
    key: Hmac<sha2::Sha256>,
    headers: [String; 2],
}

impl Hs256 {
    fn new(secret: &[u8]) -> Option<Self> {
        Some(Self {
            key: Hmac::new_from_slice(secret).ok()?,
            headers: [
                URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS256"}"#),
                URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            ],
        })
    }
}

/// How many verified tokens [`JwtConfig::decode_shared`] remembers.
pub const VERIFIED_CACHE_CAPACITY: u64 = 10_000;

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.inner.algorithm)
            .field("keys", &"<redacted>")
            .field("header_prefixes", &self.inner.header_prefixes)
            .field("access_lifetime", &self.inner.access_lifetime)
            .field("refresh_lifetime", &self.inner.refresh_lifetime)
            .finish()
    }
}

impl JwtConfig {
    /// HS256 with a shared secret of at least [`MIN_SECRET_LEN`] bytes (djangorestframework-jwt's
    /// default algorithm; use Django's `SECRET_KEY` to accept its tokens).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::SecretTooShort(secret.len()));
        }
        let mut jwt = Self::build(
            Algorithm::HS256,
            Some(EncodingKey::from_secret(secret)),
            DecodingKey::from_secret(secret),
        );
        jwt = jwt.with(|i| i.hs256 = Hs256::new(secret));
        Ok(jwt)
    }

    /// RS256 with a PEM public key, and the private key when this process issues tokens.
    pub fn rs256(public_pem: &[u8], private_pem: Option<&[u8]>) -> Result<Self, ConfigError> {
        let decoding = DecodingKey::from_rsa_pem(public_pem)
            .map_err(|e| ConfigError::InvalidKey("RSA public", e.to_string()))?;
        let encoding = private_pem
            .map(EncodingKey::from_rsa_pem)
            .transpose()
            .map_err(|e| ConfigError::InvalidKey("RSA private", e.to_string()))?;
        Ok(Self::build(Algorithm::RS256, encoding, decoding))
    }

    /// ES256 with a PEM public key, and the private key when this process issues tokens.
    pub fn es256(public_pem: &[u8], private_pem: Option<&[u8]>) -> Result<Self, ConfigError> {
        let decoding = DecodingKey::from_ec_pem(public_pem)
            .map_err(|e| ConfigError::InvalidKey("EC public", e.to_string()))?;
        let encoding = private_pem
            .map(EncodingKey::from_ec_pem)
            .transpose()
            .map_err(|e| ConfigError::InvalidKey("EC private", e.to_string()))?;
        Ok(Self::build(Algorithm::ES256, encoding, decoding))
    }

    fn build(algorithm: Algorithm, encoding: Option<EncodingKey>, decoding: DecodingKey) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let alg_name = match algorithm {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            _ => "unsupported",
        };
        Self {
            inner: Arc::new(Inner {
                algorithm,
                alg_name,
                encoding,
                decoding,
                validation,
                header_prefixes: vec!["JWT".into(), "Bearer".into()],
                access_lifetime: Duration::from_secs(60 * 60),
                refresh_lifetime: Duration::from_secs(7 * 24 * 60 * 60),
                issuer: None,
                audience: None,
                claim_names: None,
                verified: verified_cache(),
                hs256: None,
            }),
        }
    }

    /// Reads tokens minted by djangorestframework-simplejwt configured with other claim names
    /// (its `USER_ID_CLAIM` and `TOKEN_TYPE_CLAIM` settings; the defaults `user_id` and
    /// `token_type` need no configuration).
    ///
    /// ```
    /// use wxrest::auth::JwtConfig;
    /// let jwt = JwtConfig::hs256("django-insecure-a-secret-key-of-50-characters-long")
    ///     .unwrap()
    ///     .simplejwt_claims("uid", "typ");
    /// # let _ = jwt;
    /// ```
    #[must_use]
    pub fn simplejwt_claims(self, user_id_claim: &str, token_type_claim: &str) -> Self {
        let names = (user_id_claim.to_owned(), token_type_claim.to_owned());
        self.with(|i| i.claim_names = Some(names))
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        f(inner);
        // Settings changed: what was verified under the old ones no longer counts.
        inner.verified = verified_cache();
        self
    }

    /// `Authorization` header prefixes accepted, compared case-insensitively (default `JWT`,
    /// `Bearer`). The first one names the `WWW-Authenticate` challenge.
    #[must_use]
    pub fn header_prefixes<I, S>(self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let prefixes: Vec<String> = prefixes.into_iter().map(Into::into).collect();
        self.with(|i| i.header_prefixes = prefixes)
    }

    /// Access token lifetime (default 1 hour). Keep it between 5 minutes and 1 day.
    #[must_use]
    pub fn access_lifetime(self, lifetime: Duration) -> Self {
        self.with(|i| i.access_lifetime = lifetime)
    }

    /// Refresh token lifetime, and djangorestframework-jwt's refresh window counted from
    /// `orig_iat` (default 7 days).
    #[must_use]
    pub fn refresh_lifetime(self, lifetime: Duration) -> Self {
        self.with(|i| i.refresh_lifetime = lifetime)
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 0, as djangorestframework-jwt).
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        self.with(|i| i.validation.leeway = leeway.as_secs())
    }

    /// Verify `exp` (default on). Turning it off is for migrations from a backend that issued
    /// non-expiring tokens; it is logged at start-up by the caller's choice, not silently.
    #[must_use]
    pub fn verify_expiration(self, verify: bool) -> Self {
        self.with(|i| {
            i.validation.validate_exp = verify;
            if verify {
                i.validation.required_spec_claims.insert("exp".into());
            } else {
                i.validation.required_spec_claims.remove("exp");
            }
        })
    }

    /// Issue tokens with this `iss` and require it on incoming tokens.
    #[must_use]
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.with(|i| {
            i.validation.set_issuer(&[issuer.as_str()]);
            i.validation.required_spec_claims.insert("iss".into());
            i.issuer = Some(issuer);
        })
    }

    /// Issue tokens with this `aud` and require it on incoming tokens.
    #[must_use]
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.with(|i| {
            i.validation.set_audience(&[audience.as_str()]);
            i.validation.validate_aud = true;
            i.validation.required_spec_claims.insert("aud".into());
            i.audience = Some(audience);
        })
    }

    /// Validates the configured lifetimes (call at start-up).
    pub fn check(&self) -> Result<(), ConfigError> {
        let access = self.inner.access_lifetime.as_secs();
        if !(60..=24 * 60 * 60).contains(&access) {
            return Err(ConfigError::Lifetime(format!(
                "access token lifetime must be between 1 minute and 1 day (got {access} s)"
            )));
        }
        if self.inner.refresh_lifetime < self.inner.access_lifetime {
            return Err(ConfigError::Lifetime(
                "refresh token lifetime must not be shorter than the access lifetime".into(),
            ));
        }
        Ok(())
    }

    /// The accepted `Authorization` prefixes.
    pub fn prefixes(&self) -> &[String] {
        &self.inner.header_prefixes
    }

    /// The access token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.inner.access_lifetime
    }

    /// The refresh token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        self.inner.refresh_lifetime
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    pub(crate) fn issuer_claim(&self) -> Option<String> {
        self.inner.issuer.clone()
    }

    pub(crate) fn audience_claim(&self) -> Option<String> {
        self.inner.audience.clone()
    }

    /// Signs `claims` with the configured algorithm.
    ///
    /// ```
    /// use wxrest::auth::{Claims, JwtConfig, UserIdClaim};
    ///
    /// let jwt = JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!").unwrap();
    /// let claims = Claims {
    ///     user_id: UserIdClaim::Int(1), username: "alice".into(), exp: 4_070_908_800,
    ///     email: String::new(), orig_iat: None, iat: None, jti: None, token_type: None,
    ///     ver: None, fam: None, generation: None, is_staff: false, is_superuser: false, iss: None, aud: None,
    /// };
    /// let token = jwt.encode(&claims).unwrap();
    /// assert_eq!(jwt.decode(&token).unwrap().username, "alice");
    /// ```
    pub fn encode(&self, claims: &Claims) -> Result<String, AuthError> {
        let key = self.inner.encoding.as_ref().ok_or(AuthError::CannotIssue)?;
        let header = Header::new(self.inner.algorithm);
        jsonwebtoken::encode(&header, claims, key).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            AuthError::CannotIssue
        })
    }

    /// Verifies signature, algorithm, `exp`/`nbf` and issuer/audience, and returns the claims.
    ///
    /// Errors follow djangorestframework-jwt: an expired token is
    /// [`AuthError::TokenExpired`] (`Signature has expired.`); a malformed token or a bad
    /// signature is [`AuthError::DecodeError`] (`Error decoding signature.`); a token whose
    /// header names another algorithm, or that fails issuer/audience/`nbf`, is
    /// [`AuthError::InvalidToken`] (`Incorrect authentication credentials.`).
    pub fn decode(&self, token: &str) -> Result<Claims, AuthError> {
        if let Some(hs256) = self.direct_hs256() {
            return self.decode_hs256(token, hs256);
        }
        self.check_header(token)?;
        let decoded = match &self.inner.claim_names {
            None => {
                jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
                    .map(|data| data.claims)
            }
            Some((user_id, token_type)) => jsonwebtoken::decode::<
                serde_json::Map<String, serde_json::Value>,
            >(
                token, &self.inner.decoding, &self.inner.validation
            )
            .and_then(|data| {
                let mut claims = data.claims;
                for (theirs, ours) in [(user_id, "user_id"), (token_type, "token_type")] {
                    if theirs != ours
                        && let Some(value) = claims.remove(theirs.as_str())
                    {
                        claims.insert(ours.to_owned(), value);
                    }
                }
                serde_json::from_value(serde_json::Value::Object(claims))
                    .map_err(jsonwebtoken::errors::Error::from)
            }),
        };
        decoded.map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::TokenExpired,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::ImmatureSignature
            | ErrorKind::InvalidIssuer
            | ErrorKind::InvalidAudience
            | ErrorKind::InvalidSubject
            | ErrorKind::MissingRequiredClaim(_) => AuthError::InvalidToken,
            ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => AuthError::InvalidPayload,
            _ => AuthError::DecodeError,
        })
    }

    /// The HS256 key when the direct path checks exactly what `jsonwebtoken::decode` would:
    /// our claim names, and only the settings this type configures.
    fn direct_hs256(&self) -> Option<&Hs256> {
        let v = &self.inner.validation;
        let known = |claim: &String| matches!(claim.as_str(), "exp" | "iss" | "aud");
        (self.inner.claim_names.is_none()
            && v.algorithms == [Algorithm::HS256]
            && v.sub.is_none()
            && v.reject_tokens_expiring_in_less_than == 0
            && v.required_spec_claims.iter().all(known))
        .then_some(self.inner.hs256.as_ref())
        .flatten()
    }

    /// [`decode`](Self::decode) for HS256 in one pass: one base64 decode and one HMAC over
    /// the token, one parse of the claims, and `jsonwebtoken`'s checks in its order with its
    /// outcomes (`tests/jwt_fast_path.rs` holds the two side by side).
    fn decode_hs256(&self, token: &str, hs256: &Hs256) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::DecodeError);
        };
        if !hs256.headers.iter().any(|known| known == header) {
            // Another spelling of the header: `alg` pinned first, then the whole header as
            // `jsonwebtoken` reads it.
            self.check_header(token)?;
            let bytes = URL_SAFE_NO_PAD
                .decode(header)
                .map_err(|_| AuthError::DecodeError)?;
            serde_json::from_slice::<Header>(&bytes).map_err(|_| AuthError::InvalidPayload)?;
        }
        let mut mac_bytes = [0u8; 64];
        let len = URL_SAFE_NO_PAD
            .decode_slice(signature, &mut mac_bytes)
            .map_err(|_| AuthError::DecodeError)?;
        let mut mac = hs256.key.clone();
        mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
        // Constant-time comparison.
        mac.verify_slice(&mac_bytes[..len])
            .map_err(|_| AuthError::DecodeError)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::DecodeError)?;
        let claims: Claims =
            serde_json::from_slice(&bytes).map_err(|_| AuthError::InvalidPayload)?;
        let unchecked: Unchecked =
            serde_json::from_slice(&bytes).map_err(|_| AuthError::InvalidPayload)?;
        self.validate(&claims, unchecked.nbf)?;
        Ok(claims)
    }

    /// `jsonwebtoken`'s claim validation (`validation::validate`) on parsed claims, for the
    /// settings [`direct_hs256`](Self::direct_hs256) admits.
    fn validate(&self, claims: &Claims, nbf: NumericDate) -> Result<(), AuthError> {
        let v = &self.inner.validation;
        // `jsonwebtoken` reads `exp` as an unsigned number: a negative one is malformed.
        let exp = u64::try_from(claims.exp).ok();
        for required in &v.required_spec_claims {
            let present = match required.as_str() {
                "exp" => exp.is_some(),
                "iss" => claims.iss.is_some(),
                "aud" => claims.aud.is_some(),
                _ => continue,
            };
            if !present {
                return Err(AuthError::InvalidToken);
            }
        }
        if v.validate_exp || v.validate_nbf {
            let now = jsonwebtoken::get_current_timestamp();
            if v.validate_exp && exp.is_none() {
                return Err(AuthError::InvalidPayload);
            }
            if v.validate_nbf && nbf == NumericDate::Malformed {
                return Err(AuthError::InvalidPayload);
            }
            if let Some(exp) = exp
                && v.validate_exp
                && exp < now.saturating_sub(v.leeway)
            {
                return Err(AuthError::TokenExpired);
            }
            if let NumericDate::At(nbf) = nbf
                && v.validate_nbf
                && nbf > now.saturating_add(v.leeway)
            {
                return Err(AuthError::InvalidToken);
            }
        }
        if let (Some(iss), Some(expected)) = (&claims.iss, &v.iss)
            && !expected.contains(iss.as_str())
        {
            return Err(AuthError::InvalidToken);
        }
        if v.validate_aud {
            match (&claims.aud, &v.aud) {
                (Some(_), None) => return Err(AuthError::InvalidToken),
                (Some(aud), Some(expected)) if !expected.contains(aud.as_str()) => {
                    return Err(AuthError::InvalidToken);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The leeway accepted past `exp`, in seconds.
    pub fn leeway_secs(&self) -> i64 {
        self.inner.validation.leeway as i64
    }

    /// Whether `exp` is past, with the configured leeway (always false when expiration is not
    /// verified).
    pub fn is_expired(&self, exp: i64) -> bool {
        let v = &self.inner.validation;
        v.validate_exp && exp < now() - v.leeway as i64
    }

    /// Whether `exp` is verified (see [`verify_expiration`](Self::verify_expiration)).
    pub(crate) fn verifies_expiration(&self) -> bool {
        self.inner.validation.validate_exp
    }

    /// [`decode`](Self::decode), remembering verified tokens: presenting the same token again
    /// costs a cache lookup and the `exp` check instead of the signature and JSON work.
    /// Revocation is not cached here; [`TokenService`](super::TokenService) checks it on every
    /// request.
    pub fn decode_shared(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        if let Some(claims) = self.inner.verified.get(token) {
            if self.is_expired(claims.exp) {
                self.inner.verified.invalidate(token);
                return Err(AuthError::TokenExpired);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.decode(token)?);
        if token.len() <= 4096 {
            self.inner.verified.insert(token.into(), claims.clone());
        }
        Ok(claims)
    }

    /// Reads the header's `alg` before anything else: PyJWT treats an algorithm other than the
    /// configured one (including `none`) as an invalid token, not a decoding error.
    fn check_header(&self, token: &str) -> Result<(), AuthError> {
        #[derive(Deserialize)]
        struct RawHeader<'a> {
            #[serde(borrow)]
            alg: Option<std::borrow::Cow<'a, str>>,
        }
        let header_b64 = token.split('.').next().ok_or(AuthError::DecodeError)?;
        if token.split('.').count() != 3 {
            return Err(AuthError::DecodeError);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(header_b64.trim_end_matches('='))
            .map_err(|_| AuthError::DecodeError)?;
        let header: RawHeader<'_> =
            serde_json::from_slice(&bytes).map_err(|_| AuthError::DecodeError)?;
        match header.alg.as_deref() {
            Some(alg) if alg == self.inner.alg_name => Ok(()),
            Some(_) => Err(AuthError::InvalidToken),
            None => Err(AuthError::DecodeError),
        }
    }
}

/// A token's `nbf`, read as `jsonwebtoken` reads numeric dates: an unsigned integer, or a
/// finite non-negative float rounded; anything else present is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum NumericDate {
    #[default]
    Absent,
    At(u64),
    Malformed,
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a numeric date")
            }

            fn visit_u64<E>(self, value: u64) -> Result<NumericDate, E> {
                Ok(NumericDate::At(value))
            }

            fn visit_f64<E>(self, value: f64) -> Result<NumericDate, E> {
                if value.is_finite() && value >= 0.0 && value < u64::MAX as f64 {
                    Ok(NumericDate::At(value.round() as u64))
                } else {
                    Ok(NumericDate::Malformed)
                }
            }
        }
        Ok(deserializer
            .deserialize_any(Visitor)
            .unwrap_or(NumericDate::Malformed))
    }
}

/// What `jsonwebtoken` reads besides [`Claims`] to validate them, read as it reads them.
#[derive(Deserialize)]
struct Unchecked {
    #[serde(default)]
    nbf: NumericDate,
    #[serde(default)]
    #[allow(dead_code)] // read only for the parse's outcome
    sub: Subject,
}

/// `sub` as `jsonwebtoken` reads it: a string, anything else ignored where the JSON reader
/// can skip it (a number, a boolean) and a failed parse where it cannot (an array, an object).
#[derive(Default)]
struct Subject;

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let _ = Option::<String>::deserialize(deserializer);
        Ok(Subject)
    }
}

fn verified_cache() -> moka::sync::Cache<Box<str>, Arc<Claims>> {
    moka::sync::Cache::builder()
        .max_capacity(VERIFIED_CACHE_CAPACITY)
        .time_to_live(Duration::from_secs(300))
        .build()
}

/// Seconds since the unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
