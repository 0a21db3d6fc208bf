//! A stand-in for an HTTP SMS provider (46elks, Twilio, a municipality's own
//! gateway): a small HTTP/1.1 server on 127.0.0.1 that records every request
//! (method, target, headers, body) and answers as the test says — 200, 500,
//! or not at all (it stalls, holding the connection open).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::wait::maybe_until;

/// How the provider answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and JSON body.
    Status(u16, String),
    /// Read the request, record it, never answer (until the test ends).
    Stall,
}

impl Answer {
    /// `200 {"status":"created"}`, like a real gateway taking a message.
    pub fn ok() -> Answer {
        Answer::Status(200, r#"{"id":"s1","status":"created"}"#.into())
    }

    /// `500` with an error body.
    pub fn server_error() -> Answer {
        Answer::Status(500, r#"{"error":"internal error, try again later"}"#.into())
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Lower-case names, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The body as `application/x-www-form-urlencoded` fields.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// One form field; panics if missing.
    pub fn form_field(&self, name: &str) -> String {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no form field {name:?} in {:?}", self.body))
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("SMS request body is not JSON ({e}): {:?}", self.body))
    }

    /// User and password of an `Authorization: Basic` header.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let b64 = value.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }
}

struct Shared {
    answer: Mutex<Answer>,
    requests: Mutex<Vec<Recorded>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// The running provider; stops (with every stalled connection) on drop.
pub struct SmsProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SmsProvider {
    /// Listen on a free loopback port, answering [`Answer::ok`].
    pub async fn start() -> SmsProvider {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMS provider");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            answer: Mutex::new(Answer::ok()),
            requests: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s2 = s.clone();
                let conn = tokio::spawn(async move { serve(stream, s2).await });
                s.tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        shared.tasks.lock().unwrap().push(accept.abort_handle());
        SmsProvider { addr, shared }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer the next requests this way.
    pub fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = answer;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Wait (at most 10 s) until `n` requests have arrived in all.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<Recorded> {
        let found = maybe_until(Duration::from_secs(10), Duration::from_millis(25), || {
            let r = self.requests();
            async move { (r.len() >= n).then_some(r) }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "gave up after 10 s waiting for SMS request number {n}; got {:#?}",
                self.requests()
            )
        })
    }

    /// Request number `n` (1-based), waiting for it.
    pub async fn request(&self, n: usize) -> Recorded {
        self.wait_for_requests(n).await.swap_remove(n - 1)
    }

    /// A `sms:` block of `notify:` posting to `path` with `body` (YAML for
    /// the `http:` mapping beyond `url`, each line indented 6 spaces by the
    /// caller's text, e.g. `form: { to: "{phone}", message: "{text}" }`).
    pub fn sms_yaml(&self, path: &str, http_lines: &str) -> String {
        let mut y = format!("  sms:\n    http:\n      url: \"{}\"\n", self.url(path));
        for line in http_lines.lines().filter(|l| !l.trim().is_empty()) {
            y.push_str("      ");
            y.push_str(line);
            y.push('\n');
        }
        y
    }
}

impl Drop for SmsProvider {
    fn drop(&mut self) {
        for t in self.shared.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Serve requests on one connection until it closes (or stall on one).
async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        shared.requests.lock().unwrap().push(request);
        let answer = shared.answer.lock().unwrap().clone();
        match answer {
            Answer::Stall => {
                // Hold the connection, say nothing. Aborted when the provider drops.
                tokio::time::sleep(Duration::from_secs(600)).await;
                return;
            }
            Answer::Status(status, body) => {
                let reason = match status {
                    200 => "OK",
                    201 => "Created",
                    202 => "Accepted",
                    500 => "Internal Server Error",
                    _ => "Answer",
                };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// One request off the connection (head, then a `content-length` body);
/// None when the connection ends or the request is malformed.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Recorded> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[body_start..body_start + length]).into_owned();
    buf.drain(..body_start + length);
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}
