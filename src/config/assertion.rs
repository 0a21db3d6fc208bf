//! `assertion:`: the signed identity token's header, lifetime and key
//! rotation, as written and as checked.

use serde::Deserialize;

use super::types::Duration;
use super::validate::Checker;

/// `assertion:` the signed identity token (a JWT) sent to upstreams.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// Request header that carries the token. Default `Portvakt-Assertion`.
    pub header: Option<String>,
    /// How long a token is valid (`exp - iat`). Default 60s.
    #[serde(default = "default_assertion_lifetime")]
    pub lifetime: Duration,
    /// Age at which the signing key is replaced by a new one. Default 24h.
    #[serde(default = "default_rotate_every")]
    pub rotate_every: Duration,
    /// How long a replaced key stays in the JWKS; at least twice the
    /// lifetime and less than `rotate_every`. Default 1h.
    #[serde(default = "default_overlap")]
    pub overlap: Duration,
}

fn default_assertion_lifetime() -> Duration {
    Duration::from_secs(60)
}
fn default_rotate_every() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_overlap() -> Duration {
    Duration::from_secs(3600)
}

impl Default for Assertion {
    fn default() -> Self {
        Assertion {
            header: None,
            lifetime: default_assertion_lifetime(),
            rotate_every: default_rotate_every(),
            overlap: default_overlap(),
        }
    }
}

/// Headers the assertion may not be called: the request's own framing,
/// routing and credentials, which the gateway or the upstream read for
/// something else.
const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "cookie",
    "authorization",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

pub(super) fn settings(
    c: &mut Checker,
    a: &Assertion,
    portal_host: &str,
) -> crate::assertion::Settings {
    use std::time::Duration;
    let default = http::HeaderName::from_static(crate::assertion::DEFAULT_HEADER);
    let header = match a.header.as_deref().map(str::trim) {
        None => default,
        Some(h) => match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) if RESERVED_HEADERS.contains(&n.as_str()) || n.as_str().contains('_') => {
                c.problem(
                    "assertion.header",
                    format!("{h:?} is a header the request already uses for something else; choose a name of its own like Portvakt-Assertion"),
                );
                default
            }
            Ok(n) => n,
            Err(_) => {
                c.problem(
                    "assertion.header",
                    format!("{h:?} is not a valid header name"),
                );
                default
            }
        },
    };
    let lifetime = a.lifetime.0;
    if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(3600) {
        c.problem(
            "assertion.lifetime",
            "must be between 10s and 1h: a token is for one request, and a stolen one should be useless soon",
        );
    }
    let (rotate_every, overlap) = (a.rotate_every.0, a.overlap.0);
    if overlap < lifetime * 2 {
        c.problem(
            "assertion.overlap",
            format!(
                "must be at least twice assertion.lifetime ({}s): a token signed just before a rotation must still verify until it expires",
                lifetime.as_secs()
            ),
        );
    }
    if rotate_every <= overlap || rotate_every < Duration::from_secs(600) {
        c.problem(
            "assertion.rotate_every",
            "must be at least 10m and longer than assertion.overlap, so at most two keys are published",
        );
    }
    let wire = {
        let mut up = true;
        let title: String = header
            .as_str()
            .chars()
            .map(|ch| {
                let out = if up { ch.to_ascii_uppercase() } else { ch };
                up = ch == '-';
                out
            })
            .collect();
        bytes::Bytes::from(title)
    };
    crate::assertion::Settings {
        header,
        wire,
        lifetime,
        rotation: crate::assertion::Rotation {
            rotate_every,
            overlap,
        },
        issuer: format!("https://{portal_host}"),
        jwks_max_age: Duration::from_secs(300).min(overlap / 4),
    }
}
