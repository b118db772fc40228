//! Fuzzing the `Authorization` header through the auth layer: more than 10,000 generated and
//! mutated headers (bit flips, truncations, extra segments, unicode, sizes up to 64 KiB,
//! whitespace, prefixes, case). None is accepted unless it carries the valid token exactly;
//! every rejection is a 401 with a DRF body `{"detail", "code"}`; nothing panics.

use std::cell::RefCell;

use crate::auth_fixtures::{MemoryUsers, jwt, user};
use axum::body::Body;
use axum::{Router, routing};
use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;
use wxrest::auth::{IsAuthenticated, JwtAuthLayer, TokenService};

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    token: String,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn fixture<T>(f: impl FnOnce(&Fixture) -> T) -> T {
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fixture = slot.get_or_insert_with(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let tokens =
                TokenService::new(jwt()).with_users(MemoryUsers::with([(user(1, "alice"), "pw")]));
            let token = rt.block_on(tokens.issue(&user(1, "alice"))).unwrap().token;
            let app = Router::new()
                .route("/r", routing::get(|| async { "ok" }))
                .layer(JwtAuthLayer::new(tokens).permission(IsAuthenticated));
            Fixture { rt, app, token }
        });
        f(fixture)
    })
}

fn valid_token() -> String {
    fixture(|f| f.token.clone())
}

/// Does `header` carry exactly the valid token under an accepted prefix?
fn is_exactly_valid(header: &[u8], token: &str) -> bool {
    let Ok(text) = std::str::from_utf8(header) else {
        return false;
    };
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    parts.len() == 2
        && (parts[0].eq_ignore_ascii_case("jwt") || parts[0].eq_ignore_ascii_case("bearer"))
        && parts[1] == token
}

/// Sends `header` and checks the contract; a header `http` cannot represent is skipped.
fn check(header: &[u8]) -> Result<(), TestCaseError> {
    let Ok(value) = HeaderValue::from_bytes(header) else {
        return Ok(());
    };
    let (status, body) = fixture(|f| {
        let mut req = Request::get("/r").body(Body::empty()).unwrap();
        req.headers_mut().insert("authorization", value);
        f.rt.block_on(async {
            let response = f.app.clone().oneshot(req).await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, bytes)
        })
    });
    let token = valid_token();
    if is_exactly_valid(header, &token) {
        prop_assert_eq!(status, 200);
        return Ok(());
    }
    prop_assert_eq!(
        status,
        401,
        "accepted or odd status for {:?}",
        String::from_utf8_lossy(&header[..header.len().min(200)])
    );
    let json: Value = serde_json::from_slice(&body)
        .map_err(|e| TestCaseError::fail(format!("401 body is not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| TestCaseError::fail("401 body is not an object"))?;
    prop_assert_eq!(obj.len(), 2, "{}", json);
    prop_assert!(
        obj["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        json
    );
    prop_assert!(
        obj["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{}",
        json
    );
    Ok(())
}

fn prefixed(prefix: &str, token: &[u8]) -> Vec<u8> {
    let mut header = prefix.as_bytes().to_vec();
    header.extend_from_slice(token);
    header
}

#[test]
fn the_exactly_valid_token_is_accepted() {
    let token = valid_token();
    for header in [
        format!("JWT {token}"),
        format!("Bearer {token}"),
        format!("jwt {token}"),
    ] {
        check(header.as_bytes()).unwrap();
    }
    assert!(is_exactly_valid(format!("JWT {token}").as_bytes(), &token));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bit_flips_of_a_valid_token_are_rejected(index in any::<prop::sample::Index>(), bit in 0u8..8, flips in 1usize..4) {
        let mut token = valid_token().into_bytes();
        let mut i = index.index(token.len());
        for _ in 0..flips {
            token[i] ^= 1 << bit;
            i = (i * 31 + 7) % token.len();
        }
        check(&prefixed("JWT ", &token))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn truncated_tokens_are_rejected(index in any::<prop::sample::Index>(), from_start in any::<bool>()) {
        let token = valid_token();
        let cut = index.index(token.len());
        let part = if from_start { &token[cut..] } else { &token[..cut] };
        prop_assume!(part != token);
        check(&prefixed("JWT ", part.as_bytes()))?;
    }

    #[test]
    fn extra_or_rearranged_segments_are_rejected(extra in "[A-Za-z0-9_=-]{0,40}", position in 0usize..4) {
        let token = valid_token();
        let mut segments: Vec<&str> = token.split('.').collect();
        segments.insert(position.min(segments.len()), &extra);
        check(&prefixed("JWT ", segments.join(".").as_bytes()))?;
        // Swapped segments too.
        let mut swapped: Vec<&str> = token.split('.').collect();
        swapped.swap(position % 3, (position + 1) % 3);
        check(&prefixed("JWT ", swapped.join(".").as_bytes()))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn unicode_headers_are_rejected(header in "\\PC{0,80}", with_prefix in any::<bool>()) {
        let header = if with_prefix { format!("JWT {header}") } else { header };
        check(header.as_bytes())?;
    }

    #[test]
    fn prefix_whitespace_and_case_variants_only_pass_with_the_exact_token(
        prefix in "(?i)(jwt|bearer|jwt1|bear|token|basic|)",
        before in "[ \t]{0,3}",
        between in "[ \t]{0,3}",
        after in "[ \t]{0,3}",
        mutate in 0u8..4,
    ) {
        let token = valid_token();
        let token = match mutate {
            0 => token,
            1 => token.to_uppercase(),
            2 => format!("{token}{token}"),
            _ => format!("{token} extra"),
        };
        let header = format!("{before}{prefix}{between}{token}{after}");
        check(header.as_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_are_rejected(header in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&header)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn huge_headers_up_to_64_kib_are_rejected(len in 1usize..=65_536, fill in "[A-Za-z0-9._ -]{1,8}") {
        let token = valid_token();
        let mut body = String::with_capacity(len + token.len());
        while body.len() < len {
            body.push_str(&fill);
        }
        body.truncate(len);
        check(&prefixed("JWT ", body.as_bytes()))?;
        // The valid token drowned in padding.
        check(format!("JWT {token}.{body}").as_bytes())?;
    }
}
