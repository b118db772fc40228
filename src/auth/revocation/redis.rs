//! The Redis-backed [`RevocationStore`]: sessions shared by every instance.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{AccessState, DEFAULT_VERSION_TTL, RevocationStore, Rotation, UNKNOWN_VERSION};
use crate::auth::jwt::now;
use crate::error::BackendError;
use crate::redis_conn::{Keyspace, keyspace_constructors};

/// `KEYS[1]` the live family (its generation), `KEYS[2]` its revoked marker. Moves the family
/// to the next generation if `ARGV[1]` is its current one (1); on any other generation
/// revokes it for `ARGV[3]` seconds (2); 0 when it is revoked or unknown. One atomic round trip.
const ROTATE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[3])
  return 2
end
local ttl = redis.call('TTL', KEYS[1])
local wanted = tonumber(ARGV[2])
if ttl > wanted then wanted = ttl end
redis.call('SET', KEYS[1], tostring(tonumber(ARGV[1]) + 1), 'EX', wanted)
return 1
";

/// Ends the live family `KEYS[1]` and marks it revoked (`KEYS[2]`) for at least `ARGV[1]`
/// seconds, never shortening an earlier revocation.
const REVOKE_SCRIPT: &str = r"
redis.call('DEL', KEYS[1])
local ttl = redis.call('TTL', KEYS[2])
local wanted = tonumber(ARGV[1])
if ttl > wanted then wanted = ttl end
redis.call('SET', KEYS[2], 1, 'EX', wanted)
return 1
";

/// A Redis store shared by every instance: a logout on one is honoured by all at once.
///
/// Keys (under a configurable prefix, default `wxrest:`): `fam:{id}` (a live session's
/// generation) expires with its refresh token; `famx:{id}` (a revoked session) one access-token
/// lifetime after the revocation (a revoked token minted by Django: at its own `exp`); `tv:{user}` after the version TTL ([`DEFAULT_VERSION_TTL`]
/// unless set).
///
/// When Redis is unreachable the store returns [`BackendError::Redis`] and authentication
/// fails closed (503), so a logged-out token is never accepted by mistake.
///
/// ```no_run
/// use wxrest::auth::{JwtConfig, RedisRevocationStore, TokenService};
///
/// let store = RedisRevocationStore::open("redis://127.0.0.1:6379")?.prefix("shop:");
/// let tokens = TokenService::new(JwtConfig::hs256("a-secret-of-at-least-32-bytes-long!!")?)
///     .with_store(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RedisRevocationStore {
    redis: Keyspace,
    version_ttl: Duration,
    rotate: Arc<redis::Script>,
    revoke: Arc<redis::Script>,
}

impl RedisRevocationStore {
    keyspace_constructors!(timeout: 2 s, prefix: "wxrest:");

    fn on(redis: Keyspace) -> Self {
        Self {
            redis,
            version_ttl: DEFAULT_VERSION_TTL,
            rotate: Arc::new(redis::Script::new(ROTATE_SCRIPT)),
            revoke: Arc::new(redis::Script::new(REVOKE_SCRIPT)),
        }
    }

    /// How long a cached token version is trusted (default [`DEFAULT_VERSION_TTL`]).
    #[must_use]
    pub fn version_ttl(mut self, ttl: Duration) -> Self {
        self.version_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    fn key(&self, kind: &str, id: impl std::fmt::Display) -> String {
        self.redis.key(format_args!("{kind}:{id}"))
    }

    async fn set_version(&self, user_id: i64, version: i64, nx: bool) -> Result<(), BackendError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("tv", user_id))
            .arg(version)
            .arg("EX")
            .arg(self.version_ttl.as_secs());
        if nx {
            cmd.arg("NX");
        }
        let _: Option<String> = cmd.query_async(&mut self.redis.conn()).await?;
        Ok(())
    }
}

fn seconds_until(expires_at: i64) -> i64 {
    (expires_at - now()).max(1)
}

#[async_trait]
impl RevocationStore for RedisRevocationStore {
    async fn access_state(&self, family: &str, user_id: i64) -> Result<AccessState, BackendError> {
        let (version, revoked): (Option<i64>, bool) = redis::pipe()
            .cmd("GET")
            .arg(self.key("tv", user_id))
            .cmd("EXISTS")
            .arg(self.key("famx", family))
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(AccessState {
            revoked,
            token_version: version.filter(|v| *v != UNKNOWN_VERSION),
        })
    }

    async fn start_family(&self, family: &str, expires_at: i64) -> Result<(), BackendError> {
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key("fam", family))
            .arg(0)
            .arg("EX")
            .arg(seconds_until(expires_at))
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    async fn rotate_family(
        &self,
        family: &str,
        generation: u64,
        expires_at: i64,
        revoked_until: i64,
    ) -> Result<Rotation, BackendError> {
        let outcome: i64 = self
            .rotate
            .key(self.key("fam", family))
            .key(self.key("famx", family))
            .arg(generation.to_string())
            .arg(seconds_until(expires_at))
            .arg(seconds_until(revoked_until))
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(match outcome {
            1 => Rotation::Rotated,
            2 => Rotation::Reused,
            _ => Rotation::Ended,
        })
    }

    async fn session_live(&self, family: &str) -> Result<bool, BackendError> {
        let (live, revoked): (bool, bool) = redis::pipe()
            .cmd("EXISTS")
            .arg(self.key("fam", family))
            .cmd("EXISTS")
            .arg(self.key("famx", family))
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(live && !revoked)
    }

    async fn revoke_family(&self, family: &str, revoked_until: i64) -> Result<(), BackendError> {
        let _: i64 = self
            .revoke
            .key(self.key("fam", family))
            .key(self.key("famx", family))
            .arg(seconds_until(revoked_until))
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    async fn fill_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        self.set_version(user_id, version, true).await
    }

    async fn set_token_version(&self, user_id: i64, version: i64) -> Result<(), BackendError> {
        self.set_version(user_id, version, false).await
    }

    async fn forget_token_version(&self, user_id: i64) -> Result<(), BackendError> {
        self.set_version(user_id, UNKNOWN_VERSION, false).await
    }
}
