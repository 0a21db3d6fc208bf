//! Routing: host (+ longest path prefix) → service. Built once per config.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::model::Service;

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// A published service.
    Service(Arc<Service>),
    /// The portal host, with no service under this path: our own pages.
    Portal,
    /// No such host.
    Unknown,
}

/// Host → services, each host's list sorted by path length (longest first).
#[derive(Debug, Default)]
pub struct Router {
    hosts: HashMap<String, Vec<Arc<Service>>>,
    portal_host: String,
}

impl Router {
    /// Build from validated services (no duplicates).
    pub fn new(portal_host: &str, services: &[Arc<Service>]) -> Router {
        let mut hosts: HashMap<String, Vec<Arc<Service>>> = HashMap::new();
        for s in services {
            hosts.entry(s.host.clone()).or_default().push(s.clone());
        }
        for list in hosts.values_mut() {
            list.sort_by_key(|s| std::cmp::Reverse(s.path.len()));
        }
        Router {
            hosts,
            portal_host: portal_host.to_owned(),
        }
    }

    /// Route `host` (lower case, no port) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Route {
        if let Some(list) = self.hosts.get(host) {
            if let Some(s) = list.iter().find(|s| prefix_matches(&s.path, path)) {
                return Route::Service(s.clone());
            }
        }
        if host == self.portal_host {
            Route::Portal
        } else {
            Route::Unknown
        }
    }

    /// Whether `host` is one we serve (portal or a service host): the only
    /// hosts a redirect may name.
    pub fn is_known_host(&self, host: &str) -> bool {
        host == self.portal_host || self.hosts.contains_key(host)
    }

    /// Every host we serve.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.portal_host.as_str()).chain(self.hosts.keys().map(String::as_str))
    }
}

/// `/api` matches `/api`, `/api/`, `/api/x` and `/api;jsessionid=…`, not
/// `/apix`. `;` ends a segment's name for Tomcat, Jetty and Spring
/// (`/api;x` is `/api` there), so it must end it here too, or the request
/// would be decided by a laxer rule than the one the upstream serves.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', ';', '?']),
        None => false,
    }
}

/// The host of a request, lower case, without port; from `:authority`/`Host`.
pub fn normalise_host(raw: &str) -> String {
    let h = raw.trim();
    let h = if let Some(stripped) = h.strip_prefix('[') {
        // IPv6 literal: keep brackets' content.
        stripped.split(']').next().unwrap_or("")
    } else {
        h.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map(|(host, _)| host)
            .unwrap_or(h)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::testutil::service_at;

    #[test]
    fn longest_prefix_wins_and_portal_is_fallback() {
        let svcs = vec![
            Arc::new(service_at("app.test", "/", Policy::OneFactor)),
            Arc::new(service_at("app.test", "/api", Policy::Bypass)),
            Arc::new(service_at("portal.test", "/wiki", Policy::OneFactor)),
        ];
        let r = Router::new("portal.test", &svcs);
        let name = |route: Route| match route {
            Route::Service(s) => format!("{}{}", s.host, s.path),
            Route::Portal => "portal".into(),
            Route::Unknown => "unknown".into(),
        };
        assert_eq!(name(r.route("app.test", "/api/x")), "app.test/api");
        assert_eq!(name(r.route("app.test", "/api")), "app.test/api");
        assert_eq!(name(r.route("app.test", "/apix")), "app.test/");
        assert_eq!(name(r.route("app.test", "/api;x=1")), "app.test/api");
        assert_eq!(name(r.route("portal.test", "/wiki/a")), "portal.test/wiki");
        assert_eq!(name(r.route("portal.test", "/")), "portal");
        assert_eq!(name(r.route("nowhere.test", "/")), "unknown");
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalise_host("App.Test:8443"), "app.test");
        assert_eq!(normalise_host("app.test."), "app.test");
        assert_eq!(normalise_host("[::1]:443"), "::1");
    }
}
