//! Auth fixtures: the test JWT secret and its config, and users (an in-memory directory and
//! builders for plain, staff and inactive users) from `wxrest::testing`, and drf-jwt claims.
#![allow(dead_code)]

use serde_json::json;
use wxrest::auth::Claims;

/// The test JWT secret, its config and in-memory users: the public test kit's
/// (`wxrest::testing`), one copy for the crate's tests and its users'.
#[allow(unused_imports)] // each test binary uses some of them
pub use wxrest::testing::{
    MemoryUsers, TEST_SECRET as SECRET, inactive, staff, test_jwt as jwt, user,
};

/// Seconds since the epoch, as tokens count time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a djangorestframework-jwt token of user 1, as drf-jwt writes its payload:
/// user id, username, e-mail, expiry and the `orig_iat` of its refresh window (no `jti`, type
/// or version).
pub fn legacy_claims(username: &str, exp: i64, orig_iat: Option<i64>) -> Claims {
    let payload = json!({
        "user_id": 1, "username": username, "email": "", "exp": exp, "orig_iat": orig_iat
    });
    serde_json::from_value(payload).unwrap()
}
