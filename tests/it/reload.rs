//! Reloading the config on SIGHUP: new services appear, sessions and open
//! connections survive, a broken file is refused and the old config stays.

use std::time::Duration;

use crate::support::expect::*;
use crate::support::gateway::CONFIG_FILE;
use crate::support::wait::until;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_appears_after_reload_without_logging_anyone_out() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;
    // Leaves an idle keep-alive connection in the client's pool.
    browser.get("https://app.test/before").await.whoami();
    assert_branded(&browser.get("https://new.test/").await, 404);

    let up = upstream.url();
    gw.write_config(|c| c.service(Service::new("new.test", &up).policy("bypass")));
    gw.reload();

    let visitor = gw.client();
    until(
        "new.test to answer after reload",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let visitor = &visitor;
            async move {
                visitor
                    .get("https://new.test/hello")
                    .await
                    .is_whoami()
                    .then_some(())
            }
        },
    )
    .await;

    // Same client, same pool: the session and the connection still work.
    let who = browser.get("https://app.test/after").await.whoami();
    assert_eq!(
        who.one("remote-user"),
        Some("alice"),
        "reload logged her out"
    );
    gw.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_refused_on_reload_and_the_old_one_keeps_serving() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    let text = gw.config_text();
    let broken = text.replacen("policy: one_factor", "policy: sometimes", 1);
    assert_ne!(text, broken);
    let line = broken
        .lines()
        .position(|l| l.contains("policy: sometimes"))
        .map(|i| i + 1)
        .unwrap();
    gw.write_config_text(&broken);
    gw.reload();

    let logs = until(
        "the reload error in the logs",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let logs = gw.logs();
            async move { mentions_line(&logs, line).then_some(logs) }
        },
    )
    .await;
    assert!(
        logs.contains(CONFIG_FILE),
        "the reload error does not name the file:\n{logs}"
    );
    assert!(
        logs.contains("sometimes"),
        "the reload error does not name the bad value:\n{logs}"
    );

    // The old config still serves: her session, the login wall, the bypass service.
    assert_eq!(
        browser
            .get("https://app.test/still")
            .await
            .whoami()
            .one("remote-user"),
        Some("alice")
    );
    assert_sent_to_login(&gw.client().get("https://app.test/").await);
    assert!(gw.client().get("https://bypass.test/").await.is_whoami());
    gw.assert_alive();
}
