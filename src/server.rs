//! Serving an axum [`Router`] with limits a public address needs, which `axum::serve` leaves
//! open: a deadline for each request head (slow clients that send half a request, and idle
//! keep-alive connections, are closed), a deadline for writing responses (clients that stop
//! reading are closed), a bounded number of connections, a bound per client address, and
//! graceful shutdown.
//! Needs feature `server`.
//!
//! | limit | default | why |
//! |---|---|---|
//! | [`header_read_timeout`](Server::header_read_timeout) | 10 s | a request head (and the wait for the next one on a kept-alive connection) must arrive in time |
//! | [`write_timeout`](Server::write_timeout) | 30 s | once the socket stops taking a response, the client must take what is queued in time: a client that pipelines requests and never reads (or reads a byte now and then) does not keep its connection |
//! | [`max_connections`](Server::max_connections) | 4096 | past it, new connections wait in the kernel's backlog instead of exhausting file descriptors |
//! | [`max_connections_per_peer`](Server::max_connections_per_peer) | 256 | one address (an IPv6 /64) cannot take every slot; past it a new connection gets `429` and is closed. `0` turns it off: do so behind a reverse proxy, where every connection comes from the proxy |
//! | [`keep_alive`](Server::keep_alive) | on | off closes each connection after one response |
//!
//! The server speaks HTTP/1.1 (what a reverse proxy speaks to its upstream; put HTTP/2 and TLS
//! in the proxy). Behind a proxy, keep limiting request bodies and total request time in the
//! app (`DefaultBodyLimit`, tower-http's `RequestBodyTimeoutLayer` and `TimeoutLayer`), and let
//! the proxy limit connections per client.
//!
//! It also enforces the [development rule](crate::dev): while a development fake runs in the
//! process, it refuses to serve any address (loopback included: behind a reverse proxy, a
//! loopback address serves the public) unless [`development`](Server::development) was
//! switched on.
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
//!     .write_timeout(Duration::from_secs(20))
//!     .max_connections(10_000)
//!     .max_connections_per_peer(100)
//!     .serve(listener, app, async { tokio::signal::ctrl_c().await.ok(); })
//!     .await
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Why [`Server::serve`] stopped or refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A development fake runs and development was not switched on.
    #[error(
        "{fakes} is running but development is not switched on (serving {addr}): configure the \
         real service, or switch development on explicitly (never in production; a loopback \
         address behind a reverse proxy serves the public too)"
    )]
    DevelopmentNotSwitchedOn {
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
    write_timeout: Duration,
    max_connections: usize,
    max_connections_per_peer: usize,
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
/// The default deadline for a client to take a response the socket stopped taking.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default bound on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The default bound on open connections from one address (an IPv6 /64).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;

impl Server {
    /// The defaults: 10 s per request head, 30 s to take a blocked response, 4096 connections,
    /// 256 per client address, keep-alive on.
    pub fn new() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
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

    /// How long a client may take, once the socket stops taking a response's bytes (the
    /// client does not read), to take everything queued for it; then the connection is closed.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The most connections open at once (at least 1).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The most connections open at once from one client address (IPv6 addresses count by
    /// their /64); `0` turns the bound off (behind a reverse proxy every connection comes
    /// from the proxy).
    #[must_use]
    pub fn max_connections_per_peer(mut self, max: usize) -> Self {
        self.max_connections_per_peer = max;
        self
    }

    /// Keep connections open between requests (default on).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Allows development fakes to run while serving (an explicit development switch).
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

    /// Checks the development rule for `addr` (see the module docs): while a development fake
    /// runs, serving needs [`development`](Self::development), whatever the address.
    ///
    /// ```
    /// use wxrest::server::Server;
    /// assert!(Server::new().development(true).check("127.0.0.1:8000".parse().unwrap()).is_ok());
    /// ```
    pub fn check(&self, addr: SocketAddr) -> Result<(), ServeError> {
        let fakes = crate::dev::running_fakes();
        if fakes.is_empty() || self.development {
            return Ok(());
        }
        Err(ServeError::DevelopmentNotSwitchedOn {
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
        let peers = Peers::new(self.max_connections_per_peer);
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
            let Some(peer_slot) = peers.enter(peer.ip()) else {
                refuse_over_peer_bound(&stream, peer);
                // Dropping the stream closes it and frees the connection slot.
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = app
                .clone()
                .map_request(move |mut req: axum::extract::Request| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
            let connection = http.serve_connection(
                TokioIo::new(WriteDeadline::new(stream, self.write_timeout)),
                TowerToHyperService::new(service.map_request(
                    |req: http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
                )),
            );
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // Closed by the client, a deadline, or an I/O error: nothing to report.
                let _ = connection.await;
                drop(peer_slot);
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

/// The answer to a connection over its address's bound, written only if the socket takes it
/// at once (the connection is closed either way).
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 85\r\n\
\r\n\
{\"detail\": \"Too many connections from your address.\", \"code\": \"too_many_connections\"}";

fn refuse_over_peer_bound(stream: &TcpStream, peer: SocketAddr) {
    // Never waits: a client that does not read gets the close alone.
    let _ = stream.try_write(TOO_MANY_CONNECTIONS);
    // Debug only: a client opening connections in a loop must not flood the log.
    tracing::debug!(%peer, "connection refused: too many connections from this address");
}

/// Open connections per client address. Only addresses with an open connection have an
/// entry, so the map never holds more entries than the server holds connections.
struct Peers {
    max: usize,
    open: OpenPerPeer,
}

/// Open connections by address (see [`peer_key`]); only addresses with one have an entry.
type OpenPerPeer = Arc<Mutex<HashMap<IpAddr, usize>>>;

impl Peers {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// Counts a connection from `ip`, or `None` when its address is at the bound.
    fn enter(&self, ip: IpAddr) -> Option<PeerSlot> {
        if self.max == 0 {
            return Some(PeerSlot(None));
        }
        let key = peer_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot(Some((self.open.clone(), key))))
    }
}

/// The address a connection counts against: IPv4 (IPv4-mapped IPv6 included) by address,
/// other IPv6 by /64, the smallest block a client is usually given.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// One connection counted in [`Peers`]; dropping it uncounts it.
struct PeerSlot(Option<(OpenPerPeer, IpAddr)>);

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Some((open, key)) = self.0.take() else {
            return;
        };
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// A socket whose writes carry a deadline: when it stops taking bytes, the clock starts, and it
/// stops only once every byte queued so far has been taken (a completed flush). A client that
/// pipelines requests and never reads, or reads a byte now and then, fails the connection
/// instead of holding it (and its slot) forever.
struct WriteDeadline<S> {
    io: S,
    /// One timer per connection, reset per blocked episode: nothing allocated per write.
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    armed: bool,
}

impl<S> WriteDeadline<S> {
    fn new(io: S, timeout: Duration) -> Self {
        Self {
            io,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            armed: false,
        }
    }

    /// The socket did not take the bytes: starts the clock once per blocked episode, and fails
    /// when it runs out.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.deadline.as_mut().reset(Instant::now() + self.timeout);
            self.armed = true;
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not take the response in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Pending => self.blocked(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.blocked(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => self.blocked(cx),
            Poll::Ready(result) => {
                // Everything queued was taken: the episode is over.
                self.armed = false;
                Poll::Ready(result)
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_shutdown(cx) {
            Poll::Pending => self.blocked(cx),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_by_address_and_ipv6_by_64() {
        let peers = Peers::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let first = peers.enter(a).expect("first");
        let _second = peers
            .enter(mapped)
            .expect("second (the same address, mapped)");
        assert!(peers.enter(a).is_none(), "over the bound");
        assert!(peers.enter("10.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(
            peers.enter(a).is_some(),
            "a closed connection frees its place"
        );

        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let _x = peers.enter(v6a).unwrap();
        let _y = peers.enter(v6b).unwrap();
        assert!(
            peers.enter("2001:db8:1:2::77".parse().unwrap()).is_none(),
            "one /64"
        );
        assert!(peers.enter("2001:db8:1:3::1".parse().unwrap()).is_some());
    }

    #[test]
    fn the_peer_map_forgets_addresses_without_connections() {
        let peers = Peers::new(5);
        let slots: Vec<_> = (0..50u8)
            .map(|i| peers.enter(IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert_eq!(peers.open.lock().unwrap().len(), 50);
        drop(slots);
        assert!(peers.open.lock().unwrap().is_empty());
    }

    #[test]
    fn the_too_many_connections_answer_is_well_formed() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "too_many_connections");
    }
}
