//! Path confusion (issue 12, class 1; SECURITY.md "What is the request").
//! The attacker spells a path so that the gateway decides it under a laxer
//! rule than the one the upstream then serves. A real nginx sits behind the
//! gateway and resolves paths as production servers do; its access log
//! proves which location each request reached.

use crate::support::expect::*;
use crate::support::nginx::Nginx;
use crate::support::wire::{self, WireResponse};
use crate::support::*;

/// `GET target` on `host`, byte for byte, with an optional session cookie.
fn get(gw: &Gateway, host: &str, target: &str, cookie: Option<&str>) -> WireResponse {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {host}");
    if let Some(c) = cookie {
        head.push_str(&format!("\r\nCookie: {SESSION_COOKIE}={c}"));
    }
    wire::send(gw.https_addr(), gw.pki().ca_pem(), host, head.as_bytes())
}

/// The lines of nginx's log for requests answered by `location`.
fn reached(nginx: &Nginx, location: &str) -> Vec<String> {
    nginx
        .access_log()
        .lines()
        .filter(|l| l.ends_with(&format!(" {location}")))
        .map(str::to_string)
        .collect()
}

/// `/` needs a login, `/public` is open: the shape of the Envoy CVE.
async fn public_beside_protected(nginx: &Nginx) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("app.test", nginx.url())
                .name("Intranet")
                .policy("one_factor"),
        )
        .service(
            Service::new("app.test", nginx.url())
                .name("Public")
                .path("/public")
                .policy("bypass"),
        )
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_under_an_open_prefix_do_not_reach_a_protected_page() {
    let nginx = Nginx::start().await;
    let gw = public_beside_protected(&nginx).await;

    for target in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2e/admin",
        "/public/.%2e/admin",
        "/public/./../admin",
        "/public//../admin",
        "/public/x/../../admin",
        "https://app.test/public/../admin",
    ] {
        let r = get(&gw, "app.test", target, None);
        assert!(
            r.status == 302 || r.status == 303,
            "{target}: expected the login redirect of the protected service, got {} {}",
            r.status,
            r.body
        );
        assert!(
            !r.body.contains("location="),
            "{target}: nginx answered: {}",
            r.body
        );
    }
    assert!(
        reached(&nginx, "admin").is_empty(),
        "an anonymous request reached nginx's /admin: {:?}",
        reached(&nginx, "admin")
    );

    // Logged in, the same spelling reaches /admin — as /admin, the path the
    // gateway checked, not the spelling it was sent in.
    let browser = gw.client();
    let journey = browser.login("https://app.test/", &ALICE).await;
    assert_eq!(
        journey.end.body.trim(),
        "location=root uri=/",
        "{}",
        journey.describe()
    );
    let cookie = browser
        .cookie("https://app.test/", SESSION_COOKIE)
        .expect("session cookie");
    let r = get(&gw, "app.test", "/public/%2e%2e/admin?x=1", Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.trim(), "location=admin uri=/admin");
    assert_eq!(reached(&nginx, "admin"), ["/admin?x=1 admin"]);

    // The access line names the path routed and the spelling received.
    let lines = gw
        .wait_access_log("the logged-in /admin line", |l| {
            l.iter()
                .any(|r| r["status"] == 200 && r["path"] == "/admin")
        })
        .await;
    let line = lines
        .iter()
        .find(|r| r["status"] == 200 && r["path"] == "/admin")
        .unwrap();
    assert_eq!(line["raw_path"], "/public/%2e%2e/admin");
    assert_eq!(line["service"], "Intranet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_spellings_of_a_stricter_prefix_are_decided_by_it() {
    let nginx = Nginx::start().await;
    let gw = GatewayConfig::new()
        .service(
            Service::new("app.test", nginx.url())
                .name("Open")
                .policy("bypass"),
        )
        .service(
            Service::new("app.test", nginx.url())
                .name("API")
                .path("/api")
                .policy("deny"),
        )
        .start()
        .await;

    for target in [
        "//api/users",
        "///api",
        "/./api/users",
        "/%61pi/users",
        "/%61%70%69",
        "/x/../api/users",
        "/api;jsessionid=1/users",
        "/wiki/%2e%2e/api",
    ] {
        let r = get(&gw, "app.test", target, None);
        assert_eq!(r.status, 403, "{target}: {} {}", r.status, r.body);
    }
    assert!(
        reached(&nginx, "api").is_empty(),
        "a request reached nginx's /api past the deny rule: {:?}",
        reached(&nginx, "api")
    );
    // The open part still works, through nginx.
    let r = get(&gw, "app.test", "/wiki//page", None);
    assert_eq!(r.body.trim(), "location=wiki uri=/wiki/page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_spellings_are_refused_with_our_page_and_a_reason() {
    let nginx = Nginx::start().await;
    let gw = public_beside_protected(&nginx).await;

    let cases = [
        ("/public\\..\\admin", "path_backslash"),
        ("/public/..%5Cadmin", "path_backslash"),
        ("/public/%2e%2e%2fadmin", "path_encoded_slash"),
        ("/public/a%2Fb", "path_encoded_slash"),
        ("/public/a%00.html", "path_control_byte"),
        ("/public/%0d%0aSet-Cookie:x", "path_control_byte"),
        ("/public/%zz", "path_bad_escape"),
        ("/public/%4", "path_bad_escape"),
        ("/../etc/passwd", "path_above_root"),
        ("/public/../../etc/passwd", "path_above_root"),
        ("/public/..;/admin", "path_dot_parameter"),
        ("/public/%c0%ae%c0%ae/admin", "path_overlong_utf8"),
        ("/.portvakt/%2e%2e/x%2Fy", "path_encoded_slash"),
    ];
    for (target, reason) in cases {
        let r = get(&gw, "app.test", target, None);
        assert_eq!(r.status, 400, "{target}: {} {}", r.status, r.body);
        assert!(
            r.body.contains("Testportalen") || r.body.contains("Test portal"),
            "{target}: not our branded page: {}",
            r.body
        );
        assert!(!r.body.contains("location="), "{target} reached nginx");
        gw.wait_access_log(&format!("the 400 line of {target}"), |l| {
            l.iter()
                .any(|r| r["status"] == 400 && r["reason"] == reason)
        })
        .await;
    }
    assert_eq!(nginx.access_log(), "", "a refused request reached nginx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_needs_encoded_slashes_can_keep_them_and_no_other_can() {
    let nginx = Nginx::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", nginx.url()).policy("bypass"))
        .service(
            Service::new("other.test", nginx.url())
                .policy("bypass")
                .with("keep_encoded_slashes: true"),
        )
        .start()
        .await;

    let r = get(&gw, "other.test", "/public/a%2fb?q=%2F", None);
    assert_eq!(r.status, 200, "{}", r.body);
    // Forwarded as one segment, hex in upper case, the query as sent.
    assert!(
        nginx.access_log().contains("/public/a%2Fb?q=%2F public"),
        "{}",
        nginx.access_log()
    );
    // Dot segments are still resolved around it: `a%2F..%2F` is one segment
    // to the gateway, so the `..` after it removes it whole.
    let r = get(&gw, "other.test", "/public/a%2F..%2F/../x", None);
    assert_eq!(r.body.trim(), "location=public uri=/public/x");

    let r = get(&gw, "app.test", "/public/a%2fb", None);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_string_is_forwarded_exactly_as_sent() {
    let nginx = Nginx::start().await;
    let gw = public_beside_protected(&nginx).await;

    let r = get(
        &gw,
        "app.test",
        "/public/./x/../page?next=/../admin&enc=%2e%2E%2F&empty=",
        None,
    );
    assert_eq!(r.body.trim(), "location=public uri=/public/page");
    assert!(
        nginx
            .access_log()
            .contains("/public/page?next=/../admin&enc=%2e%2E%2F&empty= public"),
        "{}",
        nginx.access_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_pages_are_found_under_any_spelling_and_never_forwarded() {
    let nginx = Nginx::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", nginx.url()).policy("bypass"))
        .start()
        .await;

    // /.portvakt/handoff with a bad code is our page whatever the spelling;
    // an upstream must never see a request for our reserved prefix.
    for target in [
        "/.portvakt/handoff?code=x",
        "/%2eportvakt/handoff?code=x",
        "//.portvakt/handoff?code=x",
        "/a/../.portvakt/handoff?code=x",
        "/.portvakt/./handoff?code=x",
    ] {
        let r = get(&gw, "app.test", target, None);
        assert!(
            !r.body.contains("location="),
            "{target} reached nginx: {}",
            r.body
        );
        // A code that is not valid sends the browser on to the front page.
        assert_eq!(r.status, 302, "{target}: {} {}", r.status, r.body);
    }
    assert_eq!(nginx.access_log(), "");
}
