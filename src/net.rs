//! Who is the client: the TCP peer, or the address a trusted proxy vouches
//! for in `X-Forwarded-For` (walked right to left); and whether it is internal.

use std::net::IpAddr;

use ipnet::IpNet;

/// Whether `ip` is inside any of `nets` (IPv4-mapped IPv6 counts as IPv4).
pub fn in_networks(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 addresses as IPv4, so `::ffff:10.0.0.1` matches `10.0.0.0/8`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which
/// case `X-Forwarded-For` is walked from the right, skipping trusted hops; the
/// first untrusted address is the client. Garbage in the header stops the walk
/// at the last address that could be trusted.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !in_networks(trusted, peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !in_networks(trusted, client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("192.0.2.1"), Some("6.6.6.6"), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_ip(ip("192.0.2.1"), Some("6.6.6.6"), &[]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trusted_chain_is_walked_right_to_left() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Client spoofed the leftmost entry; the trusted proxy appended the real one.
        let got = client_ip(
            ip("10.0.0.1"),
            Some("6.6.6.6, 203.0.113.9, 10.0.0.2"),
            &trusted,
        );
        assert_eq!(got, ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("junk"), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_addresses_match_v4_networks() {
        let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(in_networks(&nets, ip("::ffff:127.0.0.1")));
        assert!(!in_networks(&nets, ip("127.0.0.2")));
    }
}
