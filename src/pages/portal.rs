//! The portal host's front page: who you are, where you can go, log out.

use minijinja::context;

use super::{login_url, session_csrf, Reply, Req, SessionState};
use crate::gateway::Runtime;
use crate::policy::{decide, Decision};

/// GET / on the portal host.
pub fn front(rt: &Runtime, req: &Req<'_>) -> Reply {
    let here = format!("{}/", req.origin());
    let (id, session) = match &req.session {
        SessionState::Valid(id, s) => (id, s),
        SessionState::Ended => {
            return Reply::redirect(302, &login_url(rt, req.port_suffix, &here, Some("expired")))
        }
        SessionState::None => {
            return Reply::redirect(302, &login_url(rt, req.port_suffix, &here, None))
        }
    };
    let lang = req.lang;
    let realm = rt.config.realm(&session.realm);
    let internal = realm.is_some_and(|r| r.is_internal(req.client_ip));
    // List what this user may open now, from here.
    let services: Vec<_> = rt
        .config
        .services
        .iter()
        .filter(|s| decide(s, internal, Some(session)) == Decision::Allow)
        .map(|s| {
            let path = if s.path == "/" { "/" } else { s.path.as_str() };
            context! { name => s.name.as_str(), url => format!("https://{}{}{}", s.host, req.port_suffix, path) }
        })
        .collect();
    let methods: Vec<&str> = session.methods.iter().map(|m| m.as_str()).collect();
    let ctx = context! {
        user => context! {
            display_name => session.display_name.as_str(),
            username => session.user.as_str(),
            realm_title => realm.map(|r| r.title.get(lang)).unwrap_or(""),
            level => session.auth_level,
            methods => methods.join(", "),
        },
        services => services,
        internal => internal,
        logout => context! { action => "/.portvakt/logout", csrf => session_csrf(rt, id) },
    };
    Reply::html(
        200,
        rt.pages.render("portal.html", lang, req.request_id, ctx),
    )
}
