//! The bounded record maps behind the [`Regulator`](super::Regulator): one
//! record per user or address (failures in the window, lock, run of
//! consecutive failures, attempts under way), eviction that cannot unlock,
//! and shared overflow slots when a map is full of locked records.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

use super::{Completed, Factor};

/// Shared overflow records per map, used only when a map is full of locked
/// records (see [`Table`]).
pub(super) const OVERFLOW_SLOTS: usize = 1024;

/// One user's or address's record. With a shared state backend it is
/// stored as JSON (without `in_flight`, which is this process's own).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Record {
    /// Failures (time in ms, factor) within the window; never more than the limit.
    failures: VecDeque<(u64, Factor)>,
    /// Locked until (ms); 0 when never locked.
    locked_until: u64,
    /// Held by the consecutive-failure cap: locked until an administrator
    /// clears it (or the process restarts), whatever the clock says.
    held: bool,
    /// Consecutive password failures since the run began.
    run_password: u32,
    /// Consecutive second-factor failures since the run began.
    run_second: u32,
    /// Last failure (ms): eviction order and run memory.
    last_failure: u64,
    /// Attempts admitted and not finished yet (a directory check under way).
    #[serde(skip)]
    in_flight: u32,
}

/// What one failure did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Counted,
    Locked,
    Held,
}

impl Record {
    pub(super) fn locked(&self, now: u64) -> bool {
        self.held || now < self.locked_until
    }

    /// Held by the cap (see [`Record::held`](Record)).
    pub(super) fn held(&self) -> bool {
        self.held
    }

    /// Locked until (ms), for listing; meaningless when held.
    pub(super) fn locked_until(&self) -> u64 {
        self.locked_until
    }

    /// Consecutive failures in the current run.
    pub(super) fn consecutive(&self) -> u32 {
        self.run()
    }

    /// Forget the lock, the hold, the failures and the run (an
    /// administrator's clear). Attempts under way stay counted, so they
    /// are released where they were admitted.
    pub(super) fn reset(&mut self) {
        *self = Record {
            in_flight: self.in_flight,
            ..Record::default()
        };
    }

    /// Whether there is anything for an administrator to clear.
    pub(super) fn anything(&self, now: u64) -> bool {
        self.locked(now) || !self.failures.is_empty() || self.run() > 0
    }

    /// Failures still within the window at `now`.
    pub(super) fn failures_within(&self, now: u64, window: u64) -> u32 {
        self.failures
            .iter()
            .filter(|(t, _)| now.saturating_sub(*t) < window)
            .count() as u32
    }

    /// Until when (ms) the record still matters, for a shared record's
    /// expiry: the end of its lock, of its newest failure's window, and of
    /// its run's memory; `None` when held (no end of its own).
    pub(super) fn matters_until(&self, rules: &Rules) -> Option<u64> {
        if self.held {
            return None;
        }
        let mut until = self.locked_until;
        if let Some((t, _)) = self.failures.back() {
            until = until.max(t.saturating_add(rules.window));
        }
        if rules.cap.is_some() && self.run() > 0 {
            until = until.max(self.last_failure.saturating_add(rules.hold));
        }
        Some(until)
    }

    fn prune(&mut self, now: u64, window: u64) {
        while self
            .failures
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn run(&self) -> u32 {
        self.run_password.saturating_add(self.run_second)
    }

    pub(super) fn fail(&mut self, now: u64, factor: Factor, rules: &Rules) -> Step {
        self.prune(now, rules.window);
        self.failures.push_back((now, factor));
        match factor {
            Factor::Password => self.run_password = self.run_password.saturating_add(1),
            Factor::Second => self.run_second = self.run_second.saturating_add(1),
        }
        self.last_failure = now;
        if rules.cap.is_some_and(|cap| self.run() >= cap) {
            // No expiry: a hold that ended by itself would let the next run
            // of a hundred start, and "never more than 100" would be 100 a
            // day. Only an administrator's clear (or a restart) lifts it.
            self.held = true;
            self.failures.clear();
            self.run_password = 0;
            self.run_second = 0;
            return Step::Held;
        }
        if self.failures.len() >= rules.limit as usize {
            self.locked_until = now.saturating_add(rules.lockout);
            self.failures.clear();
            return Step::Locked;
        }
        Step::Counted
    }

    pub(super) fn clear(&mut self, completed: Completed) {
        match completed {
            Completed::Password => {
                self.failures.retain(|(_, f)| *f != Factor::Password);
                self.run_password = 0;
            }
            Completed::TwoFactors => {
                self.failures.clear();
                self.run_password = 0;
                self.run_second = 0;
            }
        }
    }

    /// Whether one more attempt may start: the failures in the window plus
    /// the attempts already under way stay below the limit. Otherwise a
    /// burst of concurrent guesses would all pass the lock check before the
    /// first of them was counted.
    /// `seen`: failures counted elsewhere (the shared record, when the
    /// failures live in the state backend and this record only counts the
    /// attempts under way here).
    fn admits(&mut self, now: u64, rules: &Rules, seen: u32) -> bool {
        self.prune(now, rules.window);
        (self.failures.len() as u64 + u64::from(self.in_flight) + u64::from(seen))
            < u64::from(rules.limit)
    }

    /// Whether the record still matters: locked or held, failures in the
    /// window, or a run that has not been quiet for [`HOLD`](super::HOLD).
    fn live(&mut self, now: u64, rules: &Rules) -> bool {
        self.prune(now, rules.window);
        self.locked(now)
            || self.in_flight > 0
            || !self.failures.is_empty()
            || (rules.cap.is_some()
                && self.run() > 0
                && now.saturating_sub(self.last_failure) < rules.hold)
    }
}

/// Limits for one map, in ms.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    pub(super) limit: u32,
    /// The consecutive-failure cap: accounts only. An address has no
    /// "completed login" to end a run (an office behind one NAT address
    /// would be held for a day by a hundred typos spread over the day).
    pub(super) cap: Option<u32>,
    pub(super) window: u64,
    pub(super) lockout: u64,
    pub(super) hold: u64,
}

