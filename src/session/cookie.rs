//! The gateway's cookies: names, attributes, and removing them from requests
//! that go upstream.

use cookie::{Cookie, SameSite};

/// Session cookie (host-only by the `__Host-` prefix).
pub const SESSION: &str = "__Host-portvakt";
/// Login-flow cookie that binds the login form's CSRF token.
pub const FLOW: &str = "__Host-portvakt-flow";

/// Handoff nonce on a service host: binds a login started here to this
/// browser (see [`super::handoff`]).
pub const HANDOFF: &str = "__Host-portvakt-handoff";
/// How long a handoff nonce lives: long enough for a login with a second
/// factor, short enough not to linger.
pub const HANDOFF_MAX_AGE_SECS: i64 = 1800;

/// Whether a cookie name is one of ours (never forwarded upstream).
pub fn is_ours(name: &str) -> bool {
    name == SESSION || name == FLOW || name == HANDOFF
}

/// `Set-Cookie` value for a cookie of ours: `Secure`, `HttpOnly`,
/// `SameSite=Lax`, `Path=/`, no `Domain`. A session cookie has no
/// `Max-Age`: the server decides when it ends.
pub fn set(name: &'static str, value: &str, max_age_secs: Option<i64>) -> String {
    let mut c = Cookie::build((name, value.to_owned()))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/");
    if let Some(secs) = max_age_secs {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// `Set-Cookie` value that deletes a cookie of ours.
pub fn clear(name: &'static str) -> String {
    set(name, "", Some(0))
}

/// The value of cookie `name` in a `Cookie` request header.
pub fn find<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Cookie` header without our cookies; `None` if nothing is left.
/// Returns the input unchanged (borrowed) when it holds none of ours, which is
/// the common case on the proxy path.
pub fn strip_ours(header: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !header.contains("__Host-portvakt") {
        return Some(std::borrow::Cow::Borrowed(header));
    }
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|part| {
            // Trimmed: many upstream parsers read `__Host-portvakt =x` as
            // our name, so the look-alike goes too (found by fuzzing).
            let name = part.split_once('=').map(|(k, _)| k).unwrap_or(part).trim();
            !part.is_empty() && !is_ours(name)
        })
        .collect();
    (!kept.is_empty()).then(|| std::borrow::Cow::Owned(kept.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_strict() {
        let c = set(SESSION, "abc", None);
        for want in [
            "__Host-portvakt=abc",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
        ] {
            assert!(c.contains(want), "{c}");
        }
        assert!(!c.contains("Domain"));
    }

    #[test]
    fn ours_are_stripped_theirs_kept() {
        let h = "a=1; __Host-portvakt=sec; b=2; __Host-portvakt-flow=x; __Host-portvakt-handoff=n";
        assert_eq!(strip_ours(h).unwrap(), "a=1; b=2");
        assert_eq!(strip_ours("__Host-portvakt=x"), None);
        assert_eq!(strip_ours("x=1").unwrap(), "x=1");
        assert_eq!(find(h, SESSION), Some("sec"));
        assert_eq!(find(h, "b"), Some("2"));
    }
}
