//! Request smuggling: a request hidden in another's body, so that the
//! gateway checks one request and the upstream serves two. The upstream is a
//! real nginx; its log shows every request it parsed.

use crate::support::nginx::Nginx;
use crate::support::wire;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_hidden_in_a_body_never_reaches_the_upstream_as_a_request() {
    let nginx = Nginx::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", nginx.url()).policy("one_factor"))
        .service(
            Service::new("app.test", nginx.url())
                .path("/public")
                .policy("bypass"),
        )
        .start()
        .await;
    let hidden = "GET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let attempts = [
        // CL.TE: the gateway reads Content-Length, an upstream chunked.
        format!(
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
        // TE.CL with an obfuscated Transfer-Encoding.
        format!(
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n5c\r\n{hidden}\r\n0\r\n\r\n"
        ),
        // Two Content-Length values.
        format!(
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{hidden}",
            hidden.len()
        ),
    ];
    for attempt in &attempts {
        let raw = wire::send_raw(
            gw.https_addr(),
            gw.pki().ca_pem(),
            "app.test",
            attempt.as_bytes(),
        );
        let statuses = wire::statuses(&raw);
        // Whatever the gateway answers, the hidden request is not one nginx
        // served, and it is not answered as if it had passed the wall.
        assert!(
            !String::from_utf8_lossy(&raw).contains("location=admin"),
            "smuggled /admin was served: {attempt:?} → {}",
            String::from_utf8_lossy(&raw)
        );
        assert!(!statuses.is_empty(), "no answer to {attempt:?}");
    }
    let log = nginx.access_log();
    assert!(
        !log.lines().any(|l| l.ends_with(" admin")),
        "nginx parsed a smuggled request for /admin: {log}"
    );
}
