//! Who is the client (issue 12, class 2). The test client on 127.0.0.1 plays
//! a trusted proxy (HAProxy with `option forwardfor`, which adds a new
//! `X-Forwarded-For` line after whatever the client sent); the office network
//! is 10.20.0.0/16 and the proxy's own address is internal too, so a gateway
//! that falls back to the peer, or believes the client's own line, shows it
//! at once. The attacker sits at 203.0.113.9 and claims 10.20.0.5.

use serde_json::Value;

use crate::support::client::ClientOptions;
use crate::support::enrol::assert_sent_to_second;
use crate::support::users::User;
use crate::support::*;

const OFFICE: &str = "10.20.0.5";
const ATTACKER: &str = "203.0.113.9";

/// Trusted proxy on 127.0.0.1; internal networks 10.20.0.0/16 and the proxy.
fn config(upstream: &Upstream) -> GatewayConfig {
    GatewayConfig::new()
        .trusted_proxies(&["127.0.0.1/32"])
        .internal_networks(&["10.20.0.0/16", "127.0.0.1/32"])
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
}

/// GET `url` with these header lines, in this order, on the request itself
/// (reqwest's default headers keep one value per name).
async fn get_lines(b: &Client, url: &str, lines: &[(&str, &str)]) -> Page {
    b.get_with(url, lines).await
}

/// Open `url`, follow to the login form and post `user`'s password, every
/// request carrying these header lines; the answer is not followed.
async fn password_with_lines(b: &Client, url: &str, user: &User, lines: &[(&str, &str)]) -> Page {
    let journey = b.follow_with(url, lines).await;
    let page = &journey.end;
    let csrf = page
        .input_value("csrf")
        .unwrap_or_else(|| panic!("no login form after {url}:\n{}", journey.describe()));
    let mut fields = vec![
        ("username", user.name.to_string()),
        ("password", user.password.to_string()),
        ("csrf", csrf),
    ];
    if let Some(rd) = page.input_value("rd") {
        fields.push(("rd", rd));
    }
    let mut action = page.url.clone();
    action.set_path("/.portvakt/login");
    action.set_query(None);
    let mut request = b
        .request(reqwest::Method::POST, action.as_str())
        .form(&fields);
    for (name, value) in lines {
        request = request.header(*name, *value);
    }
    b.send(request).await
}

async fn access_line(gw: &Gateway, path: &str) -> Value {
    let lines = gw
        .wait_access_log(path, |l| l.iter().any(|l| l["path"] == path))
        .await;
    lines.into_iter().find(|l| l["path"] == path).unwrap()
}

/// `client_ip` and `network` the access log decided for `path`.
async fn decided(gw: &Gateway, path: &str) -> (String, String) {
    let line = access_line(gw, path).await;
    (
        line["client_ip"].as_str().unwrap_or("?").to_string(),
        line["network"].as_str().unwrap_or("?").to_string(),
    )
}

