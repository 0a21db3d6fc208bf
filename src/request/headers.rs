//! Request headers: how many a client may send, and which never reach an
//! upstream whatever the service.
//!
//! Why each removal:
//! - identity headers (`Remote-User`, a service's renamed ones) in any
//!   spelling: only the gateway speaks for a user;
//! - names with `_` (unless the service keeps them): CGI, PHP and WSGI turn
//!   both `Remote-User` and `Remote_User` into `HTTP_REMOTE_USER`, and which
//!   one wins depends on the upstream (nginx and Envoy drop them too);
//! - `X-Original-URL`, `X-Rewrite-URL`: IIS, Symfony and others route on
//!   them, which would undo the path the gateway checked.

use http::{HeaderMap, HeaderName};
use pingora::http::RequestHeader;

/// Headers that make some upstreams serve another URL than the request line's.
const URL_REWRITES: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// What one request's header block may hold (`limits:` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of names and values, counted as HTTP/1.1 writes them (`name: value\r\n`).
    pub header_bytes: usize,
    /// Header fields (each repeated line counts).
    pub header_fields: usize,
}

impl Limits {
    /// What `limits:` allows when left out: far above what browsers send
    /// (1–8 KiB in 10–30 fields), far below what would cost memory.
    pub const DEFAULT: Limits = Limits {
        header_bytes: 64 * 1024,
        header_fields: 100,
    };
    /// The least `limits:` may be set to: browsers need this much.
    pub const MIN: Limits = Limits {
        header_bytes: 4096,
        header_fields: 16,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which limit a request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Oversize {
    /// Too many bytes.
    #[error("the request header block is too large")]
    Bytes,
    /// Too many fields.
    #[error("the request has too many header fields")]
    Fields,
}

impl Oversize {
    /// The access log's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Oversize::Bytes => "headers_too_large",
            Oversize::Fields => "too_many_headers",
        }
    }
}

/// Check `headers` against `limits`.
pub fn check(headers: &HeaderMap, limits: &Limits) -> Result<(), Oversize> {
    if headers.len() > limits.header_fields {
        return Err(Oversize::Fields);
    }
    let mut bytes = 0usize;
    for (name, value) in headers {
        bytes += name.as_str().len() + value.len() + 4;
        if bytes > limits.header_bytes {
            return Err(Oversize::Bytes);
        }
    }
    Ok(())
}

/// Whether the request names its host more than one way: several `Host`
/// lines, or an HTTP/2 `:authority` (or absolute-form target) that `Host`
/// contradicts. The gateway routes on one of them and an upstream might
/// read the other, so such a request is refused (RFC 9112 §3.2: 400).
pub fn conflicting_host(req: &RequestHeader) -> bool {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return true;
    }
    match (req.uri.authority(), first) {
        (Some(authority), Some(host)) => !authority
            .as_str()
            .as_bytes()
            .eq_ignore_ascii_case(host.as_bytes()),
        _ => false,
    }
}

/// Remove what no upstream may receive from `req`: `identity` names in any
/// spelling, names with `_` unless `keep_underscores`, URL-rewrite headers.
///
/// Clients almost never send any of these, so one pass over the names (which
/// are lower case and mostly standard) decides first whether anything must
/// go; only then are the names collected and removed.
pub fn scrub(req: &mut RequestHeader, identity: &[HeaderName], keep_underscores: bool) {
    let doomed = |name: &HeaderName| {
        let n = name.as_str();
        if n.contains('_') {
            !keep_underscores || identity.iter().any(|i| same_but_underscores(i.as_str(), n))
        } else {
            identity.contains(name) || URL_REWRITES.contains(&n)
        }
    };
    if !req.headers.keys().any(doomed) {
        return;
    }
    let names: Vec<HeaderName> = req.headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in &names {
        req.remove_header(name);
    }
}

/// `remote-user` and `remote_user` are the same name to a CGI upstream.
fn same_but_underscores(ours: &str, theirs: &str) -> bool {
    ours.len() == theirs.len()
        && ours
            .bytes()
            .zip(theirs.bytes())
            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    fn names(req: &RequestHeader) -> Vec<&str> {
        let mut n: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn identity_headers_go_in_every_spelling_and_others_stay() {
        let identity = crate::config::model::IdentityHeaderNames::default().strip;
        let sent = [
            ("Accept", "*/*"),
            ("Remote-User", "admin"),
            ("remote-groups", "admins"),
            ("REMOTE-EMAIL", "a@b"),
            ("Remote_User", "admin"),
            ("X-Custom_Thing", "x"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-Url", "/admin"),
            ("X-Request-Start", "1"),
        ];
        let mut req = request(&sent);
        scrub(&mut req, &identity, false);
        assert_eq!(names(&req), ["accept", "x-request-start"]);

        // A service that keeps underscores still loses the look-alikes.
        let mut req = request(&sent);
        scrub(&mut req, &identity, true);
        assert_eq!(names(&req), ["accept", "x-custom_thing", "x-request-start"]);

        let mut clean = request(&[("Accept", "*/*"), ("User-Agent", "t")]);
        scrub(&mut clean, &identity, false);
        assert_eq!(clean.headers.len(), 2);
    }

    #[test]
    fn a_host_named_twice_conflicts() {
        assert!(!conflicting_host(&request(&[("Host", "app.test")])));
        assert!(conflicting_host(&request(&[
            ("Host", "app.test"),
            ("Host", "admin.test")
        ])));
        let mut h2 = RequestHeader::build("GET", b"/", None).unwrap();
        h2.set_uri(http::Uri::from_static("https://app.test/x"));
        assert!(!conflicting_host(&h2));
        h2.insert_header("Host", "APP.test").unwrap();
        assert!(!conflicting_host(&h2));
        h2.insert_header("Host", "admin.test").unwrap();
        assert!(conflicting_host(&h2));
    }

    #[test]
    fn limits_count_fields_and_bytes() {
        let limits = Limits {
            header_bytes: 100,
            header_fields: 3,
        };
        let ok = request(&[("a", "1"), ("b", "2"), ("c", "3")]);
        assert_eq!(check(&ok.headers, &limits), Ok(()));
        let many = request(&[("a", "1"), ("a", "2"), ("a", "3"), ("a", "4")]);
        assert_eq!(check(&many.headers, &limits), Err(Oversize::Fields));
        let big = request(&[("a", &"x".repeat(96))]);
        assert_eq!(check(&big.headers, &limits), Err(Oversize::Bytes));
        let edge = request(&[("a", &"x".repeat(95))]);
        assert_eq!(check(&edge.headers, &limits), Ok(()));
    }
}
