//! JWT header attacks the `layer` and `tokens` tests do not cover: `kid`, `jku`,
//! `x5u`, `jwk` and `x5c` never choose the key. A token is judged by our key alone; nothing is
//! fetched from a URL the token names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::auth_fixtures::{MemoryUsers, SECRET, jwt, user};
use crate::oneshot::{get, send};
use axum::{Router, routing};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wxrest::auth::{IsAuthenticated, JwtAuthLayer, TokenService};

const ATTACKER_SECRET: &str = "attacker-secret-0123456789abcdef0123";

fn tokens() -> TokenService {
    TokenService::new(jwt()).with_users(MemoryUsers::with([(user(1, "alice"), "pw")]))
}

fn app(tokens: &TokenService) -> Router {
    Router::new()
        .route("/r", routing::get(|| async { "ok" }))
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated))
}

/// The payload segment of a genuine access token (valid claims, jti, version).
async fn genuine_payload(tokens: &TokenService) -> String {
    let token = tokens.issue(&user(1, "alice")).await.unwrap().token;
    token.split('.').nth(1).unwrap().to_owned()
}

/// An HS256 token with `header`, signed with `secret`.
fn sign(header: Value, payload: &str, secret: &str) -> String {
    let signing_input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A listener that counts connections: a URL in a token must never be fetched.
async fn tripwire() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, hits)
}

#[tokio::test]
async fn a_jku_or_x5u_header_is_ignored_for_a_token_signed_with_our_key() {
    let tokens = tokens();
    let payload = genuine_payload(&tokens).await;
    let (url, hits) = tripwire().await;
    let token = sign(
        json!({"alg": "HS256", "typ": "JWT", "jku": url, "x5u": url, "kid": "theirs"}),
        &payload,
        SECRET,
    );
    let (status, _, body) = send(&app(&tokens), get("/r", Some(&format!("JWT {token}")))).await;
    assert_eq!((status.as_u16(), body), (200, json!("ok")));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the jku/x5u URL was fetched"
    );
}

#[tokio::test]
async fn a_jku_pointing_at_the_attackers_keys_does_not_admit_their_token() {
    let tokens = tokens();
    let payload = genuine_payload(&tokens).await;
    let (url, hits) = tripwire().await;
    let token = sign(
        json!({"alg": "HS256", "typ": "JWT", "jku": url, "x5u": url}),
        &payload,
        ATTACKER_SECRET,
    );
    let (status, _, body) = send(&app(&tokens), get("/r", Some(&format!("JWT {token}")))).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"detail": "Error decoding signature.", "code": "token_invalid"})
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_kid_on_a_token_signed_by_another_key_is_rejected() {
    let tokens = tokens();
    let payload = genuine_payload(&tokens).await;
    for kid in ["default", "0", "../../dev/null", "' OR 1=1 --", ""] {
        let token = sign(
            json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
            &payload,
            ATTACKER_SECRET,
        );
        let (status, _, body) = send(&app(&tokens), get("/r", Some(&format!("JWT {token}")))).await;
        assert_eq!(status, 401, "kid {kid:?}");
        assert_eq!(
            body,
            json!({"detail": "Error decoding signature.", "code": "token_invalid"}),
            "kid {kid:?}"
        );
    }
}

#[tokio::test]
async fn an_embedded_jwk_or_x5c_does_not_supply_the_key() {
    let tokens = tokens();
    let payload = genuine_payload(&tokens).await;
    let jwk = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(ATTACKER_SECRET)});
    for header in [
        json!({"alg": "HS256", "typ": "JWT", "jwk": jwk}),
        json!({"alg": "HS256", "typ": "JWT", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ] {
        let token = sign(header.clone(), &payload, ATTACKER_SECRET);
        let (status, _, body) = send(&app(&tokens), get("/r", Some(&format!("JWT {token}")))).await;
        assert_eq!(status, 401, "{header}");
        assert_eq!(body["code"], "token_invalid", "{header}");
    }
}

#[tokio::test]
async fn a_revoked_jti_signed_again_under_a_new_kid_stays_revoked() {
    let tokens = tokens();
    let pair = tokens.issue(&user(1, "alice")).await.unwrap();
    let identity = tokens.authenticate(&pair.token).await.unwrap();
    tokens.revoke(&identity, None).await.unwrap();
    let payload = pair.token.split('.').nth(1).unwrap();
    // Same claims (same jti), a different header: still the revoked token.
    let token = sign(
        json!({"alg": "HS256", "typ": "JWT", "kid": "rotated"}),
        payload,
        SECRET,
    );
    let (status, _, body) = send(&app(&tokens), get("/r", Some(&format!("JWT {token}")))).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "token_revoked", "{body}");
}
