//! Audit: one JSON line per request (access log) and one per authentication
//! decision (auth log). Lines are written by a background thread so the
//! proxy path only formats and hands over a string.
//!
//! Never written here: passwords, codes, session ids (only short hashes).

pub mod access;
pub mod auth;
pub mod chain;
pub mod logread;
pub mod query;
pub mod report;
pub mod verify;
pub mod vocabulary;
mod writer;

pub use access::AccessRecord;
pub use auth::AuthEvent;
pub use vocabulary::{Event, Outcome, Reason};
pub use writer::LogWriter;

use std::sync::atomic::{AtomicU64, Ordering};

/// Append one auth event synchronously, sealed into the hash chain (for
/// short-lived CLI commands, which exit before a background writer would
/// flush). The head file's lock keeps it from interleaving with the running
/// gateway's writer. With the auth log on stdout (journald) the event goes
/// to this command's stdout unchained: the gateway's stream is not ours to
/// extend.
pub fn append_now<T: serde::Serialize>(
    target: &crate::config::model::LogTarget,
    chain_head: &std::path::Path,
    event: &T,
) -> std::io::Result<()> {
    use std::io::Write;
    let record = match serde_json::to_value(event).map_err(std::io::Error::other)? {
        serde_json::Value::Object(m) => m,
        _ => return Err(std::io::Error::other("an auth event must be a JSON object")),
    };
    match target {
        crate::config::model::LogTarget::Stdout => {
            let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            std::io::stdout().write_all(&line)
        }
        crate::config::model::LogTarget::File(_) => {
            let now = timestamp(crate::clock::Clock::now_ms(&crate::clock::SystemClock));
            chain::Appender::new(target, chain_head).append(vec![record], &now)
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn timestamp(ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Request ids: a random per-process prefix and a counter, 16 hex digits.
/// Unique enough to join log lines and cheap on the hot path.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: rand::random::<u64>() & 0xffff_ff00_0000_0000,
            counter: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    /// The next id.
    pub fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & 0x0000_00ff_ffff_ffff;
        format!("{:016x}", self.prefix | n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn request_ids_differ() {
        let ids = RequestIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }
}
