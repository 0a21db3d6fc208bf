//! The contract every state backend keeps, run against the memory backend
//! and, when `redis-server` is installed, a real Redis started for the test.

use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryBackend;
use super::{SharedState, StateBackend};
use crate::clock::ManualClock;

/// A redis-server on a free loopback port in a temp dir, stopped on drop.
pub(crate) struct TestRedis {
    child: std::process::Child,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Start one, or `None` when redis-server is not installed (the
    /// integration tests, which `tests/install-deps.sh` prepares, require it).
    pub(crate) fn start() -> Option<TestRedis> {
        TestRedis::start_with(&[])
    }

    /// Start one speaking only TLS with the demo certificate in `certs`
    /// (`gateway.pem`/`gateway.key`, valid for 127.0.0.1); `rediss://` URL.
    pub(crate) fn start_tls(certs: &std::path::Path) -> Option<TestRedis> {
        let path = |f: &str| certs.join(f).display().to_string();
        let mut r = TestRedis::start_with(&[
            "--tls-port".into(),
            "PORT".into(),
            "--port".into(),
            "0".into(),
            "--tls-cert-file".into(),
            path("gateway.pem"),
            "--tls-key-file".into(),
            path("gateway.key"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ])?;
        r.url = r.url.replace("redis://", "rediss://");
        Some(r)
    }

    /// Start one with `extra` arguments (`PORT` stands for its port).
    pub(crate) fn start_with(extra: &[String]) -> Option<TestRedis> {
        let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut cmd = std::process::Command::new(bin);
        if extra.is_empty() {
            cmd.args(["--port", &port.to_string()]);
        } else {
            cmd.args(extra.iter().map(|a| {
                if a == "PORT" {
                    port.to_string()
                } else {
                    a.clone()
                }
            }));
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(TestRedis {
                    child,
                    url: format!("redis://127.0.0.1:{port}/0"),
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl TestRedis {
    /// Kill it (SIGKILL: a crash); its data goes with it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn contract(s: SharedState, redis: bool) {
    let ttl = Duration::from_secs(60);
    // get / put / delete
    assert_eq!(s.get("t:a").await.unwrap(), None);
    s.put("t:a", b"1", ttl).await.unwrap();
    assert_eq!(s.get("t:a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert!(s.delete("t:a").await.unwrap());
    assert!(!s.delete("t:a").await.unwrap());
    // put_new only once
    assert!(s.put_new("t:n", b"x", ttl).await.unwrap());
    assert!(!s.put_new("t:n", b"y", ttl).await.unwrap());
    assert_eq!(s.get("t:n").await.unwrap().as_deref(), Some(&b"x"[..]));
    // take is once
    s.put("t:t", b"secret", ttl).await.unwrap();
    assert_eq!(
        s.take("t:t").await.unwrap().as_deref(),
        Some(&b"secret"[..])
    );
    assert_eq!(s.take("t:t").await.unwrap(), None);
    // swap only against the expected value; None removes
    s.put("t:s", b"v1", ttl).await.unwrap();
    assert!(!s.swap("t:s", b"v0", Some(b"v2"), ttl).await.unwrap());
    assert!(s.swap("t:s", b"v1", Some(b"v2"), ttl).await.unwrap());
    assert!(!s.swap("t:s", b"v1", Some(b"v3"), ttl).await.unwrap());
    assert!(s.swap("t:s", b"v2", None, ttl).await.unwrap());
    assert_eq!(s.get("t:s").await.unwrap(), None);
    assert!(!s.swap("t:missing", b"", Some(b"x"), ttl).await.unwrap());
    // binary values survive
    let bin: Vec<u8> = (0..=255).collect();
    s.put("t:bin", &bin, ttl).await.unwrap();
    assert_eq!(s.get("t:bin").await.unwrap(), Some(bin.clone()));
    assert!(s.swap("t:bin", &bin, Some(b"z"), ttl).await.unwrap());
    // sliding window: 3 in 10 s
    let w = Duration::from_secs(10);
    for t in [1_000, 2_000, 3_000] {
        assert!(s.admit("t:w", t, w, 3).await.unwrap());
    }
    assert!(
        !s.admit("t:w", 4_000, w, 3).await.unwrap(),
        "fourth in the window"
    );
    assert!(!s.admit("t:w", 10_999, w, 3).await.unwrap());
    assert!(
        s.admit("t:w", 11_000, w, 3).await.unwrap(),
        "the first left the window"
    );
    assert!(
        !s.admit("t:z", 0, w, 0).await.unwrap(),
        "limit 0 admits nothing"
    );
    // keys by prefix
    s.put("t:k:1", b"", ttl).await.unwrap();
    s.put("t:k:2", b"", ttl).await.unwrap();
    let mut keys = s.keys("t:k:", 10).await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["t:k:1".to_owned(), "t:k:2".to_owned()]);
    assert_eq!(s.keys("t:k:", 1).await.unwrap().len(), 1);
    s.ping().await.unwrap();
    // many takers of one key: exactly one gets it
    s.put("t:race", b"once", ttl).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.take("t:race").await.unwrap() }));
    }
    let mut got = 0;
    for t in tasks {
        got += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(got, 1);
    // many swappers from one value: exactly one wins
    s.put("t:cas", b"0", ttl).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.swap("t:cas", b"0", Some(&[b'a' + i]), ttl).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    if redis {
        // Expiry is Redis's own.
        s.put("t:short", b"x", Duration::from_millis(50))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(s.get("t:short").await.unwrap(), None);
    }
}

#[tokio::test]
async fn the_memory_backend_keeps_the_contract() {
    let clock = ManualClock::starting_at(0);
    contract(Arc::new(MemoryBackend::new(clock)), false).await;
}

#[tokio::test]
async fn the_memory_backend_expires_by_the_gateways_clock_and_is_bounded() {
    let clock = ManualClock::starting_at(0);
    let s = MemoryBackend::with_capacity(clock.clone(), 32);
    s.put("a", b"1", Duration::from_secs(10)).await.unwrap();
    clock.advance_ms(9_999);
    assert!(s.get("a").await.unwrap().is_some());
    clock.advance_ms(1);
    assert!(s.get("a").await.unwrap().is_none());
    assert!(
        s.put_new("a", b"2", Duration::from_secs(10)).await.unwrap(),
        "expired counts as absent"
    );
    // Full: refused, not grown (and expired entries make room).
    let mut refused = 0;
    for i in 0..200 {
        if s.put(&format!("k{i}"), b"", Duration::from_secs(10))
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    assert!(refused > 0 && s.len() <= 32, "{} held", s.len());
    clock.advance_ms(10_000);
    s.put("fresh", b"", Duration::from_secs(10)).await.unwrap();
    StateBackend::sweep(&s);
    assert_eq!(s.len(), 1);
}

#[tokio::test]
async fn the_redis_backend_keeps_the_contract() {
    let Some(redis) = TestRedis::start() else {
        eprintln!("redis-server not installed: skipped (tests/install-deps.sh installs it)");
        return;
    };
    let s = super::redis::RedisBackend::connect(&redis.url, Duration::from_secs(2), None).unwrap();
    contract(Arc::new(s), true).await;
}

#[tokio::test]
async fn a_redis_outage_fails_within_the_timeout_and_heals_without_a_restart() {
    let Some(mut redis) = TestRedis::start() else {
        return;
    };
    let s =
        super::redis::RedisBackend::connect(&redis.url, Duration::from_millis(300), None).unwrap();
    s.put("k", b"v", Duration::from_secs(60)).await.unwrap();
    let port: u16 = redis
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let started = std::time::Instant::now();
    let err = s.get("k").await.unwrap_err();
    assert!(matches!(err, super::StateError::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // Back on the same port: the client reconnects by itself.
    let back = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    redis.child = back;
    let mut healed = false;
    for _ in 0..100 {
        if s.put("k2", b"v", Duration::from_secs(60)).await.is_ok() {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healed, "no reconnect within 10 s");
}

#[tokio::test]
async fn rediss_is_verified_against_the_configured_ca() {
    let certs = tempfile::tempdir().unwrap();
    crate::demo::write_certs(certs.path()).unwrap();
    let Some(redis) = TestRedis::start_tls(certs.path()) else {
        return;
    };
    let ca = certs.path().join("ca.pem");
    let s =
        super::redis::RedisBackend::connect(&redis.url, Duration::from_secs(2), Some(&ca)).unwrap();
    s.put("k", b"over tls", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"over tls"[..]));

    // Another CA (someone else's certificate, or a man in the middle): refused.
    let other = tempfile::tempdir().unwrap();
    crate::demo::write_certs(other.path()).unwrap();
    let wrong = super::redis::RedisBackend::connect(
        &redis.url,
        Duration::from_millis(500),
        Some(&other.path().join("ca.pem")),
    )
    .unwrap();
    assert!(
        wrong.get("k").await.is_err(),
        "a server the CA did not sign was trusted"
    );
    // And the system's CAs do not know the demo CA either.
    let system =
        super::redis::RedisBackend::connect(&redis.url, Duration::from_millis(500), None).unwrap();
    assert!(system.get("k").await.is_err());
}
