//! # wxrest (skeleton)
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;

pub use error::{ApiError, BackendError};
