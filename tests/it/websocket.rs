//! WebSocket upgrades pass through the gateway, on open and protected
//! services, and an open one survives a config reload.
//!
//! The client side is reqwest (HTTP/1.1 upgrade over TLS, trusting only the
//! test CA) handing the upgraded stream to tokio-tungstenite.

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::expect::*;
use crate::support::wait::until;
use crate::support::*;

type Ws = WebSocketStream<reqwest::Upgraded>;

/// A WebSocket echo server in this test process; stops on drop.
struct Echo {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_close() {
                            break;
                        }
                        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Echo { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Open a WebSocket at `url` (https) through the gateway; `Err` with the
/// answer if the server did not switch protocols.
async fn open(client: &Client, url: &str) -> Result<Ws, Page> {
    let mut raw_key = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw_key);
    let key = base64::engine::general_purpose::STANDARD.encode(raw_key);
    let resp = client
        .raw()
        .get(url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", &key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebSocket request to {url}: {e:?}"));
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return Err(Page::read(resp).await);
    }
    let accept = resp
        .headers()
        .get("sec-websocket-accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        accept,
        Some(derive_accept_key(key.as_bytes())),
        "Sec-WebSocket-Accept"
    );
    let upgraded = resp.upgrade().await.expect("upgrade the connection");
    Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await)
}

/// Open a WebSocket that carries messages: opened, and a first message
/// echoed. pingora 0.9.1 sometimes tears an HTTP/1 upgrade down right after
/// the `101` when the upstream answers before pingora has consumed the
/// request's empty body (cloudflare/pingora#946, fix proposed in #947 and
/// #1016, not released). A browser sees the socket close and the app
/// reconnects; this does the same, once, and says so. A second failure fails
/// the test.
async fn open_working(client: &Client, url: &str) -> Ws {
    for attempt in 1..=2 {
        let mut ws = open(client, url)
            .await
            .unwrap_or_else(|p| panic!("no upgrade at {url}: {}", p.describe()));
        let hello = Message::Text("hallå".into());
        ws.send(hello.clone())
            .await
            .expect("send over the WebSocket");
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(back))) => {
                assert_eq!(back, hello);
                return ws;
            }
            Ok(other) if attempt == 1 => {
                eprintln!("WebSocket at {url} ended right after the upgrade ({other:?}): pingora#946; reopening once");
            }
            Ok(other) => {
                panic!("WebSocket at {url} ended right after the upgrade twice: {other:?}")
            }
            Err(_) => panic!("no echo within 5 s at {url}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// Send `msg` and expect it back within 5 s.
async fn echo(ws: &mut Ws, msg: Message) {
    ws.send(msg.clone()).await.expect("send over the WebSocket");
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("no echo within 5 s")
        .expect("WebSocket closed")
        .expect("WebSocket error");
    assert_eq!(back, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_works_through_a_bypass_service() {
    let echo_server = Echo::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("ws.test", echo_server.url()).policy("bypass"))
        .start()
        .await;
    let client = gw.client();

    let mut ws = open_working(&client, "https://ws.test/chat").await;
    echo(&mut ws, Message::Text("hej".into())).await;
    echo(&mut ws, Message::Binary(vec![0, 1, 2, 255])).await;
    echo(&mut ws, Message::Text("å ä ö".into())).await;
    ws.close(None).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_needs_a_session_on_a_protected_service() {
    let upstream = Upstream::start().await;
    let echo_server = Echo::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(
            Service::new("app.test", echo_server.url())
                .name("App socket")
                .path("/ws")
                .policy("one_factor"),
        )
        .start()
        .await;

    let stranger = gw.client();
    match open(&stranger, "https://app.test/ws/chat").await {
        Ok(_) => panic!("a WebSocket opened without a session"),
        Err(page) => assert_sent_to_login(&page),
    }

    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;
    let mut ws = open_working(&browser, "https://app.test/ws/chat").await;
    echo(&mut ws, Message::Text("inloggad".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_survives_a_reload() {
    let upstream = Upstream::start().await;
    let echo_server = Echo::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("ws.test", echo_server.url()).policy("bypass"))
        .start()
        .await;
    let client = gw.client();
    let mut ws = open_working(&client, "https://ws.test/chat").await;
    echo(&mut ws, Message::Text("före".into())).await;

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
                    .get("https://new.test/")
                    .await
                    .is_whoami()
                    .then_some(())
            }
        },
    )
    .await;

    echo(&mut ws, Message::Text("efter".into())).await;
    gw.assert_alive();
}
