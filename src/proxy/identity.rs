//! Identity to upstreams: strip what the client sent under our header names,
//! add what the session proves, set the forwarding headers.

use http::header::{self, HeaderName};
use pingora::http::RequestHeader;

use super::ctx::Ctx;
use crate::config::model::Service;
use crate::session::cookie;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
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

    // X-Forwarded-For: a trusted proxy's chain is kept and the peer appended;
    // anyone else's is replaced by the peer address.
    let mut xff = String::with_capacity(48);
    if let Some(chain) = req
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|chain| ctx.peer_trusted && !chain.trim().is_empty())
    {
        xff.push_str(chain);
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
    if !ctx.peer_trusted {
        req.remove_header(&FORWARDED);
    }
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
