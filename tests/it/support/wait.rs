//! Bounded waiting: every loop here ends after a fixed number of tries and a
//! fixed time, whatever the process under test does.

use std::collections::HashSet;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A loopback address with a port nobody listens on right now. The port is
/// found by binding `127.0.0.1:0` and dropping the listener; ports already
/// handed out in this test process are never handed out again, so parallel
/// tests do not collide with each other.
pub fn free_addr() -> SocketAddr {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..50 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        drop(listener);
        let mut given = GIVEN.lock().unwrap();
        if given.get_or_insert_with(HashSet::new).insert(addr.port()) {
            return addr;
        }
    }
    panic!("no free loopback port after 50 tries");
}

/// Poll `probe` every `every` until it returns `Some`, for at most `limit`
/// (and at most `limit / every + 1` tries). Panics naming `what` otherwise.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let tries = (limit.as_millis() / every.as_millis().max(1)) as usize + 1;
    let start = Instant::now();
    for _ in 0..tries {
        if let Some(v) = probe().await {
            return v;
        }
        if start.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(every).await;
    }
    panic!("gave up waiting for {what} after {:?}", start.elapsed());
}

/// Like [`until`] but returns `None` instead of panicking.
pub async fn maybe_until<T, F, Fut>(limit: Duration, every: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let tries = (limit.as_millis() / every.as_millis().max(1)) as usize + 1;
    let start = Instant::now();
    for _ in 0..tries {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if start.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(every).await;
    }
    None
}

/// Outcome of waiting for a child process to listen.
#[derive(Debug)]
pub enum Readiness {
    /// The port accepts TCP connections and the child still runs.
    Listening,
    /// The child ended first (exit status as text).
    Exited(String),
    /// Neither happened within the limit.
    TimedOut,
}

/// Wait until `addr` accepts a TCP connection while `child` keeps running.
pub async fn tcp_ready(
    addr: SocketAddr,
    child: &mut std::process::Child,
    limit: Duration,
) -> Readiness {
    let start = Instant::now();
    let every = Duration::from_millis(50);
    let tries = (limit.as_millis() / every.as_millis()) as usize + 1;
    for _ in 0..tries {
        if let Ok(Some(status)) = child.try_wait() {
            return Readiness::Exited(status.to_string());
        }
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_stream)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
            // A port taken by someone else between our probe and the child's
            // bind would also accept; make sure our child did not die of it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(Some(status)) = child.try_wait() {
                return Readiness::Exited(status.to_string());
            }
            return Readiness::Listening;
        }
        if start.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(every).await;
    }
    Readiness::TimedOut
}
