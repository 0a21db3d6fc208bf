//! Restarts and upgrades that drop nothing: SIGTERM finishes what is in
//! flight and exits as soon as nothing is left (the grace period is only a
//! ceiling), `/readyz` turns 503 first, and `portvakt upgrade` hands the
//! listening sockets to the new process under load without one failed request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::upstream::Upstream;
use crate::support::users::ALICE;
use crate::support::{Gateway, GatewayConfig, Service};

/// What every test here sets as the grace period: far above any bound the
/// tests assert, so an exit within the bound cannot be pingora's ceiling.
const GRACE: &str = "30s";

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .grace_period(GRACE)
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

/// A reqwest client for `gw` that opens a new connection for every request
/// (`fresh`) or keeps one alive between requests.
fn load_client(gw: &Gateway, fresh: bool, http2: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(gw.pki().ca_pem().as_bytes()).unwrap();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .use_rustls_tls()
        .resolve("bypass.test", gw.https_addr())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20));
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    if !http2 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_slow_request_then_exits_at_once() {
    let upstream = Upstream::start().await;
    let mut gw = gateway(&upstream).await;
    let client = load_client(&gw, false, false);
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            let resp = client.get("https://bypass.test/slow/2000").send().await?;
            let status = resp.status().as_u16();
            let connection = resp
                .headers()
                .get("connection")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            resp.text().await.map(|body| (status, connection, body))
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (ready, _) = gw.admin_get("/readyz").await;
    assert_eq!(ready, 200, "ready before the drain");

    let term = Instant::now();
    gw.signal("TERM");
    // A balancer asking now learns to send traffic elsewhere …
    let (status, body) = crate::support::wait::until(
        "/readyz to answer 503",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let gw = &gw;
            async move {
                let (s, b) = gw.admin_get("/readyz").await;
                (s == 503).then_some((s, b))
            }
        },
    )
    .await;
    assert_eq!(status, 503);
    assert!(body.contains("\"draining\": true"), "{body}");
    // … /healthz still says the process is alive …
    assert_eq!(gw.admin_get("/healthz").await.0, 200);
    // … and a new connection is refused.
    assert!(
        tokio::net::TcpStream::connect(gw.https_addr())
            .await
            .is_err(),
        "the HTTPS listener should be closed once draining began"
    );
    let (status, connection, body) = slow
        .await
        .expect("request task")
        .expect("the request in flight completes");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/slow/2000"), "{body}");
    assert_eq!(
        connection, "close",
        "a keep-alive connection is closed after its last response"
    );
    let exit = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10)))
        .expect("the gateway exits once the request is done, not after the 30 s grace period");
    let took = term.elapsed();
    assert!(exit.success(), "{exit}");
    eprintln!("SIGTERM → exit with a 2 s request in flight: {took:?}");
    let logs = plain(&gw.logs());
    assert!(logs.contains("draining"), "{logs}");
    assert!(
        logs.contains("portvakt stopped how=\"drained\" finished=1"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nothing_in_flight_exits_promptly() {
    let upstream = Upstream::start().await;
    let mut gw = gateway(&upstream).await;
    let client = load_client(&gw, false, false);
    // A keep-alive connection left idle in the client's pool does not hold
    // the process up.
    let resp = client.get("https://bypass.test/").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let term = Instant::now();
    gw.signal("TERM");
    let exit = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(5)))
        .expect("an idle gateway exits within 5 s of SIGTERM (grace period 30 s)");
    assert!(exit.success(), "{exit}");
    eprintln!("SIGTERM → exit, idle: {:?}", term.elapsed());
    assert!(
        !gw.dir().join("portvakt.pid").exists(),
        "the pid file is removed on exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigquit_without_a_new_process_waiting_changes_nothing() {
    let upstream = Upstream::start().await;
    let mut gw = gateway(&upstream).await;
    gw.signal("QUIT");
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.assert_alive();
    let client = load_client(&gw, true, false);
    let resp = client.get("https://bypass.test/").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
    assert!(gw.logs().contains("no new process waits"), "{}", gw.logs());
}

/// `text` without ANSI colour sequences (the gateway's log is coloured).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Kills the successor process (not a child of the test) at the end.
struct Successor(u32);

impl Drop for Successor {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: parking_lot::Mutex<Vec<String>>,
}

/// Request `url` in a loop until `stop`, counting answers.
fn hammer(
    client: reqwest::Client,
    url: &'static str,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Bounded: at most this many requests even if `stop` never comes.
        for _ in 0..200_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let answer = match client.get(url).send().await {
                Ok(r) => {
                    let status = r.status();
                    match r.text().await {
                        Ok(_) if status == 200 => Ok(()),
                        Ok(_) => Err(format!("status {status}")),
                        Err(e) => Err(format!("{e:?}")),
                    }
                }
                Err(e) => Err(format!("{e:?}")),
            };
            match answer {
                Ok(()) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    tally.errors.lock().push(format!("{url}: {e}"));
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_fails_no_request_and_keeps_the_audit_chain() {
    let upstream = Upstream::start().await;
    let mut gw = gateway(&upstream).await;
    let old = gw.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut load = vec![
        hammer(
            load_client(&gw, true, false),
            "https://bypass.test/fresh",
            stop.clone(),
            tally.clone(),
        ),
        hammer(
            load_client(&gw, false, false),
            "https://bypass.test/keepalive",
            stop.clone(),
            tally.clone(),
        ),
        hammer(
            load_client(&gw, false, true),
            "https://bypass.test/h2",
            stop.clone(),
            tally.clone(),
        ),
    ];
    // Logins while both processes write the auth log.
    let logins = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(parking_lot::Mutex::new(Vec::new()));
    load.push(tokio::spawn({
        let stop = stop.clone();
        let logins = logins.clone();
        let (addr, ca) = (gw.https_addr(), gw.pki().ca_pem().to_owned());
        let refused = refused.clone();
        async move {
            // Bounded: a few hundred logins at most.
            for _ in 0..500 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let alice = crate::support::Client::new(addr, &ca, Default::default());
                // Only the password step: the rest of the flow (handoff,
                // session) lives in one process's memory with `state: memory`.
                let form = alice.open_login_form("https://app.test/").await;
                let posted = alice.submit_login(&form, ALICE.name, ALICE.password).await;
                if posted.status == 303 {
                    logins.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.lock().push(posted.status);
                }
            }
        }
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let upgrade = Instant::now();
    let out = tokio::task::block_in_place(|| gw.run_cli(&["upgrade"]));
    let took = upgrade.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let new = portvakt::lifecycle::read_pid_file(&gw.dir().join("portvakt.pid"))
        .expect("the new process wrote the pid file");
    let _successor = Successor(new);
    assert!(
        out.status.success(),
        "portvakt upgrade failed:\n{text}\n{}",
        gw.logs()
    );
    assert_ne!(new, old, "{text}");
    let exit = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(5)))
        .expect("the old process has exited when `portvakt upgrade` returns");
    assert!(exit.success(), "{exit}");
    // The new process serves alone for a while before the load stops.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "upgrade in {took:?}: {ok} requests answered, {failed} failed, {} logins\n{text}",
        logins.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed,
        0,
        "failed requests: {:#?}\n{}",
        tally.errors.lock(),
        gw.logs()
    );
    assert!(ok > 50, "too little load to mean anything: {ok}");
    assert!(
        refused.lock().is_empty(),
        "login POSTs refused: {:?}",
        refused.lock()
    );

    // The new process answers readiness and requests on the same ports.
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
    let resp = load_client(&gw, true, false)
        .get("https://bypass.test/after")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Both processes appended to one auth log: one unbroken chain.
    let verify = tokio::task::block_in_place(|| gw.run_cli(&["audit", "verify"]));
    assert!(
        verify.status.success(),
        "audit verify:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let logged = gw
        .auth_log_lines()
        .iter()
        .filter(|l| l["event"] == "login" && l["result"] == "success")
        .count() as u64;
    assert!(
        logged >= logins.load(Ordering::Relaxed),
        "{logged} login records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_whose_new_process_cannot_start_leaves_the_old_one_serving() {
    let upstream = Upstream::start().await;
    let mut gw = gateway(&upstream).await;
    let old = gw.pid();
    // The new process reads the config anew: a broken file stops it.
    let good = gw.config_text();
    gw.write_config_text(&good.replace("services:", "services: [oops"));
    // SIGUSR2 is what `portvakt upgrade` sends (which itself would refuse
    // the broken file first).
    gw.signal("USR2");
    crate::support::wait::until(
        "the old process to notice the new one failed",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let logs = plain(&gw.logs());
            async move { logs.contains("exited before taking over").then_some(()) }
        },
    )
    .await;
    gw.write_config_text(&good);
    gw.assert_alive();
    assert_eq!(
        portvakt::lifecycle::read_pid_file(&gw.dir().join("portvakt.pid")),
        Some(old)
    );
    let resp = load_client(&gw, true, false)
        .get("https://bypass.test/still")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refuses_a_pid_file_that_names_another_program() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(gw.dir().join("portvakt.pid"), format!("{}\n", sleeper.id())).unwrap();
    let out = tokio::task::block_in_place(|| gw.run_cli(&["upgrade"]));
    let still = sleeper.try_wait().unwrap().is_none();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!out.status.success());
    assert!(still, "the other program was not signalled");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not `portvakt serve`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
