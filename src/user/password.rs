//! Password hashing: argon2id with the crate's default parameters, stored as a PHC string
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
//!
//! Hashing is deliberately slow, so both functions run on tokio's blocking pool.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wxrest::BackendError> {
//! use wxrest::user::password;
//!
//! let hash = password::hash("correct horse").await?;
//! assert!(hash.starts_with("$argon2id$"));
//! assert!(password::verify("correct horse", Some(&hash)).await);
//! assert!(!password::verify("wrong", Some(&hash)).await);
//! assert!(!password::verify("anything", None).await); // still costs one verification
//! # Ok(())
//! # }
//! ```

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::BackendError;

/// The prefix of a stored password that can never match (Django's convention for
/// `set_unusable_password`): accounts that log in through WeChat only.
pub const UNUSABLE_PREFIX: char = '!';

/// A hash of a random password with the same parameters as real ones, verified against when
/// there is no real hash, so a missing user costs as much time as a wrong password.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let secret = uuid::Uuid::new_v4();
    hash_blocking(secret.as_bytes()).ok()
});

fn hash_blocking(password: &[u8]) -> Result<String, BackendError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|err| BackendError::Other(format!("password hashing failed: {err}")))
}

/// Hashes `password` into a PHC string.
pub async fn hash(password: &str) -> Result<String, BackendError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
        .await
        .map_err(|err| BackendError::Other(format!("password hashing task failed: {err}")))?
}

/// A stored password value that no password matches, for accounts without one.
pub fn unusable() -> String {
    format!("{UNUSABLE_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// Whether a stored password value is a real hash (not empty, not [`unusable`]).
pub fn is_usable(stored: &str) -> bool {
    !stored.is_empty() && !stored.starts_with(UNUSABLE_PREFIX)
}

/// Whether `password` matches `stored`.
///
/// When `stored` is `None`, empty, unusable or malformed, a verification against a dummy hash
/// is still run and `false` returned, so callers take the same time for unknown users.
pub async fn verify(password: &str, stored: Option<&str>) -> bool {
    let password = password.to_owned();
    let stored = stored.filter(|s| is_usable(s)).map(str::to_owned);
    tokio::task::spawn_blocking(move || verify_blocking(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

fn verify_blocking(password: &str, stored: Option<&str>) -> bool {
    let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
    match parsed {
        Some(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref()
                && let Ok(hash) = PasswordHash::new(dummy)
            {
                let _ = Argon2::default().verify_password(password.as_bytes(), &hash);
            }
            false
        }
    }
}
