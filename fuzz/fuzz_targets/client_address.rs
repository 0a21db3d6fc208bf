//! The client-address parser on arbitrary forwarding headers: never panics,
//! and the answer is the peer, an address written in the input, or the
//! unknown client — never anything else, and always the peer when the peer
//! is not trusted.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use portvakt::net::{client_address, ForwardedHeader, UNKNOWN_CLIENT};

fuzz_target!(|data: &[u8]| {
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let (Some(&selector), Some(rest)) = (data.first(), data.get(1..)) else {
        return;
    };
    let header = if selector & 1 == 0 {
        ForwardedHeader::XForwardedFor
    } else {
        ForwardedHeader::Forwarded
    };
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let trusted_peer: IpAddr = "10.1.2.3".parse().unwrap();
    let got = client_address(trusted_peer, &trusted, header, lines.iter().copied());
    if got != trusted_peer && got != UNKNOWN_CLIENT {
        // Written in the input, in some spelling.
        let text = String::from_utf8_lossy(rest).to_ascii_lowercase();
        let v6_or_v4 = match got {
            IpAddr::V4(v4) => v4.octets().iter().map(|o| o.to_string()).collect::<Vec<_>>().join("."),
            IpAddr::V6(_) => String::new(),
        };
        assert!(
            got.is_ipv6() || text.contains(&v6_or_v4),
            "{got} is not in {text:?}"
        );
    }
    let outsider: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(client_address(outsider, &trusted, header, lines.iter().copied()), outsider);
    let _ = portvakt::proxy_protocol::parse(data);
});
