//! PROXY protocol v1 and v2 (HAProxy's `proxy-protocol.txt`) on the HTTPS
//! listener (`listen.proxy_protocol: true`), for load balancers that pass
//! the client's TCP address ahead of the TLS handshake (HAProxy `send-proxy`,
//! F5, AWS NLB, ...).
//!
//! pingora 0.9 calls a [`PreTlsProcess`] on every accepted TCP connection of
//! a TLS listener before the handshake; [`ProxyProtocol`] reads the header
//! there and replaces the connection's socket digest, so `client_addr()` is
//! the client from then on and everything downstream (trusted proxies,
//! internal networks, throttling, logs) sees it as the peer.
//!
//! Only a peer in `trusted_proxies` may send one; a connection from anyone
//! else, or without a valid header, is closed before TLS. `LOCAL` (v2) and
//! `UNKNOWN` (v1), which a balancer uses for its own health checks, give the
//! unknown client [`crate::net::UNKNOWN_CLIENT`]: off every network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::socket::SocketAddr as L4Addr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use tokio::io::AsyncReadExt;

use crate::gateway::Gateway;

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v1 line is at most 107 bytes, CRLF included (the spec's limit).
const V1_MAX: usize = 107;

/// Largest v2 address block accepted (addresses plus TLVs). Balancers send
/// a few dozen bytes of TLVs; the spec allows 65 535, which we do not buffer.
pub const V2_MAX_BODY: usize = 1024;

/// How long a trusted peer has to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the bytes so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid header so far, but not all of it.
    Incomplete,
    /// Not a PROXY header (or a malformed one): close the connection.
    Invalid,
    /// A complete header of `len` bytes. `source` is the client, or `None`
    /// for `LOCAL` / `UNKNOWN` (the balancer speaking for itself).
    Header {
        /// Bytes the header takes; what follows is the TLS handshake.
        len: usize,
        /// The client's address and port.
        source: Option<SocketAddr>,
    },
}

/// Parse a PROXY header (v1 or v2) at the start of `buf`. Pure, never
/// panics; `Incomplete` only while `buf` is shorter than the largest header
/// accepted, so a caller that reads until it is not `Incomplete` buffers at
/// most `16 + V2_MAX_BODY` bytes.
pub fn parse(buf: &[u8]) -> Parsed {
    if starts_like(buf, V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() {
            Parsed::Incomplete
        } else {
            parse_v2(buf)
        };
    }
    if starts_like(buf, b"PROXY ") {
        return if buf.len() < 6 {
            Parsed::Incomplete
        } else {
            parse_v1(buf)
        };
    }
    Parsed::Invalid
}

/// `buf` and `prefix` agree on their common length.
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() < V1_MAX {
            Parsed::Incomplete
        } else {
            Parsed::Invalid
        };
    };
    let len = end + 2;
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid;
    };
    let mut parts = line.split(' ');
    // "PROXY"
    parts.next();
    let source = match parts.next() {
        // The rest of an UNKNOWN line is to be ignored (spec 2.1).
        Some("UNKNOWN") => return Parsed::Header { len, source: None },
        Some(family @ ("TCP4" | "TCP6")) => {
            let fields: Vec<&str> = parts.collect();
            let [src, dst, sport, dport] = fields[..] else {
                return Parsed::Invalid;
            };
            let v4 = family == "TCP4";
            let (Some(src), Some(_dst)) = (v1_addr(src, v4), v1_addr(dst, v4)) else {
                return Parsed::Invalid;
            };
            let (Some(sport), Some(_)) = (v1_port(sport), v1_port(dport)) else {
                return Parsed::Invalid;
            };
            SocketAddr::new(src, sport)
        }
        _ => return Parsed::Invalid,
    };
    Parsed::Header {
        len,
        source: Some(source),
    }
}

fn v1_addr(text: &str, v4: bool) -> Option<IpAddr> {
    if v4 {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

fn v1_port(text: &str) -> Option<u16> {
    let ok = (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let [ver_cmd, fam, hi, lo] = match buf.get(12..16) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => return Parsed::Incomplete,
    };
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid;
    }
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    if body_len > V2_MAX_BODY {
        return Parsed::Invalid;
    }
    let len = 16 + body_len;
    let Some(body) = buf.get(16..len) else {
        return Parsed::Incomplete;
    };
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid,
    };
    // Transport: unspecified or stream; a datagram source means nothing here.
    if !matches!(fam & 0x0f, 0 | 1) {
        return Parsed::Invalid;
    }
    let source = match fam >> 4 {
        _ if local => None,
        // AF_INET: src 4, dst 4, src port 2, dst port 2.
        1 => match body.get(..12) {
            Some(a) => {
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Some(SocketAddr::new(
                    IpAddr::V4(ip),
                    u16::from_be_bytes([a[8], a[9]]),
                ))
            }
            None => return Parsed::Invalid,
        },
        // AF_INET6: src 16, dst 16, src port 2, dst port 2.
        2 => match body.get(..36) {
            Some(a) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[..16]);
                let ip = Ipv6Addr::from(octets);
                Some(SocketAddr::new(
                    IpAddr::V6(ip),
                    u16::from_be_bytes([a[32], a[33]]),
                ))
            }
            None => return Parsed::Invalid,
        },
        // AF_UNSPEC, AF_UNIX: no client address to speak of.
        0 | 3 => None,
        _ => return Parsed::Invalid,
    };
    Parsed::Header { len, source }
}

/// The pre-TLS hook for a `proxy_protocol` listener; reads the live
/// `trusted_proxies` on every connection, so a reload applies at once.
pub struct ProxyProtocol {
    gw: Arc<Gateway>,
}

impl ProxyProtocol {
    /// The hook for this gateway.
    pub fn new(gw: Arc<Gateway>) -> ProxyProtocol {
        ProxyProtocol { gw }
    }
}

