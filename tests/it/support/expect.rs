//! Assertions several features share.

use reqwest::Url;

use super::page::Page;

/// The session cookie on every host.
pub const SESSION_COOKIE: &str = "__Host-portvakt";
/// The login-flow cookie on the portal.
pub const FLOW_COOKIE: &str = "__Host-portvakt-flow";

/// The identity headers the gateway adds upstream (default names).
pub const IDENTITY_HEADERS: &[&str] = &[
    "remote-user",
    "remote-groups",
    "remote-email",
    "remote-name",
    "remote-realm",
    "remote-auth-level",
    "remote-auth-methods",
];

/// Whether `url` is `expected` apart from the port (the gateway listens on a
/// free port, so it may or may not put that port into absolute URLs).
pub fn same_place(url: &Url, expected: &str) -> bool {
    let want = Url::parse(expected).expect("expected url");
    url.scheme() == want.scheme()
        && url.host_str() == want.host_str()
        && url.path() == want.path()
        && url.query() == want.query()
}

/// `page` is a redirect to `expected` (port aside).
pub fn assert_redirects_to(page: &Page, status: u16, expected: &str) {
    assert_eq!(
        page.status,
        status,
        "expected a {status} to {expected}, got {}",
        page.describe()
    );
    let loc = page
        .location()
        .unwrap_or_else(|| panic!("no Location: {}", page.describe()));
    assert!(
        same_place(&loc, expected),
        "expected Location {expected}, got {loc}\n{}",
        page.describe()
    );
}

/// `page` sends the browser to the portal's login page: 302 to
/// `https://portal.test/.portvakt/login?rd=…`.
pub fn assert_sent_to_login(page: &Page) {
    assert_eq!(
        page.status,
        302,
        "expected a redirect to the login page, got {}",
        page.describe()
    );
    let loc = page
        .location()
        .unwrap_or_else(|| panic!("no Location: {}", page.describe()));
    assert_eq!(loc.scheme(), "https", "login redirect not to https: {loc}");
    assert_eq!(
        loc.host_str(),
        Some("portal.test"),
        "login redirect not to the portal: {loc}"
    );
    assert_eq!(
        loc.path(),
        "/.portvakt/login",
        "login redirect not to the login page: {loc}"
    );
}

/// Whether `page` is a redirect to the login page (for loops that wait for it).
pub fn is_sent_to_login(page: &Page) -> bool {
    page.is_redirect()
        && page
            .location()
            .is_some_and(|l| l.host_str() == Some("portal.test") && l.path() == "/.portvakt/login")
}

/// `page` is one of our own HTML pages (branded) with this status, not
/// something an upstream said.
pub fn assert_branded(page: &Page, status: u16) {
    assert_eq!(
        page.status,
        status,
        "expected our {status} page, got {}",
        page.describe()
    );
    assert!(
        page.is_html(),
        "expected an HTML page, got {}",
        page.describe()
    );
    assert!(
        !page.is_whoami(),
        "expected our page, got the upstream's answer: {}",
        page.describe()
    );
    let text = page.text();
    assert!(
        text.contains("Testportalen") || text.contains("Test portal") || text.contains("Testkommunen"),
        "the page does not carry the configured branding (title Testportalen / organisation Testkommunen): {}",
        page.describe()
    );
}

/// Attributes of a `Set-Cookie` value, lower-cased names: `("secure", "")`, …
pub fn cookie_attributes(set_cookie: &str) -> Vec<(String, String)> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| {
            let a = a.trim();
            match a.split_once('=') {
                Some((n, v)) => (n.trim().to_ascii_lowercase(), v.trim().to_string()),
                None => (a.to_ascii_lowercase(), String::new()),
            }
        })
        .collect()
}

/// The value of a `Set-Cookie` header (`name=VALUE; …`).
pub fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|nv| nv.split_once('='))
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

/// A `Set-Cookie` that deletes its cookie (empty value, Max-Age=0 or an
/// expiry in the past).
pub fn is_cookie_removal(set_cookie: &str) -> bool {
    let attrs = cookie_attributes(set_cookie);
    let max_age_zero = attrs
        .iter()
        .any(|(n, v)| n == "max-age" && v.parse::<i64>().is_ok_and(|s| s <= 0));
    let expired = attrs
        .iter()
        .any(|(n, v)| n == "expires" && (v.contains("1970") || v.contains("1969")));
    max_age_zero || expired
}

/// A login page with its per-request parts replaced — csrf and rd values and
/// the username as typed (echoing it back tells nobody anything) — so that
/// answers to different failed logins can be compared byte for byte.
pub fn comparable_login_page(page: &Page, username: &str) -> String {
    let mut text = page.text();
    for input in ["csrf", "rd"] {
        if let Some(v) = page.input_value(input) {
            if !v.is_empty() {
                text = text.replace(&v, &format!("{{{input}}}"));
            }
        }
    }
    text.replace(username, "{username}")
}

/// Whether an auth-log line is a login attempt.
pub fn is_login_event(line: &serde_json::Value) -> bool {
    ["event", "type", "kind", "action"]
        .iter()
        .any(|k| line[*k] == "login")
}

/// Whether `text` says `line N` for exactly this N (not `line N0`).
pub fn mentions_line(text: &str, n: usize) -> bool {
    text.match_indices("line ").any(|(at, m)| {
        let digits: String = text[at + m.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse::<usize>() == Ok(n)
    })
}
