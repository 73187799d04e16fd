//! Whose request it is: the client's address behind proxies (`X-Forwarded-For`).
//!
//! Behind a proxy (the gateway before auth; nginx or an ingress controller before the
//! gateway) every peer is that proxy, and per-address limits would count all clients as
//! one. A peer in a `--trusted-proxy` list is believed about the addresses it received
//! from: the client is the right-most address of its `X-Forwarded-For` that is not itself
//! a trusted proxy (each proxy appends the address it saw, so what lies left of the first
//! untrusted one is anybody's claim), as nginx's `real_ip_recursive` does. Anyone else's
//! `X-Forwarded-For` is a claim, and the peer is the client.

use std::net::{IpAddr, SocketAddrV4};

use axum::http::HeaderValue;
use ipnet::{IpNet, Ipv4Net};

/// Peers believed about `X-Forwarded-For`: addresses and ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`: the same client.
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address, from the peer and the values of the request's
    /// `X-Forwarded-For` fields in the order they came (several fields are one list).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        // From the right: each entry is what the hop to its right saw. The last one a
        // trusted hop wrote is believed; one that is not an address ends the walk at the
        // hop that wrote it.
        let mut client = peer;
        let from_the_right = forwarded_for
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','));
        for entry in from_the_right {
            let Some(ip) = address(entry) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One entry of a `--trusted-proxy` list: an address (`10.0.0.7`, `::1`) or a range in CIDR
/// notation (`10.0.0.0/8`).
pub fn parse_range(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is neither an address nor a range like 10.0.0.0/8"))?;
    // Peers are compared as IPv4 when they are IPv4-mapped (`IpAddr::to_canonical`): so are ranges
    // within the mapped block.
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(|n| IpNet::V4(n).trunc())
                .map_err(|e| format!("`{s}`: {e}")),
            None => Ok(net.trunc()),
        },
        net => Ok(net.trunc()),
    }
}

/// An entry of `X-Forwarded-For`: an address, with or without a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as proxies write them.
fn address(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    s.parse::<SocketAddrV4>().ok().map(|a| IpAddr::V4(*a.ip()))
}

/// The address as a proxy writes it in `X-Forwarded-For`.
pub fn header(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusting(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| parse_range(r).unwrap()).collect())
    }

    fn client(t: &TrustedProxies, peer: &str, fields: &[&str]) -> IpAddr {
        t.client(ip(peer), fields.iter().map(|f| f.as_bytes()))
    }

    #[test]
    fn a_peer_not_trusted_is_the_client_whatever_it_claims() {
        let t = trusting(&["10.0.0.0/8"]);
        assert_eq!(client(&t, "203.0.113.9", &["1.1.1.1"]), ip("203.0.113.9"));
        assert_eq!(
            client(&TrustedProxies::default(), "127.0.0.1", &["1.1.1.1"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_it_saw() {
        let t = trusting(&["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(
            client(&t, "10.1.2.3", &["198.51.100.7"]),
            ip("198.51.100.7")
        );
        // What the client claimed (left) is not believed; the proxy's entry (right) is.
        assert_eq!(
            client(&t, "10.1.2.3", &["6.6.6.6, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        // A chain of trusted proxies is walked through, across several fields.
        assert_eq!(
            client(
                &t,
                "10.1.2.3",
                &["6.6.6.6, 198.51.100.7", "192.0.2.1, 10.9.9.9"]
            ),
            ip("198.51.100.7")
        );
        // Ports and brackets, as some proxies write them; IPv6.
        assert_eq!(
            client(&t, "10.1.2.3", &["198.51.100.7:5123"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client(&t, "10.1.2.3", &["[2001:db8::7]:443"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            client(&t, "10.1.2.3", &[" 2001:db8::8 "]),
            ip("2001:db8::8")
        );
    }

    #[test]
    fn what_is_not_an_address_stops_at_the_hop_that_wrote_it() {
        let t = trusting(&["10.0.0.0/8"]);
        // No header, an empty one, garbage: the proxy itself is all that is known.
        assert_eq!(client(&t, "10.1.2.3", &[]), ip("10.1.2.3"));
        assert_eq!(client(&t, "10.1.2.3", &[""]), ip("10.1.2.3"));
        assert_eq!(client(&t, "10.1.2.3", &["unknown"]), ip("10.1.2.3"));
        assert_eq!(
            client(&t, "10.1.2.3", &["1.1.1.1, 10.4.4.4, nonsense, 10.5.5.5"]),
            ip("10.5.5.5")
        );
        assert_eq!(
            t.client(ip("10.1.2.3"), [&b"\xff\x80"[..]].into_iter()),
            ip("10.1.2.3"),
            "not UTF-8"
        );
        // Every hop trusted: the left-most, the furthest known.
        assert_eq!(
            client(&t, "10.1.2.3", &["10.7.7.7, 10.8.8.8"]),
            ip("10.7.7.7")
        );
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let t = trusting(&["127.0.0.1"]);
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        // A peer not trusted is named as IPv4 too, as it is when a proxy names it.
        assert_eq!(client(&t, "::ffff:203.0.113.9", &[]), ip("203.0.113.9"));
        // Ranges written mapped match peers of either form.
        let mapped = trusting(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.contains(ip("10.1.2.3")) && mapped.contains(ip("::ffff:10.1.2.3")));
        assert!(!mapped.contains(ip("11.0.0.1")));
        assert_eq!(
            client(&t, "::ffff:127.0.0.1", &["::ffff:198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(header(ip("::ffff:198.51.100.7")), "198.51.100.7");
    }

    #[test]
    fn ranges_are_addresses_or_cidr() {
        assert_eq!(parse_range("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
        assert_eq!(parse_range("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_range("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_range("::ffff:10.0.0.5").unwrap().to_string(),
            "10.0.0.5/32"
        );
        for bad in ["", "10.0.0.0/33", "example.com", "10.0.0.0/8/8"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
