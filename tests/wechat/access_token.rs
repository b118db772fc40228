//! The access_token lifecycle against FakeWeChat: caching, single flight, refetch on 40001,
//! stable vs classic endpoints, and sharing through Redis.
#![cfg(feature = "fake-wechat")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wxrest::wechat::{
    AccessTokenMode, AccessTokenStore, CachedToken, FakeWeChat, MemoryTokenStore, RedisTokenStore,
    WxClient, WxError,
};

use crate::databases::redis_url;

fn unique_appid(prefix: &str) -> String {
    format!("wx{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// `n` concurrent `access_token()` calls spread over `clients` all get the same token.
async fn concurrent_callers_get_one_token(clients: &[WxClient], n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            tokio::spawn(async move { client.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1);
}

/// Two clients of `fake` (two app instances), each with its own connection to Redis at `url`.
fn two_redis_clients(fake: &FakeWeChat, url: &str) -> (WxClient, WxClient) {
    let client = || {
        WxClient::new(fake.config())
            .unwrap()
            .with_token_store(RedisTokenStore::open(url).unwrap())
    };
    (client(), client())
}

#[tokio::test]
async fn access_token_is_cached_between_calls() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config()).unwrap();
    let first = client.access_token().await.unwrap();
    let second = client.access_token().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.token_calls(), 1);
}

#[tokio::test]
async fn fifty_concurrent_callers_fetch_once() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config()).unwrap();
    concurrent_callers_get_one_token(&[client], 50).await;
    assert_eq!(fake.token_calls(), 1);
}

#[tokio::test]
async fn stable_token_endpoint_is_used_by_default() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config()).unwrap();
    client.access_token().await.unwrap();
    assert_eq!(
        (fake.stable_token_calls(), fake.classic_token_calls()),
        (1, 0)
    );
}

#[tokio::test]
async fn classic_token_endpoint_is_used_when_configured() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config().token_mode(AccessTokenMode::Classic)).unwrap();
    client.access_token().await.unwrap();
    fake.script_phone("p", "13800138000");
    client.phone_number("p").await.unwrap();
    assert_eq!(
        (fake.stable_token_calls(), fake.classic_token_calls()),
        (0, 1)
    );
}

#[tokio::test]
async fn invalidated_token_is_refetched_once_and_the_call_succeeds() {
    let fake = FakeWeChat::start().await;
    fake.script_phone("p", "13800138000");
    let client = WxClient::new(fake.config()).unwrap();
    let before = client.access_token().await.unwrap();
    fake.invalidate_access_tokens();
    let info = client.phone_number("p").await.unwrap();
    assert_eq!(info.pure_phone_number, "13800138000");
    assert_eq!(fake.token_calls(), 2, "one refetch");
    assert_eq!(fake.phone_calls(), 2, "the call retried once");
    assert_ne!(client.access_token().await.unwrap(), before);
}

#[tokio::test]
async fn token_rejected_twice_is_invalid_credential() {
    let fake = FakeWeChat::start().await;
    fake.script_phone("p", "13800138000");
    // A provider that always hands out a token WeChat refuses.
    let fetches = Arc::new(AtomicU64::new(0));
    let counter = fetches.clone();
    let client = WxClient::new(fake.config())
        .unwrap()
        .with_token_provider(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(CachedToken::expiring_in("revoked-token", 7200)) }
        });
    assert_eq!(
        client.phone_number("p").await,
        Err(WxError::InvalidCredential)
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "fetched, then refetched once"
    );
    assert_eq!(fake.phone_calls(), 2, "no retry beyond the one");
}

#[tokio::test]
async fn token_provider_replaces_fetching_from_wechat() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config())
        .unwrap()
        .with_token_provider(|| async { Ok(CachedToken::expiring_in("from-provider", 7200)) });
    assert_eq!(client.access_token().await.unwrap(), "from-provider");
    assert_eq!(fake.token_calls(), 0);
}

#[tokio::test]
async fn wrong_secret_token_fetch_is_invalid_credential() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config().secret("nope-wrong-secret")).unwrap();
    let err = client.access_token().await.unwrap_err();
    assert_eq!(err, WxError::InvalidCredential);
    assert!(!format!("{err} {err:?}").contains("nope-wrong-secret"));
}

