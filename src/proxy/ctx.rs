//! Per-request state carried through pingora's phases.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use crate::config::model::Service;
use crate::gateway::Runtime;
use crate::session::Session;

/// What one request learned on its way through the phases.
#[derive(Debug)]
pub struct Ctx {
    /// The runtime this request started with (a reload mid-request changes nothing for it).
    pub rt: Option<Arc<Runtime>>,
    /// When the request arrived.
    pub start: Instant,
    /// Id shared by access and auth log and sent upstream.
    pub request_id: String,
    /// TCP peer.
    pub peer_ip: IpAddr,
    /// Client (after trusted-proxy resolution).
    pub client_ip: IpAddr,
    /// Whether the peer is a trusted proxy (then its forwarding header named the client).
    pub peer_trusted: bool,
    /// Internal to the relevant realm.
    pub internal: bool,
    /// Host asked for, lower case, no port.
    pub host: String,
    /// `:port` if the client used a non-default port.
    pub port_suffix: String,
    /// Routed service.
    pub service: Option<Arc<Service>>,
    /// Identity sent upstream.
    pub session: Option<Arc<Session>>,
    /// The session store's key of [`Self::session`] when it came from a
    /// cookie (set only for services with `assertion: true`): the token
    /// cache's key, new at every login and step-up.
    pub session_key: Option<[u8; 32]>,
    /// Credentials were taken from a Basic header (strip it upstream).
    pub used_basic: bool,
    /// Access-log decision and reason.
    pub decision: &'static str,
    /// Why.
    pub reason: &'static str,
    /// Upstream's status.
    pub upstream_status: Option<u16>,
    /// The request target as the client spelt it, when normalising changed it.
    pub raw_path: Option<String>,
    /// Counts this request as in flight until the context is dropped (a
    /// SIGTERM drain waits for zero).
    pub in_flight: Option<crate::metrics::InFlight>,
}

impl Ctx {
    /// A fresh context.
    pub fn new() -> Ctx {
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Ctx {
            rt: None,
            start: Instant::now(),
            request_id: String::new(),
            peer_ip: unspecified,
            client_ip: unspecified,
            peer_trusted: false,
            internal: false,
            host: String::new(),
            port_suffix: String::new(),
            service: None,
            session: None,
            session_key: None,
            used_basic: false,
            decision: "error",
            reason: "",
            upstream_status: None,
            raw_path: None,
            in_flight: None,
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}
