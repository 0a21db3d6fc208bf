//! Validation of `services:`: host and path, upstream URL and TLS, policy,
//! groups, identity header names, networks, methods and opening hours.

use std::collections::HashSet;
use std::sync::Arc;

use super::defaults;
use super::file;
use super::model::*;
use super::validate::Checker;

/// `services[].groups_match` naming the other choice than the default:
/// every group is needed.
pub(super) const GROUPS_ALL: &str = "all";
use crate::policy::Policy;

pub(super) fn services(
    c: &mut Checker,
    list: &[file::Service],
    realm_ids: &[&str],
    portal_host: &str,
    assertion_header: &http::HeaderName,
) -> Vec<Arc<Service>> {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let key = format!("services[{i}]");
        let k = |field: &str| format!("{key}.{field}");
        let host = c.host(&k("host"), &s.host);
        let path = match s.path.as_deref() {
            None | Some("") | Some(defaults::PATH) => defaults::PATH.to_owned(),
            Some(p)
                if p.starts_with('/')
                    && !p.contains(['?', '#', ' '])
                    && !p.contains("/.portvakt") =>
            {
                p.trim_end_matches('/').to_owned()
            }
            Some(p) => {
                c.problem(
                    &k("path"),
                    format!("{p:?} must start with / and hold no ?, #, spaces or /.portvakt"),
                );
                defaults::PATH.to_owned()
            }
        };
        // Requests are routed on their normalised path, so a prefix in any
        // other spelling would never match (or match more than it says).
        match crate::request::path::normalise(&path) {
            Ok(n) if n.path == path.as_str() && !n.encoded_slash => {}
            Ok(n) => c.problem(
                &k("path"),
                format!(
                    "{path:?} is not how requests spell it after normalising; write {:?}",
                    n.path.trim_end_matches('/')
                ),
            ),
            Err(e) => c.problem(&k("path"), format!("{path:?}: {e}")),
        }
        if host == portal_host && !s.accept_shared_portal_origin {
            // Same origin as the enrolment pages: the browser lets this
            // service's scripts read them (CSRF token included) and post.
            c.problem(
                &k("host"),
                format!(
                    "{host} is the portal host: this service would share its origin with the \
                     self-service pages, so any script it serves could read an enrolment page \
                     and add a device for whoever is logged in. Give it a host of its own, or \
                     set {key}.accept_shared_portal_origin: true to accept that risk"
                ),
            );
        }
        if !seen.insert((host.clone(), path.clone())) {
            c.problem(
                &k("host"),
                format!("another service already uses host {host} with path {path}"),
            );
        }
        let policy = match s.policy.as_deref() {
            None => Policy::DEFAULT,
            Some(p) => p.parse().unwrap_or_else(|()| {
                c.problem(
                    &k("policy"),
                    format!(
                        "{p:?} is not a policy; use one of {}",
                        Policy::names().join(", ")
                    ),
                );
                Policy::Deny
            }),
        };
        let groups_all = match s.groups_match.as_deref() {
            None | Some(defaults::GROUPS_MATCH) => false,
            Some(GROUPS_ALL) => true,
            Some(other) => {
                c.problem(
                    &k("groups_match"),
                    format!("{other:?}: use {} or {GROUPS_ALL}", defaults::GROUPS_MATCH),
                );
                false
            }
        };
        for (j, r) in s.realms.iter().enumerate() {
            if !realm_ids.contains(&r.as_str()) {
                c.problem(
                    &format!("{key}.realms[{j}]"),
                    format!("no realm with id {r:?}"),
                );
            }
        }
        let upstream = upstream(c, &key, s);
        let mut headers = identity_headers(c, &key, s);
        if headers.all().contains(&assertion_header) {
            c.problem(
                &format!("{key}.identity_headers"),
                format!("{assertion_header} is the assertion header (assertion.header); choose another name"),
            );
        }
        if !headers.strip.contains(assertion_header) {
            headers.strip.push(assertion_header.clone());
        }
        let mut methods = Vec::new();
        for (j, m) in s.methods.iter().enumerate() {
            match crate::session::Method::parse(m) {
                Some(m) => methods.push(m),
                None => c.problem(
                    &format!("{key}.methods[{j}]"),
                    format!(
                        "{m:?} is not a method; use password, passkey, sms, email, totp or token"
                    ),
                ),
            }
        }
        let hours = s.hours.as_ref().and_then(|h| hours(c, &key, h));
        let icon = s.icon.as_ref().map(|i| c.existing_file(&k("icon"), i));
        if s.basic_auth && policy == Policy::Bypass {
            c.problem(
                &k("basic_auth"),
                "a bypass service asks for no login; remove basic_auth",
            );
        }
        let assertion_audience = crate::assertion::audience(&host, &path);
        out.push(Arc::new(Service {
            index: i,
            name: s.name.clone(),
            host,
            path,
            upstream,
            realms: s.realms.clone(),
            policy,
            groups: s.groups.clone(),
            groups_all,
            basic_auth: s.basic_auth,
            preserve_host: s.preserve_host.unwrap_or(defaults::PRESERVE_HOST),
            headers,
            networks: s.networks.iter().map(|n| n.trunc()).collect(),
            methods,
            hours,
            description: s.description.clone(),
            icon,
            keep_encoded_slashes: s.keep_encoded_slashes,
            keep_underscore_headers: s.keep_underscore_headers,
            assertion: s.assertion,
            assertion_audience,
        }));
    }
    out
}