/// The self-service pages a session opens from the office network.
const SELF_SERVICE: [&str; 3] = [
    "https://portal.test/.portvakt/settings",
    "https://portal.test/.portvakt/sms",
    "https://portal.test/.portvakt/settings/authenticator",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_first_x_forwarded_for_line_is_not_believed() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    let spoof = [("X-Forwarded-For", OFFICE), ("X-Forwarded-For", ATTACKER)];
    for (n, options) in [ClientOptions::default(), ClientOptions::default().http2()]
        .into_iter()
        .enumerate()
    {
        let mallory = gw.client_with(options);
        let path = format!("/two-lines-{n}");
        let url = format!("https://bypass.test{path}");
        let who = get_lines(&mallory, &url, &spoof).await.whoami();
        assert_eq!(
            decided(&gw, &path).await,
            (ATTACKER.into(), "external".into())
        );
        // The upstream hears the decided client and the proxy, not the spoof.
        assert_eq!(
            who.all("x-forwarded-for"),
            [format!("{ATTACKER}, 127.0.0.1")]
        );
        assert_eq!(who.one("x-real-ip"), Some(ATTACKER));

        // A password alone is not enough where off-network needs two factors.
        let posted = password_with_lines(&mallory, "https://offsite.test/", &ALICE, &spoof).await;
        assert_sent_to_second(&posted, 303);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_service_pages_refuse_a_spoofed_office_address() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    // Alice in the office, through the proxy: password alone, pages open.
    let office = [("X-Forwarded-For", OFFICE)];
    let alice = gw.client_with(ClientOptions::default().header("X-Forwarded-For", OFFICE));
    alice.must_login("https://offsite.test/", &ALICE).await;
    for url in SELF_SERVICE {
        let page = get_lines(&alice, url, &office).await;
        assert_eq!(
            page.status,
            200,
            "from the office {url}: {}",
            page.describe()
        );
    }
    // The same session (cookie stolen, or the laptop taken home) from
    // outside, with the office address as its own first line.
    let outside = gw.client_with(ClientOptions::default().cookie_jar(alice.jar()));
    for lines in [
        &[("X-Forwarded-For", OFFICE), ("X-Forwarded-For", ATTACKER)][..],
        &[("X-Forwarded-For", OFFICE), ("X-Forwarded-For", "")][..],
        &[
            ("Forwarded", "for=10.20.0.5"),
            ("X-Forwarded-For", ATTACKER),
        ][..],
        &[][..],
    ] {
        for url in SELF_SERVICE {
            let page = get_lines(&outside, url, lines).await;
            assert_eq!(page.status, 403, "{lines:?} {url}: {}", page.describe());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_header_is_ignored_when_the_config_names_x_forwarded_for() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    // HAProxy sets only X-Forwarded-For and passes the client's Forwarded on.
    let spoof = [
        ("Forwarded", "for=10.20.0.5"),
        ("Forwarded", "for=\"10.20.0.5:443\";proto=https"),
        ("X-Forwarded-For", ATTACKER),
    ];
    let mallory = gw.client();
    let who = get_lines(&mallory, "https://bypass.test/fwd-spoof", &spoof)
        .await
        .whoami();
    assert_eq!(
        decided(&gw, "/fwd-spoof").await,
        (ATTACKER.into(), "external".into())
    );
    assert!(
        who.all("forwarded").is_empty(),
        "the client's Forwarded reached the upstream: {:?}",
        who.all("forwarded")
    );
    let posted = password_with_lines(&mallory, "https://offsite.test/", &ALICE, &spoof).await;
    assert_sent_to_second(&posted, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_forwarded_configured_x_forwarded_for_is_ignored_and_all_lines_count() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream)
        .extra_yaml("client_address:\n  header: forwarded\n")
        .start()
        .await;
    let b = gw.client();
    // The proxy's honest element for an office client: believed.
    let honest = [("Forwarded", "for=\"10.20.0.5:50123\";proto=https")];
    get_lines(&b, "https://bypass.test/fwd-honest", &honest)
        .await
        .whoami();
    assert_eq!(
        decided(&gw, "/fwd-honest").await,
        (OFFICE.into(), "internal".into())
    );

    for (n, lines) in [
        // An X-Forwarded-For passed through untouched.
        &[
            ("X-Forwarded-For", OFFICE),
            ("Forwarded", "for=203.0.113.9"),
        ][..],
        // The client's own Forwarded line first, the proxy's after it.
        &[
            ("Forwarded", "for=10.20.0.5"),
            ("Forwarded", "For=\"203.0.113.9\""),
        ][..],
        // A quoted comma is no element boundary.
        &[("Forwarded", "by=\"x, for=10.20.0.5\", for=203.0.113.9")][..],
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/fwd-spoof-{n}");
        let url = format!("https://bypass.test{path}");
        get_lines(&b, &url, lines).await.whoami();
        assert_eq!(
            decided(&gw, &path).await,
            (ATTACKER.into(), "external".into()),
            "{lines:?}"
        );
    }
    let spoof = [
        ("X-Forwarded-For", OFFICE),
        ("Forwarded", "for=203.0.113.9"),
    ];
    let posted = password_with_lines(&b, "https://offsite.test/", &ALICE, &spoof).await;
    assert_sent_to_second(&posted, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_that_names_no_usable_client_makes_it_off_network() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    for (n, lines) in [
        &[][..],
        &[("X-Forwarded-For", "")][..],
        &[("X-Forwarded-For", "garbage")][..],
        &[("X-Forwarded-For", "unknown")][..],
        &[("X-Forwarded-For", "_hidden")][..],
        &[("X-Forwarded-For", "999.0.0.1")][..],
        &[("X-Forwarded-For", "10.20.0.5, junk")][..],
        &[("X-Forwarded-For", OFFICE), ("X-Forwarded-For", "nonsense")][..],
    ]
    .into_iter()
    .enumerate()
    {
        let b = gw.client();
        let path = format!("/no-client-{n}");
        let url = format!("https://bypass.test{path}");
        let who = get_lines(&b, &url, lines).await.whoami();
        assert_eq!(
            decided(&gw, &path).await,
            ("0.0.0.0".into(), "external".into()),
            "{lines:?}"
        );
        assert_eq!(who.one("x-real-ip"), Some("0.0.0.0"), "{lines:?}");
        let posted = password_with_lines(&b, "https://offsite.test/", &ALICE, lines).await;
        assert_sent_to_second(&posted, 303);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_client_cannot_claim_an_office_address() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    let mallory = gw.offsite_client();
    let spoof = [
        ("X-Forwarded-For", OFFICE),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=10.20.0.5"),
        ("X-Real-IP", OFFICE),
    ];
    let who = get_lines(&mallory, "https://bypass.test/untrusted", &spoof)
        .await
        .whoami();
    assert_eq!(
        decided(&gw, "/untrusted").await,
        ("127.0.0.2".into(), "external".into())
    );
    assert_eq!(who.all("x-forwarded-for"), ["127.0.0.2"]);
    assert_eq!(who.all("x-real-ip"), ["127.0.0.2"]);
    assert!(who.all("forwarded").is_empty());
    let posted = password_with_lines(&mallory, "https://offsite.test/", &ALICE, &spoof).await;
    assert_sent_to_second(&posted, 303);
}

/// A load balancer that speaks the PROXY protocol (HAProxy `send-proxy`):
/// every connection accepted on 127.0.0.1 is opened to the gateway from
/// `from`, with `header` written before the client's first byte, then the
/// bytes are copied both ways (TLS passes through untouched).
struct SendProxy {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SendProxy {
    async fn start(gateway: std::net::SocketAddr, from: [u8; 4], header: Vec<u8>) -> SendProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let header = header.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket
                        .bind((std::net::Ipv4Addr::from(from), 0).into())
                        .unwrap();
                    let connect = socket.connect(gateway);
                    let Ok(Ok(mut outbound)) =
                        tokio::time::timeout(std::time::Duration::from_secs(10), connect).await
                    else {
                        return;
                    };
                    if outbound.write_all(&header).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        SendProxy { addr, task }
    }

    /// A browser-like client whose connections go through this balancer.
    fn client(&self, gw: &Gateway) -> Client {
        Client::new(self.addr, gw.pki().ca_pem(), ClientOptions::default())
    }
}

impl Drop for SendProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn v1(source: &str) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 50123 443\r\n").into_bytes()
}

/// A v2 header: `cmd` 1 = PROXY, 0 = LOCAL; `fam` 0x11 = TCP over IPv4,
/// 0x21 = TCP over IPv6; `body` the addresses and ports.
fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp6(source: &str) -> Vec<u8> {
    let mut body = source
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec();
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0xc3, 0x50, 0x01, 0xbb]);
    v2(1, 0x21, &body)
}

fn v2_tcp4(source: [u8; 4]) -> Vec<u8> {
    let mut body = source.to_vec();
    body.extend_from_slice(&[127, 0, 0, 1, 0xc3, 0x50, 0x01, 0xbb]);
    v2(1, 0x11, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_protocol_header_from_a_trusted_balancer_names_the_client() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).proxy_protocol().start().await;
    let trusted = [127, 0, 0, 1];
    for (n, header, client_ip, network) in [
        (0, v1(ATTACKER), ATTACKER, "external"),
        (1, v2_tcp4([203, 0, 113, 9]), ATTACKER, "external"),
        (2, v2_tcp6("2001:db8::9"), "2001:db8::9", "external"),
        (3, v1(OFFICE), OFFICE, "internal"),
        (4, v2_tcp4([10, 20, 0, 5]), OFFICE, "internal"),
        // The balancer's own health check (LOCAL) or an UNKNOWN source:
        // nobody vouched for a client, so it is on no network.
        (5, v2(0, 0x00, &[]), "0.0.0.0", "external"),
        (6, b"PROXY UNKNOWN\r\n".to_vec(), "0.0.0.0", "external"),
    ] {
        let balancer = SendProxy::start(gw.https_addr(), trusted, header).await;
        let b = balancer.client(&gw);
        let path = format!("/pp-{n}");
        // The client's own X-Forwarded-For is no better through a balancer:
        // the header's source is the peer, and it is not a trusted proxy.
        let spoof = [("X-Forwarded-For", OFFICE)];
        let url = format!("https://bypass.test{path}");
        let who = get_lines(&b, &url, &spoof).await.whoami();
        let line = access_line(&gw, &path).await;
        assert_eq!(line["client_ip"], client_ip, "{line}");
        assert_eq!(line["network"], network, "{line}");
        if client_ip != "0.0.0.0" {
            assert_eq!(line["peer_ip"], client_ip, "{line}");
            assert_eq!(who.all("x-forwarded-for"), [client_ip]);
        }
        if network == "internal" {
            b.must_login("https://offsite.test/", &ALICE).await;
        } else {
            let posted = password_with_lines(&b, "https://offsite.test/", &ALICE, &[]).await;
            assert_sent_to_second(&posted, 303);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_protocol_listener_refuses_connections_without_a_trusted_valid_header() {
    let upstream = Upstream::start().await;
    let mut gw = config(&upstream).proxy_protocol().start().await;
    let refused = |b: Client, what: &'static str| async move {
        let result = b.raw().get("https://bypass.test/pp-refused").send().await;
        assert!(
            result.is_err(),
            "{what}: answered {:?}",
            result.map(|r| r.status())
        );
    };
    // A trusted peer that sends no header (TLS straight away).
    refused(gw.client(), "no header").await;
    // Garbage, or a header that lies about its family.
    for header in [
        b"PROXY TCP4 nonsense\r\n".to_vec(),
        b"PROXY TCP4 2001:db8::9 127.0.0.1 1 443\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        v2(1, 0x11, &[203, 0, 113]),
    ] {
        let balancer = SendProxy::start(gw.https_addr(), [127, 0, 0, 1], header).await;
        refused(balancer.client(&gw), "bad header").await;
    }
    // Someone who is not a trusted proxy, with a valid header for the office.
    let balancer = SendProxy::start(gw.https_addr(), [127, 0, 0, 2], v1(OFFICE)).await;
    refused(balancer.client(&gw), "untrusted peer").await;
    let lines = gw.access_log_lines();
    assert!(
        lines.iter().all(|l| l["path"] != "/pp-refused"),
        "a refused connection was served: {lines:?}"
    );
    gw.assert_alive();
}

/// `portvakt check-config` on the test config with `listen_extra` added
/// under `listen:` and `extra` at the top level: (success, stderr, text).
fn check_config(listen_extra: &str, extra: &str) -> (bool, String, String) {
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let text = GatewayConfig::new()
        .trusted_proxies(&[])
        .extra_yaml(extra)
        .render(addr, None, "127.0.0.1:2".parse().unwrap())
        .replacen("listen:\n", &format!("listen:\n{listen_extra}"), 1);
    let dir = tempfile::Builder::new()
        .prefix("portvakt-ca-")
        .tempdir()
        .unwrap();
    Pki::shared().write_to(dir.path());
    std::fs::write(
        dir.path().join("users.yaml"),
        crate::support::users::users_yaml(),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret.key"), [7u8; 32]).unwrap();
    let config = dir.path().join("portvakt.yaml");
    std::fs::write(&config, &text).unwrap();
    let out = std::process::Command::new(portvakt_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run portvakt check-config");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr, text)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn check_config_refuses_an_unknown_client_address_header() {
    let (ok, _, _) = check_config("", "client_address:\n  header: forwarded\n");
    assert!(ok, "forwarded is a valid choice");
    // There is no "both": the admin must say which header the proxy sets.
    for bad in ["x-real-ip", "both", "[x-forwarded-for, forwarded]"] {
        let (ok, stderr, text) = check_config("", &format!("client_address:\n  header: {bad}\n"));
        assert!(!ok, "{bad} accepted");
        let line = line_of(&text, "  header:");
        assert!(
            crate::support::expect::mentions_line(&stderr, line) && stderr.contains("header"),
            "{bad}: the error does not point at line {line}:\n{stderr}"
        );
    }
}

#[test]
fn check_config_refuses_proxy_protocol_without_trusted_proxies() {
    let (ok, stderr, text) = check_config("  proxy_protocol: true\n", "");
    assert!(!ok, "proxy_protocol without trusted_proxies accepted");
    let line = line_of(&text, "proxy_protocol");
    assert!(
        crate::support::expect::mentions_line(&stderr, line)
            && stderr.contains("listen.proxy_protocol")
            && stderr.contains("trusted_proxies"),
        "the error does not point at line {line}:\n{stderr}"
    );
}
