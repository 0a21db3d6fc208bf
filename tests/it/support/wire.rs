//! A request written byte for byte over TLS, for what no HTTP client library
//! will send: `..` and `%2e` segments, `//`, backslashes, raw control bytes,
//! a 200 KB header. reqwest (through `url`) would tidy all of these up first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A response read whole (the request asks the server to close).
#[derive(Debug)]
pub struct WireResponse {
    /// Status code of the first line.
    pub status: u16,
    /// Header lines as sent, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body (chunked bodies are left as sent).
    pub body: String,
}

impl WireResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `head` (request line and headers, without the final blank line) to
/// `gateway` over TLS with SNI `host`, trusting `ca_pem`; `Connection: close`
/// is added. Bounded: 10 s to connect and read.
pub fn send(gateway: SocketAddr, ca_pem: &str, host: &str, head: &[u8]) -> WireResponse {
    let mut request = head.to_vec();
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    parse(&send_raw(gateway, ca_pem, host, &request))
}

/// Send `bytes` exactly as given and return everything the server sent
/// until it closed (or 10 s passed).
pub fn send_raw(gateway: SocketAddr, ca_pem: &str, host: &str, bytes: &[u8]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.expect("test CA PEM")).expect("test CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).expect("host name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let tcp = TcpStream::connect_timeout(&gateway, Duration::from_secs(10)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(bytes).expect("write request");
    let mut raw = Vec::new();
    // The server closes after its answer; a TLS close without close_notify
    // (or the read time-out) still leaves what was read in `raw`.
    let _ = tls.read_to_end(&mut raw);
    raw
}

/// The status codes of every response in `raw`, in order.
pub fn statuses(raw: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(raw);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// The first response in `raw`.
pub fn parse(raw: &[u8]) -> WireResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    WireResponse {
        status,
        headers,
        body: body.to_string(),
    }
}
