//! Validating request fields the DRF way, in one place: [`FieldError`] holds DRF's messages
//! with their codes (DRF's `default_error_messages`), [`FieldErrors`] collects them into the
//! 400 `{"field": ["message", ...]}` body, and [`Fields`] reads a JSON body field by field
//! into that collector. The body parsers, the user profile and the viewsets validate through
//! them.
//!
//! ```
//! use axum::{Json, routing::post, Router};
//! use serde_json::{json, Value};
//! use wxrest::ApiError;
//! use wxrest::parsers::JsonBody;
//! use wxrest::validation::{FieldError, Fields};
//!
//! async fn login(JsonBody(data): JsonBody) -> Result<Json<Value>, ApiError> {
//!     let mut fields = Fields::new(&data);
//!     let username = fields.required_str("username");
//!     let password = fields.required_str("password");
//!     if password.len() > 128 {
//!         fields.error("password", FieldError::MaxLength(128));
//!     }
//!     fields.finish()?; // 400 {"username": ["This field is required."]} ...
//!     Ok(Json(json!({ "user": username, "len": password.len() })))
//! }
//! let app: Router = Router::new().route("/login", post(login));
//! ```

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::{ApiError, NULL_CHARACTERS};

/// Why one field is invalid: DRF's message ([`Display`](std::fmt::Display)) and its stable
/// [`code`](Self::code).
///
/// ```
/// use wxrest::validation::FieldError;
///
/// assert_eq!(FieldError::Required.to_string(), "This field is required.");
/// assert_eq!(FieldError::Required.code(), "required");
/// assert_eq!(
///     FieldError::MaxLength(64).to_string(),
///     "Ensure this field has no more than 64 characters."
/// );
/// assert_eq!(FieldError::MaxLength(64).code(), "max_length");
///
/// let err = FieldError::Blank.for_field("code");
/// assert_eq!(err.body(), serde_json::json!({"code": ["This field may not be blank."]}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A required field is missing.
    #[error("This field is required.")]
    Required,
    /// `null` where it is not allowed.
    #[error("This field may not be null.")]
    Null,
    /// An empty (or all-blank) string where it is not allowed.
    #[error("This field may not be blank.")]
    Blank,
    /// Not a string (DRF's `CharField`).
    #[error("Not a valid string.")]
    NotAString,
    /// Not an integer (DRF's `IntegerField`).
    #[error("A valid integer is required.")]
    NotAnInteger,
    /// Not a boolean (DRF's `BooleanField`).
    #[error("Must be a valid boolean.")]
    NotABoolean,
    /// Not a date-time (DRF's `DateTimeField`, ISO 8601).
    #[error(
        "Datetime has wrong format. Use one of these formats instead: \
         YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
    )]
    NotADatetime,
    /// Not a web URL (DRF's `URLField`).
    #[error("Enter a valid URL.")]
    NotAUrl,
    /// Not an object (DRF's `DictField`).
    #[error("Expected a dictionary of items.")]
    NotADict,
    /// Text containing a NUL character (DRF's `ProhibitNullCharactersValidator`).
    #[error("{}", NULL_CHARACTERS)]
    NullCharacters,
    /// Longer than this many characters.
    #[error("Ensure this field has no more than {0} characters.")]
    MaxLength(usize),
    /// Shorter than this many characters.
    #[error("Ensure this field has at least {0} characters.")]
    MinLength(usize),
    /// Greater than this value.
    #[error("Ensure this value is less than or equal to {0}.")]
    MaxValue(i64),
    /// Less than this value.
    #[error("Ensure this value is greater than or equal to {0}.")]
    MinValue(i64),
    /// Not one of the choices; holds the input as sent.
    #[error("\"{0}\" is not a valid choice.")]
    InvalidChoice(String),
    /// Any other message, with code `invalid`.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
}

impl FieldError {
    /// DRF's code for this error (`required`, `null`, `blank`, `invalid`, `max_length`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Null => "null",
            Self::Blank => "blank",
            Self::NotADict => "not_a_dict",
            Self::NullCharacters => "null_characters_not_allowed",
            Self::MaxLength(_) => "max_length",
            Self::MinLength(_) => "min_length",
            Self::MaxValue(_) => "max_value",
            Self::MinValue(_) => "min_value",
            Self::InvalidChoice(_) => "invalid_choice",
            Self::NotAString
            | Self::NotAnInteger
            | Self::NotABoolean
            | Self::NotADatetime
            | Self::NotAUrl
            | Self::Invalid(_) => "invalid",
        }
    }

    /// The 400 response with this error as `field`'s only message.
    pub fn for_field(self, field: &str) -> ApiError {
        let mut errors = FieldErrors::new();
        errors.add(field, self);
        errors.into()
    }
}

