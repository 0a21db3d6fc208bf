//! Identity to upstreams: strip what the client sent under our header names,
//! add what the session proves, set the forwarding headers.

use http::header::{self, HeaderName};
use pingora::http::RequestHeader;

use super::ctx::Ctx;
use crate::config::model::Service;
use crate::session::cookie;

static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Rewrite `req` before it goes upstream.
pub fn prepare(req: &mut RequestHeader, ctx: &Ctx, service: &Service) -> pingora::Result<()> {
    // Always, on every service (bypass included): a client must never be able
    // to speak for the gateway, under the default names or a service's own.
    crate::request::headers::scrub(req, &service.headers.strip, service.keep_underscore_headers);
    if ctx.used_basic || service.basic_auth {
        req.remove_header(&header::AUTHORIZATION);
    }
    strip_our_cookies(req)?;

    if let Some(s) = &ctx.session {
        // Names as shared bytes, in `IdentityHeaderNames::all` order.
        let w = &service.headers.wire;
        let v = &s.header_values;
        req.insert_header(w[0].clone(), v.user.clone())?;
        req.insert_header(w[1].clone(), v.groups.clone())?;
        req.insert_header(w[2].clone(), v.email.clone())?;
        req.insert_header(w[3].clone(), v.name.clone())?;
        req.insert_header(w[4].clone(), v.realm.clone())?;
        req.insert_header(w[5].clone(), v.level.clone())?;
        req.insert_header(w[6].clone(), v.methods.clone())?;
    }

    // X-Forwarded-For says only what the gateway vouches for: through a
    // trusted proxy the client it decided on (`0.0.0.0` when unknown), then
    // the peer; else the peer alone. Hops left of the client were written by
    // the client itself, and many upstreams believe the leftmost, so they are
    // not passed on.
    let mut xff = String::with_capacity(48);
    if ctx.peer_trusted && ctx.client_ip != ctx.peer_ip {
        crate::net::push_ip(&mut xff, ctx.client_ip);
        xff.push_str(", ");
    }
    let peer_at = xff.len();
    crate::net::push_ip(&mut xff, ctx.peer_ip);
    // Without a trusted proxy in front the client is the peer: one string.
    let real_ip = if ctx.client_ip == ctx.peer_ip {
        xff[peer_at..].to_owned()
    } else {
        let mut ip = String::with_capacity(39);
        crate::net::push_ip(&mut ip, ctx.client_ip);
        ip
    };
    // `&'static str` names: pingora's header-case map keeps them without a
    // copy (it still parses each name once per insert; nothing avoids that).
    req.insert_header("X-Forwarded-For", xff)?;
    // Never passed on, trusted peer or not: a proxy that sets only
    // X-Forwarded-For forwards a client's `Forwarded` untouched.
    req.remove_header(&FORWARDED);
    req.insert_header("X-Real-IP", real_ip)?;
    req.insert_header("X-Forwarded-Proto", "https")?;
    let forwarded_host = format!("{}{}", ctx.host, ctx.port_suffix);
    req.insert_header("X-Forwarded-Host", forwarded_host)?;
    req.insert_header("X-Request-Id", ctx.request_id.as_str())?;
    if !service.preserve_host {
        req.insert_header("Host", service.upstream.host.as_str())?;
    }
    Ok(())
}

/// Remove our cookies; other cookies pass untouched. HTTP/2 clients may send
/// several `Cookie` headers, so each is handled.
fn strip_our_cookies(req: &mut RequestHeader) -> pingora::Result<()> {
    let values: Vec<_> = req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if values
        .iter()
        .all(|v| !v.as_bytes().windows(15).any(|w| w == b"__Host-portvakt"))
    {
        return Ok(());
    }
    req.remove_header(&header::COOKIE);
    for v in values {
        if let Some(kept) = v.to_str().ok().and_then(cookie::strip_ours) {
            req.append_header(header::COOKIE, kept.as_ref())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `prepare` sends upstream as forwarding headers, for a request
    /// that arrived with `incoming` headers.
    fn forwarding(
        peer: &str,
        trusted: bool,
        client: &str,
        incoming: &[(&str, &str)],
    ) -> (Vec<String>, Option<String>, bool) {
        let service = crate::testutil::service_at("app.test", "/", crate::policy::Policy::Bypass);
        let mut ctx = Ctx::new();
        ctx.peer_ip = peer.parse().unwrap();
        ctx.peer_trusted = trusted;
        ctx.client_ip = client.parse().unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in incoming {
            req.append_header(n.to_string(), *v).unwrap();
        }
        prepare(&mut req, &ctx, &service).unwrap();
        let all = |name: &str| -> Vec<String> {
            req.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect()
        };
        let real = all("x-real-ip").pop();
        (
            all("x-forwarded-for"),
            real,
            req.headers.contains_key("forwarded"),
        )
    }

    #[test]
    fn upstream_forwarding_headers_carry_only_what_the_gateway_vouches_for() {
        let spoof = [
            ("X-Forwarded-For", "10.20.0.5"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=10.20.0.5"),
        ];
        // An untrusted client: its own headers are replaced by its address.
        let (xff, real, fwd) = forwarding("192.0.2.7", false, "192.0.2.7", &spoof);
        assert_eq!(xff, ["192.0.2.7"]);
        assert_eq!(real.as_deref(), Some("192.0.2.7"));
        assert!(
            !fwd,
            "an untrusted client's Forwarded must not reach the upstream"
        );
        // Through a trusted proxy: the decided client, then the proxy; the
        // client-written hops to the left and any Forwarded are dropped.
        let (xff, real, fwd) = forwarding("10.0.0.1", true, "203.0.113.9", &spoof);
        assert_eq!(xff, ["203.0.113.9, 10.0.0.1"]);
        assert_eq!(real.as_deref(), Some("203.0.113.9"));
        assert!(
            !fwd,
            "a Forwarded passed through by the proxy must not reach the upstream"
        );
        // A trusted proxy that named no usable client: the upstream is told so.
        let (xff, real, _) =
            forwarding("10.0.0.1", true, "0.0.0.0", &[("X-Forwarded-For", "junk")]);
        assert_eq!(xff, ["0.0.0.0, 10.0.0.1"]);
        assert_eq!(real.as_deref(), Some("0.0.0.0"));
    }

    #[test]
    fn a_client_sent_assertion_never_passes_even_where_the_gateway_sends_none() {
        // The default test service has `assertion: false`.
        let service = crate::testutil::service_at("app.test", "/", crate::policy::Policy::Bypass);
        assert!(!service.assertion);
        let ctx = Ctx::new();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Portvakt-Assertion", "forged").unwrap();
        req.append_header("portvakt_assertion", "forged").unwrap();
        prepare(&mut req, &ctx, &service).unwrap();
        assert!(
            !req.headers.keys().any(|n| n.as_str().contains("assertion")),
            "{:?}",
            req.headers
        );
    }
}