#[tokio::test]
async fn nearly_expired_token_in_store_is_not_used() {
    let fake = FakeWeChat::start().await;
    let store = Arc::new(MemoryTokenStore::new());
    store
        .set(
            fake.appid(),
            &CachedToken::expiring_in("almost-expired", 200),
        )
        .await
        .unwrap();
    let client = WxClient::new(fake.config())
        .unwrap()
        .with_token_store(store.clone());
    assert_ne!(client.access_token().await.unwrap(), "almost-expired");
    assert_eq!(fake.token_calls(), 1);
}

#[tokio::test]
async fn clients_sharing_a_memory_store_fetch_once() {
    let fake = FakeWeChat::start().await;
    let store: Arc<dyn AccessTokenStore> = Arc::new(MemoryTokenStore::new());
    let a = WxClient::new(fake.config())
        .unwrap()
        .with_token_store(store.clone());
    let b = WxClient::new(fake.config())
        .unwrap()
        .with_token_store(store);
    let (ta, tb) = tokio::join!(a.access_token(), b.access_token());
    assert_eq!(ta.unwrap(), tb.unwrap());
    assert_eq!(fake.token_calls(), 1);
}

#[tokio::test]
async fn clients_for_different_appids_share_nothing() {
    let fake_a = FakeWeChat::builder()
        .appid("wxappa")
        .secret("secret-a")
        .start()
        .await;
    let fake_b = FakeWeChat::builder()
        .appid("wxappb")
        .secret("secret-b")
        .start()
        .await;
    let store: Arc<dyn AccessTokenStore> = Arc::new(MemoryTokenStore::new());
    let a = WxClient::new(fake_a.config())
        .unwrap()
        .with_token_store(store.clone());
    let b = WxClient::new(fake_b.config())
        .unwrap()
        .with_token_store(store);
    let ta = a.access_token().await.unwrap();
    let tb = b.access_token().await.unwrap();
    assert_ne!(ta, tb);
    assert_eq!((fake_a.token_calls(), fake_b.token_calls()), (1, 1));
    fake_a.invalidate_access_tokens();
    fake_a.script_phone("p", "13800000001");
    a.phone_number("p").await.unwrap();
    assert_eq!(b.access_token().await.unwrap(), tb, "b's token untouched");
    assert_eq!(fake_b.token_calls(), 1);
}

#[tokio::test]
async fn redis_store_shared_by_two_clients_fetches_once() {
    let Some(url) = redis_url() else {
        return;
    };
    let appid = unique_appid("shared");
    let fake = FakeWeChat::builder().appid(&appid).start().await;
    // Two instances of the app: two clients, two connections to the same Redis.
    let (a, b) = two_redis_clients(&fake, &url);
    concurrent_callers_get_one_token(&[a, b], 40).await;
    assert_eq!(fake.token_calls(), 1);
}

#[tokio::test]
async fn redis_store_invalidate_is_compare_and_delete() {
    let Some(url) = redis_url() else {
        return;
    };
    let appid = unique_appid("cad");
    let store = RedisTokenStore::open(&url).unwrap();
    store
        .set(&appid, &CachedToken::expiring_in("T2", 7200))
        .await
        .unwrap();
    store.invalidate(&appid, "T1").await.unwrap();
    assert_eq!(store.get(&appid).await.unwrap().unwrap().token, "T2");
    store.invalidate(&appid, "T2").await.unwrap();
    assert!(store.get(&appid).await.unwrap().is_none());
}

#[tokio::test]
async fn redis_store_lock_is_exclusive_until_unlocked() {
    let Some(url) = redis_url() else {
        return;
    };
    let appid = unique_appid("lock");
    let one = RedisTokenStore::open(&url).unwrap();
    let two = RedisTokenStore::open(&url).unwrap();
    assert!(one.try_lock(&appid, Duration::from_secs(5)).await.unwrap());
    assert!(!two.try_lock(&appid, Duration::from_secs(5)).await.unwrap());
    two.unlock(&appid).await.unwrap(); // not the owner: no effect
    assert!(!two.try_lock(&appid, Duration::from_secs(5)).await.unwrap());
    one.unlock(&appid).await.unwrap();
    assert!(two.try_lock(&appid, Duration::from_secs(5)).await.unwrap());
    two.unlock(&appid).await.unwrap();
}

