//! Audit: one JSON line per request (access log) and one per authentication
//! decision (auth log). Lines are written by a background thread so the
//! proxy path only formats and hands over a string.
//!
//! Never written here: passwords, codes, session ids (only short hashes).

pub mod access;
pub mod auth;
pub mod logread;
pub mod query;
pub mod report;
mod writer;

pub use access::AccessRecord;
pub use auth::AuthEvent;
pub use writer::LogWriter;

use std::sync::atomic::{AtomicU64, Ordering};

/// Append one event synchronously (for short-lived CLI commands, which exit
/// before a background writer would flush).
pub fn append_now<T: serde::Serialize>(
    target: &crate::config::model::LogTarget,
    event: &T,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    match target {
        crate::config::model::LogTarget::Stdout => std::io::stdout().write_all(&line),
        crate::config::model::LogTarget::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?
                .write_all(&line)
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
