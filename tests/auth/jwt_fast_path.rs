//! `JwtConfig::decode` verifies HS256 directly (a precomputed HMAC key, one base64 decode and
//! one parse of the claims). It must answer exactly as the `jsonwebtoken` path does: the same
//! claims for every token accepted, the same error for every token refused. The reference is
//! the same configuration with claim names set (which takes the `jsonwebtoken` path), and
//! `jsonwebtoken::decode` itself for accept/refuse.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::json;
use sha2::Sha256;
use wxrest::auth::{AuthError, Claims, JwtConfig};

const KEY: &str = "fast-path-secret-0123456789abcdef0123456789";

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// `header.payload.signature`, signed with `KEY` (whatever the header says).
fn signed(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac(&input)))
}

fn mac(input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

const PYJWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn payload(extra: serde_json::Value) -> String {
    let mut claims = json!({"user_id": 1, "username": "alice", "email": "", "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims.to_string()
}

/// One configuration, as `JwtConfig` and as the `jsonwebtoken::Validation` it stands for.
#[derive(Clone, Copy, Default)]
struct Settings {
    leeway: u64,
    issuer: Option<&'static str>,
    audience: Option<&'static str>,
    no_expiry: bool,
}

impl Settings {
    fn config(self) -> JwtConfig {
        let mut jwt = JwtConfig::hs256(KEY)
            .unwrap()
            .leeway(Duration::from_secs(self.leeway));
        if let Some(iss) = self.issuer {
            jwt = jwt.issuer(iss);
        }
        if let Some(aud) = self.audience {
            jwt = jwt.audience(aud);
        }
        jwt.verify_expiration(!self.no_expiry)
    }

    fn validation(self) -> jsonwebtoken::Validation {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        if let Some(iss) = self.issuer {
            v.set_issuer(&[iss]);
            v.required_spec_claims.insert("iss".into());
        }
        if let Some(aud) = self.audience {
            v.set_audience(&[aud]);
            v.validate_aud = true;
            v.required_spec_claims.insert("aud".into());
        }
        if self.no_expiry {
            v.validate_exp = false;
            v.required_spec_claims.remove("exp");
        }
        v
    }

    /// What `jsonwebtoken::decode` answers, in djangorestframework-jwt's errors.
    fn reference(self, token: &str) -> Result<Claims, String> {
        let key = jsonwebtoken::DecodingKey::from_secret(KEY.as_bytes());
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation())
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind::*;
                let ours = match e.kind() {
                    ExpiredSignature => AuthError::TokenExpired,
                    InvalidAlgorithm
                    | ImmatureSignature
                    | InvalidIssuer
                    | InvalidAudience
                    | InvalidSubject
                    | MissingRequiredClaim(_) => AuthError::InvalidToken,
                    InvalidClaimFormat(_) | Json(_) => AuthError::InvalidPayload,
                    _ => AuthError::DecodeError,
                };
                format!("{ours:?}")
            })
    }

    /// The direct path answers as `jsonwebtoken` for every token whose header pins HS256
    /// (others are refused before `jsonwebtoken` is asked, with the pinned-algorithm errors).
    fn assert_agree(self, token: &str) {
        let ours = self.config().decode(token).map_err(|e| format!("{e:?}"));
        if pins_hs256(token) {
            assert_eq!(ours, self.reference(token), "token {token}");
        } else {
            assert!(ours.is_err(), "token {token}");
            assert!(self.reference(token).is_err(), "token {token}");
        }
    }
}

/// Three parts, and a header naming `alg: HS256`.
fn pins_hs256(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && URL_SAFE_NO_PAD
            .decode(parts[0].trim_end_matches('='))
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .is_some_and(|h| h["alg"] == "HS256")
}

fn corpus() -> Vec<String> {
    let t = now();
    let mut tokens = vec![
        String::new(),
        "a.b".into(),
        "a.b.c.d".into(),
        "...".into(),
        "not a token".into(),
    ];
    let payloads = [
        payload(json!({})),
        payload(json!({"exp": t - 10})),
        payload(json!({"exp": t})),
        payload(json!({"exp": t - 1})),
        payload(json!({"exp": -5})),
        payload(json!({"exp": 1.5e10})),
        payload(json!({"exp": "tomorrow"})),
        payload(json!({"exp": null})),
        r#"{"user_id": 1, "username": "alice"}"#.into(),
        payload(json!({"nbf": t + 3600})),
        payload(json!({"nbf": t - 3600})),
        payload(json!({"nbf": t})),
        payload(json!({"nbf": "soon"})),
        payload(json!({"nbf": -1})),
        payload(json!({"nbf": 12.7})),
        payload(json!({"nbf": [1]})),
        payload(json!({"nbf": []})),
        payload(json!({"nbf": {"a": 1}})),
        payload(json!({"nbf": null})),
        payload(json!({"sub": "alice"})),
        payload(json!({"sub": 7})),
        payload(json!({"sub": [1, 2]})),
        payload(json!({"sub": {"a": 1}})),
        payload(json!({"iss": "shop"})),
        payload(json!({"iss": "elsewhere"})),
        payload(json!({"aud": "mini-program"})),
        payload(json!({"aud": ["mini-program"]})),
        payload(json!({"user_id": "42"})),
        payload(json!({"user_id": null})),
        payload(json!({"token_type": "access", "jti": "x", "ver": 0, "fam": "f"})),
        payload(json!({"token_type": "refresh", "gen": 3})),
        payload(json!({"token_type": "bogus"})),
        payload(json!({"is_staff": "yes"})),
        "[1, 2]".into(),
        "null".into(),
        "{not json".into(),
        String::new(),
    ];
    let headers = [
        PYJWT_HEADER,
        r#"{"typ":"JWT","alg":"HS256"}"#,
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","kid":"k1"}"#,
        r#"{"alg":"HS256","typ":"at+jwt"}"#,
        r#"{"alg":"HS256","jwk":"not-a-jwk"}"#,
        r#"{"alg":"HS256","kid":5}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"HS512","typ":"JWT"}"#,
        r#"{"alg":"RS256","typ":"JWT"}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":null}"#,
        "not json",
    ];
    for header in headers {
        for payload in &payloads {
            tokens.push(signed(header, payload));
        }
    }
    let good = signed(PYJWT_HEADER, &payload(json!({})));
    let (input, signature) = good.rsplit_once('.').unwrap();
    let (header, body) = input.split_once('.').unwrap();
    tokens.extend([
        // A signature of another key, one cut short, one too long, padded, not base64.
        format!("{input}.{}", URL_SAFE_NO_PAD.encode([7u8; 32])),
        format!("{input}.{}", &signature[..signature.len() - 2]),
        format!("{input}.{signature}AAAA"),
        format!("{input}.{signature}="),
        format!(
            "{input}.{}",
            signature.replace(|c: char| c.is_ascii_digit(), "*")
        ),
        format!("{input}."),
        // The header and payload padded, or not base64.
        format!("{header}=.{body}.{signature}"),
        format!("{header}.{body}=.{signature}"),
        format!("{header}.{}!.{signature}", &body[..body.len() - 1]),
        format!(
            "{}.{body}.{signature}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)
        ),
    ]);
    // Bodies with padding signed as such.
    let padded_body = format!(
        "{}.{}=",
        URL_SAFE_NO_PAD.encode(PYJWT_HEADER),
        URL_SAFE_NO_PAD.encode(payload(json!({})))
    );
    tokens.push(format!(
        "{padded_body}.{}",
        URL_SAFE_NO_PAD.encode(mac(&padded_body))
    ));
    tokens
}

