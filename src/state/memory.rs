//! The in-process state backend: a sharded map with deadlines read from the
//! gateway's clock (so tests move expiry by moving the clock).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{StateBackend, StateError};
use crate::clock::SharedClock;

const SHARDS: usize = 16;

/// Entries the memory backend holds at most. Each is a few hundred bytes
/// (codes, handoffs, pending enrolments, counters), so this is ~100s of MiB
/// in the worst case; a flood of anonymous requests creates none of them
/// without passing the login's own limits first.
pub const CAPACITY: usize = 1_000_000;

#[derive(Debug)]
enum Value {
    Bytes(Vec<u8>),
    /// Event times of a rate window, oldest first.
    Window(VecDeque<u64>),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    deadline_ms: u64,
}

/// State in this process's memory.
#[derive(Debug)]
pub struct MemoryBackend {
    clock: SharedClock,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    capacity: usize,
}

impl MemoryBackend {
    /// An empty backend whose expiry follows `clock`.
    pub fn new(clock: SharedClock) -> MemoryBackend {
        MemoryBackend::with_capacity(clock, CAPACITY)
    }

    /// An empty backend holding at most `capacity` entries (tests).
    pub fn with_capacity(clock: SharedClock, capacity: usize) -> MemoryBackend {
        MemoryBackend {
            clock,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            capacity: capacity.max(SHARDS),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Entry>> {
        // FNV-1a: cheap and good enough to spread hash-derived keys.
        let h = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn deadline(&self, ttl: Duration) -> u64 {
        self.now().saturating_add(ttl.as_millis() as u64)
    }

    /// Insert into a locked shard, refusing when the shard is full even
    /// after dropping what has expired.
    fn insert(
        &self,
        shard: &mut HashMap<String, Entry>,
        key: &str,
        entry: Entry,
    ) -> Result<(), StateError> {
        let per_shard = self.capacity / SHARDS;
        if shard.len() >= per_shard && !shard.contains_key(key) {
            let now = self.now();
            shard.retain(|_, e| e.deadline_ms > now);
            if shard.len() >= per_shard {
                return Err(StateError::Full(self.capacity));
            }
        }
        shard.insert(key.to_owned(), entry);
        Ok(())
    }

    /// Entries held, expired or not (tests).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The live bytes of an entry.
fn live(entry: Option<&Entry>, now: u64) -> Option<&Vec<u8>> {
    match entry {
        Some(Entry {
            value: Value::Bytes(b),
            deadline_ms,
        }) if *deadline_ms > now => Some(b),
        _ => None,
    }
}

#[async_trait]
impl StateBackend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(live(self.shard(key).lock().get(key), self.now()).cloned())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
        let entry = Entry {
            value: Value::Bytes(value.to_vec()),
            deadline_ms: self.deadline(ttl),
        };
        self.insert(&mut self.shard(key).lock(), key, entry)
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StateError> {
        let mut shard = self.shard(key).lock();
        if shard.get(key).is_some_and(|e| e.deadline_ms > self.now()) {
            return Ok(false);
        }
        let entry = Entry {
            value: Value::Bytes(value.to_vec()),
            deadline_ms: self.deadline(ttl),
        };
        self.insert(&mut shard, key, entry).map(|()| true)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let now = self.now();
        Ok(match self.shard(key).lock().remove(key) {
            Some(Entry {
                value: Value::Bytes(b),
                deadline_ms,
            }) if deadline_ms > now => Some(b),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let now = self.now();
        Ok(self
            .shard(key)
            .lock()
            .remove(key)
            .is_some_and(|e| e.deadline_ms > now))
    }

    async fn swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let mut shard = self.shard(key).lock();
        if live(shard.get(key), self.now()).map(|b| b.as_slice()) != Some(expected) {
            return Ok(false);
        }
        match new {
            None => {
                shard.remove(key);
            }
            Some(v) => {
                let entry = Entry {
                    value: Value::Bytes(v.to_vec()),
                    deadline_ms: self.deadline(ttl),
                };
                self.insert(&mut shard, key, entry)?;
            }
        }
        Ok(true)
    }

    async fn admit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        limit: u32,
    ) -> Result<bool, StateError> {
        let window_ms = window.as_millis() as u64;
        let mut shard = self.shard(key).lock();
        if let Some(Entry {
            value: Value::Window(times),
            deadline_ms,
        }) = shard.get_mut(key)
        {
            while times
                .front()
                .is_some_and(|t| now_ms.saturating_sub(*t) >= window_ms)
            {
                times.pop_front();
            }
            if times.len() >= limit as usize {
                return Ok(false);
            }
            times.push_back(now_ms);
            *deadline_ms = now_ms.saturating_add(window_ms);
            return Ok(true);
        }
        if limit == 0 {
            return Ok(false);
        }
        let entry = Entry {
            value: Value::Window(VecDeque::from([now_ms])),
            deadline_ms: now_ms.saturating_add(window_ms),
        };
        self.insert(&mut shard, key, entry).map(|()| true)
    }

    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError> {
        let now = self.now();
        let mut out = Vec::new();
        for shard in &self.shards {
            for (k, e) in shard.lock().iter() {
                if out.len() >= limit {
                    return Ok(out);
                }
                if e.deadline_ms > now && k.starts_with(prefix) {
                    out.push(k.clone());
                }
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    fn sweep(&self) {
        let now = self.now();
        for shard in &self.shards {
            shard.lock().retain(|_, e| e.deadline_ms > now);
        }
    }
}
