//! What reaches the logs: never a secret (the library's WeChat login flow and a full mall flow,
//! each under a capturing TRACE subscriber), and each failure once, with its cause.
//!
//! A process of its own: `tracing`'s per-callsite interest cache is process-wide, and tests
//! running in parallel threads without a subscriber can make a scoped subscriber miss events,
//! which would make these tests pass without having looked. Every test here installs its
//! subscriber first.

#[path = "../auth_fixtures/mod.rs"]
mod auth_fixtures;
#[path = "../databases/mod.rs"]
mod databases;
#[path = "../running_app/mod.rs"]
mod running_app;
#[allow(dead_code)]
#[path = "../../examples/mall/shop/mod.rs"]
mod shop;

mod captured_logs;
mod failures;
mod mall;
mod wechat_login;
