//! Builders for unit tests.

use std::time::Duration;

use crate::config::model::{IdentityHeaderNames, Service, Upstream};
use crate::policy::Policy;
use crate::session::{Method, NewSession, Session};

/// A service on `host` + `path` with `policy`.
pub fn service_at(host: &str, path: &str, policy: Policy) -> Service {
    Service {
        index: 0,
        name: format!("{host}{path}"),
        host: host.into(),
        path: path.into(),
        upstream: Upstream {
            address: "127.0.0.1:1".into(),
            socket: ([127, 0, 0, 1], 1).into(),
            host: "127.0.0.1".into(),
            tls: false,
            sni: String::new(),
            verify: true,
            ca_der: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        },
        realms: vec![],
        policy,
        groups: vec![],
        groups_all: false,
        basic_auth: false,
        preserve_host: true,
        headers: IdentityHeaderNames::default(),
        networks: vec![],
        methods: vec![],
        hours: None,
        description: None,
        icon: None,
        keep_encoded_slashes: false,
        keep_underscore_headers: false,
    }
}

/// A service with a policy and group condition.
pub fn service_with(policy: Policy, groups: &[&str], all: bool) -> Service {
    let mut s = service_at("app.test", "/", policy);
    s.groups = groups.iter().map(|g| g.to_string()).collect();
    s.groups_all = all;
    s
}

/// A session at level `level` with `groups`.
pub fn session_with(level: u8, groups: &[&str]) -> Session {
    let mut n = new_session_args();
    n.auth_level = level;
    n.groups = groups.iter().map(|g| g.to_string()).collect();
    Session::new(n, 0)
}

/// A level-1 session created at `now_ms`.
pub fn new_session(now_ms: u64) -> Session {
    Session::new(new_session_args(), now_ms)
}

fn new_session_args() -> NewSession {
    NewSession {
        user: "alice".into(),
        realm: "staff".into(),
        groups: vec![],
        email: "alice@example.org".into(),
        display_name: "Alice".into(),
        auth_level: 1,
        methods: vec![Method::Password],
        internal: true,
        ip: "127.0.0.1".parse().expect("literal IP"),
    }
}
