//! The test harness: real processes on loopback, one gateway per test.
//!
//! # Layout
//! - `pki`      — a test CA and leaf certificates made with rcgen.
//! - `users`    — the people in every test's `users.yaml`, with their passwords.
//! - `upstream` — `portvakt whoami` as a child process, and its JSON answer.
//! - `gateway`  — config builder, `portvakt serve` as a child process, its logs.
//! - `in_process` — the same gateway on a thread of this process, on a manual clock.
//! - `client`   — a browser-like reqwest client: cookies, manual redirects, login.
//! - `page`     — a fully read response with small helpers for assertions.
//! - `expect`   — assertions several features share (branded pages, redirects, cookies).
//! - `wait`     — bounded waiting: free ports, TCP readiness, polling.
//! - `wire`     — a request written byte for byte over TLS (paths no client library sends).
//! - `nginx`    — a real nginx upstream that resolves paths as production servers do.
//! - `smtp`     — a real SMTP server (aiosmtpd) as a child process; received mail.
//! - `sms`      — a stand-in HTTP SMS provider that records requests, answers 200/500 or stalls.
//! - `postgres` — a real PostgreSQL for gateways that share enrolments; killed and started again.
//! - `redis`    — a real redis-server for gateways that share state; killed and started again.
//! - `a11y`     — accessibility checks in the browser: axe-core, reflow, lang, errors, focus.
//! - `webauthn` — Chromium's virtual security key (WebDriver's WebAuthn extension).
//! - `enrol`    — enrolments (SMS numbers, authenticator devices, tokens),
//!   TOTP/HOTP codes, and the second step of login as a browser does it.

// Not every test module uses every helper.
#![allow(dead_code)]

pub mod a11y;
pub mod browser;
pub mod client;
pub mod enrol;
pub mod expect;
pub mod forwarder;
pub mod gateway;
pub mod in_process;
pub mod nginx;
pub mod page;
pub mod pki;
pub mod postgres;
pub mod redis;
pub mod slapd;
pub mod sms;
pub mod smtp;
pub mod upstream;
pub mod users;
pub mod wait;
pub mod webauthn;
pub mod wire;

pub use client::{Client, Journey, LoginForm};
pub use gateway::{Gateway, GatewayConfig, Service};
pub use page::{Page, Whoami};
pub use pki::Pki;
pub use upstream::Upstream;
pub use users::{ALICE, BOB, CAROL, ORJAN};

/// The binary under test.
pub fn portvakt_bin() -> &'static str {
    env!("CARGO_BIN_EXE_portvakt")
}

/// The repository root (for `html/` and `tests/fixtures/`).
pub fn repo_dir() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Decode `%XX` escapes (UTF-8). Leaves anything else as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let (true, Ok(b)) = (
                hex.bytes().all(|c| c.is_ascii_hexdigit()),
                u8::from_str_radix(hex, 16),
            ) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Undo the HTML escapes a template engine produces.
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&amp;", "&")
}

/// The median of a few measurements.
pub fn median(mut xs: Vec<std::time::Duration>) -> std::time::Duration {
    assert!(!xs.is_empty(), "median of nothing");
    xs.sort();
    xs[xs.len() / 2]
}

/// `token` with its middle character changed (to another character of the
/// base64url alphabet), so that it still looks well-formed.
pub fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    assert!(!chars.is_empty(), "nothing to tamper with");
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}
