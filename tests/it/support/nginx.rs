//! A real nginx (Debian's package) as an upstream that resolves paths the
//! way production servers do: it decodes `%2e`, removes dot segments and
//! merges slashes before it picks a `location`. Each location answers with
//! its own name and the URI nginx resolved, so a test proves which location
//! a request reached, not only what the gateway forwarded.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait::{free_addr, tcp_ready, Readiness};

/// A running nginx; stopped on drop.
pub struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// Locations the test nginx serves; `/` is `root`.
pub const LOCATIONS: [&str; 4] = ["/admin", "/api", "/public", "/wiki"];

impl Nginx {
    /// Start nginx on a free loopback port (at most 10 s, three tries).
    pub async fn start() -> Nginx {
        let mut last = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("nginx dir");
            let addr = free_addr();
            std::fs::write(dir.path().join("nginx.conf"), config(dir.path(), addr))
                .expect("write nginx.conf");
            let mut child = Command::new(nginx_bin())
                .args(["-e", "stderr", "-p"])
                .arg(dir.path())
                .args(["-c", "nginx.conf"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nginx (Debian package nginx; tests/install-deps.sh installs it)");
            match tcp_ready(addr, &mut child, Duration::from_secs(10)).await {
                Readiness::Listening => return Nginx { addr, child, dir },
                Readiness::Exited(status) => {
                    last = format!(
                        "nginx exited ({status}): {}",
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                    );
                }
                Readiness::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "nginx did not listen within 10 s".into();
                }
            }
        }
        panic!("could not start nginx: {last}");
    }

    /// `http://127.0.0.1:PORT`, for `services[].upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// nginx's access log: one line per request it served, `$request_uri`
    /// (as received) then the location that answered.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

fn config(dir: &std::path::Path, addr: SocketAddr) -> String {
    let d = dir.display();
    // As root, nginx's workers would switch to `nobody`, who cannot open the
    // temporary directory's files; the test nginx keeps the caller's user.
    let user = if is_root() { "user root;" } else { "" };
    let mut locations = String::new();
    for l in LOCATIONS {
        let name = l.trim_start_matches('/');
        locations.push_str(&format!(
            "    location {l} {{ set $loc {name}; return 200 \"location={name} uri=$uri\\n\"; }}\n"
        ));
    }
    format!(
        "{user}
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  log_format which '$request_uri $loc';
  access_log {d}/access.log which;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen {addr};
    set $loc root;
    location / {{ return 200 \"location=root uri=$uri\\n\"; }}
{locations}  }}
}}
"
    )
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
}
