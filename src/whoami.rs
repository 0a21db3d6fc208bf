//! A tiny upstream that answers every request with the request it received,
//! as JSON: the demo's built-in service and the test suite's real upstream.
//! HTTP/1.1 with keep-alive; bodies are read and discarded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a str,
    headers: Vec<(String, String)>,
    /// Which accepted connection (1-based) carried this request: shows reuse.
    connection: u64,
    /// Which request on that connection (1-based).
    request: u64,
}

/// Serve on `listener` forever.
pub async fn serve(listener: TcpListener) {
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(async move {
            let _ = connection(stream, n).await;
        });
    }
}

async fn connection(mut stream: TcpStream, conn: u64) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut served = 0u64;
    loop {
        // Read until a full head is buffered.
        let head_len = loop {
            if let Some(pos) = find_head_end(&buf) {
                break pos;
            }
            if buf.len() > MAX_HEAD {
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(&buf[..head_len]).is_err() {
            return Ok(());
        }
        served += 1;
        let method = req.method.unwrap_or("").to_owned();
        let path = req.path.unwrap_or("/").to_owned();
        let list: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let get = |n: &str| list.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body_len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        buf.drain(..head_len);
        // Discard the body.
        while buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..body_len);

        let host = get("host").unwrap_or_default();
        let status: u16 = path
            .strip_prefix("/status/")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .filter(|s| (200..600).contains(s))
            .unwrap_or(200);
        // `/slow/MS…` answers after MS milliseconds (at most 10 s): an
        // in-flight request for drain tests and latency demos.
        if let Some(ms) = path
            .strip_prefix("/slow/")
            .map(|s| s.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
            .and_then(|s| s.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms.min(10_000))).await;
        }
        let body = serde_json::to_vec_pretty(&Echo {
            method: &method,
            path: &path,
            host: &host,
            headers: list.clone(),
            connection: conn,
            request: served,
        })
        .unwrap_or_default();
        let mut head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if path.starts_with("/set-cookie") {
            head.push_str("set-cookie: app_cookie=from-upstream; Path=/\r\n");
        }
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if method != "HEAD" {
            stream.write_all(&body).await?;
        }
        if close {
            return Ok(());
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Run whoami on `addr` in the current thread until the process ends.
pub fn run_blocking(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        serve(listener).await;
        Ok(())
    })
}
