//! A response from one of our own pages, before it is written.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderName;
use http::HeaderValue;

/// What a page handler answers.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if there is a body.
    pub content_type: &'static str,
    /// Body.
    pub body: Bytes,
    /// Extra headers (`Location`, `Set-Cookie`, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A static asset (cacheable, no page security headers needed beyond the basics).
    pub asset: bool,
    /// How the access log should call this answer.
    pub decision: &'static str,
    /// The page runs our passkey script (its CSP allows `script-src 'self'`;
    /// every other page stays script-free).
    pub script: bool,
    /// `Cache-Control` instead of the default (`no-store`, or an asset's).
    pub cache_control: Option<Box<HeaderValue>>,
}

impl Reply {
    /// An HTML page.
    pub fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body: Bytes::from(body),
            headers: Vec::new(),
            asset: false,
            decision: "page",
            script: false,
            cache_control: None,
        }
    }

    /// A redirect.
    pub fn redirect(status: u16, location: &str) -> Reply {
        let mut r = Reply::html(status, String::new());
        r.decision = "redirect";
        r.with_header(http::header::LOCATION, location)
    }

    /// A static asset.
    pub fn asset(bytes: Arc<[u8]>, content_type: &'static str) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: Bytes::copy_from_slice(&bytes),
            headers: Vec::new(),
            asset: true,
            decision: "asset",
            script: false,
            cache_control: None,
        }
    }

    /// Add a header (a value that is not a valid header value is dropped and logged).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Reply {
        match HeaderValue::from_str(value) {
            Ok(v) => self.headers.push((name, v)),
            Err(_) => tracing::error!(header = %name, "dropped an invalid header value"),
        }
        self
    }

    /// Same as [`Reply::with_header`], for chaining on a finished reply.
    pub fn header(self, name: HeaderName, value: &str) -> Reply {
        self.with_header(name, value)
    }

    /// Add a `Set-Cookie`.
    pub fn cookie(self, set_cookie: String) -> Reply {
        self.with_header(http::header::SET_COOKIE, &set_cookie)
    }

    /// Let this page run our passkey script.
    pub fn with_script(mut self) -> Reply {
        self.script = true;
        self
    }

    /// Name the access-log decision.
    pub fn decision(mut self, d: &'static str) -> Reply {
        self.decision = d;
        self
    }
}
