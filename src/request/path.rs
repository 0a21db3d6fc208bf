//! The one path a request has: normalised once, before routing, and then
//! routed, checked, logged and forwarded (SECURITY.md "What is the request").
//!
//! Upstreams resolve `..`, merge `//` and decode `%2e` themselves (nginx,
//! Apache, Tomcat, IIS all do). If routing looked at the raw spelling, a
//! request could be decided by one service's rule and land on another's
//! page: `/public/../admin` matched a bypass prefix and reached `/admin`
//! (Envoy CVE-2019-9901). So the gateway does the resolving first, the way
//! RFC 3986 §6.2.2 says, and refuses the spellings whose meaning depends on
//! who reads them.
//!
//! What happens to each spelling:
//! - `%41` (an unreserved character) → `A`; other escapes stay, hex in upper case.
//! - `.` and `..` segments are removed (`%2e` counts as `.`); `..` above the root is refused.
//! - `//` → `/`.
//! - Refused: `\` and `%5C` (IIS and Windows upstreams read them as `/`), control
//!   bytes raw or escaped (`%00` truncates paths in C-based upstreams), bad escapes,
//!   `%C0%AF`-style overlong UTF-8 (old IIS decoded it to `/`), a `.` or `..`
//!   segment with a `;` parameter (Tomcat reads `/..;/` as `/../`), and anything
//!   that is not an absolute path.
//! - `%2F` is kept encoded and reported, so the caller can refuse it unless the
//!   service it routes to accepts encoded slashes (`keep_encoded_slashes`).

use std::borrow::Cow;

/// Why a path was refused. Each has the access log's reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute path (`*`, empty, relative).
    #[error("the path does not start with /")]
    NotAbsolute,
    /// A raw or escaped control byte.
    #[error("the path contains a control byte")]
    ControlByte,
    /// A raw backslash or `%5C`.
    #[error("the path contains a backslash")]
    Backslash,
    /// `%` not followed by two hex digits.
    #[error("the path contains an invalid escape")]
    BadEscape,
    /// `..` that would climb above `/`.
    #[error("the path climbs above the root")]
    AboveRoot,
    /// A `.` or `..` segment carrying `;` parameters.
    #[error("a dot segment carries parameters")]
    DotParameter,
    /// An overlong UTF-8 encoding of an ASCII character.
    #[error("the path contains an overlong UTF-8 escape")]
    Overlong,
    /// `%2F` on a service that does not keep encoded slashes.
    #[error("the path contains an encoded slash")]
    EncodedSlash,
    /// Raw bytes that are not UTF-8 (upstreams guess their encoding differently).
    #[error("the request target is not UTF-8")]
    NotUtf8,
}

impl PathError {
    /// The access log's `reason` for a request refused with this error.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::ControlByte => "path_control_byte",
            PathError::Backslash => "path_backslash",
            PathError::BadEscape => "path_bad_escape",
            PathError::AboveRoot => "path_above_root",
            PathError::DotParameter => "path_dot_parameter",
            PathError::Overlong => "path_overlong_utf8",
            PathError::EncodedSlash => "path_encoded_slash",
            PathError::NotUtf8 => "path_not_utf8",
        }
    }
}

/// A normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised<'a> {
    /// The path to route, check and forward (borrowed when it was already normal).
    pub path: Cow<'a, str>,
    /// It contains `%2F`, which only some services accept.
    pub encoded_slash: bool,
}

/// Normalise `raw` (the path of a request, without its query).
pub fn normalise(raw: &str) -> Result<Normalised<'_>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes) {
        return Ok(Normalised {
            path: Cow::Borrowed(raw),
            encoded_slash: false,
        });
    }
    let decoded = decode(bytes)?;
    let path = remove_dot_segments(&decoded)?;
    // What is forwarded decides: `/%2Fb/../x` is `/x`, with no encoded slash
    // left for an upstream to read differently (found by fuzzing).
    let encoded_slash = path.windows(3).any(|w| w == b"%2F");
    Ok(Normalised {
        // Only ASCII was added to the input's bytes, and its non-ASCII bytes
        // were copied whole, so the result is UTF-8 whenever `raw` was.
        path: Cow::Owned(String::from_utf8(path).map_err(|_| PathError::BadEscape)?),
        encoded_slash,
    })
}

/// The common case, decided in one pass: nothing to decode, merge or refuse.
fn is_plain(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in bytes {
        match b {
            b'%' | b'\\' | 0..=0x1f | 0x7f => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

/// Decode escapes of unreserved characters, upper-case the others, refuse
/// what cannot be read one way only.
fn decode(bytes: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let v = escaped(bytes, i)?;
                match v {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(v)
                    }
                    b'\\' => return Err(PathError::Backslash),
                    0..=0x1f | 0x7f => return Err(PathError::ControlByte),
                    0xc0 | 0xc1
                        if escaped(bytes, i + 3)
                            .is_ok_and(|next| (0x80..=0xbf).contains(&next)) =>
                    {
                        return Err(PathError::Overlong)
                    }
                    _ => push_escape(&mut out, v),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlByte),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The byte escaped as `%XX` at `bytes[at..]`.
fn escaped(bytes: &[u8], at: usize) -> Result<u8, PathError> {
    match bytes.get(at..at + 3) {
        Some([b'%', hi, lo]) => Ok(hex(*hi)? << 4 | hex(*lo)?),
        _ => Err(PathError::BadEscape),
    }
}

fn hex(b: u8) -> Result<u8, PathError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(PathError::BadEscape),
    }
}

fn push_escape(out: &mut Vec<u8>, v: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(v >> 4)], HEX[usize::from(v & 15)]]);
}

