//! What the proxy answers for each policy decision: pass upstream, send to
//! login, step up, or a branded refusal or "closed" page.

use std::sync::Arc;

use super::{wants_html, Ctx, Proxy};
use crate::config::model::Service;
use crate::gateway::Runtime;
use crate::pages::{self, Reply, SessionState};
use crate::policy::{Decision, DenyReason};
use crate::session::cookie;
use crate::session::Session as UserSession;
use pingora::proxy::Session;

impl Proxy {
    /// Act on `decision` for this request; `Ok(false)` lets it go upstream.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        service: &Service,
        state: &SessionState,
        identity: Option<Arc<UserSession>>,
        decision: Decision,
    ) -> pingora::Result<bool> {
        // The access log names the user of every decision, refusals included:
        // "was anything refused, and to whom" is an auditor's question. Only
        // an allowed request carries identity headers upstream.
        ctx.session = identity.clone();
        if service.assertion {
            ctx.session_key = match (state, &identity) {
                (SessionState::Valid(id, s), Some(i)) if Arc::ptr_eq(s, i) => Some(id.key().0),
                _ => None,
            };
        }
        match decision {
            Decision::Allow => Ok(false),
            Decision::Login => {
                let reply = if service.basic_auth && ctx.internal && !wants_html(session) {
                    self.basic_challenge(session, ctx, rt)
                } else {
                    let here = self.here(session, ctx);
                    let ended = matches!(state, SessionState::Ended);
                    if ended {
                        ctx.reason = "session_ended";
                    }
                    let cookies = cookie_header(session);
                    let notice = ended.then_some("expired");
                    let mut r = pages::login_redirect(
                        rt,
                        &ctx.host,
                        &ctx.port_suffix,
                        cookies.as_deref(),
                        &here,
                        notice,
                    );
                    if ended {
                        r = r.cookie(cookie::clear(cookie::SESSION));
                    }
                    r
                };
                self.reply(session, ctx, rt, reply.decision("login")).await
            }
            Decision::StepUp => {
                // A stored session whose realm offers a second factor here is
                // sent to the second step and comes back; otherwise explain.
                let can_step_up = !ctx.used_basic
                    && identity
                        .as_ref()
                        .and_then(|s| rt.config.realm(&s.realm))
                        .is_some_and(|r| r.second_factors(ctx.internal).next().is_some());
                let reply = if can_step_up {
                    let here = self.here(session, ctx);
                    // Back through a handoff bound to this browser, as after a login.
                    let (nonce, rd) = if ctx.host == rt.config.portal_host {
                        (None, pages::return_token(rt, &here))
                    } else {
                        let (set, binding) =
                            pages::handoff_nonce(cookie_header(session).as_deref());
                        (Some(set), pages::bound_return_token(rt, &here, &binding))
                    };
                    let r = Reply::redirect(
                        302,
                        &format!(
                            "https://{}{}/.portvakt/second?rd={rd}",
                            rt.config.portal_host, ctx.port_suffix
                        ),
                    );
                    match nonce {
                        Some(set) => r.cookie(set),
                        None => r,
                    }
                } else {
                    self.message(session, ctx, rt, 403, "step_up_heading", "step_up_text")
                };
                self.reply(session, ctx, rt, reply.decision("step_up"))
                    .await
            }
            Decision::Deny(why) => {
                let (h, t) = match why {
                    DenyReason::Policy => ("forbidden_heading", "forbidden_text"),
                    DenyReason::Groups => ("groups_heading", "groups_text"),
                    DenyReason::Realm => ("realm_heading", "realm_text"),
                    DenyReason::Network => ("network_heading", "network_text"),
                    DenyReason::Method => ("method_heading", "method_text"),
                };
                let reply = self.message(session, ctx, rt, 403, h, t);
                self.reply(session, ctx, rt, reply.decision("deny")).await
            }
            Decision::Closed => {
                let now = self.gw.clock.now_timestamp();
                let reply =
                    pages::closed(rt, self.lang(session, rt), &ctx.request_id, service, now);
                self.reply(session, ctx, rt, reply.decision("closed")).await
            }
        }
    }
}

/// The request's cookies as one string (HTTP/2 may split them over several
/// `Cookie` headers).
pub(super) fn cookie_header(session: &Session) -> Option<String> {
    let values: Vec<&str> = session
        .req_header()
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join("; "))
}
