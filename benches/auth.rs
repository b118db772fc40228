//! The auth path's cost: token verification against `jsonwebtoken::decode` and a bare
//! HMAC-SHA256 (the floor), a whole call through the auth layer's `Gate` against the bare
//! inner service, and token issue. Run with `cargo bench --bench auth`; see BENCHMARKS.md.

use std::convert::Infallible;
use std::hint::black_box;

use axum::body::Body;
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use http::{Request, Response};
use sha2::Sha256;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use wxrest::auth::{
    AuthUser, Claims, IsAuthenticated, JwtAuthLayer, JwtConfig, TokenService, UserIdClaim,
};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

/// A djangorestframework-jwt shaped token of 224 bytes.
fn drf_token(jwt: &JwtConfig) -> String {
    let mut username = String::from("oX1fz5Xa9mXk0EqVn0Qd3TtT9gVQ");
    loop {
        let claims = Claims {
            user_id: UserIdClaim::Int(1),
            username: username.clone(),
            exp: 4_070_908_800,
            email: String::new(),
            orig_iat: Some(1_795_478_400),
            iat: None,
            jti: None,
            token_type: None,
            ver: None,
            fam: None,
            generation: None,
            is_staff: false,
            is_superuser: false,
            iss: None,
            aud: None,
        };
        let token = jwt.encode(&claims).expect("sign");
        if token.len() >= 224 {
            return token;
        }
        username.push('x');
    }
}

fn user() -> AuthUser {
    AuthUser {
        id: 1,
        username: "alice".into(),
        email: String::new(),
        is_staff: false,
        is_superuser: false,
        is_active: true,
        token_version: 0,
    }
}

fn verification(c: &mut Criterion) {
    let jwt = JwtConfig::hs256(SECRET).unwrap();
    let token = drf_token(&jwt);
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();

    let mut group = c.benchmark_group("verify_224_byte_hs256");
    group.bench_function("wxrest_decode_shared", |b| {
        b.iter(|| jwt.decode_shared(black_box(&token)).unwrap())
    });
    group.bench_function("wxrest_decode_uncached", |b| {
        b.iter(|| jwt.decode(black_box(&token)).unwrap())
    });
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &key, &validation).unwrap())
    });
    group.bench_function("hmac_sha256_floor", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(black_box(signing_input.as_bytes()));
            mac.verify_slice(&signature).unwrap()
        })
    });
    group.finish();
}

fn auth_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tokens = TokenService::new(JwtConfig::hs256(SECRET).unwrap());
    let pair = rt.block_on(tokens.issue(&user())).unwrap();
    let header = format!("JWT {}", pair.token);
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    });
    let protected = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(tokens.clone()).permission(IsAuthenticated))
        .service(inner);
    let request = || {
        Request::get("/goods")
            .header("authorization", &header)
            .body(Body::empty())
            .unwrap()
    };
    let mut group = c.benchmark_group("service_call");
    group.bench_function("inner_without_layer", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = inner;
            async move { svc.ready().await.unwrap().call(request()).await.unwrap() }
        })
    });
    group.bench_function("auth_service_valid_token", |b| {
        b.to_async(&rt).iter(|| {
            let svc = protected.clone();
            async move { svc.oneshot(request()).await.unwrap() }
        })
    });
    group.finish();
}

fn issue(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tokens = TokenService::new(JwtConfig::hs256(SECRET).unwrap());
    let user = user();
    c.bench_function("issue_token_pair", |b| {
        b.to_async(&rt).iter(|| tokens.issue(black_box(&user)))
    });
}

criterion_group!(benches, verification, auth_service, issue);
criterion_main!(benches);
