//! # wxrest (skeleton)
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
pub mod wechat;

pub use error::{ApiError, BackendError};