/// Where an admitted attempt was counted, so it is released there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Own,
    Slot(usize),
}

/// A bounded map of records.
///
/// When a new key arrives and the map is full, the map first drops records
/// that no longer matter, then the oldest *unlocked* records (by last
/// failure). A locked record is never evicted before it expires, and a held
/// one never (it does not expire): filling the map with new names cannot
/// unlock anyone. If every record is locked, the
/// new key is counted in one of [`OVERFLOW_SLOTS`] shared records chosen by
/// a keyed hash (random per process), and [`Table::locked`] consults that
/// slot too: an attacker who saturates the map still meets a limit on every
/// name (fail closed), and a slot they lock affects about one name in 1024,
/// not everyone, and only names they cannot aim at (the hash key is secret).
#[derive(Debug, Clone)]
pub(super) struct Table<K> {
    pub(super) records: HashMap<K, Record>,
    overflow: Vec<Record>,
    hasher: RandomState,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    pub(super) fn new(capacity: usize) -> Table<K> {
        Table {
            records: HashMap::new(),
            overflow: vec![Record::default(); OVERFLOW_SLOTS],
            hasher: RandomState::new(),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn slot(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) % OVERFLOW_SLOTS as u64) as usize
    }

    pub(super) fn locked(&self, key: &K, now: u64) -> bool {
        self.records.get(key).is_some_and(|r| r.locked(now))
            || self.overflow[self.slot(key)].locked(now)
    }

    /// The record for `key`: its own (made if there is room, or room can be
    /// made), else its shared overflow slot.
    pub(super) fn record(&mut self, key: &K, now: u64, rules: &Rules) -> (&mut Record, Place) {
        if !self.records.contains_key(key) && self.records.len() >= self.capacity {
            self.make_room(now, rules);
        }
        if self.records.contains_key(key) || self.records.len() < self.capacity {
            return (self.records.entry(key.clone()).or_default(), Place::Own);
        }
        let slot = self.slot(key);
        (&mut self.overflow[slot], Place::Slot(slot))
    }

    pub(super) fn fail(&mut self, key: &K, now: u64, factor: Factor, rules: &Rules) -> Step {
        self.record(key, now, rules).0.fail(now, factor, rules)
    }

    /// Admit one attempt for `key` (see [`Record::admits`]); where it was counted.
    pub(super) fn admit(&mut self, key: &K, now: u64, rules: &Rules, seen: u32) -> Option<Place> {
        if self.overflow[self.slot(key)].locked(now) {
            return None;
        }
        let (r, place) = self.record(key, now, rules);
        if r.locked(now) || !r.admits(now, rules, seen) {
            return None;
        }
        r.in_flight += 1;
        Some(place)
    }

    /// An admitted attempt ended.
    pub(super) fn release(&mut self, key: &K, place: Place) {
        let r = match place {
            Place::Own => self.records.get_mut(key),
            Place::Slot(i) => self.overflow.get_mut(i),
        };
        if let Some(r) = r {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }

    /// Drop what no longer matters, then (if still full) the oldest unlocked
    /// records: a sixty-fourth of the map at once, so a stream of new names
    /// does not pay a full scan each.
    pub(super) fn make_room(&mut self, now: u64, rules: &Rules) {
        self.sweep(now, rules);
        if self.records.len() < self.capacity {
            return;
        }
        let mut unlocked: Vec<(u64, K)> = self
            .records
            .iter()
            .filter(|(_, r)| !r.locked(now) && r.in_flight == 0)
            .map(|(k, r)| (r.last_failure, k.clone()))
            .collect();
        let batch = (self.capacity / 64).max(1);
        if unlocked.len() > batch {
            unlocked.select_nth_unstable_by_key(batch - 1, |(t, _)| *t);
            unlocked.truncate(batch);
        }
        for (_, k) in unlocked {
            self.records.remove(&k);
        }
    }

    pub(super) fn clear(&mut self, key: &K, completed: Completed) {
        // Overflow slots are shared: one person's success clears no one else.
        if let Some(r) = self.records.get_mut(key) {
            r.clear(completed);
        }
    }

    /// An administrator's clear of `key`: its own record, and its overflow
    /// slot if that is locked (the slot is shared by about one in
    /// [`OVERFLOW_SLOTS`] of the names that found no room, so clearing it
    /// frees them too — the help desk asked for this name, and the slot
    /// would otherwise keep it locked). Whether anything was cleared.
    pub(super) fn admin_clear(&mut self, key: &K, now: u64) -> bool {
        let mut cleared = false;
        if let Some(r) = self.records.get_mut(key) {
            cleared = r.anything(now);
            r.reset();
        }
        let slot = self.slot(key);
        if self.overflow[slot].locked(now) {
            self.overflow[slot].reset();
            cleared = true;
        }
        cleared
    }

    /// Overflow slots locked at `now`.
    pub(super) fn locked_slots(&self, now: u64) -> usize {
        self.overflow.iter().filter(|r| r.locked(now)).count()
    }

    pub(super) fn without_in_flight(&self) -> Table<K> {
        let mut t = self.clone();
        for r in t.records.values_mut().chain(t.overflow.iter_mut()) {
            r.in_flight = 0;
        }
        t
    }

    pub(super) fn sweep(&mut self, now: u64, rules: &Rules) {
        self.records.retain(|_, r| r.live(now, rules));
        for r in &mut self.overflow {
            if !r.live(now, rules) {
                *r = Record::default();
            }
        }
    }
}
