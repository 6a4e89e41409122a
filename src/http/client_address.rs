//! Who the client is, for the limits kept per client address of a request
//! (`AUTH_RATE_PER_MINUTE`, `ANONYMOUS_RATE_PER_MINUTE`, the reset mails,
//! `LIVE_STREAMS_PER_ADDRESS`). The limit on connections per address is decided before
//! any request is read, so it cannot use this: a trusted proxy's connections are simply
//! not limited per address.
//!
//! Behind a proxy every connection comes from the proxy, and one limit would be shared by
//! all its clients. When the peer is one of `TRUSTED_PROXIES`, the client is read from
//! `X-Forwarded-For` instead: the right-most address in it that is not itself a trusted
//! proxy (each proxy appends the address it received the request from, so the entries
//! left of the last untrusted one were written by the client and prove nothing). A peer
//! that is not trusted is the client, whatever its headers say. Trust exact proxy
//! addresses: any client inside a trusted network could name any address it likes.
//!
//! Every per-address limit counts a client by [`limit_key`]: an IPv4 address as it is,
//! an IPv6 one by its /64, the prefix one site or one customer is given. Within it a
//! client may use any address it likes, so counting each address would let it multiply
//! its limits by 2^64.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::app::App;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// An address or a network (`10.0.0.0/8`, `::1`), as `TRUSTED_PROXIES` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => masked(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            // An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`).
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| self.contains(IpAddr::V4(ip))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// Whether `a` and `b`, numbers of `bits` bits, agree on their first `prefix` bits.
fn masked(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let ignored = bits - u32::from(prefix);
    ignored >= bits || (a >> ignored) == (b >> ignored)
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network like 10.0.0.0/8"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Self { address, prefix })
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// A comma-separated list; empty for none.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client behind a request that arrived from `peer`.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        // Several headers count as one list, in order.
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.contains(ip) => continue,
                Ok(ip) => return ip,
                // Garbage past the proxies' own entries: nothing further left is reliable.
                Err(_) => return peer,
            }
        }
        // Only proxies (or no header): the request came from the proxies themselves.
        peer
    }
}

/// What the per-address limits count `ip` as: an IPv4 address (also when mapped into
/// IPv6) as it is, an IPv6 address by its /64.
pub fn limit_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The request's client, as the per-address limits count it ([`limit_key`]).
pub struct ClientAddress(pub String);

impl<S> FromRequestParts<S> for ClientAddress
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = App::from_ref(state);
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                // Called without a socket (tests through the router): one client.
                || "unknown".to_string(),
                |peer| {
                    let proxies = &state.config.trusted_proxies;
                    limit_key(proxies.client_of(peer.0.ip(), &parts.headers))
                },
            );
        Ok(Self(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_an_ipv4_one_by_its_address() {
        assert_eq!(limit_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(limit_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
        let one = limit_key(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(one, "2001:db8:1:2::/64");
        assert_eq!(limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), one);
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), one);
        assert_eq!(limit_key(ip("::1")), "0:0:0:0::/64");
    }

    #[test]
    fn networks_parse_and_contain() {
        let local = networks("127.0.0.1, 10.0.0.0/8,fd00::/8");
        assert!(local.contains(ip("127.0.0.1")));
        assert!(!local.contains(ip("127.0.0.2")));
        assert!(local.contains(ip("10.200.3.4")));
        assert!(local.contains(ip("::ffff:10.1.1.1")));
        assert!(local.contains(ip("fd12::1")));
        assert!(!local.contains(ip("fe80::1")));
        assert!(networks("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert_eq!(networks(""), TrustedProxies::default());
        for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/x", "::/129"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = networks("127.0.0.1");
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(
            proxies.client_of(ip("203.0.113.9"), &headers),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client_of(ip("127.0.0.1"), &headers), ip("127.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = networks("127.0.0.1,10.0.0.0/8");
        // The client forged the first entry; the proxies appended the rest.
        let headers = forwarded(&["1.2.3.4, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            proxies.client_of(ip("127.0.0.1"), &headers),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_of(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1"),
            "no header: the proxy itself"
        );
        assert_eq!(
            proxies.client_of(ip("127.0.0.1"), &forwarded(&["junk, 10.0.0.5"])),
            ip("127.0.0.1"),
            "garbage where a client should be"
        );
    }
}
