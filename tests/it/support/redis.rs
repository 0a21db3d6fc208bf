//! A real `redis-server` on a free loopback port in a temporary directory,
//! for gateways that share state. It can be stopped and started again on the
//! same port, like an outage and its end.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait::{free_addr, tcp_ready, Readiness};

/// A running (or stopped) Redis.
pub struct Redis {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Start one (`tests/install-deps.sh` installs redis-server).
    pub async fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("portvakt-redis-")
            .tempdir()
            .expect("redis tempdir");
        let mut r = Redis {
            addr: free_addr(),
            dir,
            child: None,
        };
        r.start_again().await;
        r
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Kill it (SIGKILL: a crash, not a shutdown). Its data goes with it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port.
    pub async fn start_again(&mut self) {
        self.kill();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &self.addr.port().to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (tests/install-deps.sh installs it)");
        let ready = tcp_ready(self.addr, &mut child, Duration::from_secs(10)).await;
        self.child = Some(child);
        assert!(
            matches!(ready, Readiness::Listening),
            "redis-server did not listen on {}: {ready:?}",
            self.addr
        );
    }

    /// Run `redis-cli ARGS` against it and return its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
