//! Who is on the other end of a request: the client address behind trusted proxies.
//!
//! A proxy (a load balancer, or the admin console calling auth on a user's behalf)
//! appends the address it received the request from to `X-Forwarded-For`. That header
//! is honoured only when the connection itself comes from a configured proxy, and then
//! read right to left, skipping trusted proxies: the first untrusted address is the
//! client. Anything a client writes into the header itself sits further left and is
//! never reached, so it cannot choose its own address.
//!
//! When every address seen is a trusted proxy (no header, or only proxies in it), the
//! client is unknown: callers record the proxy's address for history but never
//! throttle by it, since one proxy speaks for many users.

use std::net::IpAddr;

use ipnet::IpNet;

/// Header proxies append client addresses to.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";
/// Header Spin (and `cinema up`) sets to the connection's peer, `ip:port`.
pub const SPIN_CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// The configured proxy addresses (single addresses or CIDR blocks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `trusted_proxies` entry that is neither an address nor a CIDR block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("trusted proxy `{0}` is not an IP address or CIDR block")]
pub struct BadProxy(pub String);

impl TrustedProxies {
    /// Parses a comma- or space-separated list (`127.0.0.1, ::1, 10.0.0.0/8`); empty
    /// trusts nobody.
    pub fn parse(list: &str) -> Result<Self, BadProxy> {
        list.split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxy(entry.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `addr` is one of the proxies.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        let addr = canonical(*addr);
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a peer as Spin gives it (`ip:port`, `[v6]:port`) or a bare address.
pub fn parse_peer(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| raw.parse::<IpAddr>())
        .ok()
        .map(canonical)
}

/// The client of a request as far as it can be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// The best-known address, for history and sessions (a proxy's when no client is known).
    pub recorded: Option<IpAddr>,
    /// The client's own address, to throttle by; `None` when only proxies were seen.
    pub client: Option<IpAddr>,
}

/// Works out the client from the connection's `peer` and the `X-Forwarded-For` header
/// values (in the order received).
pub fn resolve<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> ClientAddress {
    let Some(peer) = peer.map(canonical) else {
        return ClientAddress {
            recorded: None,
            client: None,
        };
    };
    if !trusted.contains(&peer) {
        return ClientAddress {
            recorded: Some(peer),
            client: Some(peer),
        };
    }
    let chain: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let mut nearest_proxy = peer;
    for hop in chain.iter().rev() {
        match parse_peer(hop) {
            Some(addr) if trusted.contains(&addr) => nearest_proxy = addr,
            Some(addr) => {
                return ClientAddress {
                    recorded: Some(addr),
                    client: Some(addr),
                };
            }
            // A hop that is not an address: the chain cannot be trusted past it.
            None => break,
        }
    }
    ClientAddress {
        recorded: Some(nearest_proxy),
        client: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn loopback() -> TrustedProxies {
        TrustedProxies::parse("127.0.0.1, ::1").expect("valid list")
    }

    /// A client that is not a proxy is itself, whatever header it sends.
    #[test]
    fn an_untrusted_peer_is_the_client_and_its_header_is_ignored() {
        let got = resolve(Some(ip("203.0.113.9")), ["198.51.100.1"], &loopback());
        assert_eq!(got.client, Some(ip("203.0.113.9")));
    }

    /// Behind a trusted proxy, the rightmost untrusted hop is the client; what the
    /// client wrote further left is not reached.
    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let got = resolve(
            Some(ip("127.0.0.1")),
            ["6.6.6.6, 203.0.113.5", "127.0.0.1"],
            &loopback(),
        );
        assert_eq!(got.client, Some(ip("203.0.113.5")));
    }

    /// A proxy's own requests (no header) have no client to throttle.
    #[test]
    fn a_proxy_without_a_forwarded_client_is_never_the_client() {
        let got = resolve(Some(ip("127.0.0.1")), [], &loopback());
        assert_eq!((got.client, got.recorded), (None, Some(ip("127.0.0.1"))));
    }

    /// A garbage hop stops the walk rather than letting an attacker pick an address.
    #[test]
    fn a_malformed_hop_ends_the_chain() {
        let got = resolve(Some(ip("127.0.0.1")), ["1.2.3.4, nonsense"], &loopback());
        assert_eq!(got.client, None);
    }

    /// CIDR blocks, bare addresses and IPv4-mapped IPv6 peers all match.
    #[test]
    fn cidr_blocks_and_mapped_addresses_are_trusted() {
        let trusted = TrustedProxies::parse("10.0.0.0/8 ::1").expect("valid list");
        assert!(trusted.contains(&ip("10.1.2.3")));
        assert_eq!(parse_peer("[::ffff:10.0.0.1]:4000"), Some(ip("10.0.0.1")));
        assert!(trusted.contains(&parse_peer("[::ffff:10.0.0.1]:4000").expect("a peer")));
        assert!(!trusted.contains(&ip("11.0.0.1")));
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/99"),
            Err(BadProxy("10.0.0.0/99".into()))
        );
    }
}
