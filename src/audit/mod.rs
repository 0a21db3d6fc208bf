//! Audit: one JSON line per request (access log) and one per authentication
//! decision (auth log). Lines are written by a background thread so the
//! proxy path only formats and hands over a string.
//!
//! Never written here: passwords, codes, session ids (only short hashes).

pub mod access;
pub mod auth;
pub mod chain;
pub mod gateway;
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
    gateway: &str,
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
            chain::Appender::new(target, chain_head, gateway).append(vec![record], &now)
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

/// Request ids, unique across the gateways of a cluster and across
/// restarts: 64 random bits drawn once per process (16 hex digits), then a
/// counter (8 hex digits, more once it passes 2³², so it never wraps):
/// `3f9a0c7d51e2b846` `0000002a`, written as one word of 24 characters.
///
/// No coordination is needed: two processes share a prefix with
/// probability 2⁻⁶⁴ (for a cluster that starts a million processes in its
/// life, about 3 in 10⁸ that any two ever do). The gateway's name is not in
/// the id on purpose: ids are shown on error pages to anyone, and the
/// access line already names the gateway. The prefix is fixed-width, so
/// ids of one process never equal ids of another even as counters grow.
#[derive(Debug)]
pub struct RequestIds {
    /// The random part, already as hex: formatted once, copied per id.
    prefix: [u8; 16],
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::with_prefix(rand::random::<u64>())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl RequestIds {
    /// Ids with this prefix (tests; the gateway draws one at random).
    pub fn with_prefix(prefix: u64) -> RequestIds {
        let mut hex = [0u8; 16];
        for (i, b) in hex.iter_mut().enumerate() {
            *b = HEX[((prefix >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestIds {
            prefix: hex,
            counter: AtomicU64::new(0),
        }
    }

    /// The next id: one allocation, no formatting machinery.
    pub fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let digits = (((64 - n.leading_zeros()) as usize).div_ceil(4)).max(8);
        let mut buf = [0u8; 32];
        buf[..16].copy_from_slice(&self.prefix);
        for i in 0..digits {
            buf[16 + digits - 1 - i] = HEX[((n >> (4 * i)) & 0xf) as usize];
        }
        // Only ASCII hex digits were written.
        String::from(std::str::from_utf8(&buf[..16 + digits]).unwrap_or_default())
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
        assert_eq!(a.len(), 24);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn an_id_is_the_prefix_then_the_counter_which_grows_instead_of_wrapping() {
        let ids = RequestIds::with_prefix(0x0123_4567_89ab_cdef);
        assert_eq!(ids.next(), "0123456789abcdef00000000");
        assert_eq!(ids.next(), "0123456789abcdef00000001");
        ids.counter.store(u32::MAX as u64, Ordering::Relaxed);
        assert_eq!(ids.next(), "0123456789abcdefffffffff");
        assert_eq!(ids.next(), "0123456789abcdef100000000");
        ids.counter.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(ids.next(), "0123456789abcdefffffffffffffffff");
    }

    /// Two gateways, and one of them restarted (a new process draws a new
    /// prefix): none of their ids is another's.
    #[test]
    fn ids_of_two_gateways_and_a_restart_never_collide() {
        let a = RequestIds::default();
        let b = RequestIds::default();
        let a_again = RequestIds::default();
        let mut seen = std::collections::HashSet::new();
        for ids in [&a, &b, &a_again] {
            for _ in 0..20_000 {
                assert!(seen.insert(ids.next()), "an id repeated");
            }
        }
        assert_eq!(seen.len(), 60_000);
        // Even with equal counters, the prefixes tell them apart.
        let prefixes: std::collections::HashSet<[u8; 16]> =
            [a.prefix, b.prefix, a_again.prefix].into_iter().collect();
        assert_eq!(prefixes.len(), 3);
    }

    /// `cargo test --release --lib request_id_cost -- --ignored --nocapture`:
    /// ns per id, this formatter against the `format!` it replaced.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn request_id_cost() {
        const N: u32 = 5_000_000;
        let ids = RequestIds::default();
        let t = std::time::Instant::now();
        let mut len = 0;
        for _ in 0..N {
            len += std::hint::black_box(ids.next()).len();
        }
        let new = t.elapsed().as_nanos() as f64 / f64::from(N);
        let counter = AtomicU64::new(0);
        let prefix = rand::random::<u64>() & 0xffff_ff00_0000_0000;
        let t = std::time::Instant::now();
        for _ in 0..N {
            let n = counter.fetch_add(1, Ordering::Relaxed) & 0x0000_00ff_ffff_ffff;
            len += std::hint::black_box(format!("{:016x}", prefix | n)).len();
        }
        let old = t.elapsed().as_nanos() as f64 / f64::from(N);
        println!("request id: {new:.1} ns (24 chars) vs format! {old:.1} ns (16 chars) [{len}]");
    }
}
