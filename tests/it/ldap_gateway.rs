//! The gateway with a realm whose directory is a real slapd: logins are
//! checked against LDAP, groups come from `memberOf`, and a directory that
//! goes down gives users a clear "try again later" page and an audit event,
//! not a hang.

use std::time::Duration;

use crate::support::expect::*;
use crate::support::slapd::{Slapd, BASE_DN, ODD_PASSWORD, ODD_USER, SERVICE_DN};
use crate::support::wait::until;
use crate::support::*;

/// Switch the running gateway's realm from users.yaml to `slapd` and reload,
/// as an admin moving to the directory server would.
async fn use_directory(gw: &Gateway, slapd: &Slapd) {
    let ldap = format!(
        "    directory:\n      ldap:\n        url: \"{url}\"\n        bind_dn: \"{SERVICE_DN}\"\n        bind_password_file: \"{pw}\"\n        base_dn: \"{BASE_DN}\"\n        user_filter: \"(&(objectClass=inetOrgPerson)(uid={{username}}))\"\n        username_attribute: uid\n        connect_timeout: 1s\n        timeout: 1s\n",
        url = slapd.ldap_url(),
        pw = slapd.dir().join("service-password").display(),
    );
    let text = gw.config_text();
    let changed = text.replacen("    directory:\n      file: users.yaml\n", &ldap, 1);
    assert_ne!(
        text, changed,
        "the test config's realm directory was not found"
    );
    gw.write_config_text(&changed);
    gw.reload();
    // The reload is asynchronous. A user who exists only in LDAP proves that
    // logins now go to the directory (alice is in users.yaml too).
    until(
        "a login of an LDAP-only user",
        Duration::from_secs(10),
        Duration::from_millis(300),
        || async {
            let page = gw
                .client()
                .login_as("https://app.test/", ODD_USER, ODD_PASSWORD)
                .await
                .end;
            page.is_whoami().then_some(())
        },
    )
    .await;
}

async fn gateway_with_directory(slapd: &Slapd, upstream: &Upstream) -> Gateway {
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    use_directory(&gw, slapd).await;
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_logs_in_with_her_directory_password_and_groups_from_ldap() {
    let slapd = Slapd::start().await;
    let upstream = Upstream::start().await;
    let mut gw = gateway_with_directory(&slapd, &upstream).await;

    let who = gw.client().must_login("https://app.test/", &ALICE).await;
    assert_eq!(who.one("remote-user"), Some("alice"));
    let groups = who.one("remote-groups").unwrap_or_default().to_owned();
    assert!(
        groups.split(',').any(|g| g == "staff"),
        "groups from memberOf: {groups}"
    );
    assert_eq!(who.one("remote-email"), Some("alice@example.org"));

    // A wrong password against the directory gets the usual answer.
    let page = gw
        .client()
        .login_as("https://app.test/", "alice", "wrong")
        .await
        .end;
    assert_eq!(page.status, 401);
    gw.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_is_down_gives_a_clear_page_and_an_audit_event() {
    let mut slapd = Slapd::start().await;
    let upstream = Upstream::start().await;
    let mut gw = gateway_with_directory(&slapd, &upstream).await;
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "ready with the directory up: {body}");

    slapd.stop();
    // The load balancer's probe sees it first.
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 503, "not ready with the directory down: {body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert_eq!(ready["checks"]["storage"], "ok", "{body}");
    // Anyone sees which check failed; the reason only with the admin token.
    assert_eq!(ready["checks"]["directory:staff"], "failed", "{body}");
    let (_, body) = gw.admin_get_authorised("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert!(
        ready["checks"]["directory:staff"]
            .as_str()
            .is_some_and(|c| c.contains("unavailable")),
        "{body}"
    );
    let started = std::time::Instant::now();
    let page = gw.client().login("https://app.test/", &ALICE).await.end;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the login hung for {:?}",
        started.elapsed()
    );
    assert_branded(&page, 503);
    assert!(
        page.text().contains("katalogtjänsten"),
        "{}",
        page.describe()
    );
    gw.wait_auth_log("a directory_unavailable event", |lines| {
        lines
            .iter()
            .any(|l| l["reason"] == "directory_unavailable" && l["user"] == "alice")
    })
    .await;

    // Back up: logins work again without touching the gateway.
    slapd.restart().await;
    until(
        "logins to work again",
        Duration::from_secs(10),
        Duration::from_millis(300),
        || async {
            gw.client()
                .login("https://app.test/", &ALICE)
                .await
                .end
                .is_whoami()
                .then_some(())
        },
    )
    .await;
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "ready again: {body}");
    gw.assert_alive();
}
