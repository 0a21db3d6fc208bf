//! The portal host's front page. Without a session: the landing page where
//! users pick their group (realm) when there is more than one. With one:
//! the services this user may open now — given realm, groups, the methods
//! used and the client's network — with closed ones marked, links to the
//! self-service pages on the internal network, the idle logout time, and
//! a logout button.

use minijinja::context;

use super::{closed, login_url, session_csrf, Reply, Req, SessionState};
use crate::gateway::Runtime;
use crate::policy::{decide_at, Conditions, Decision};

/// GET / on the portal host; `now` decides which services are open.
pub fn front(rt: &Runtime, req: &Req<'_>, now: jiff::Timestamp) -> Reply {
    let here = format!("{}/", req.origin());
    let (id, session) = match &req.session {
        SessionState::Valid(id, s) => (id, s),
        SessionState::Ended => {
            return Reply::redirect(302, &login_url(rt, req.port_suffix, &here, Some("expired")))
        }
        SessionState::Unavailable => return super::login_down(rt, req),
        SessionState::None if rt.config.realms.len() > 1 => return landing(rt, req),
        SessionState::None => {
            return Reply::redirect(302, &login_url(rt, req.port_suffix, &here, None))
        }
    };
    let lang = req.lang;
    let realm = rt.config.realm(&session.realm);
    let internal = realm.is_some_and(|r| r.is_internal(req.client_ip));
    let services: Vec<_> = rt
        .config
        .services
        .iter()
        .filter_map(|s| {
            let at = |now| Conditions {
                internal,
                client_ip: Some(req.client_ip),
                now,
            };
            let closed_now = match decide_at(s, &at(Some(now)), Some(session)) {
                Decision::Allow => None,
                // Listed as closed only if it would be open to this user.
                Decision::Closed if decide_at(s, &at(None), Some(session)) == Decision::Allow => {
                    Some(closed::opens(s, lang, now))
                }
                _ => return None,
            };
            let path = if s.path == "/" { "/" } else { s.path.as_str() };
            Some(context! {
                name => s.name.as_str(),
                url => format!("https://{}{}{}", s.host, req.port_suffix, path),
                description => s.description.as_ref().map(|d| d.get(lang)),
                icon => s.icon.as_ref().map(|_| format!("{}/icons/{}", super::ASSET_BASE, s.index)),
                closed => closed_now.as_ref().map(|opens| match opens {
                    Some(w) => rt.pages.t(lang, "closed_label").replace("{opens}", w),
                    None => rt.pages.t(lang, "closed_text_unknown").to_owned(),
                }),
            })
        })
        .collect();
    let idle_minutes = rt.config.idle_timeout.as_secs() / 60;
    let logout_at = now
        .checked_add(jiff::SignedDuration::try_from(rt.config.idle_timeout).unwrap_or_default())
        .unwrap_or(now)
        .to_zoned(rt.config.time_zone.clone());
    let idle_left = rt
        .pages
        .t(lang, "idle_left")
        .replace(
            "{time}",
            &format!("{:02}:{:02}", logout_at.hour(), logout_at.minute()),
        )
        .replace("{minutes}", &idle_minutes.to_string());
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
        idle_left => idle_left,
        logout => context! { action => "/.portvakt/logout", csrf => session_csrf(rt, id) },
    };
    Reply::html(
        200,
        rt.pages.render("portal.html", lang, req.request_id, ctx),
    )
}

/// The landing page: one link per realm, with its help text (seed:
/// "Pedagogisk personal" / "Övriga anställda").
fn landing(rt: &Runtime, req: &Req<'_>) -> Reply {
    let lang = req.lang;
    let realms: Vec<_> = rt
        .config
        .realms
        .iter()
        .map(|r| {
            context! {
                title => r.title.get(lang),
                help => r.help.as_ref().map(|h| h.get(lang)),
                href => format!("/.portvakt/login?realm={}", r.id),
            }
        })
        .collect();
    let ctx = context! { realms => realms };
    Reply::html(
        200,
        rt.pages.render("landing.html", lang, req.request_id, ctx),
    )
}
