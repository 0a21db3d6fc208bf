//! Unit tests of the client-address parser (`super`).

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

use ForwardedHeader::{Forwarded, XForwardedFor};

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

/// The client for `peer` sending these header lines, with 10.0.0.0/8 trusted.
fn client(peer: &str, header: ForwardedHeader, lines: &[&str]) -> IpAddr {
    let trusted = nets(&["10.0.0.0/8"]);
    client_address(
        ip(peer),
        &trusted,
        header,
        lines.iter().map(|l| l.as_bytes()),
    )
}

#[test]
fn untrusted_peers_cannot_spoof() {
    for header in [XForwardedFor, Forwarded] {
        let got = client("192.0.2.1", header, &["6.6.6.6", "for=6.6.6.6"]);
        assert_eq!(got, ip("192.0.2.1"));
        let lines = ["10.20.0.5".as_bytes()];
        let got = client_address(ip("192.0.2.1"), &[], header, lines);
        assert_eq!(got, ip("192.0.2.1"));
    }
}

#[test]
fn trusted_chain_is_walked_right_to_left() {
    // Client spoofed the leftmost entry; the trusted proxy appended the real one.
    let got = client(
        "10.0.0.1",
        XForwardedFor,
        &["6.6.6.6, 203.0.113.9, 10.0.0.2"],
    );
    assert_eq!(got, ip("203.0.113.9"));
}

#[test]
fn all_lines_are_one_list_first_line_first() {
    // HAProxy's `option forwardfor` adds a new line after the client's own.
    let got = client("10.0.0.1", XForwardedFor, &["10.20.0.5", "203.0.113.9"]);
    assert_eq!(got, ip("203.0.113.9"));
    let got = client(
        "10.0.0.1",
        XForwardedFor,
        &[
            "10.20.0.5, 198.51.100.1",
            "203.0.113.9, 10.0.0.7",
            "10.0.0.8",
        ],
    );
    assert_eq!(got, ip("203.0.113.9"));
    let got = client(
        "10.0.0.1",
        Forwarded,
        &[
            "for=10.20.0.5",
            "for=203.0.113.9",
            "for=10.0.0.7;proto=https",
        ],
    );
    assert_eq!(got, ip("203.0.113.9"));
}

#[test]
fn a_trusted_peer_without_a_usable_address_makes_the_client_unknown() {
    for header in [XForwardedFor, Forwarded] {
        assert_eq!(
            client("10.0.0.1", header, &[]),
            UNKNOWN_CLIENT,
            "{header:?}"
        );
        for junk in [
            "",
            " ",
            ",",
            "junk",
            "unknown",
            "_hidden",
            "999.1.1.1",
            "0.0.0.0",
            "::",
            "for=",
            "for=unknown",
            "for=_hidden",
            "for=\"_x:_y\"",
            "by=10.0.0.2",
            "for=\"[::1",
            "for=1.2.3.4;for=5.6.7.8",
            "1.2.3.4 5.6.7.8",
        ] {
            assert_eq!(
                client("10.0.0.1", header, &[junk]),
                UNKNOWN_CLIENT,
                "{header:?} {junk:?}"
            );
            // Garbage right of a real address is not skipped over.
            assert_eq!(
                client("10.0.0.1", header, &["203.0.113.9", junk]),
                UNKNOWN_CLIENT,
                "{header:?} {junk:?}"
            );
        }
    }
    // A spoofed garbage entry left of the client changes nothing.
    let got = client("10.0.0.1", XForwardedFor, &["junk, 203.0.113.9"]);
    assert_eq!(got, ip("203.0.113.9"));
    let got = client("10.0.0.1", Forwarded, &["for=junk;x, for=\"203.0.113.9\""]);
    assert_eq!(got, ip("203.0.113.9"));
    // Leading zeros and other spellings some parsers read as octal.
    for odd in ["010.0.0.1", "10.1", "0x0a000001", "167772161"] {
        assert_eq!(
            client("10.0.0.1", XForwardedFor, &[odd]),
            UNKNOWN_CLIENT,
            "{odd}"
        );
    }
}

#[test]
fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
    let got = client("10.0.0.1", XForwardedFor, &["10.0.0.9, 10.0.0.2"]);
    assert_eq!(got, ip("10.0.0.9"));
    // A hop in the middle that is not an address stops the walk.
    let got = client("10.0.0.1", XForwardedFor, &["10.0.0.9, junk, 10.0.0.2"]);
    assert_eq!(got, UNKNOWN_CLIENT);
}