/// RFC 3986 §5.2.4 on an absolute path, with empty segments merged and `..`
/// above the root refused rather than dropped (a client that climbs above
/// `/` is probing, and an upstream might not drop it the same way).
fn remove_dot_segments(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    // The first piece is the empty string before the leading `/`.
    for segment in path.split(|&b| b == b'/').skip(1) {
        trailing_slash = false;
        match segment {
            b"" | b"." => trailing_slash = true,
            b".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            _ => {
                let name = segment.split(|&b| b == b';').next().unwrap_or(segment);
                if name == b"." || name == b".." {
                    return Err(PathError::DotParameter);
                }
                kept.push(segment);
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for segment in &kept {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalise(raw).map(|n| n.path.into_owned())
    }

    #[test]
    fn plain_paths_are_borrowed_unchanged() {
        for p in ["/", "/a", "/a/b/", "/a.b/c", "/a/b.c", "/é/ö", "/a;b=c"] {
            let n = normalise(p).unwrap();
            assert!(matches!(n.path, Cow::Borrowed(_)), "{p}");
            assert_eq!(n.path, p);
        }
    }

    #[test]
    fn dot_segments_are_resolved_as_upstreams_would() {
        let cases = [
            ("/public/../admin", "/admin"),
            ("/public/./admin", "/public/admin"),
            ("/a/b/../../c", "/c"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/.", "/"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E./admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/...", "/..."),
            ("/a/..b/c", "/a/..b/c"),
            ("/.well-known/x", "/.well-known/x"),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn repeated_slashes_are_merged() {
        assert_eq!(norm("//api").as_deref(), Ok("/api"));
        assert_eq!(norm("/api//x///y").as_deref(), Ok("/api/x/y"));
        assert_eq!(norm("/api//").as_deref(), Ok("/api/"));
        assert_eq!(norm("//").as_deref(), Ok("/"));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(norm("/%61dmin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/%7Euser").as_deref(), Ok("/~user"));
        assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
        assert_eq!(norm("/%c3%a5").as_deref(), Ok("/%C3%A5"));
        // No double decoding: %25 stays the literal percent sign.
        assert_eq!(norm("/%252e%252e/x").as_deref(), Ok("/%252e%252e/x"));
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        let cases = [
            ("", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
            ("/public\\..\\admin", PathError::Backslash),
            ("/public%5c..%5cadmin", PathError::Backslash),
            ("/a%00.html", PathError::ControlByte),
            ("/a\tb", PathError::ControlByte),
            ("/a%7f", PathError::ControlByte),
            ("/a%", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/..", PathError::AboveRoot),
            ("/a/../../etc/passwd", PathError::AboveRoot),
            ("/%2e%2e/x", PathError::AboveRoot),
            ("/public/..;/admin", PathError::DotParameter),
            ("/public/.;x/admin", PathError::DotParameter),
            ("/public/%c0%af../admin", PathError::Overlong),
            ("/%C1%9C", PathError::Overlong),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn encoded_slashes_are_kept_and_reported() {
        // `a%2Fb` is one segment: `..` removes it whole.
        let n = normalise("/api/a%2fb/x/../c").unwrap();
        assert!(n.encoded_slash);
        assert_eq!(n.path, "/api/a%2Fb/c");
        let n = normalise("/api/a%2Fb").unwrap();
        assert_eq!(n.path, "/api/a%2Fb");
        assert!(n.encoded_slash);
        assert!(!normalise("/api/%2e").unwrap().encoded_slash);
        // Removed by `..`: nothing encoded is left to forward.
        let n = normalise("/%2Fb/../x").unwrap();
        assert_eq!((n.path.as_ref(), n.encoded_slash), ("/x", false));
    }

    #[test]
    fn latin1_escapes_of_legacy_apps_pass() {
        // ISO-8859-1 å, ä, ö: not UTF-8, not ambiguous either.
        assert_eq!(norm("/s%E5%E4%F6k").as_deref(), Ok("/s%E5%E4%F6k"));
        // %C0 followed by something that is not a continuation byte.
        assert_eq!(norm("/%C0x").as_deref(), Ok("/%C0x"));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in [
            "/a/./b/../c//d/",
            "/%2e/%7e%41/x%2fy",
            "/a%20b/%c3%a5/",
            "//x//..//y",
            "/a;b/c;d=..",
        ] {
            let once = norm(raw).unwrap();
            assert_eq!(norm(&once).as_deref(), Ok(once.as_str()), "{raw}");
        }
    }
}
