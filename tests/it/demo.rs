//! `portvakt demo`: the one command a newcomer runs. It must come up with
//! its generated certificate, users and built-in upstream, and with the
//! operations side (admin listener, chained auth log) working too.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::wait::{free_addr, tcp_ready, Readiness};
use crate::support::*;

/// Kills the demo when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_pages_upstream_and_admin_listener_out_of_the_box() {
    let state = tempfile::tempdir().expect("state dir");
    let (https, admin) = (free_addr(), free_addr());
    let stdout = std::fs::File::create(state.path().join("demo.out")).unwrap();
    let mut demo = Running(
        Command::new(portvakt_bin())
            .args([
                "demo",
                "--listen",
                &https.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .arg("--state")
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().unwrap())
            .stderr(stdout)
            .spawn()
            .expect("spawn portvakt demo"),
    );
    let out = || std::fs::read_to_string(state.path().join("demo.out")).unwrap_or_default();
    // argon2 hashes for four users and a certificate first: allow a while.
    for addr in [https, admin] {
        match tcp_ready(addr, &mut demo.0, Duration::from_secs(60)).await {
            Readiness::Listening => {}
            other => panic!("the demo did not listen on {addr} ({other:?}):\n{}", out()),
        }
    }
    let banner = out();
    for words in ["alice", "bob", "Operations", "/metrics", "sessions list"] {
        assert!(
            banner.contains(words),
            "the banner lacks {words:?}:\n{banner}"
        );
    }

    let ca = std::fs::read(state.path().join("certs/ca.pem")).expect("the demo's CA");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("public.localhost", https)
        .resolve("whoami.localhost", https)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let public = client
        .get(format!("https://public.localhost:{}/", https.port()))
        .send()
        .await
        .expect("the bypass service");
    assert_eq!(public.status(), 200);
    assert!(public.text().await.unwrap().contains("\"host\""));
    let protected = client
        .get(format!("https://whoami.localhost:{}/", https.port()))
        .send()
        .await
        .expect("the protected service");
    assert_eq!(protected.status(), 302, "the login wall");

    let health = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "{}",
        ready.text().await.unwrap_or_default()
    );
    let (metrics, report) = (
        reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap_or_default(),
        Command::new(portvakt_bin())
            .args(["audit", "report", "--config"])
            .arg(state.path().join("portvakt.yaml"))
            .output()
            .expect("run portvakt audit report"),
    );
    // The demo's example price, so the README's `audit report --config $C`
    // shows what the SMS cost.
    assert!(
        metrics.contains(r#"portvakt_sms_cost_per_message{currency="SEK"} 0.45"#),
        "{metrics}"
    );
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.contains("\nCodes sent (SMS at 0.45 SEK a message)\n"),
        "{report}"
    );
}
