//! The account types: what a user is, what creating one needs, what WeChat's login answered
//! and which profile fields a request may change.

use serde::{Deserialize, Serialize, Serializer};

use serde_json::Map;

use crate::auth::AuthUser;
use crate::db::SqlValue;
use crate::error::ApiError;
use crate::validation::{FieldError, FieldErrors, Fields};

/// A user account, as the profile endpoints return it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use wxrest::{db::Db, user::{UserStore, WxSession}};
/// # let users = UserStore::setup(Db::connect("sqlite::memory:").await?).await?;
/// let (user, _) = users.upsert_by_openid(&WxSession::new("openid-1", "sk"), None).await?;
/// let json = serde_json::to_value(&user)?;
/// assert_eq!(json["username"], "openid-1");
/// assert!(json["date_joined"].as_str().is_some_and(|s| s.ends_with('Z')));
/// assert!(json.get("openid").is_none() && json.get("token_version").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Django's username; for WeChat users, their openid.
    pub username: String,
    /// E-mail, empty when unknown.
    pub email: String,
    /// May use the admin endpoints.
    pub is_staff: bool,
    /// Has every permission.
    pub is_superuser: bool,
    /// Inactive users cannot log in.
    pub is_active: bool,
    /// When the account was created (unix seconds; serialized as RFC 3339).
    #[serde(serialize_with = "serialize_timestamp")]
    pub date_joined: i64,
    /// The last login (unix seconds; serialized as RFC 3339 or `null`).
    #[serde(serialize_with = "serialize_optional_timestamp")]
    pub last_login: Option<i64>,
    /// The WeChat openid for this app (unique). Never serialized.
    #[serde(skip_serializing)]
    pub openid: Option<String>,
    /// The WeChat unionid across the developer's apps. Never serialized.
    #[serde(skip_serializing)]
    pub unionid: Option<String>,
    /// WeChat nickname.
    pub nickname: String,
    /// WeChat avatar URL.
    pub avatar_url: String,
    /// 0 unknown, 1 male, 2 female (WeChat's convention).
    pub gender: i64,
    /// Country from the WeChat profile.
    pub country: String,
    /// Province from the WeChat profile.
    pub province: String,
    /// City from the WeChat profile.
    pub city: String,
    /// Language from the WeChat profile (e.g. `zh_CN`).
    pub language: String,
    /// Phone number without country code, empty when unknown.
    pub phone: String,
    /// Phone country code (e.g. `86`), empty when unknown.
    pub phone_country_code: String,
    /// Incremented to end every token issued before. Never serialized.
    #[serde(skip_serializing)]
    pub token_version: i64,
}

fn rfc3339(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn serialize_timestamp<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
    match rfc3339(*secs) {
        Some(text) => s.serialize_str(&text),
        None => s.serialize_none(),
    }
}

fn serialize_optional_timestamp<S: Serializer>(
    secs: &Option<i64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secs.and_then(rfc3339) {
        Some(text) => s.serialize_str(&text),
        None => s.serialize_none(),
    }
}

impl From<&User> for AuthUser {
    fn from(user: &User) -> Self {
        AuthUser {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            is_active: user.is_active,
            token_version: user.token_version,
        }
    }
}

impl From<User> for AuthUser {
    fn from(user: User) -> Self {
        AuthUser::from(&user)
    }
}

/// A password account to create with [`UserStore::create_user`](super::UserStore::create_user).
///
/// ```
/// use wxrest::user::NewUser;
/// let staff = NewUser::new("alice").password("hunter2-hunter2").email("a@example.com").staff(true);
/// assert_eq!(staff.username, "alice");
/// ```
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// The unique username.
    pub username: String,
    /// The password, `None` for an account that cannot log in with one.
    pub password: Option<String>,
    /// E-mail, may be empty.
    pub email: String,
    /// Django's `is_staff`.
    pub is_staff: bool,
    /// Django's `is_superuser`.
    pub is_superuser: bool,
}

impl NewUser {
    /// An active, non-staff account without a password.
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            ..Self::default()
        }
    }

    /// Sets the password.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the e-mail.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets `is_staff`.
    #[must_use]
    pub fn staff(mut self, is_staff: bool) -> Self {
        self.is_staff = is_staff;
        self
    }

    /// Sets `is_superuser`.
    #[must_use]
    pub fn superuser(mut self, is_superuser: bool) -> Self {
        self.is_superuser = is_superuser;
        self
    }
}

/// What WeChat's `code2session` answered for a login (the WeChat client returns it, the user
/// store keeps it).
///
/// `Debug` does not show the `session_key`; never return it to the mini-program or log it.
///
/// ```
/// let session = wxrest::user::WxSession::new("openid-1", "secret-session-key");
/// assert!(!format!("{session:?}").contains("secret-session-key"));
/// ```
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct WxSession {
    /// The user's openid for this app.
    pub openid: String,
    /// The unionid, when the app is bound to an open platform account.
    #[serde(default)]
    pub unionid: Option<String>,
    /// The session key (kept server-side only).
    pub session_key: String,
}

impl std::fmt::Debug for WxSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WxSession")
            .field("openid", &self.openid)
            .field("session_key", &"[redacted]")
            .field("unionid", &self.unionid)
            .finish()
    }
}

impl WxSession {
    /// A session without a unionid.
    pub fn new(openid: impl Into<String>, session_key: impl Into<String>) -> Self {
        Self {
            openid: openid.into(),
            unionid: None,
            session_key: session_key.into(),
        }
    }

    /// Sets the unionid.
    #[must_use]
    pub fn unionid(mut self, unionid: impl Into<String>) -> Self {
        self.unionid = Some(unionid.into());
        self
    }
}

