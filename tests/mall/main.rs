//! The example mall (`examples/mall/shop`), compiled once for all its tests: the API end to end,
//! hostile input, WeChat Pay, telemetry, scale-out across instances and database faults.
//!
//! Its log-secrets test lives in `tests/log_secrets` (a process of its own: see there).

#[path = "../databases/mod.rs"]
mod databases;
#[allow(dead_code)]
#[path = "../../examples/mall/shop/mod.rs"]
mod shop;

mod api;
mod db_faults;
mod dev_settings;
mod hostile;
mod pay;
mod running_mall;
mod scale_out;
mod telemetry;
