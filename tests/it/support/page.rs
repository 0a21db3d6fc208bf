//! A response read to the end, and the whoami upstream's JSON answer.

use reqwest::header::HeaderMap;
use reqwest::{Url, Version};
use serde::Deserialize;

/// One HTTP response, body included.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// The URL that was requested.
    pub url: Url,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
    /// DER of the server's leaf certificate, when the client asked for TLS info.
    pub peer_cert: Option<Vec<u8>>,
}

impl Page {
    /// Read `resp` to the end.
    pub async fn read(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let url = resp.url().clone();
        let version = resp.version();
        let headers = resp.headers().clone();
        let peer_cert = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .map(|c| c.to_vec());
        let body = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading body of {status} {url}: {e}"));
        Page {
            status,
            url,
            version,
            headers,
            body,
            peer_cert,
        }
    }

    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// `Location`, resolved against the requested URL.
    pub fn location(&self) -> Option<Url> {
        self.header("location").map(|l| {
            self.url
                .join(l)
                .unwrap_or_else(|e| panic!("bad Location {l:?} from {}: {e}", self.url))
        })
    }

    /// `Location` as sent (not resolved).
    pub fn raw_location(&self) -> Option<&str> {
        self.header("location")
    }

    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }

    /// The `Set-Cookie` header that sets cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.header_all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with(&prefix))
    }

    /// Value of the hidden (or any) `<input name="NAME" value="...">`, HTML-unescaped.
    pub fn input_value(&self, name: &str) -> Option<String> {
        input_value(&self.body, name)
    }

    /// The body with HTML escapes undone, for looking for words.
    pub fn text(&self) -> String {
        super::html_unescape(&self.body)
    }

    pub fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/html"))
    }

    /// Whether this is an answer of the whoami upstream.
    pub fn is_whoami(&self) -> bool {
        serde_json::from_str::<Whoami>(&self.body).is_ok()
    }

    /// The whoami answer in this page; panics (with the page) if it is something else.
    pub fn whoami(&self) -> Whoami {
        assert_eq!(
            self.status,
            200,
            "expected the upstream's 200, got {}",
            self.describe()
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not a whoami answer ({e}): {}", self.describe()))
    }

    /// One line about the page plus the start of the body, for assertion messages.
    pub fn describe(&self) -> String {
        let mut body: String = self.body.chars().take(1500).collect();
        if body.len() < self.body.len() {
            body.push('…');
        }
        format!(
            "{} {} (location: {:?}, content-type: {:?})\n--- body ---\n{}\n------------",
            self.status,
            self.url,
            self.raw_location(),
            self.header("content-type"),
            body
        )
    }
}

/// Value attribute of the `<input>` whose name is `name`, HTML-unescaped.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let needle = format!("name={quote}{name}{quote}");
        let mut from = 0;
        while let Some(pos) = html[from..].find(&needle) {
            let at = from + pos;
            from = at + needle.len();
            let start = html[..at].rfind('<')?;
            let end = at + html[at..].find('>')?;
            let tag = &html[start..end];
            if !tag.to_ascii_lowercase().starts_with("<input") {
                continue;
            }
            for vq in ['"', '\''] {
                let vneedle = format!("value={vq}");
                if let Some(v) = tag.find(&vneedle) {
                    let rest = &tag[v + vneedle.len()..];
                    let close = rest.find(vq)?;
                    return Some(super::html_unescape(&rest[..close]));
                }
            }
            return Some(String::new());
        }
    }
    None
}

/// What `portvakt whoami` answers: the request as it arrived upstream.
#[derive(Debug, Deserialize)]
pub struct Whoami {
    pub method: String,
    pub path: String,
    pub host: String,
    /// Lower-case names, in the order received, repeated names repeated.
    pub headers: Vec<(String, String)>,
    /// Accepted TCP connections of that whoami process, counting from 1.
    pub connection: u64,
    /// The request's number on its connection, counting from 1.
    pub request: u64,
}

impl Whoami {
    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase() == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics if it came more than once.
    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "header {name} arrived {} times upstream: {all:?}",
            all.len()
        );
        all.first().copied()
    }

    /// Cookie names in the `cookie` header(s) that reached the upstream.
    pub fn cookie_names(&self) -> Vec<String> {
        self.all("cookie")
            .iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|c| c.split('=').next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// Value of cookie `name` as the upstream saw it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.all("cookie")
            .iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }
}
