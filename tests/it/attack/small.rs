//! Smaller holes (issue 12 items 7 and 8): a service sharing the portal's
//! origin, an admin listener talking plain HTTP over the network, `/readyz`
//! telling strangers why a backend failed, and group names with commas that
//! an upstream splits into two groups.

use std::process::Command;
use std::time::Duration;

use crate::support::expect::mentions_line;
use crate::support::users::{password_hash, users_yaml};
use crate::support::wait::until;
use crate::support::*;

/// `portvakt check-config` on `text` (beside certificates, users and key):
/// whether it passed, and what it printed.
fn check_config(text: &str) -> (bool, String) {
    let dir = tempfile::Builder::new()
        .prefix("portvakt-attack-")
        .tempdir()
        .unwrap();
    Pki::shared().write_to(dir.path());
    std::fs::write(dir.path().join("users.yaml"), users_yaml()).unwrap();
    std::fs::write(dir.path().join("secret.key"), [7u8; 32]).unwrap();
    let config = dir.path().join("portvakt.yaml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(portvakt_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run portvakt check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), printed)
}

fn good_config() -> String {
    std::fs::read_to_string(repo_dir().join("tests/fixtures/check-config/good.yaml")).unwrap()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the config"))
}

/// The operator publishes a wiki under `/wiki` on the portal host. Its
/// scripts would run on the enrolment pages' origin (read the CSRF token,
/// add a device for whoever visits): refused, with where and why.
#[test]
fn check_config_refuses_a_service_on_the_portal_host() {
    let wiki = "  - name: Wiki\n    host: portal.test\n    path: /wiki\n    upstream: http://127.0.0.1:9\n    policy: one_factor\n";
    let text = good_config().replacen("services:\n", &format!("services:\n{wiki}"), 1);
    let (ok, out) = check_config(&text);
    assert!(!ok, "a service on the portal host was accepted:\n{out}");
    assert!(out.contains("portvakt.yaml"), "no file named:\n{out}");
    assert!(
        mentions_line(&out, line_of(&text, "    host: portal.test")),
        "no line:\n{out}"
    );
    assert!(out.contains("services[0].host"), "no key:\n{out}");
    for why in ["portal host", "origin", "accept_shared_portal_origin"] {
        assert!(out.contains(why), "the error does not say {why:?}:\n{out}");
    }

    // Said out loud, it is the operator's decision.
    let accepted = text.replacen(
        "    path: /wiki\n",
        "    path: /wiki\n    accept_shared_portal_origin: true\n",
        1,
    );
    let (ok, out) = check_config(&accepted);
    assert!(ok, "the explicit acceptance was not honoured:\n{out}");
}

/// The admin listener (bearer token for the sessions API, metrics) on a
/// network address would speak plain HTTP to the network: refused unless
/// the operator says `admin_insecure_plain_http: true`.
#[test]
fn check_config_refuses_a_plain_http_admin_listener_off_loopback() {
    for addr in ["0.0.0.0:9100", "10.0.0.5:9100", "[::]:9100"] {
        let text = good_config().replacen(
            "  http: \"127.0.0.1:8080\"\n",
            &format!("  http: \"127.0.0.1:8080\"\n  admin: \"{addr}\"\n"),
            1,
        );
        let (ok, out) = check_config(&text);
        assert!(!ok, "admin on {addr} was accepted:\n{out}");
        assert!(out.contains("listen.admin"), "no key:\n{out}");
        assert!(
            mentions_line(&out, line_of(&text, "admin:")),
            "no line:\n{out}"
        );
        for why in ["plain HTTP", "clear text", "admin_insecure_plain_http"] {
            assert!(out.contains(why), "the error does not say {why:?}:\n{out}");
        }
        let accepted = text.replacen(
            &format!("  admin: \"{addr}\"\n"),
            &format!("  admin: \"{addr}\"\n  admin_insecure_plain_http: true\n"),
            1,
        );
        let (ok, out) = check_config(&accepted);
        assert!(ok, "the explicit flag was not honoured for {addr}:\n{out}");
    }
    for addr in ["127.0.0.1:9100", "[::1]:9100"] {
        let text = good_config().replacen(
            "  http: \"127.0.0.1:8080\"\n",
            &format!("  http: \"127.0.0.1:8080\"\n  admin: \"{addr}\"\n"),
            1,
        );
        let (ok, out) = check_config(&text);
        assert!(ok, "a loopback admin listener {addr} was refused:\n{out}");
    }
}

/// A stranger who can reach the admin port asks `/readyz` why the gateway
/// is not ready: the directory's error (server address, bind DN) is not
/// theirs to read. Only the admin token shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_failed_checks_but_not_their_errors_without_the_token() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    // A directory nobody answers on (port 1 on loopback is closed).
    std::fs::write(gw.dir().join("bind-password"), "x").unwrap();
    let ldap = format!(
        "    directory:\n      ldap:\n        url: \"ldap://127.0.0.1:1\"\n        bind_dn: \"cn=secret-service-account,dc=kommun,dc=se\"\n        bind_password_file: \"{}\"\n        base_dn: \"dc=kommun,dc=se\"\n        user_filter: \"(uid={{username}})\"\n        username_attribute: uid\n        connect_timeout: 1s\n        timeout: 1s\n",
        gw.dir().join("bind-password").display()
    );
    let text = gw.config_text();
    let changed = text.replacen("    directory:\n      file: users.yaml\n", &ldap, 1);
    assert_ne!(text, changed);
    gw.write_config_text(&changed);
    gw.reload();

    let body = until(
        "readyz to report the directory down",
        Duration::from_secs(15),
        Duration::from_millis(300),
        || async {
            let (status, body) = gw.admin_get("/readyz").await;
            (status == 503).then_some(body)
        },
    )
    .await;
    let ready: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert_eq!(ready["ready"], false, "{body}");
    assert_eq!(ready["checks"]["directory:staff"], "failed", "{body}");
    assert_eq!(ready["checks"]["storage"], "ok", "{body}");
    for secret in ["127.0.0.1:1", "secret-service-account", "ldap"] {
        assert!(
            !body.contains(secret),
            "readyz told a stranger {secret:?}: {body}"
        );
    }

    let (status, body) = gw.admin_get_authorised("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    let detail = ready["checks"]["directory:staff"].as_str().unwrap_or("");
    assert!(
        detail != "failed" && !detail.is_empty(),
        "the admin token should show why: {body}"
    );
}

/// A directory group called `Lärare, åk 7` reaches the app as one group,
/// not as `Lärare` and ` åk 7` (an app granting rights by group name could
/// otherwise be handed a group nobody is in). Encoding: elements joined by
/// `,`, each percent-encoded UTF-8 with `,` and `%` escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_with_commas_arrive_whole() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let groups = ["staff", "Lärare, åk 7", "100% admins"];
    let dana = format!(
        "  dana:\n    password: \"{}\"\n    display_name: \"Dana Dahl\"\n    email: dana@example.org\n    groups: [staff, \"Lärare, åk 7\", \"100% admins\"]\n    disabled: false\n",
        password_hash("danas long password")
    );
    std::fs::write(gw.dir().join("users.yaml"), users_yaml() + &dana).unwrap();
    gw.restart().await;

    let browser = gw.client();
    let journey = browser
        .login_as("https://app.test/", "dana", "danas long password")
        .await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    let who = journey.end.whoami();
    let header = who.all("remote-groups");
    assert_eq!(header.len(), 1, "{header:?}");
    let decoded: Vec<String> = header[0]
        .split(',')
        .map(|e| {
            percent_encoding::percent_decode_str(e)
                .decode_utf8()
                .expect("UTF-8")
                .into_owned()
        })
        .collect();
    assert_eq!(decoded, groups, "as sent: {:?}", header[0]);
    // Simple names are unchanged for existing consumers.
    assert!(header[0].starts_with("staff,"), "{:?}", header[0]);
}
