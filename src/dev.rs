//! The development rule: conveniences that would be unsafe in production (a built-in fake
//! WeChat that lets any code log in, a published signing secret) run only behind an explicit
//! development switch. A loopback listen address is *not* such a switch: the usual production
//! host binds `127.0.0.1` behind nginx, so loopback serves the public as well as any address.
//!
//! The fakes register themselves here while they run, and [`Server`]
//! refuses to serve while one is live unless development was switched on explicitly: a fake
//! wired in by accident never serves the public silently.
//!
//! [`is_loopback`] tells whether a listen address is loopback only, e.g. to warn louder when
//! development runs on an address others can reach.
//!
//! ```
//! use wxrest::dev::is_loopback;
//!
//! assert!(is_loopback("127.0.0.1:8000"));
//! assert!(is_loopback("localhost:8000"));
//! assert!(is_loopback("[::1]:8000"));
//! assert!(!is_loopback("0.0.0.0:8000"));
//! assert!(!is_loopback("10.0.0.5:8000"));
//! ```
//!
#![cfg_attr(feature = "server", doc = "[`Server`]: crate::server::Server")]
#![cfg_attr(not(feature = "server"), doc = "[`Server`]: crate")]

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// Whether a listen address (`host:port`, `[v6]:port`, a bare host or IP) is loopback only.
/// Unparseable addresses and wildcards (`0.0.0.0`, `::`) are not.
pub fn is_loopback(bind: &str) -> bool {
    let bind = bind.trim();
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    if let Ok(ip) = bind.trim_matches(['[', ']']).parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let host = bind.rsplit_once(':').map_or(bind, |(host, _)| host);
    host.eq_ignore_ascii_case("localhost")
}

/// The fakes running in this process, by name.
static FAKES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Names of the development fakes running in this process now (e.g. `"FakeWeChat"`).
///
/// ```
/// assert!(wxrest::dev::running_fakes().iter().all(|name| name.starts_with("Fake")));
/// ```
pub fn running_fakes() -> Vec<&'static str> {
    FAKES.lock().map(|f| f.clone()).unwrap_or_default()
}

/// Registration of a running fake; dropping it removes the registration.
#[derive(Debug)]
pub(crate) struct FakeRegistration(&'static str);

impl FakeRegistration {
    #[cfg_attr(
        not(any(feature = "fake-wechat", feature = "fake-pay")),
        allow(dead_code)
    )]
    pub(crate) fn new(name: &'static str) -> Self {
        if let Ok(mut fakes) = FAKES.lock() {
            fakes.push(name);
        }
        Self(name)
    }
}

impl Drop for FakeRegistration {
    fn drop(&mut self) {
        if let Ok(mut fakes) = FAKES.lock()
            && let Some(at) = fakes.iter().position(|n| *n == self.0)
        {
            fakes.swap_remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for yes in [
            "127.0.0.1:8000",
            "127.1.2.3:1",
            "[::1]:80",
            "::1",
            "127.0.0.1",
            "localhost:8000",
            "LOCALHOST:1",
            "localhost",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "0.0.0.0:8000",
            "[::]:8000",
            "10.0.0.1:80",
            "192.168.1.2:80",
            "example.com:80",
            "localhost.example.com:80",
            "",
            "garbage",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn registrations_come_and_go() {
        let before = running_fakes()
            .iter()
            .filter(|n| **n == "FakeForTest")
            .count();
        let reg = FakeRegistration::new("FakeForTest");
        assert_eq!(
            running_fakes()
                .iter()
                .filter(|n| **n == "FakeForTest")
                .count(),
            before + 1
        );
        drop(reg);
        assert_eq!(
            running_fakes()
                .iter()
                .filter(|n| **n == "FakeForTest")
                .count(),
            before
        );
    }
}
