//! `state: redis-sentinel://…`: a real primary, a replica and a Sentinel,
//! all `redis-server` processes on loopback; the primary is killed and the
//! backend, without being told anything, writes to the promoted replica and
//! still reads what was written before the failover; the subscriber that
//! keeps the session caches honest follows it too.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::contract::TestRedis;
use super::redis::RedisBackend;
use super::StateBackend;

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

/// A Sentinel watching `primary` as `mymaster`, quick to decide.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(primary: u16) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // Sentinel rewrites its config file: it must be its own, writable.
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds mymaster 500\n\
                 sentinel failover-timeout mymaster 3000\n",
                dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed_without_a_restart() {
    let Some(mut primary) = TestRedis::start() else {
        return;
    };
    let p = port_of(&primary.url);
    let Some(replica) = TestRedis::start_with(&[
        "--port".into(),
        "PORT".into(),
        "--replicaof".into(),
        "127.0.0.1".into(),
        p.to_string(),
    ]) else {
        return;
    };
    let sentinel = Sentinel::start(p);
    let url = format!(
        "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=mymaster",
        sentinel.port
    );
    let s = RedisBackend::connect(&url, Duration::from_millis(500), None).expect("connect");
    let ttl = Duration::from_secs(600);
    let mut wrote = false;
    for _ in 0..100 {
        if s.put("k:before", b"v", ttl).await.is_ok() {
            wrote = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(wrote, "no write through the Sentinel within 10 s");
    // The replica has it before the primary goes (bounded wait).
    let replica_port = port_of(&replica.url).to_string();
    let replicated = (0..100).any(|_| {
        let out = Command::new("redis-cli")
            .args(["-p", &replica_port, "GET", "k:before"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "v")
            .unwrap_or(false);
        if !out {
            std::thread::sleep(Duration::from_millis(50));
        }
        out
    });
    assert!(replicated, "the replica did not catch up");

    primary.kill();
    let started = Instant::now();
    let mut after = false;
    while started.elapsed() < Duration::from_secs(30) {
        if s.put("k:after", b"w", ttl).await.is_ok() {
            after = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(after, "no write within 30 s of the primary's death");
    assert_eq!(
        s.get("k:before").await.expect("read").as_deref(),
        Some(&b"v"[..]),
        "what was written before the failover is still there"
    );
    // The write went to the promoted replica.
    let out = Command::new("redis-cli")
        .args(["-p", &replica_port, "GET", "k:after"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "w");
    eprintln!("failover followed in {:?}", started.elapsed());
    // The session cache's subscriber follows too: it is live again.
    let feed = s.changes().expect("a change feed");
    let mut live = false;
    for _ in 0..100 {
        if feed.live() {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        live,
        "the change subscriber did not follow the failover within 10 s"
    );
}