#[test]
fn direct_hs256_answers_as_jsonwebtoken_on_every_token_of_the_corpus() {
    let mut accepted = 0;
    for token in corpus() {
        Settings::default().assert_agree(&token);
        accepted += usize::from(Settings::default().config().decode(&token).is_ok());
    }
    assert!(
        accepted > 10,
        "the corpus holds valid tokens too ({accepted})"
    );
}

#[test]
fn direct_hs256_answers_as_jsonwebtoken_with_leeway_issuer_audience_and_no_expiry() {
    let settings = [
        Settings {
            leeway: 30,
            ..Settings::default()
        },
        Settings {
            issuer: Some("shop"),
            ..Settings::default()
        },
        Settings {
            audience: Some("mini-program"),
            ..Settings::default()
        },
        Settings {
            no_expiry: true,
            ..Settings::default()
        },
    ];
    for token in corpus() {
        for settings in settings {
            settings.assert_agree(&token);
        }
    }
}

#[test]
fn expired_immature_and_confused_tokens_get_drf_errors() {
    let jwt = JwtConfig::hs256(KEY).unwrap();
    let t = now();
    let expired = signed(PYJWT_HEADER, &payload(json!({"exp": t - 10})));
    assert!(matches!(jwt.decode(&expired), Err(AuthError::TokenExpired)));
    let immature = signed(PYJWT_HEADER, &payload(json!({"nbf": t + 3600})));
    assert!(matches!(
        jwt.decode(&immature),
        Err(AuthError::InvalidToken)
    ));
    let none = signed(r#"{"alg":"none","typ":"JWT"}"#, &payload(json!({})));
    assert!(matches!(jwt.decode(&none), Err(AuthError::InvalidToken)));
    let forged = format!("{}.", none.rsplit_once('.').unwrap().0);
    assert!(matches!(jwt.decode(&forged), Err(AuthError::InvalidToken)));
    let bad_base64 = signed(PYJWT_HEADER, &payload(json!({}))).replacen('.', ".!", 1);
    assert!(matches!(
        jwt.decode(&bad_base64),
        Err(AuthError::DecodeError)
    ));
    let valid = signed(PYJWT_HEADER, &payload(json!({})));
    assert_eq!(jwt.decode(&valid).unwrap().username, "alice");
}

#[test]
fn tokens_issued_by_the_config_verify_on_the_direct_path() {
    let jwt = JwtConfig::hs256(KEY).unwrap();
    let claims: Claims = serde_json::from_str(&payload(json!({"jti": "j", "iat": now()}))).unwrap();
    let token = jwt.encode(&claims).unwrap();
    assert_eq!(jwt.decode(&token).unwrap(), claims);
    // Signed with another key: refused.
    let other = JwtConfig::hs256("another-secret-0123456789abcdef0123456789").unwrap();
    assert!(matches!(other.decode(&token), Err(AuthError::DecodeError)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_mutation_of_a_valid_token_is_answered_alike(index in 0usize..400, byte in any::<u8>()) {
        let mut token = signed(PYJWT_HEADER, &payload(json!({"nbf": now() - 5})));
        let index = index % token.len();
        let mut bytes = token.into_bytes();
        bytes[index] = byte;
        token = String::from_utf8_lossy(&bytes).into_owned();
        Settings::default().assert_agree(&token);
    }

    #[test]
    fn any_numeric_dates_are_answered_alike(
        exp in prop_oneof![any::<i64>().prop_map(|v| json!(v)), any::<f64>().prop_map(|v| json!(v)), Just(json!("x"))],
        nbf in prop_oneof![any::<i64>().prop_map(|v| json!(v)), any::<f64>().prop_map(|v| json!(v)), Just(json!(true))],
    ) {
        let token = signed(PYJWT_HEADER, &payload(json!({"exp": exp, "nbf": nbf})));
        Settings::default().assert_agree(&token);
    }
}
