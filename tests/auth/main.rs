//! The auth part: the layer and its permissions, the token endpoints, JWT attacks and fuzzing,
//! simplejwt tokens, password hashes, the user store and throttling.

#[path = "../auth_fixtures/mod.rs"]
mod auth_fixtures;
#[path = "../databases/mod.rs"]
mod databases;
#[path = "../oneshot/mod.rs"]
mod oneshot;

mod fuzz;
mod gate;
mod jwt_attacks;
mod jwt_fast_path;
mod layer;
mod passwords;
mod simplejwt;
mod throttle;
mod tokens;
mod user_store;
