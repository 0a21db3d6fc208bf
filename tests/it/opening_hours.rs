//! Opening hours are decided by the gateway's clock: a service that is
//! closed in the evening says when it opens, and opens then — the same
//! request, one night later on the gateway's (manual) clock.

use std::time::Duration;

use portvakt::clock::ManualClock;

use crate::support::*;

/// Lönebesked: weekdays 06:00–20:00 Stockholm time, closed on Christmas Eve.
fn payslips(upstream: &Upstream) -> Service {
    Service::new("lon.test", upstream.url())
        .name("Lönebesked")
        .policy("one_factor")
        .with("hours:\n  zone: Europe/Stockholm\n  windows:\n    - { days: mon-fri, from: \"06:00\", to: \"20:00\" }\n  holidays: [\"2026-12-24\"]")
}

fn at(when: &str) -> jiff::Timestamp {
    when.parse().expect("a test instant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_closed_in_the_evening_opens_in_the_morning_by_the_gateways_clock() {
    let upstream = Upstream::start().await;
    // Thursday 3 December 2026, 19:59 in Stockholm (UTC+1).
    let clock = ManualClock::starting_at_timestamp(at("2026-12-03T18:59:00Z"));
    let gw = GatewayConfig::new()
        .clock(&clock)
        .service(payslips(&upstream))
        .start()
        .await;
    let alice = gw.client();
    let open = alice
        .login_as("https://lon.test/", ALICE.name, ALICE.password)
        .await
        .end;
    assert!(open.is_whoami(), "open at 19:59: {}", open.describe());

    // 20:00: closed, and the page says when it opens again.
    gw.advance(Duration::from_secs(60));
    let closed = alice.get("https://lon.test/").await;
    assert_eq!(closed.status, 503, "{}", closed.describe());
    assert!(
        closed.text().contains("fredag 4 december kl. 06:00"),
        "the closed page names Friday morning: {}",
        closed.describe()
    );

    // 06:00 the next morning; her session ended overnight, so she logs in again.
    gw.advance(Duration::from_secs(10 * 3600));
    let morning = gw.client();
    let page = morning
        .login_as("https://lon.test/", ALICE.name, ALICE.password)
        .await
        .end;
    assert!(page.is_whoami(), "open at 06:00: {}", page.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_holiday_the_service_stays_closed_and_names_the_next_working_day() {
    let upstream = Upstream::start().await;
    // Christmas Eve 2026 is a Thursday: 10:00 in Stockholm.
    let clock = ManualClock::starting_at_timestamp(at("2026-12-24T09:00:00Z"));
    let gw = GatewayConfig::new()
        .clock(&clock)
        .service(payslips(&upstream))
        .start()
        .await;
    let alice = gw.client();
    // Closed is decided before login: no password is asked for.
    let closed = alice.get("https://lon.test/").await;
    assert_eq!(closed.status, 503, "{}", closed.describe());
    assert!(
        closed.text().contains("fredag 25 december kl. 06:00"),
        "the holiday's page names the next opening: {}",
        closed.describe()
    );
    let lines = gw
        .wait_access_log("the closed decision", |l| {
            l.iter()
                .any(|e| e["decision"] == "closed" && e["host"] == "lon.test")
        })
        .await;
    let line = lines
        .iter()
        .find(|e| e["decision"] == "closed")
        .expect("a closed line");
    assert!(
        line["time"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-12-24T09:00")),
        "the access log's time is the gateway's clock: {line}"
    );
}
