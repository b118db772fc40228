//! Requests to a `Router` in process, without a socket (`tower::ServiceExt::oneshot`):
//! building them and reading the answer as status, headers and JSON.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use http::Request;
use serde_json::Value;
use wxrest::testing::TestClient;

/// Sends `req` to `app` and returns status, headers and JSON body (Null when empty): the
/// public test kit's `TestClient::send`, as a tuple.
pub async fn send(app: &Router, req: Request<Body>) -> (http::StatusCode, http::HeaderMap, Value) {
    let answer = TestClient::new(app.clone()).send(req).await;
    (answer.status, answer.headers, answer.body)
}

pub fn get(uri: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).unwrap()
}

pub fn post_json(uri: &str, auth: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::from(body.to_string())).unwrap()
}