#[tokio::test]
async fn redis_refetch_after_40001_is_shared_with_the_other_instance() {
    let Some(url) = redis_url() else {
        return;
    };
    let appid = unique_appid("refetch");
    let fake = FakeWeChat::builder().appid(&appid).start().await;
    fake.script_phone("p", "13800138000");
    let (a, b) = two_redis_clients(&fake, &url);
    a.access_token().await.unwrap();
    b.access_token().await.unwrap();
    assert_eq!(fake.token_calls(), 1);
    fake.invalidate_access_tokens();
    a.phone_number("p").await.unwrap();
    assert_eq!(fake.token_calls(), 2);
    // b still holds the old token locally: its call gets 40001, drops it, and finds a's new
    // token in Redis instead of fetching.
    b.phone_number("p").await.unwrap();
    assert_eq!(fake.token_calls(), 2);
}

#[tokio::test]
async fn store_failure_serves_the_local_copy_and_fetches_once() {
    let fake = FakeWeChat::start().await;
    // Nothing listens on port 1: every store operation fails.
    let store = RedisTokenStore::open("redis://127.0.0.1:1").unwrap();
    let client = WxClient::new(fake.config())
        .unwrap()
        .with_token_store(Arc::new(store));
    let first = client.access_token().await.unwrap();
    for _ in 0..5 {
        assert_eq!(client.access_token().await.unwrap(), first);
    }
    fake.script_phone("p", "13800138000");
    client.phone_number("p").await.unwrap();
    assert_eq!(fake.token_calls(), 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_failed_fetch() {
    let fake = FakeWeChat::start().await;
    let client = WxClient::new(fake.config().secret("wrong-secret")).unwrap();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.access_token().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Err(WxError::InvalidCredential));
    }
    assert_eq!(fake.token_calls(), 1, "queued callers share the failure");
    // A later caller tries again.
    let _ = client.access_token().await;
    assert_eq!(fake.token_calls(), 2);
}

#[tokio::test]
async fn short_lived_token_is_still_cached_for_half_its_life() {
    let fetches = Arc::new(AtomicU64::new(0));
    let counter = fetches.clone();
    let client = WxClient::new(wxrest::wechat::WxConfig::new("wxshort", "s"))
        .unwrap()
        .with_token_provider(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(CachedToken::expiring_in("short", 400)) }
        });
    for _ in 0..3 {
        assert_eq!(client.access_token().await.unwrap(), "short");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redis_store_keys_live_under_its_prefix() {
    let Some(url) = redis_url() else {
        return;
    };
    let appid = unique_appid("prefix");
    let prefix = format!("shop-{}:", uuid::Uuid::new_v4().simple());
    let default = RedisTokenStore::open(&url).unwrap();
    let prefixed = RedisTokenStore::open(&url).unwrap().prefix(prefix.clone());
    default
        .set(&appid, &CachedToken::expiring_in("DEFAULT", 7200))
        .await
        .unwrap();
    prefixed
        .set(&appid, &CachedToken::expiring_in("PREFIXED", 7200))
        .await
        .unwrap();
    // Two prefixes, two tokens for one appid: deployments sharing a Redis stay apart.
    assert_eq!(default.get(&appid).await.unwrap().unwrap().token, "DEFAULT");
    assert_eq!(
        prefixed.get(&appid).await.unwrap().unwrap().token,
        "PREFIXED"
    );
    assert!(
        prefixed
            .try_lock(&appid, Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        default
            .try_lock(&appid, Duration::from_secs(5))
            .await
            .unwrap()
    );

    // The default keys are unchanged: `wxrest:wx:token:{appid}`.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = [
        format!("wxrest:wx:token:{appid}"),
        format!("wxrest:wx:token-lock:{appid}"),
        format!("{prefix}wx:token:{appid}"),
        format!("{prefix}wx:token-lock:{appid}"),
    ];
    let present: i64 = redis::cmd("EXISTS")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(present, 4);
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
