//! `assertion:`: the signed identity token's header, lifetime and key
//! rotation, as written and as checked.

use schemars::JsonSchema;
use serde::Deserialize;

use super::types::Duration;
use super::validate::Checker;

/// `assertion:` the signed identity token (a JWT) sent to upstreams.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Assertion {
    /// Request header that carries the token (a client's own is always
    /// removed).
    #[schemars(extend("x-default" = super::model::title_case(crate::assertion::DEFAULT_HEADER)))]
    pub header: Option<String>,
    /// How long a token is valid (`exp - iat`): it is for one request, and
    /// a stolen one should be useless soon.
    #[schemars(extend("x-limits" = format!("{} to {}", Duration(*LIFETIME.start()), Duration(*LIFETIME.end()))))]
    pub lifetime: Duration,
    /// Age at which the signing key is replaced by a new one.
    #[schemars(extend("x-limits" = format!("at least {} and longer than `overlap`", Duration(ROTATE_MIN))))]
    pub rotate_every: Duration,
    /// How long a replaced key stays in the JWKS, so that a token signed
    /// just before a rotation still verifies until it expires.
    #[schemars(extend("x-limits" = "at least twice `lifetime`"))]
    pub overlap: Duration,
}

impl Default for Assertion {
    fn default() -> Self {
        Assertion {
            header: None,
            lifetime: Duration::from_secs(60),
            rotate_every: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(3600),
        }
    }
}

/// `assertion.lifetime`: a token is for one request, and a stolen one
/// should be useless soon.
pub(super) const LIFETIME: std::ops::RangeInclusive<std::time::Duration> =
    std::time::Duration::from_secs(10)..=std::time::Duration::from_secs(3600);
/// `assertion.rotate_every` at the least.
pub(super) const ROTATE_MIN: std::time::Duration = std::time::Duration::from_secs(600);

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
                    format!(
                        "{h:?} is a header the request already uses for something else; choose a name of its own like {}",
                        super::model::title_case(crate::assertion::DEFAULT_HEADER)
                    ),
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
    if !LIFETIME.contains(&lifetime) {
        c.problem(
            "assertion.lifetime",
            format!(
                "must be between {} and {}: a token is for one request, and a stolen one should be useless soon",
                super::types::Duration(*LIFETIME.start()),
                super::types::Duration(*LIFETIME.end())
            ),
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
    if rotate_every <= overlap || rotate_every < ROTATE_MIN {
        c.problem(
            "assertion.rotate_every",
            format!(
                "must be at least {} and longer than assertion.overlap, so at most two keys are published",
                super::types::Duration(ROTATE_MIN)
            ),
        );
    }
    let wire = bytes::Bytes::from(super::model::title_case(header.as_str()));
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
