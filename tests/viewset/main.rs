//! The viewset part: ModelViewSet routes on every backend, and the OpenAPI document.

#[path = "../auth_fixtures/mod.rs"]
mod auth_fixtures;
#[path = "../databases/mod.rs"]
mod databases;
#[path = "../oneshot/mod.rs"]
mod oneshot;

mod item;
mod list_cache;
mod openapi;
mod routes;