#[test]
fn forwarded_grammar() {
    let cases = [
        ("for=192.0.2.43", "192.0.2.43"),
        ("For=192.0.2.43", "192.0.2.43"),
        ("FOR=\"192.0.2.43:47011\"", "192.0.2.43"),
        ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
        ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
        ("for=\"[2001:db8:cafe::17]:_port\"", "2001:db8:cafe::17"),
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ("proto=https; for=192.0.2.60 ;by=\"a,b;c\"", "192.0.2.60"),
        ("for=\"\\1\\9\\2.0.2.1\"", "192.0.2.1"),
        ("for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),
        ("for=\"[::ffff:192.0.2.44]\"", "192.0.2.44"),
    ];
    for (line, want) in cases {
        assert_eq!(client("10.0.0.1", Forwarded, &[line]), ip(want), "{line}");
    }
    // A quoted comma is not an element boundary: the proxy's own element
    // after it is still the one read.
    let got = client(
        "10.0.0.1",
        Forwarded,
        &["for=10.20.0.5;by=\"x,for=10.20.0.6\", for=203.0.113.9"],
    );
    assert_eq!(got, ip("203.0.113.9"));
    // An unterminated quote swallows the rest of its line, never the next.
    let got = client(
        "10.0.0.1",
        Forwarded,
        &["for=\"10.20.0.5", "for=203.0.113.9"],
    );
    assert_eq!(got, ip("203.0.113.9"));
    let got = client(
        "10.0.0.1",
        Forwarded,
        &["for=\"x, for=10.20.0.5, for=203.0.113.9"],
    );
    assert_eq!(got, UNKNOWN_CLIENT);
}

#[test]
fn x_forwarded_for_spellings() {
    let cases = [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
        ("\t203.0.113.9:4711", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
    ];
    for (line, want) in cases {
        assert_eq!(
            client("10.0.0.1", XForwardedFor, &[line]),
            ip(want),
            "{line}"
        );
    }
    // IPv4-mapped trusted hops are trusted hops.
    let got = client(
        "::ffff:10.0.0.1",
        XForwardedFor,
        &["203.0.113.9, ::ffff:10.0.0.2"],
    );
    assert_eq!(got, ip("203.0.113.9"));
    for bad in [
        "203.0.113.9:99999",
        "203.0.113.9:",
        "[2001:db8::1",
        "2001:db8::1]:443",
        "[203.0.113.9]",
        "203.0.113.9:80:80",
        "[2001:db8::1]x",
    ] {
        assert_eq!(
            client("10.0.0.1", XForwardedFor, &[bad]),
            UNKNOWN_CLIENT,
            "{bad}"
        );
    }
}

#[test]
fn only_the_configured_header_counts() {
    // The proxy sets X-Forwarded-For; the client added a Forwarded line
    // that the proxy passed through. Only the configured header's lines
    // reach the parser (the caller picks them by `ForwardedHeader::name`),
    // and in the other header's grammar the spoof is no address.
    assert_eq!(ForwardedHeader::XForwardedFor.name(), "x-forwarded-for");
    assert_eq!(ForwardedHeader::Forwarded.name(), "forwarded");
    assert_eq!(
        client("10.0.0.1", XForwardedFor, &["for=10.20.0.5"]),
        UNKNOWN_CLIENT
    );
    assert_eq!(
        client("10.0.0.1", Forwarded, &["10.20.0.5"]),
        UNKNOWN_CLIENT
    );
}

#[test]
fn long_chains_are_bounded() {
    // More than MAX_HOPS trusted hops: the leftmost was never seen.
    let hops = vec!["10.0.0.3"; MAX_HOPS + 1].join(", ");
    assert_eq!(client("10.0.0.1", XForwardedFor, &[&hops]), UNKNOWN_CLIENT);
    let hops = vec!["10.0.0.3"; MAX_HOPS].join(", ");
    assert_eq!(client("10.0.0.1", XForwardedFor, &[&hops]), ip("10.0.0.3"));
    // An untrusted hop within reach is found however long the left part.
    let mut lines = vec!["6.6.6.6"; 10_000];
    lines.push("203.0.113.9, 10.0.0.2");
    assert_eq!(client("10.0.0.1", XForwardedFor, &lines), ip("203.0.113.9"));
}

#[test]
fn the_unspecified_address_is_on_no_network() {
    let all = nets(&["0.0.0.0/0", "::/0"]);
    for unknown in ["0.0.0.0", "::", "::ffff:0.0.0.0"] {
        assert!(!in_networks(&all, ip(unknown)), "{unknown}");
    }
    assert!(in_networks(&all, ip("192.0.2.1")));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let trusted = nets(&["10.0.0.0/8"]);
    let samples: [&[u8]; 8] = [
        b"\xff\xfe",
        b"for=\"\\",
        b"\"",
        b";;;,,,",
        b"for=\"[",
        b"[",
        b"]:",
        b"for=\"\xc3\"",
    ];
    for header in [XForwardedFor, Forwarded] {
        for s in samples {
            let _ = client_address(ip("10.0.0.1"), &trusted, header, [s]);
        }
    }
}

#[test]
fn mapped_addresses_match_v4_networks() {
    let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
    assert!(in_networks(&nets, ip("::ffff:127.0.0.1")));
    assert!(!in_networks(&nets, ip("127.0.0.2")));
}

#[test]
fn addresses_are_written_as_display_writes_them() {
    for text in [
        "0.0.0.0",
        "1.2.3.4",
        "9.10.99.100",
        "127.0.0.1",
        "192.168.10.255",
        "255.255.255.255",
        "::1",
        "2001:db8::42",
        "::ffff:10.0.0.1",
    ] {
        let ip: IpAddr = text.parse().unwrap();
        let mut out = String::from("x ");
        push_ip(&mut out, ip);
        assert_eq!(out, format!("x {ip}"));
        let json = serde_json::to_string(&Wrap(ip)).unwrap();
        assert_eq!(json, serde_json::to_string(&ip).unwrap());
    }
}

#[derive(serde::Serialize)]
struct Wrap(#[serde(serialize_with = "serialize_ip")] IpAddr);
