//! Serving an axum [`Router`] with limits a public address needs, which `axum::serve` leaves
//! open: a deadline for each request head (slow clients that send half a request, and idle
//! keep-alive connections, are closed), a bounded number of connections, and graceful
//! shutdown.
//! Needs feature `server`.
//!
//! | limit | default | why |
//! |---|---|---|
//! | [`header_read_timeout`](Server::header_read_timeout) | 10 s | a request head (and the wait for the next one on a kept-alive connection) must arrive in time |
//! | [`max_connections`](Server::max_connections) | 4096 | past it, new connections wait in the kernel's backlog instead of exhausting file descriptors |
//! | [`keep_alive`](Server::keep_alive) | on | off closes each connection after one response |
//!
//! The server speaks HTTP/1.1 (what a reverse proxy speaks to its upstream; put HTTP/2 and TLS
//! in the proxy). Behind a proxy, keep limiting request bodies and total request time in the
//! app (`DefaultBodyLimit`, tower-http's `RequestBodyTimeoutLayer` and `TimeoutLayer`), and let
//! the proxy limit connections per client.
//!
//! It also enforces the [development rule](crate::dev): while a development fake runs in the
//! process, it refuses to serve a non-loopback address unless
//! [`development`](Server::development) was switched on.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use wxrest::server::Server;
//!
//! # async fn run() -> Result<(), wxrest::server::ServeError> {
//! let app = Router::new().route("/", get(|| async { "hello" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! Server::new()
//!     .header_read_timeout(Duration::from_secs(5))
//!     .max_connections(10_000)
//!     .serve(listener, app, async { tokio::signal::ctrl_c().await.ok(); })
//!     .await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Why [`Server::serve`] stopped or refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A development fake runs and the address is not loopback.
    #[error(
        "{fakes} is running and {addr} is not a loopback address: configure the real service \
         (or switch development on explicitly)"
    )]
    DevelopmentOnPublicAddress {
        /// The running fakes, comma-separated.
        fakes: String,
        /// The listen address.
        addr: SocketAddr,
    },
    /// The listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An HTTP/1.1 server for a [`Router`] with the limits in the module docs. Cheap to build;
/// every option has a safe default.
#[derive(Debug, Clone)]
pub struct Server {
    header_read_timeout: Duration,
    max_connections: usize,
    keep_alive: bool,
    development: bool,
    shutdown_grace: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

/// The default deadline for a request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Server {
    /// The defaults: 10 s per request head, 4096 connections, keep-alive on.
    pub fn new() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keep_alive: true,
            development: false,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// How long a client may take to send a request head, and an idle kept-alive connection
    /// may wait for its next request, before the connection is closed.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The most connections open at once (at least 1).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Keep connections open between requests (default on).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Allows development fakes on a non-loopback address (an explicit development switch).
    #[must_use]
    pub fn development(mut self, on: bool) -> Self {
        self.development = on;
        self
    }

    /// How long shutdown waits for requests in flight.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Checks the development rule for `addr` (see the module docs).
    ///
    /// ```
    /// use wxrest::server::Server;
    /// assert!(Server::new().check("127.0.0.1:8000".parse().unwrap()).is_ok());
    /// ```
    pub fn check(&self, addr: SocketAddr) -> Result<(), ServeError> {
        let fakes = crate::dev::running_fakes();
        if fakes.is_empty() || self.development || addr.ip().is_loopback() {
            return Ok(());
        }
        Err(ServeError::DevelopmentOnPublicAddress {
            fakes: fakes.join(", "),
            addr,
        })
    }

    /// Serves `app` on `listener` until `shutdown` completes, then waits up to the grace period
    /// for requests in flight. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.check(listener.local_addr()?)?;
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let graceful = GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(self.keep_alive);
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of descriptors or a connection reset before accept: wait a moment
                        // instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = app
                .clone()
                .map_request(move |mut req: axum::extract::Request| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
            let connection = http.serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(service.map_request(
                    |req: http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
                )),
            );
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // Closed by the client, a header timeout, or an I/O error: nothing to report.
                let _ = connection.await;
                drop(slot);
            });
        }
        drop(listener);
        if tokio::time::timeout(self.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the shutdown grace period");
        }
        Ok(())
    }
}
