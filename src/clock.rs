//! Time as a seam: production uses the system clock; tests move a manual
//! clock to check expiry, lockouts, validity windows and opening hours
//! without sleeping.
//!
//! # What goes through the [`Clock`]
//! Every reading of *the time* that a decision or a record depends on:
//! session idle and lifetime expiry, handoff and code validity, resend
//! cooldowns and budgets, lockouts, enrolment deadlines, opening hours,
//! audit and access-log timestamps, the time in a change notice, and the
//! metrics' start and reload times. A test that swaps in a [`ManualClock`]
//! then controls all of these at once.
//!
//! # What does not
//! Measuring how long something took, or bounding how long to wait, is not
//! "the time": `std::time::Instant` and tokio's timers (I/O timeouts, the
//! pacing of refused logins, the sweeper's tick) stay on the monotonic
//! clock. A manual clock that stands still must never hang a request, and
//! a jump of the wall clock must never cut a timeout short. The sweeper
//! ticks in real time but decides what has expired by the [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Seconds since the Unix epoch with a fraction (Prometheus gauges).
    fn now_secs_f64(&self) -> f64 {
        self.now_ms() as f64 / 1000.0
    }

    /// The current instant as a [`jiff::Timestamp`] (opening hours, dates).
    /// A value outside jiff's range (only a broken clock gives one) reads
    /// as the epoch rather than panicking in the middle of a request.
    fn now_timestamp(&self) -> jiff::Timestamp {
        i64::try_from(self.now_ms())
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests). Shared by `Arc`: the test
/// keeps one handle and gives the gateway another.
#[derive(Debug, Default)]
pub struct ManualClock {
    /// Atomic so request threads read it while the test moves it.
    ms: AtomicU64,
}

impl ManualClock {
    /// A manual clock starting at `ms`.
    pub fn starting_at(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            ms: AtomicU64::new(ms),
        })
    }

    /// A manual clock starting at `t` (before the epoch: at the epoch).
    pub fn starting_at_timestamp(t: jiff::Timestamp) -> Arc<ManualClock> {
        ManualClock::starting_at(u64::try_from(t.as_millisecond()).unwrap_or(0))
    }

    /// A manual clock starting at the system clock's present time, so that
    /// dates and certificates the test makes still look current.
    pub fn starting_now() -> Arc<ManualClock> {
        ManualClock::starting_at(SystemClock.now_ms())
    }

    /// Move forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Move forward by `d` (whole milliseconds).
    pub fn advance(&self, d: Duration) {
        self.advance_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    /// Jump to `t`, forwards or backwards (a wall clock can be set back).
    pub fn set(&self, t: jiff::Timestamp) {
        self.ms.store(
            u64::try_from(t.as_millisecond()).unwrap_or(0),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// The shared clock handle used throughout the gateway.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now_ms(), 3_500);
        assert_eq!(clock.now_secs(), 3);
        assert_eq!(clock.now_secs_f64(), 3.5);
    }

    #[test]
    fn the_timestamp_is_the_same_instant_as_now_ms() {
        let t: jiff::Timestamp = "2026-12-03T07:59:59.250Z".parse().unwrap();
        let clock = ManualClock::starting_at_timestamp(t);
        assert_eq!(clock.now_timestamp(), t);
        clock.advance_ms(750);
        assert_eq!(clock.now_timestamp().to_string(), "2026-12-03T08:00:00Z");
        clock.set("2026-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(clock.now_timestamp().to_string(), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn an_unrepresentable_time_reads_as_the_epoch_not_a_panic() {
        let clock = ManualClock::starting_at(u64::MAX);
        assert_eq!(clock.now_timestamp(), jiff::Timestamp::UNIX_EPOCH);
    }

    #[test]
    fn the_system_clock_agrees_with_jiff() {
        let before = jiff::Timestamp::now().as_millisecond();
        let ours = SystemClock.now_timestamp().as_millisecond();
        let after = jiff::Timestamp::now().as_millisecond();
        assert!(before <= ours && ours <= after);
    }
}
