//! The one way the crate's Redis-backed stores connect: lazily (start-up never waits for Redis,
//! requests fail fast while it is down) with short timeouts and one reconnect attempt.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::BackendError;

/// A connection manager to `url` that connects on first use, with `timeout` for connecting
/// and for each response.
pub(crate) fn lazy(url: &str, timeout: Duration) -> Result<ConnectionManager, BackendError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
