//! "From home" for a real browser: a TCP forwarder on 127.0.0.1 whose
//! connections to the gateway leave from another loopback address.
//!
//! A browser always connects from 127.0.0.1, which the test config calls the
//! internal network. Pointed at `https://portal.test:FWD/`, the browser talks
//! to this forwarder, which opens its own connection to the gateway bound to
//! 127.0.0.2, so the gateway sees an off-network client. TLS passes through
//! untouched (the forwarder only copies bytes), and because cookies belong to
//! a host, not a port, the browser keeps the same cookies on both ports. The
//! gateway builds its redirects with the port the browser used (from `Host`),
//! so a whole login stays on the forwarder's port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The source address the gateway sees through [`Forwarder::offsite`].
pub const OFFSITE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Connecting to the gateway must not take longer than this.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// A running forwarder; stops (with every connection it carries) on drop.
pub struct Forwarder {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Forward to `gateway` (its HTTPS listener) from [`OFFSITE_IP`].
    pub async fn offsite(gateway: SocketAddr) -> Forwarder {
        Forwarder::start(gateway, IpAddr::V4(OFFSITE_IP)).await
    }

    /// Listen on a free port of 127.0.0.1 and forward every connection to
    /// `to`, connecting from `from` (port chosen by the system).
    pub async fn start(to: SocketAddr, from: IpAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("forwarder: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("forwarder: local_addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every copy.
            let mut connections = JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    // Out of file descriptors or similar: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                connections.spawn(carry(inbound, to, from));
                // Forget finished connections as we go.
                while connections.try_join_next().is_some() {}
            }
        });
        Forwarder {
            addr,
            accepted,
            task,
        }
    }

    /// Where the browser connects: `127.0.0.1:FWD`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: open the outbound side from `from`, then copy both ways
/// until either side closes. Errors only end this connection.
async fn carry(mut inbound: TcpStream, to: SocketAddr, from: IpAddr) {
    let Ok(Ok(mut outbound)) = tokio::time::timeout(CONNECT_LIMIT, connect_from(from, to)).await
    else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}
