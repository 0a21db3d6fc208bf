//! Writing our own replies to the client, with the security headers every
//! page must carry.

use bytes::Bytes;
use http::header;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::gateway::Runtime;
use crate::pages::Reply;

/// Write `reply` as the complete response.
pub async fn write(session: &mut Session, rt: &Runtime, reply: Reply) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 10))?;
    let body_len = reply.body.len();
    if !reply.body.is_empty() || reply.status >= 200 {
        resp.insert_header(header::CONTENT_TYPE, reply.content_type)?;
    }
    resp.insert_header(header::CONTENT_LENGTH, body_len)?;
    page_security_headers(&mut resp, rt, reply.asset, reply.script)?;
    if let Some(cc) = reply.cache_control {
        resp.insert_header(header::CACHE_CONTROL, *cc)?;
    }
    for (name, value) in reply.headers {
        resp.append_header(name, value)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session.set_keepalive(Some(60));
    session
        .write_response_header(Box::new(resp), head_only || body_len == 0)
        .await?;
    if !head_only && body_len > 0 {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

/// Headers for our pages (SECURITY.md "Pages and forms") plus HSTS.
pub fn page_security_headers(
    resp: &mut ResponseHeader,
    rt: &Runtime,
    asset: bool,
    script: bool,
) -> pingora::Result<()> {
    resp.insert_header(header::STRICT_TRANSPORT_SECURITY, rt.hsts.clone())?;
    resp.insert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
    resp.insert_header(header::REFERRER_POLICY, "no-referrer")?;
    if asset {
        resp.insert_header(header::CACHE_CONTROL, "public, max-age=3600")?;
        resp.insert_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'",
        )?;
    } else {
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        let csp = if script { &rt.csp_script } else { &rt.csp };
        resp.insert_header(header::CONTENT_SECURITY_POLICY, csp.clone())?;
        resp.insert_header(header::X_FRAME_OPTIONS, "DENY")?;
    }
    Ok(())
}

/// A last-resort body when even the runtime is missing.
pub fn plain(status: u16) -> Bytes {
    Bytes::from(format!("portvakt: error {status}\n"))
}

/// Our pages' CSP. `form-action` must list every host we serve: Chrome applies
/// it to the redirect after the login POST, which goes to a service host.
pub fn csp(router: &crate::routing::Router) -> HeaderValue {
    let mut hosts: Vec<&str> = router.hosts().collect();
    hosts.sort_unstable();
    hosts.dedup();
    let form_action: String = hosts.iter().map(|h| format!(" https://{h}:*")).collect();
    let value = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'{form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The CSP of the pages that run `passkey.js`: our own script file and
/// nothing else (no inline script, no eval, no other origin), so the only
/// script a page can run is the one we ship.
pub fn with_our_script(csp: &HeaderValue) -> HeaderValue {
    let value = format!(
        "{}; script-src 'self'",
        csp.to_str().unwrap_or("default-src 'none'")
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| csp.clone())
}
