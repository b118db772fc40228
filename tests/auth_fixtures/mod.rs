//! Auth fixtures: the test JWT secret and its config, and users (an in-memory directory and
//! builders for plain, staff and inactive users).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;
use wxrest::BackendError;
use wxrest::auth::{AuthUser, Claims, JwtConfig, UserLookup};

/// The HS256 secret every test token is signed with.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

pub fn jwt() -> JwtConfig {
    JwtConfig::hs256(SECRET).unwrap()
}

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

/// Users kept in memory, passwords in clear (tests only).
#[derive(Default)]
pub struct MemoryUsers {
    users: Mutex<HashMap<i64, (AuthUser, String)>>,
}

impl MemoryUsers {
    pub fn with(users: impl IntoIterator<Item = (AuthUser, &'static str)>) -> Self {
        let map = users
            .into_iter()
            .map(|(u, p)| (u.id, (u, p.to_owned())))
            .collect();
        Self {
            users: Mutex::new(map),
        }
    }

    pub fn set_active(&self, id: i64, active: bool) {
        let mut users = self.users.lock().unwrap();
        if let Some((u, _)) = users.get_mut(&id) {
            u.is_active = active;
            u.token_version += 1;
        }
    }

    /// Changes the staff flags as a direct database update would (a Django admin sharing the
    /// database): the token version stays.
    pub fn set_staff_directly(&self, id: i64, staff: bool) {
        if let Some((u, _)) = self.users.lock().unwrap().get_mut(&id) {
            u.is_staff = staff;
            u.is_superuser = staff && u.is_superuser;
        }
    }

    pub fn remove(&self, id: i64) {
        self.users.lock().unwrap().remove(&id);
    }
}

pub fn user(id: i64, name: &str) -> AuthUser {
    AuthUser {
        id,
        username: name.into(),
        email: format!("{name}@example.com"),
        is_staff: false,
        is_superuser: false,
        is_active: true,
        token_version: 0,
    }
}

pub fn staff(id: i64, name: &str) -> AuthUser {
    AuthUser {
        is_staff: true,
        ..user(id, name)
    }
}

pub fn inactive(id: i64, name: &str) -> AuthUser {
    AuthUser {
        is_active: false,
        ..user(id, name)
    }
}

#[async_trait]
impl UserLookup for MemoryUsers {
    async fn by_id(&self, id: i64) -> Result<Option<AuthUser>, BackendError> {
        Ok(self.users.lock().unwrap().get(&id).map(|(u, _)| u.clone()))
    }
    async fn by_username(&self, username: &str) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .users
            .lock()
            .unwrap()
            .values()
            .find(|(u, _)| u.username == username)
            .map(|(u, _)| u.clone()))
    }
    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AuthUser>, BackendError> {
        Ok(self
            .users
            .lock()
            .unwrap()
            .values()
            .find(|(u, p)| u.username == username && p == password)
            .map(|(u, _)| u.clone()))
    }
    async fn bump_token_version(&self, id: i64) -> Result<Option<i64>, BackendError> {
        let mut users = self.users.lock().unwrap();
        Ok(users.get_mut(&id).map(|(u, _)| {
            u.token_version += 1;
            u.token_version
        }))
    }
}
