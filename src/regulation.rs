//! Regulation: lock a user after repeated failures and block an IP that
//! fails too often (SECURITY.md "Throttling"). Counters live in memory now;
//! they move to the shared state store with Redis.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::config::model::LoginLimits;

#[derive(Debug, Default, Clone)]
struct Record {
    /// Failure times (ms) within the window.
    failures: Vec<u64>,
    /// Locked until (ms), if locked.
    locked_until: u64,
}

impl Record {
    fn locked(&self, now: u64) -> bool {
        now < self.locked_until
    }

    fn fail(&mut self, now: u64, window: u64, limit: u32, lockout: u64) -> bool {
        self.failures.retain(|t| now.saturating_sub(*t) < window);
        self.failures.push(now);
        if self.failures.len() >= limit as usize {
            self.locked_until = now + lockout;
            self.failures.clear();
            return true;
        }
        false
    }
}

/// Why a login is refused before the password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The user is locked.
    User,
    /// The client IP is blocked.
    Ip,
}

impl Block {
    /// Reason for the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Block::User => "locked",
            Block::Ip => "ip_blocked",
        }
    }
}

/// What a recorded failure led to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Escalation {
    /// This failure locked the user.
    pub user_locked: bool,
    /// This failure blocked the IP.
    pub ip_blocked: bool,
}

/// Failure counters per user and per IP.
#[derive(Debug)]
pub struct Regulator {
    limits: LoginLimits,
    users: Mutex<HashMap<String, Record>>,
    ips: Mutex<HashMap<IpAddr, Record>>,
}

impl Regulator {
    /// A regulator with `limits`.
    pub fn new(limits: LoginLimits) -> Regulator {
        Regulator {
            limits,
            users: Mutex::default(),
            ips: Mutex::default(),
        }
    }

    /// Take over the counters of `old` (config reload keeps lockouts).
    pub fn inherit(self, old: &Regulator) -> Regulator {
        *self.users.lock() = old.users.lock().clone();
        *self.ips.lock() = old.ips.lock().clone();
        self
    }

    /// Whether a login for `user` from `ip` is refused outright.
    pub fn check(&self, user: &str, ip: IpAddr, now_ms: u64) -> Option<Block> {
        if self.ips.lock().get(&ip).is_some_and(|r| r.locked(now_ms)) {
            return Some(Block::Ip);
        }
        if self
            .users
            .lock()
            .get(user)
            .is_some_and(|r| r.locked(now_ms))
        {
            return Some(Block::User);
        }
        None
    }

    /// Count a failure.
    pub fn failed(&self, user: &str, ip: IpAddr, now_ms: u64) -> Escalation {
        let l = &self.limits;
        let window = l.window.as_millis() as u64;
        let lockout = l.lockout.as_millis() as u64;
        let ip_blocked =
            self.ips
                .lock()
                .entry(ip)
                .or_default()
                .fail(now_ms, window, l.ip_failures, lockout);
        let user_locked = !user.is_empty()
            && self.users.lock().entry(user.to_owned()).or_default().fail(
                now_ms,
                window,
                l.user_failures,
                lockout,
            );
        Escalation {
            user_locked,
            ip_blocked,
        }
    }

    /// A success clears the user's failures (not the IP's).
    pub fn succeeded(&self, user: &str) {
        self.users.lock().remove(user);
    }

    /// Drop records with nothing left to remember.
    pub fn sweep(&self, now_ms: u64) {
        let window = self.limits.window.as_millis() as u64;
        let keep = |r: &mut Record| {
            r.failures.retain(|t| now_ms.saturating_sub(*t) < window);
            r.locked(now_ms) || !r.failures.is_empty()
        };
        self.users.lock().retain(|_, r| keep(r));
        self.ips.lock().retain(|_, r| keep(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> LoginLimits {
        LoginLimits {
            user_failures: 5,
            ip_failures: 20,
            window: Duration::from_secs(600),
            lockout: Duration::from_secs(900),
            basic_auth_cache: Duration::from_secs(300),
            max_concurrent_hashes: 1,
        }
    }

    #[test]
    fn five_failures_lock_the_user_for_fifteen_minutes() {
        let r = Regulator::new(limits());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..4 {
            assert!(!r.failed("alice", ip, i * 1000).user_locked);
        }
        assert!(r.failed("alice", ip, 5000).user_locked);
        assert_eq!(r.check("alice", ip, 6000), Some(Block::User));
        assert_eq!(r.check("bob", ip, 6000), None);
        assert_eq!(r.check("alice", ip, 5000 + 900_000), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let r = Regulator::new(limits());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..4 {
            r.failed("alice", ip, i);
        }
        assert!(!r.failed("alice", ip, 700_000).user_locked);
        assert_eq!(r.check("alice", ip, 700_001), None);
    }

    #[test]
    fn twenty_failures_block_the_ip_for_any_user() {
        let r = Regulator::new(limits());
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for i in 0..20u64 {
            r.failed(&format!("user{i}"), ip, i);
        }
        assert_eq!(r.check("someone", ip, 100), Some(Block::Ip));
        assert_eq!(r.check("someone", "192.0.2.10".parse().unwrap(), 100), None);
    }
}
