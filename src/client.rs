//! Who a request comes from: the client address every per-client limit counts under (the
//! throttle's keys, the login lock-out, each client's share of the password hashing bound).
//!
//! The address is the socket's peer (`ConnectInfo<SocketAddr>`: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()` or `wxrest::server::Server`), or,
//! behind `N` proxies that append to `X-Forwarded-For`, the `N`th address from the right (DRF's
//! `NUM_PROXIES`: the entries left of it are the client's own to forge).
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use axum::extract::ConnectInfo;
//! use wxrest::client::client_addr;
//!
//! let mut req = http::Request::get("/").header("x-forwarded-for", "203.0.113.9, 10.0.0.2").body(()).unwrap();
//! req.extensions_mut().insert(ConnectInfo("10.0.0.1:40000".parse::<SocketAddr>().unwrap()));
//! let (parts, ()) = req.into_parts();
//! assert_eq!(client_addr(&parts, 0), Some("10.0.0.1".parse::<IpAddr>().unwrap()));
//! assert_eq!(client_addr(&parts, 1), Some("10.0.0.2".parse::<IpAddr>().unwrap()));
//! assert_eq!(client_addr(&parts, 2), Some("203.0.113.9".parse::<IpAddr>().unwrap()));
//! ```

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Once;

use axum::extract::ConnectInfo;
use http::request::Parts;

/// The client's address: the `num_proxies`th forwarded one (when `num_proxies > 0` and the
/// header has one), else the socket's peer. IPv4-mapped IPv6 peers (a dual-stack socket) are
/// given as IPv4.
///
/// `None` when the request carries neither: served without `ConnectInfo` (plain
/// `axum::serve(listener, app)`), every client would share one key. The first such request
/// logs an error naming the fix; per-client limits then count all such requests together.
pub fn client_addr(parts: &Parts, num_proxies: usize) -> Option<IpAddr> {
    if num_proxies > 0
        && let Some(ip) = forwarded_client(parts, num_proxies)
    {
        return Some(ip.to_canonical());
    }
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => Some(peer.ip().to_canonical()),
        None => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::error!(
                    "a request has no client address: serve with \
                     `into_make_service_with_connect_info::<SocketAddr>()` (or \
                     wxrest::server::Server); until then every client shares one throttle key"
                );
            });
            None
        }
    }
}

/// The part of an address one client controls, for counting clients: an IPv4 address as it
/// is, an IPv6 address's `/64` prefix (one subscriber's network: a host picks any address in
/// it, so counting whole IPv6 addresses would give it 2^64 keys).
///
/// ```
/// use std::net::IpAddr;
/// use wxrest::client::network;
///
/// let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
/// let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
/// assert_eq!(network(a), network(b));
/// let v4: IpAddr = "192.0.2.7".parse().unwrap();
/// assert_eq!(network(v4), v4);
/// ```
pub fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// The client address `n` proxies in front of us saw: the `n`th `X-Forwarded-For` entry from
/// the right (all the headers' entries in order), or the leftmost when there are fewer.
fn forwarded_client(parts: &Parts, n: usize) -> Option<IpAddr> {
    let mut hops: Vec<&str> = Vec::new();
    for value in parts.headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { continue };
        hops.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|hop| !hop.is_empty()),
        );
    }
    let hop = hops.get(hops.len().checked_sub(n.min(hops.len()))?)?;
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}
