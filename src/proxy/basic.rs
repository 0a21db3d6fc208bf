//! Basic authentication for the proxy: `Authorization: Basic` credentials
//! from internal clients on services that allow them (checked against the
//! realm's directory, throttled, cached), and the 401 challenge.

use std::sync::Arc;

use http::header;
use pingora::proxy::Session;

use super::{accept_language, Ctx, Proxy};
use crate::audit::{Event, Outcome, Reason};
use crate::basic::{self, BasicCache};
use crate::config::model::Service;
use crate::directory::Verdict;
use crate::gateway::Runtime;
use crate::pages::{self, Reply};
use crate::regulation::{Completed, Factor, UserKey};
use crate::session::{Method, NewSession, Session as UserSession};

/// What the `Authorization` header gave.
pub(super) enum BasicOutcome {
    /// Valid credentials: a one-factor identity (possibly cached).
    Identity(Arc<UserSession>),
    /// Credentials were sent but refused (wrong, throttled, no directory).
    Refused,
    /// No Basic credentials on the request.
    Absent,
}

impl Proxy {
    /// Identity from `Authorization: Basic` (internal clients, services that allow it).
    pub(super) async fn basic_identity(
        &self,
        session: &Session,
        ctx: &Ctx,
        rt: &Runtime,
        service: &Service,
    ) -> BasicOutcome {
        let Some(creds) = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| basic::parse(v.as_bytes()))
        else {
            return BasicOutcome::Absent;
        };
        let realm = rt.realm_for(&service.realms).clone();
        let now = self.gw.clock.now_ms();
        let key = BasicCache::key(&rt.signer, &realm.id, &creds);
        if let Some(s) = rt.basic_cache.get(&key, now) {
            // Remembered credentials do not outlive a lock or block: then
            // the attempt goes the normal way, which refuses it.
            let user = UserKey::new(&realm.id, &s.user);
            if rt
                .regulator
                .check(&user, ctx.client_ip, now)
                .await
                .is_none()
            {
                return BasicOutcome::Identity(s);
            }
        }
        let Some(directory) = rt.directories.get(&realm.id) else {
            return BasicOutcome::Refused;
        };
        let audit = |result: Outcome, reason: Reason| {
            let mut ev = self.gw.event(
                Event::Login,
                result,
                reason,
                Some(&creds.user),
                Some(&realm.id),
                ctx.client_ip,
                ctx.internal,
                &ctx.request_id,
            );
            ev.method = Some("basic");
            ev.host = Some(&ctx.host);
            self.gw.audit(rt, ev);
        };
        // The same rules as the login form: a locked user or blocked address
        // never reaches the directory and waits as long as a check takes.
        let typed = UserKey::new(&realm.id, &creds.user);
        let _attempt = match rt.regulator.begin(&typed, ctx.client_ip, now).await {
            Ok(attempt) => attempt,
            Err(block) => {
                rt.regulator.wait_like_check(&realm.id).await;
                audit(Outcome::Failure, block.reason());
                return BasicOutcome::Refused;
            }
        };
        let started = std::time::Instant::now();
        let verdict = directory.check(&creds.user, &creds.password).await;
        if verdict.is_ok() {
            rt.regulator.note_check(&realm.id, started.elapsed());
        }
        match verdict {
            Ok(Verdict::Valid(user)) => {
                let canonical = UserKey::new(&realm.id, &user.username);
                if let Some(block) = rt.regulator.check(&canonical, ctx.client_ip, now).await {
                    audit(Outcome::Failure, block.reason());
                    return BasicOutcome::Refused;
                }
                // Basic is a one-factor login complete with the password.
                rt.regulator
                    .succeeded(&canonical, Completed::Password, now)
                    .await;
                rt.regulator
                    .succeeded(&typed, Completed::Password, now)
                    .await;
                audit(Outcome::Success, Reason::Ok);
                let s = Arc::new(UserSession::new(
                    NewSession {
                        user: user.username,
                        realm: realm.id.clone(),
                        groups: user.groups,
                        email: user.email,
                        display_name: user.display_name,
                        auth_level: 1,
                        methods: vec![Method::Password],
                        internal: true,
                        ip: ctx.client_ip,
                    },
                    now,
                ));
                rt.basic_cache.put(key, s.clone(), now);
                BasicOutcome::Identity(s)
            }
            Ok(other) => {
                let escalation = rt
                    .regulator
                    .failed(Some(&typed), ctx.client_ip, Factor::Password, now)
                    .await;
                audit(Outcome::Failure, other.reason());
                if let Some(why) = escalation.lockout_reason() {
                    let ev = self.gw.event(
                        Event::Lockout,
                        Outcome::Info,
                        why,
                        Some(&creds.user),
                        Some(&realm.id),
                        ctx.client_ip,
                        ctx.internal,
                        &ctx.request_id,
                    );
                    self.gw.audit(rt, ev);
                }
                // As on the login form: a block is an event of its own, so
                // the lockout metric and `audit report` count it.
                if escalation.ip_blocked {
                    let ev = self.gw.event(
                        Event::IpBlock,
                        Outcome::Info,
                        Reason::TooManyFailures,
                        None,
                        Some(&realm.id),
                        ctx.client_ip,
                        ctx.internal,
                        &ctx.request_id,
                    );
                    self.gw.audit(rt, ev);
                }
                BasicOutcome::Refused
            }
            Err(e) => {
                tracing::error!(error = %e, "directory failed during Basic authentication");
                audit(Outcome::Failure, Reason::DirectoryUnavailable);
                BasicOutcome::Refused
            }
        }
    }

    /// The 401 answer asking for Basic credentials, with a branded page body.
    pub(super) fn basic_challenge(&self, session: &Session, ctx: &Ctx, rt: &Runtime) -> Reply {
        let lang = rt.pages.lang(accept_language(session));
        let realm = rt.pages.t(lang, "basic_realm").replace(['"', '\\'], "");
        pages::message_with(
            rt,
            lang,
            &ctx.request_id,
            401,
            "forbidden_heading",
            "forbidden_text",
            None,
        )
        .header(
            header::WWW_AUTHENTICATE,
            &format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        )
        .decision("login")
    }
}
