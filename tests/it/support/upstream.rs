//! The real upstream: `portvakt whoami --listen 127.0.0.1:PORT`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait::{free_addr, tcp_ready, Readiness};

/// A running whoami process; killed on drop.
pub struct Upstream {
    addr: SocketAddr,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Upstream {
    /// Start whoami on a free port and wait (at most 10 s) until it accepts TCP.
    pub async fn start() -> Upstream {
        let mut last = String::new();
        for _attempt in 0..3 {
            let addr = free_addr();
            let log = tempfile::NamedTempFile::new().expect("whoami log file");
            let mut child = Command::new(super::portvakt_bin())
                .args(["whoami", "--listen", &addr.to_string()])
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("reopen log"))
                .stderr(log.reopen().expect("reopen log"))
                .spawn()
                .expect("spawn portvakt whoami");
            match tcp_ready(addr, &mut child, Duration::from_secs(10)).await {
                Readiness::Listening => return Upstream { addr, child, log },
                Readiness::Exited(status) => {
                    last = format!(
                        "whoami on {addr} exited ({status}): {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                }
                Readiness::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!(
                        "whoami on {addr} did not listen within 10 s: {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                }
            }
        }
        panic!("could not start the whoami upstream: {last}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `services[].upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
