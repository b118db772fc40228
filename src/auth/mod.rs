//! Authentication and permissions, DRF style.

pub mod account;

pub use account::{AuthUser, UserLookup};