/// Profile fields to change; `None` leaves a field as it is.
///
/// Accepts WeChat's `userInfo` spelling too (`nickName`, `avatarUrl`).
///
/// ```
/// use wxrest::user::ProfileUpdate;
/// let update: ProfileUpdate =
///     serde_json::from_str(r#"{"nickName": "Tea Lover", "gender": 2}"#).unwrap();
/// assert_eq!(update.nickname.as_deref(), Some("Tea Lover"));
/// assert!(update.validate().is_ok());
///
/// let too_long = ProfileUpdate { nickname: Some("x".repeat(65)), ..Default::default() };
/// let err = too_long.validate().unwrap_err();
/// assert_eq!(err.status(), 400);
/// assert_eq!(
///     err.body(),
///     serde_json::json!({"nickname": ["Ensure this field has no more than 64 characters."]})
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ProfileUpdate {
    /// Nickname, at most 64 characters.
    #[serde(alias = "nickName")]
    pub nickname: Option<String>,
    /// Avatar URL, at most 512 characters.
    #[serde(alias = "avatarUrl")]
    pub avatar_url: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    pub gender: Option<i64>,
    /// Country, at most 64 characters.
    pub country: Option<String>,
    /// Province, at most 64 characters.
    pub province: Option<String>,
    /// City, at most 64 characters.
    pub city: Option<String>,
    /// Language, at most 32 characters.
    pub language: Option<String>,
}

impl ProfileUpdate {
    /// Checks lengths and the gender choice, answering DRF's field errors
    /// (`{"nickname": ["Ensure this field has no more than 64 characters."]}`).
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = FieldErrors::new();
        let limits: [(&str, &Option<String>, usize); 6] = [
            ("nickname", &self.nickname, 64),
            ("avatar_url", &self.avatar_url, 512),
            ("country", &self.country, 64),
            ("province", &self.province, 64),
            ("city", &self.city, 64),
            ("language", &self.language, 32),
        ];
        for (field, value, max) in limits {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                errors.add(field, FieldError::MaxLength(max));
            }
        }
        if let Some(url) = &self.avatar_url
            && !url.is_empty()
            && !errors.has("avatar_url")
            && !is_web_url(url)
        {
            // Only web addresses: a `javascript:` or `data:` avatar is a script waiting for
            // a web admin page to render it.
            errors.add("avatar_url", FieldError::NotAUrl);
        }
        if let Some(gender) = self.gender
            && !(0..=2).contains(&gender)
        {
            errors.add("gender", FieldError::InvalidChoice(gender.to_string()));
        }
        errors.finish()
    }

    /// Reads a request body (or a mini-program `userInfo` object) the DRF way: the snake_case
    /// names or WeChat's camelCase ones (`nickName`, `avatarUrl`), `gender` as an integer or
    /// its text; unknown fields are ignored; then [`validate`](Self::validate)s.
    ///
    /// ```
    /// use serde_json::json;
    /// use wxrest::user::ProfileUpdate;
    ///
    /// let body = json!({"nickName": "Tea", "gender": "2", "unknown": 1});
    /// let update = ProfileUpdate::from_json(body.as_object().unwrap())?;
    /// assert_eq!(update.nickname.as_deref(), Some("Tea"));
    /// assert_eq!(update.gender, Some(2));
    ///
    /// let bad = json!({"gender": "male"});
    /// let err = ProfileUpdate::from_json(bad.as_object().unwrap()).unwrap_err();
    /// assert_eq!(err.body(), json!({"gender": ["A valid integer is required."]}));
    /// # Ok::<(), wxrest::ApiError>(())
    /// ```
    ///
    /// # Errors
    /// 400 with DRF's field map (`{"field": ["message"]}`) for wrong types and failed checks.
    pub fn from_json(data: &Map<String, serde_json::Value>) -> Result<Self, ApiError> {
        let mut fields = Fields::new(data);
        let update = ProfileUpdate {
            nickname: text_field(&mut fields, data, "nickname", Some("nickName")),
            avatar_url: text_field(&mut fields, data, "avatar_url", Some("avatarUrl")),
            gender: fields.optional_int("gender"),
            country: text_field(&mut fields, data, "country", None),
            province: text_field(&mut fields, data, "province", None),
            city: text_field(&mut fields, data, "city", None),
            language: text_field(&mut fields, data, "language", None),
        };
        fields.finish()?;
        update.validate()?;
        Ok(update)
    }

    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// The given fields as (column, value) pairs.
    pub(crate) fn fields(&self) -> Vec<(&'static str, SqlValue)> {
        let text = |column: &'static str, value: &Option<String>| {
            value.clone().map(|v| (column, SqlValue::Text(v)))
        };
        [
            text("nickname", &self.nickname),
            text("avatar_url", &self.avatar_url),
            self.gender.map(|g| ("gender", SqlValue::Int(g))),
            text("country", &self.country),
            text("province", &self.province),
            text("city", &self.city),
            text("language", &self.language),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// An absolute `http` or `https` URL with a host (DRF's `URLField`, web schemes only).
fn is_web_url(text: &str) -> bool {
    match text.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// A string field under its name or its alias (the name wins when both are sent).
fn text_field(
    fields: &mut Fields<'_>,
    data: &Map<String, serde_json::Value>,
    name: &str,
    alias: Option<&str>,
) -> Option<String> {
    let key = match alias {
        Some(alias) if !data.contains_key(name) && data.contains_key(alias) => alias,
        _ => name,
    };
    fields.optional_str(key)
}
