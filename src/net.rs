//! Who is the client: the TCP peer, or the address a trusted proxy vouches
//! for in the one forwarding header the config names (`X-Forwarded-For` or
//! RFC 7239 `Forwarded`, every line, walked right to left); and whether it
//! is on a network. A trusted proxy that vouches for nobody usable makes the
//! client [`UNKNOWN_CLIENT`], which is on no network (fail closed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Whether `ip` is inside any of `nets` (IPv4-mapped IPv6 counts as IPv4).
/// The unspecified address ([`UNKNOWN_CLIENT`], `::`) is inside none, even
/// `0.0.0.0/0`: it stands for a client nobody vouched for.
pub fn in_networks(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    !ip.is_unspecified() && nets.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 addresses as IPv4, so `::ffff:10.0.0.1` matches `10.0.0.0/8`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The address that stands for "a trusted proxy sent no usable client
/// address". It is on no network ([`in_networks`] never matches it), so every
/// "is internal", "is a trusted proxy" and service `networks` check fails
/// closed without its caller knowing about this case. Logs show `0.0.0.0`.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// How many hops, counted from the right, [`client_address`] looks at. A
/// real chain has a handful; past this the client is [`UNKNOWN_CLIENT`]. The
/// hops are kept in a fixed array, so parsing allocates nothing.
pub const MAX_HOPS: usize = 64;

/// Which request header carries the client address from a trusted proxy
/// (`client_address.header`). Only one is believed: a proxy that sets one
/// passes the other through from the client untouched, so believing both
/// would let the client choose.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header name, lower case (as `http::HeaderMap` looks it up).
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The client address: the TCP `peer`, unless the peer is in `trusted`; then
/// the `lines` of the chosen header (every line of it, first line first) are
/// one list, walked from the right, skipping trusted hops, and the first
/// untrusted address is the client.
///
/// Fails closed: a trusted peer whose rightmost hops hold anything that is
/// not an address (header missing or empty, garbage, `unknown`, obfuscated
/// `_names`, an element without `for=`) gives [`UNKNOWN_CLIENT`], never the
/// peer's own (often internal) address. When every hop is trusted the
/// leftmost one is the client, as nginx's `real_ip_recursive` does: only a
/// host inside `trusted` can produce such a chain, and it is vouched for.
///
/// Pure and panic-free for any input; looks at the last [`MAX_HOPS`] hops
/// and allocates nothing (a fuzz target drives it).
pub fn client_address<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    header: ForwardedHeader,
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> IpAddr {
    let peer = canonical(peer);
    if !in_networks(trusted, peer) {
        return peer;
    }
    let mut hops = Hops::default();
    for line in lines {
        match header {
            ForwardedHeader::XForwardedFor => {
                for element in line.split(|&b| b == b',') {
                    hops.push(parse_node(element));
                }
            }
            ForwardedHeader::Forwarded => forwarded_line(line, &mut hops),
        }
    }
    hops.client(trusted)
}

/// The last [`MAX_HOPS`] hops seen, as a ring; `None` is a hop that is not
/// an address.
struct Hops {
    ring: [Option<IpAddr>; MAX_HOPS],
    /// Hops pushed in all (may exceed the ring).
    seen: usize,
}

impl Default for Hops {
    fn default() -> Self {
        Hops {
            ring: [None; MAX_HOPS],
            seen: 0,
        }
    }
}

impl Hops {
    fn push(&mut self, hop: Option<IpAddr>) {
        self.ring[self.seen % MAX_HOPS] = hop;
        self.seen = self.seen.saturating_add(1);
    }

    /// Walk from the right; see [`client_address`].
    fn client(&self, trusted: &[IpNet]) -> IpAddr {
        let kept = self.seen.min(MAX_HOPS);
        let mut leftmost = UNKNOWN_CLIENT;
        for back in 1..=kept {
            let Some(ip) = self.ring[(self.seen - back) % MAX_HOPS] else {
                return UNKNOWN_CLIENT;
            };
            if !in_networks(trusted, ip) {
                return ip;
            }
            leftmost = ip;
        }
        if self.seen > MAX_HOPS {
            // The real leftmost hop was not looked at.
            return UNKNOWN_CLIENT;
        }
        leftmost
    }
}

/// One node as a proxy writes it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`, with optional
/// surrounding whitespace. `unknown`, `_obfuscated` and everything else are
/// `None`; so is the unspecified address (it stands for "unknown" here).
pub fn parse_node(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(trim_ows(text)).ok()?;
    let ip = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    let ip = canonical(ip);
    (!ip.is_unspecified()).then_some(ip)
}

/// A decimal port (RFC 7239 also allows an obfuscated `_port`: the address
/// is still known).
fn is_port(p: &str) -> bool {
    let b = p.as_bytes();
    if let Some(obf) = b.strip_prefix(b"_") {
        return !obf.is_empty()
            && obf
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    }
    (1..=5).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) && p.parse::<u16>().is_ok()
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The longest node worth unescaping: `[` 45-char IPv6 `]:65535` is 53.
const MAX_NODE: usize = 64;

/// One `Forwarded` line (RFC 7239 §4): `1#forwarded-element`, each element
/// `forwarded-pair *( ";" forwarded-pair )`, pairs `token "=" (token /
/// quoted-string)`, names case-insensitive. Each element is one hop: its
/// `for=` node, or `None` when the element is malformed, has no `for` or
/// has two. Parsed left to right so a quoted `,` or `;` is not a separator;
/// an unterminated quote swallows the rest of the line (one bad hop).
fn forwarded_line(line: &[u8], hops: &mut Hops) {
    let mut i = 0;
    loop {
        let (hop, next) = forwarded_element(line, i);
        hops.push(hop);
        match next {
            Some(n) => i = n,
            None => return,
        }
    }
}

/// Parse the element starting at `i`; the hop and where the next element
/// starts (after the `,`), or `None` at the end of the line.
fn forwarded_element(line: &[u8], mut i: usize) -> (Option<IpAddr>, Option<usize>) {
    let mut node: Option<Option<IpAddr>> = None;
    let mut bad = false;
    loop {
        i = skip_ows(line, i);
        let name_start = i;
        while i < line.len() && is_tchar(line[i]) {
            i += 1;
        }
        let name = &line[name_start..i];
        i = skip_ows(line, i);
        if !name.is_empty() {
            if line.get(i) != Some(&b'=') {
                bad = true;
            } else {
                i = skip_ows(line, i + 1);
                let mut buf = [0u8; MAX_NODE];
                let (value, end) = forwarded_value(line, i, &mut buf);
                i = skip_ows(line, end);
                match value {
                    None => bad = true,
                    Some(v) if name.eq_ignore_ascii_case(b"for") => {
                        if node.is_some() {
                            bad = true;
                        }
                        node = Some(v.and_then(parse_node));
                    }
                    Some(_) => {}
                }
            }
        }
        match line.get(i) {
            None => return (finish(node, bad), None),
            Some(b',') => return (finish(node, bad), Some(i + 1)),
            Some(b';') => i += 1,
            Some(_) => {
                // Garbage inside the element: it is one bad hop, up to the
                // next separator that is not inside quotes.
                let next = skip_to_comma(line, i);
                return (None, next);
            }
        }
    }
}

fn finish(node: Option<Option<IpAddr>>, bad: bool) -> Option<IpAddr> {
    if bad {
        None
    } else {
        node.flatten()
    }
}

/// A pair's value at `i`: a token or a quoted string (unescaped into `buf`
/// when it fits; longer is `Some(None)`: a value, but no node). `None`: not
/// a value. Second: the index after it.
fn forwarded_value<'b>(
    line: &[u8],
    mut i: usize,
    buf: &'b mut [u8; MAX_NODE],
) -> (Option<Option<&'b [u8]>>, usize) {
    if line.get(i) == Some(&b'"') {
        i += 1;
        let mut n = 0;
        let mut fits = true;
        while i < line.len() {
            let mut b = line[i];
            match b {
                b'"' => {
                    let v = fits.then_some(&buf[..n]);
                    return (Some(v), i + 1);
                }
                b'\\' => {
                    i += 1;
                    match line.get(i) {
                        Some(&e) => b = e,
                        None => break,
                    }
                }
                _ => {}
            }
            if n < MAX_NODE {
                buf[n] = b;
                n += 1;
            } else {
                fits = false;
            }
            i += 1;
        }
        // Unterminated: nothing after it on this line can be trusted.
        return (None, line.len());
    }
    let start = i;
    while i < line.len() && (is_tchar(line[i]) || matches!(line[i], b':' | b'[' | b']')) {
        i += 1;
    }
    if i == start {
        return (None, i);
    }
    let len = i - start;
    if len > MAX_NODE {
        return (Some(None), i);
    }
    buf[..len].copy_from_slice(&line[start..i]);
    (Some(Some(&buf[..len])), i)
}

fn skip_ows(line: &[u8], mut i: usize) -> usize {
    while matches!(line.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The index after the next `,` outside a quoted string, or `None`.
fn skip_to_comma(line: &[u8], mut i: usize) -> Option<usize> {
    let mut quoted = false;
    while i < line.len() {
        match line[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b',' if !quoted => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Append `ip` in the text form `Display` gives it. IPv4 — nearly every
/// address a gateway sees — is written without the formatting machinery,
/// which costs more per address than the rest of a header insert (measured
/// with callgrind: ~1.3 k instructions an address).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.push_str(ipv4_text(v4, &mut [0; 15])),
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// Serde `serialize_with` for an address, as its text (see [`push_ip`]).
pub fn serialize_ip<S: serde::Serializer>(ip: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
    match ip {
        IpAddr::V4(v4) => s.serialize_str(ipv4_text(*v4, &mut [0; 15])),
        IpAddr::V6(v6) => s.collect_str(v6),
    }
}

/// Dotted quad of `v4` written into `buf` (15 bytes: `255.255.255.255`).
fn ipv4_text(v4: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    // Only ASCII digits and dots were written.
    std::str::from_utf8(&buf[..n]).unwrap_or_default()
}

#[cfg(test)]
mod tests;