fn upstream(c: &mut Checker, key: &str, s: &file::Service) -> Upstream {
    let ukey = format!("{key}.upstream");
    let parsed = url::Url::parse(&s.upstream).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && (u.path() == "/" || u.path().is_empty())
    });
    let Some(u) = parsed else {
        c.problem(&ukey, format!("{:?} is not an upstream URL like http://10.0.0.5:8080 (scheme, host and port only)", s.upstream));
        return Upstream {
            socket: ([0, 0, 0, 0], 0).into(),
            address: String::new(),
            host: String::new(),
            tls: false,
            sni: String::new(),
            verify: true,
            ca_der: None,
            connect_timeout: defaults::CONNECT_TIMEOUT.0,
            read_timeout: defaults::READ_TIMEOUT.0,
        };
    };
    let tls = u.scheme() == "https";
    let host = u
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = u
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    use std::net::ToSocketAddrs;
    let socket = match address.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            c.problem(&ukey, format!("cannot resolve {address}"));
            ([0, 0, 0, 0], 0).into()
        }
    };
    let t = &s.upstream_tls;
    if !tls && (t.ca_file.is_some() || t.sni.is_some() || t.verify.is_some()) {
        c.problem(
            &format!("{key}.upstream_tls"),
            "upstream_tls needs an https:// upstream",
        );
    }
    let ca_der = t.ca_file.as_ref().and_then(|f| {
        let k = format!("{key}.upstream_tls.ca_file");
        let path = c.existing_file(&k, f);
        let bytes = std::fs::read(&path).ok()?;
        let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut bytes.as_slice())
            .filter_map(Result::ok)
            .map(|d| d.to_vec())
            .filter(|d| crate::tls::is_certificate(d))
            .collect();
        if certs.is_empty() {
            c.problem(&k, format!("{} holds no PEM certificate", path.display()));
            return None;
        }
        Some(certs)
    });
    Upstream {
        socket,
        sni: t.sni.clone().unwrap_or_else(|| host.clone()),
        address,
        host,
        tls,
        verify: t.verify.unwrap_or(defaults::VERIFY),
        ca_der,
        connect_timeout: s.timeouts.connect.unwrap_or(defaults::CONNECT_TIMEOUT).0,
        read_timeout: s.timeouts.read.unwrap_or(defaults::READ_TIMEOUT).0,
    }
}

fn identity_headers(c: &mut Checker, key: &str, s: &file::Service) -> IdentityHeaderNames {
    let mut names = IdentityHeaderNames::default();
    for (field, value) in &s.identity_headers {
        let k = format!("{key}.identity_headers.{field}");
        let Ok(name) = http::HeaderName::from_bytes(value.as_bytes()) else {
            c.problem(&k, format!("{value:?} is not a valid header name"));
            continue;
        };
        let slot = match field.as_str() {
            "user" => &mut names.user,
            "groups" => &mut names.groups,
            "email" => &mut names.email,
            "name" => &mut names.name,
            "realm" => &mut names.realm,
            "auth_level" => &mut names.auth_level,
            "auth_methods" => &mut names.auth_methods,
            _ => {
                let keys: Vec<&str> = IdentityHeaderNames::DEFAULTS
                    .iter()
                    .map(|(k, _)| *k)
                    .collect();
                c.problem(
                    &k,
                    format!("unknown identity header; use one of {}", keys.join(", ")),
                );
                continue;
            }
        };
        *slot = name;
    }
    names.with_wire()
}

fn hours(c: &mut Checker, key: &str, h: &file::Hours) -> Option<crate::policy::hours::Hours> {
    use crate::policy::hours::{parse_days, parse_time, Hours, Window};
    let key = format!("{key}.hours");
    let zone_name = h.zone.as_deref().unwrap_or(defaults::TIME_ZONE);
    let zone = match jiff::tz::TimeZone::get(zone_name) {
        Ok(z) => Some(z),
        Err(_) => {
            c.problem(
                &format!("{key}.zone"),
                format!(
                    "{zone_name:?} is not an IANA time zone like {}",
                    defaults::TIME_ZONE
                ),
            );
            None
        }
    };
    let mut windows = Vec::new();
    let mut window = |c: &mut Checker, wkey: &str, days: &str, from: &str, to: &str| {
        let d = parse_days(days)
            .map_err(|e| c.problem(&format!("{wkey}.days"), e))
            .ok();
        let f = parse_time(from)
            .map_err(|e| c.problem(&format!("{wkey}.from"), e))
            .ok();
        let t = parse_time(to)
            .map_err(|e| c.problem(&format!("{wkey}.to"), e))
            .ok();
        if let (Some(days), Some(from), Some(to)) = (d, f, t) {
            if from == to {
                c.problem(
                    &format!("{wkey}.to"),
                    "a window must not open and close at the same time",
                );
            }
            windows.push(Window {
                days,
                from,
                to: if to == 1440 { 0 } else { to },
            });
        }
    };
    match (&h.days, &h.from, &h.to) {
        (Some(d), Some(f), Some(t)) => window(c, &key, d, f, t),
        (None, None, None) => {}
        _ => c.problem(&key, "an inline window needs days, from and to"),
    }
    for (i, w) in h.windows.iter().enumerate() {
        window(c, &format!("{key}.windows[{i}]"), &w.days, &w.from, &w.to);
    }
    if windows.is_empty() {
        c.problem(&key, "give at least one window (days, from, to)");
    }
    let mut holidays = Vec::new();
    for (i, d) in h.holidays.iter().enumerate() {
        match d.parse::<jiff::civil::Date>() {
            Ok(d) => holidays.push(d),
            Err(_) => c.problem(
                &format!("{key}.holidays[{i}]"),
                format!("{d:?} is not a date like 2026-12-24"),
            ),
        }
    }
    Some(Hours {
        zone: zone?,
        windows,
        holidays,
    })
}
