//! Policy: given a service, the client's network and the session (if any),
//! decide whether the request may pass. Evaluated on every request.

pub mod hours;

use std::fmt;
use std::str::FromStr;

use crate::config::model::Service;
use crate::session::Session;

/// A service's access policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// No login; identity headers are still stripped.
    Bypass,
    /// A password is enough, wherever the client is.
    OneFactor,
    /// Two factors, wherever the client is.
    TwoFactor,
    /// Nobody gets in.
    Deny,
    /// One factor on the realm's internal networks, two elsewhere (default).
    TwoFactorOffsite,
}

impl Policy {
    /// A service's policy when it names none.
    pub const DEFAULT: Policy = Policy::TwoFactorOffsite;

    /// Every policy, in the order the reference lists them.
    pub const ALL: [Policy; 5] = [
        Policy::Bypass,
        Policy::OneFactor,
        Policy::TwoFactor,
        Policy::Deny,
        Policy::TwoFactorOffsite,
    ];

    /// The names accepted in the config file.
    pub fn names() -> Vec<&'static str> {
        Policy::ALL.map(Policy::as_str).to_vec()
    }

    /// The name used in the config file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
            Policy::TwoFactorOffsite => "two_factor_offsite",
        }
    }

    /// The authentication level needed, given where the client is.
    pub fn required_level(self, internal: bool) -> u8 {
        match self {
            Policy::Bypass | Policy::Deny => 0,
            Policy::OneFactor => 1,
            Policy::TwoFactor => 2,
            Policy::TwoFactorOffsite => {
                if internal {
                    1
                } else {
                    2
                }
            }
        }
    }
}

impl FromStr for Policy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Policy::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Pass it upstream (with identity if there is a session).
    Allow,
    /// Send the browser to the login page.
    Login,
    /// The session is good but a second factor is needed.
    StepUp,
    /// Refused.
    Deny(DenyReason),
    /// Outside the service's opening hours.
    Closed,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The service's policy is `deny`.
    Policy,
    /// The user's realm is not one of the service's.
    Realm,
    /// The user lacks the required groups.
    Groups,
    /// The client's network is not one the service allows.
    Network,
    /// The login did not use a method the service asks for.
    Method,
}

impl Decision {
    /// Short name for the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Login => "login",
            Decision::StepUp => "step_up",
            Decision::Deny(_) => "deny",
            Decision::Closed => "closed",
        }
    }

    /// Reason for the access log.
    pub fn reason(self) -> &'static str {
        match self {
            Decision::Allow => "ok",
            Decision::Login => "no_session",
            Decision::StepUp => "second_factor_required",
            Decision::Deny(DenyReason::Policy) => "policy_deny",
            Decision::Deny(DenyReason::Realm) => "wrong_realm",
            Decision::Deny(DenyReason::Groups) => "missing_group",
            Decision::Deny(DenyReason::Network) => "network",
            Decision::Deny(DenyReason::Method) => "method",
            Decision::Closed => "outside_opening_hours",
        }
    }
}

/// Decide for `service`, a client that is `internal` to the session's (or the
/// service's) realm, and the session if there is one.
pub fn decide(service: &Service, internal: bool, session: Option<&Session>) -> Decision {
    decide_at(
        service,
        &Conditions {
            internal,
            client_ip: None,
            now: None,
        },
        session,
    )
}

/// Where and when a request is made, for the rules that depend on it.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// Internal to the relevant realm.
    pub internal: bool,
    /// The client address (for `networks:`); `None` skips that rule.
    pub client_ip: Option<std::net::IpAddr>,
    /// The time (for opening hours); `None` skips that rule.
    pub now: Option<jiff::Timestamp>,
}

/// Decide with every rule: policy, networks and opening hours first (they
/// hold for everyone, logged in or not), then realm, groups, level, methods.
/// The first rule that fails decides, like Authelia's rule order.
pub fn decide_at(service: &Service, c: &Conditions, session: Option<&Session>) -> Decision {
    if service.policy == Policy::Deny {
        return Decision::Deny(DenyReason::Policy);
    }
    if let Some(ip) = c.client_ip {
        if !service.networks.is_empty() && !crate::net::in_networks(&service.networks, ip) {
            return Decision::Deny(DenyReason::Network);
        }
    }
    if let (Some(hours), Some(now)) = (&service.hours, c.now) {
        if !hours.is_open(now) {
            return Decision::Closed;
        }
    }
    if service.policy == Policy::Bypass {
        return Decision::Allow;
    }
    let internal = c.internal;
    let Some(session) = session else {
        return Decision::Login;
    };
    if !service.realms.is_empty() && !service.realms.contains(&session.realm) {
        return Decision::Deny(DenyReason::Realm);
    }
    if !groups_match(service, &session.groups) {
        return Decision::Deny(DenyReason::Groups);
    }
    if session.auth_level < service.policy.required_level(internal) {
        return Decision::StepUp;
    }
    if !service.methods.is_empty() && !session.methods.iter().any(|m| service.methods.contains(m)) {
        return Decision::Deny(DenyReason::Method);
    }
    Decision::Allow
}

