//! # wxrest (skeleton)
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod db;
pub mod error;
pub mod user;

pub use error::{ApiError, BackendError};