impl From<&'static str> for FieldError {
    /// A message of your own (code `invalid`).
    fn from(message: &'static str) -> Self {
        Self::Invalid(Cow::Borrowed(message))
    }
}

impl From<String> for FieldError {
    /// A message of your own (code `invalid`).
    fn from(message: String) -> Self {
        Self::Invalid(Cow::Owned(message))
    }
}

/// Field errors collected while validating a request, rendered as DRF's 400 body
/// `{"field": ["message", ...]}` (each field's messages in the order added).
///
/// ```
/// use wxrest::ApiError;
/// use wxrest::validation::{FieldError, FieldErrors};
///
/// let mut errors = FieldErrors::new();
/// errors.add("name", FieldError::Required);
/// errors.add("price", FieldError::MinValue(0));
/// assert!(errors.has("name"));
/// let err = errors.finish().unwrap_err();
/// assert_eq!(err.status(), 400);
/// assert_eq!(
///     err.body(),
///     serde_json::json!({
///         "name": ["This field is required."],
///         "price": ["Ensure this value is greater than or equal to 0."],
///     })
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    errors: Vec<(String, FieldError)>,
}

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `error` against `field`.
    pub fn add(&mut self, field: impl Into<String>, error: impl Into<FieldError>) {
        self.errors.push((field.into(), error.into()));
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.errors.iter().any(|(name, _)| name == field)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The recorded errors, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldError)> {
        self.errors
            .iter()
            .map(|(field, error)| (field.as_str(), error))
    }

    /// `Ok` when nothing was recorded, else the 400 with every error.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into())
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::validation(
            errors
                .errors
                .into_iter()
                .map(|(field, error)| (field, error.to_string())),
        )
    }
}

/// Reads fields from a request body (DRF's serializer fields, as methods), collecting
/// [`FieldErrors`].
#[derive(Debug)]
pub struct Fields<'a> {
    data: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Self {
            data,
            errors: FieldErrors::new(),
        }
    }

    /// Records `error` (a [`FieldError`] or a message of your own) against `field`.
    pub fn error(&mut self, field: &str, error: impl Into<FieldError>) {
        self.errors.add(field, error);
    }

    /// Whether `field` has an error already.
    pub fn has_error(&self, field: &str) -> bool {
        self.errors.has(field)
    }

    /// A required, non-blank string (`""` and a missing field are errors). Numbers are taken
    /// as their text, as DRF's `CharField` does.
    pub fn required_str(&mut self, field: &str) -> String {
        match self.data.get(field) {
            None | Some(Value::Null) => {
                let error = if self.data.contains_key(field) {
                    FieldError::Null
                } else {
                    FieldError::Required
                };
                self.error(field, error);
                String::new()
            }
            Some(value) => match self.string(field, value) {
                Some(s) if s.trim().is_empty() => {
                    self.error(field, FieldError::Blank);
                    String::new()
                }
                Some(s) => s,
                None => String::new(),
            },
        }
    }

    /// An optional string (`None` when absent or null).
    pub fn optional_str(&mut self, field: &str) -> Option<String> {
        match self.data.get(field) {
            None | Some(Value::Null) => None,
            Some(value) => self.string(field, value),
        }
    }

    /// An optional integer: a JSON integer or its text, as DRF's `IntegerField`.
    pub fn optional_int(&mut self, field: &str) -> Option<i64> {
        let parsed = match self.data.get(field) {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        if parsed.is_none() {
            self.error(field, FieldError::NotAnInteger);
        }
        parsed
    }

    /// An optional object.
    pub fn optional_object(&mut self, field: &str) -> Option<&'a Map<String, Value>> {
        match self.data.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                self.error(field, FieldError::NotADict);
                None
            }
        }
    }

    fn string(&mut self, field: &str, value: &Value) -> Option<String> {
        match value {
            // DRF's `ProhibitNullCharactersValidator`: no database stores them as text.
            Value::String(s) if s.contains('\0') => {
                self.error(field, FieldError::NullCharacters);
                None
            }
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.error(field, FieldError::NotAString);
                None
            }
        }
    }

    /// `Ok` when no error was recorded, else the 400 with every error.
    pub fn finish(self) -> Result<(), ApiError> {
        self.errors.finish()
    }
}
