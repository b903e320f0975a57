//! The client's address behind trusted reverse proxies.
//!
//! Without trusted proxies the peer address is the client's, and `X-Forwarded-For` and
//! `Forwarded` are ignored (anyone can send them). With them (`--trusted-proxies`, addresses
//! or CIDR blocks), a request whose peer is a trusted proxy is attributed to the address that
//! proxy saw: the forwarding headers are read from the right (the end the proxies appended
//! to) and the first address that is not itself a trusted proxy is the client. Addresses to
//! its left were written by the client and are not believed. `Forwarded` (RFC 7239) is used
//! when present, `X-Forwarded-For` otherwise.

use axum::http::HeaderMap;
use std::net::IpAddr;
use std::str::FromStr;

/// An address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for IpBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl IpBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4 addresses mapped into IPv6 (`::ffff:a.b.c.d`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Trusted proxies; empty: trust no forwarding header.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpBlock>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers);
        // From the right: skip our own proxies; the first other address is the client.
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => {}
                Some(ip) => return *ip,
                // An address we cannot read (`unknown`, an obfuscated name): stop believing.
                None => return peer,
            }
        }
        // Every hop is a trusted proxy (or there were none): the leftmost one we reached.
        hops.first().copied().flatten().unwrap_or(peer)
    }
}

/// The addresses in `Forwarded` (`for=`), else in `X-Forwarded-For`, left to right; `None`
/// for an element that is not an IP address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:8080` or `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok().map(canonical);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<IpAddr>().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies(
            blocks
                .iter()
                .map(|b| b.parse().unwrap_or_else(|e| panic!("{e}")))
                .collect(),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                *name,
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_peer_that_is_not_trusted_is_the_client() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            trusted(&["10.0.0.0/8"]).client(ip("192.0.2.5"), &h),
            ip("192.0.2.5")
        );
    }

    #[test]
    fn read_from_the_right_skipping_trusted_hops() {
        // The client sent a forged first entry; two of our proxies appended theirs.
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.7")]);
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_wins_and_understands_ports_and_ipv6() {
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            (
                "forwarded",
                "for=198.51.100.2;proto=https, for=\"[2001:db8::7]:443\"",
            ),
        ]);
        assert_eq!(
            trusted(&["127.0.0.1"]).client(ip("127.0.0.1"), &h),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk() {
        let h = headers(&[("forwarded", "for=198.51.100.2, for=unknown")]);
        assert_eq!(
            trusted(&["127.0.0.1"]).client(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn blocks_parse_and_match() {
        assert!(trusted(&["10.1.0.0/16"]).trusts(ip("10.1.200.3")));
        assert!(!trusted(&["10.1.0.0/16"]).trusts(ip("10.2.0.1")));
        assert!(trusted(&["::1"]).trusts(ip("::1")));
        assert!(trusted(&["127.0.0.1"]).trusts(ip("::ffff:127.0.0.1")));
        assert!(trusted(&["0.0.0.0/0"]).trusts(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<IpBlock>().is_err());
        assert!("not-an-ip".parse::<IpBlock>().is_err());
    }
}