fn groups_match(service: &Service, groups: &[String]) -> bool {
    if service.groups.is_empty() {
        return true;
    }
    let has = |g: &String| groups.iter().any(|x| x == g);
    if service.groups_all {
        service.groups.iter().all(has)
    } else {
        service.groups.iter().any(has)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Method;
    use crate::testutil::{service_with, session_with};

    #[test]
    fn offsite_needs_two_factors_outside_only() {
        let svc = service_with(Policy::TwoFactorOffsite, &[], false);
        let one = session_with(1, &["staff"]);
        assert_eq!(decide(&svc, true, Some(&one)), Decision::Allow);
        assert_eq!(decide(&svc, false, Some(&one)), Decision::StepUp);
        assert_eq!(decide(&svc, false, None), Decision::Login);
        let two = session_with(2, &["staff"]);
        assert_eq!(decide(&svc, false, Some(&two)), Decision::Allow);
    }

    #[test]
    fn bypass_and_deny_ignore_sessions() {
        let one = session_with(2, &[]);
        let svc = service_with(Policy::Bypass, &[], false);
        assert_eq!(decide(&svc, false, None), Decision::Allow);
        let svc = service_with(Policy::Deny, &[], false);
        assert_eq!(
            decide(&svc, true, Some(&one)),
            Decision::Deny(DenyReason::Policy)
        );
    }

    #[test]
    fn groups_any_and_all() {
        let s = session_with(1, &["a", "b"]);
        let any = service_with(Policy::OneFactor, &["x", "b"], false);
        assert_eq!(decide(&any, true, Some(&s)), Decision::Allow);
        let all = service_with(Policy::OneFactor, &["a", "x"], true);
        assert_eq!(
            decide(&all, true, Some(&s)),
            Decision::Deny(DenyReason::Groups)
        );
        let all_ok = service_with(Policy::OneFactor, &["a", "b"], true);
        assert_eq!(decide(&all_ok, true, Some(&s)), Decision::Allow);
    }

    #[test]
    fn two_factor_everywhere() {
        let svc = service_with(Policy::TwoFactor, &[], false);
        let one = session_with(1, &[]);
        assert_eq!(decide(&svc, true, Some(&one)), Decision::StepUp);
    }

    #[test]
    fn networks_hours_and_methods_are_checked_for_everyone() {
        use crate::policy::hours::{parse_days, Hours, Window};
        let mut svc = service_with(Policy::OneFactor, &[], false);
        svc.networks = vec!["10.0.0.0/8".parse().unwrap()];
        let outside = Conditions {
            internal: true,
            client_ip: Some("192.0.2.1".parse().unwrap()),
            now: None,
        };
        let inside = Conditions {
            internal: true,
            client_ip: Some("10.1.2.3".parse().unwrap()),
            now: None,
        };
        let s = session_with(1, &[]);
        assert_eq!(
            decide_at(&svc, &outside, Some(&s)),
            Decision::Deny(DenyReason::Network)
        );
        assert_eq!(
            decide_at(&svc, &outside, None),
            Decision::Deny(DenyReason::Network),
            "before any login"
        );
        assert_eq!(decide_at(&svc, &inside, Some(&s)), Decision::Allow);

        svc.hours = Some(Hours {
            zone: jiff::tz::TimeZone::get("Europe/Stockholm").unwrap(),
            windows: vec![Window {
                days: parse_days("mon-fri").unwrap(),
                from: 6 * 60,
                to: 20 * 60,
            }],
            holidays: vec![],
        });
        let sunday = Conditions {
            now: Some("2026-11-29T12:00:00Z".parse().unwrap()),
            ..inside
        };
        let monday = Conditions {
            now: Some("2026-11-30T12:00:00Z".parse().unwrap()),
            ..inside
        };
        assert_eq!(
            decide_at(&svc, &sunday, None),
            Decision::Closed,
            "closed before login"
        );
        assert_eq!(decide_at(&svc, &monday, Some(&s)), Decision::Allow);

        svc.methods = vec![Method::Totp, Method::Token];
        assert_eq!(
            decide_at(&svc, &monday, Some(&s)),
            Decision::Deny(DenyReason::Method)
        );
        let with_app = session_with(2, &[]).with_second_factor(Method::Totp, 0);
        assert_eq!(decide_at(&svc, &monday, Some(&with_app)), Decision::Allow);
    }
}
