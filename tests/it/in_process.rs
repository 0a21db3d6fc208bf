//! The gateway run inside the test process (`GatewayConfig::clock`): two of
//! them side by side keep their own clocks and sessions, a reload needs no
//! signal, and a stopped one frees its ports.

use std::time::Duration;

use portvakt::clock::ManualClock;

use crate::support::expect::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_in_one_process_keep_their_own_clocks_and_sessions() {
    let upstream = Upstream::start().await;
    let config =
        GatewayConfig::new().service(Service::new("app.test", upstream.url()).policy("one_factor"));
    let (clock_a, clock_b) = (ManualClock::starting_now(), ManualClock::starting_now());
    let a = config.clone().clock(&clock_a).start().await;
    let b = config.clock(&clock_b).start().await;
    let (alice_a, alice_b) = (a.client(), b.client());
    alice_a.must_login("https://app.test/", &ALICE).await;
    alice_b.must_login("https://app.test/", &ALICE).await;

    // Sixteen minutes pass for one of them only.
    a.advance(Duration::from_secs(16 * 60));
    assert_sent_to_login(&alice_a.get("https://app.test/a").await);
    assert!(alice_b.get("https://app.test/b").await.is_whoami());

    // Stopping one closes its listeners and leaves the other serving.
    let (https_a, admin_a) = (a.https_addr(), a.admin_addr());
    drop(a);
    for addr in [https_a, admin_a] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after the gateway was stopped"
        );
        let again = std::net::TcpListener::bind(addr);
        assert!(again.is_ok(), "{addr} is not free again: {again:?}");
    }
    assert!(alice_b.get("https://app.test/still").await.is_whoami());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_gateway_reloads_without_a_signal() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let mut gw = GatewayConfig::new()
        .clock(&clock)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;
    assert_branded(&browser.get("https://new.test/").await, 404);

    let up = upstream.url();
    gw.write_config(|c| c.service(Service::new("new.test", &up).policy("bypass")));
    // Done when it returns: no signal, no waiting.
    gw.reload();
    assert!(browser.get("https://new.test/hello").await.is_whoami());
    assert!(browser.get("https://app.test/still").await.is_whoami());
    let (status, metrics) = gw.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let reloaded = metrics
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("config_last_reload_success_timestamp_seconds"))
        .unwrap_or_else(|| panic!("no reload time in the metrics:\n{metrics}"));
    let secs: f64 = reloaded
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{reloaded}"));
    assert_eq!(
        (secs * 1000.0).round() as u64,
        portvakt::clock::Clock::now_ms(&*clock),
        "the metrics read the gateway's clock"
    );
}