/// A refused connection (pingora logs it as a downstream handshake error).
fn refuse(why: &'static str) -> Box<pingora::Error> {
    pingora::Error::explain(pingora::ErrorType::AcceptError, why)
}

#[async_trait]
impl PreTlsProcess for ProxyProtocol {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let old = stream.get_socket_digest();
        let peer = old
            .as_ref()
            .and_then(|d| d.peer_addr())
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let rt = self.gw.runtime();
        if !peer.is_some_and(|p| crate::net::in_networks(&rt.config.trusted_proxies, p)) {
            return Err(refuse(
                "PROXY protocol listener: peer is not in trusted_proxies",
            ));
        }
        let source = match tokio::time::timeout(HEADER_TIMEOUT, read_header(stream)).await {
            Ok(result) => result.map_err(refuse)?,
            Err(_) => return Err(refuse("PROXY protocol listener: no header in time")),
        };
        let client = source.unwrap_or(SocketAddr::new(crate::net::UNKNOWN_CLIENT, 0));
        let digest = SocketDigest::from_raw_fd(std::os::unix::io::AsRawFd::as_raw_fd(stream));
        // Fresh cells: setting them cannot fail.
        let _ = digest.peer_addr.set(Some(L4Addr::Inet(client)));
        let local = old.as_ref().and_then(|d| d.local_addr().cloned());
        let _ = digest.local_addr.set(local);
        stream.set_socket_digest(digest);
        Ok(())
    }
}

/// Read until a complete header; put back whatever followed it.
async fn read_header(stream: &mut L4Stream) -> Result<Option<SocketAddr>, &'static str> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| "PROXY protocol listener: read failed")?;
        if n == 0 {
            return Err("PROXY protocol listener: closed before a header");
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse(&buf) {
            Parsed::Incomplete => continue,
            Parsed::Invalid => return Err("PROXY protocol listener: no valid PROXY header"),
            Parsed::Header { len, source } => {
                stream.rewind(&buf[len..]);
                return Ok(source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn src(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn v1_lines() {
        let line = b"PROXY TCP4 203.0.113.9 10.0.0.1 51234 443\r\n\x16\x03\x01";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: line.len() - 3,
                source: src("203.0.113.9:51234")
            }
        );
        let line = b"PROXY TCP6 2001:db8::9 2001:db8::1 51234 443\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: line.len(),
                source: src("[2001:db8::9]:51234")
            }
        );
        let line = b"PROXY UNKNOWN ffff::1 whatever\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: line.len(),
                source: None
            }
        );
        for bad in [
            &b"PROXY TCP4 2001:db8::9 10.0.0.1 1 2\r\n"[..],
            b"PROXY TCP6 203.0.113.9 2001:db8::1 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 051234 443\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4  203.0.113.9 10.0.0.1 1 443\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 1\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 1 2 3\r\n",
            b"PROXY UDP4 203.0.113.9 10.0.0.1 1 2\r\n",
            b"proxy TCP4 203.0.113.9 10.0.0.1 1 2\r\n",
            b"\x16\x03\x01\x02\x00",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Parsed::Invalid,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Incomplete until the CRLF, but never past 107 bytes.
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(b"PROXY TCP4 203.0.113.9"), Parsed::Incomplete);
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'x');
        assert_eq!(parse(&long), Parsed::Invalid);
    }

    #[test]
    fn v2_headers() {
        let mut body = vec![203, 0, 113, 9, 10, 0, 0, 1];
        body.extend_from_slice(&51234u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        let h = v2(1, 0x11, &body);
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len: 28,
                source: src("203.0.113.9:51234")
            }
        );
        // TLVs after the addresses are skipped; what follows is kept.
        let mut with_tlv = body.clone();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]);
        let mut h = v2(1, 0x11, &with_tlv);
        h.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len: 32,
                source: src("203.0.113.9:51234")
            }
        );

        let mut body6 = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&[0xc8, 0x22, 0x01, 0xbb]);
        assert_eq!(
            parse(&v2(1, 0x21, &body6)),
            Parsed::Header {
                len: 52,
                source: src("[2001:db8::9]:51234")
            }
        );
        // LOCAL (health checks) and AF_UNSPEC: no client address.
        assert_eq!(
            parse(&v2(0, 0x00, &[])),
            Parsed::Header {
                len: 16,
                source: None
            }
        );
        assert_eq!(
            parse(&v2(0, 0x11, &body)),
            Parsed::Header {
                len: 28,
                source: None
            }
        );
        assert_eq!(
            parse(&v2(1, 0x00, &[])),
            Parsed::Header {
                len: 16,
                source: None
            }
        );

        // Too short for its family, unknown command, version, family, datagram.
        assert_eq!(parse(&v2(1, 0x11, &body[..11])), Parsed::Invalid);
        assert_eq!(parse(&v2(1, 0x21, &body)), Parsed::Invalid);
        assert_eq!(parse(&v2(2, 0x11, &body)), Parsed::Invalid);
        assert_eq!(parse(&v2(1, 0x41, &body)), Parsed::Invalid);
        assert_eq!(parse(&v2(1, 0x12, &body)), Parsed::Invalid);
        let mut v1 = v2(1, 0x11, &body);
        v1[12] = 0x11;
        assert_eq!(parse(&v1), Parsed::Invalid);
        // A body larger than we buffer is refused before it arrives.
        let big = v2(1, 0x11, &vec![0; V2_MAX_BODY + 1]);
        assert_eq!(parse(&big[..16]), Parsed::Invalid);
        // Every prefix of a valid header is Incomplete.
        let h = v2(1, 0x11, &body);
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Parsed::Incomplete, "{n}");
        }
    }
}
