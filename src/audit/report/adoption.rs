//! The report's answer to "what do the SMS codes cost, and who should move
//! to the authenticator app?" (the seed's reason for the app: SMS costs
//! money, the app does not): codes sent per channel with their estimated
//! cost, the share of active users on each login method, and the users who
//! log in from outside most often by SMS.
//!
//! Definitions (the README's audit report section says the same):
//!
//! - A **code sent** is an auth event `code_sent` with result `success`
//!   (reason `sent` for a login, `enrolment` for confirming a new number),
//!   counted per channel (its `method`: `sms`, `email`). A failed send
//!   (`delivery_failed`) is not counted as sent: the provider refused or did
//!   not answer. One code is one message: the shipped texts are under 160
//!   GSM characters with a portal host of up to about 25 characters.
//! - The **estimated cost** is SMS codes sent × `notify.sms.cost_per_message`.
//!   E-mail is not priced.
//! - An **active user** completed at least one login step in the period:
//!   an auth event `login` with result `success`, any method. The password
//!   alone counts, even where the second factor then failed or never
//!   arrived: the person is using the system, and the log does not say
//!   whether the service asked for more.
//! - A user **uses a method** if they completed at least one login step
//!   with it in the period (`login`, `success`, that `method`). A user counts
//!   for every method used, so the shares add up to more than 100 %.
//! - **Location** is the event's `network`, `internal` or `external`, as
//!   the gateway recorded it.
//! - The **users who log in from outside most often by SMS** are ranked by
//!   their `login` successes with method `sms` on network `external`, most
//!   first, ties by name; the report's `--top` rows (default 10).
//!
//! Users are told apart by name, as elsewhere in the report. Memory grows
//! with the number of distinct users (a set per method, two counters per
//! SMS user): thousands of users are a few hundred kilobytes.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::summary::{ChannelRow, Codes, MethodRow, Methods, SmsUserRow};
use super::{or_dash, remember, with};
use crate::audit::logread::Record;
use crate::audit::vocabulary::{Event, Outcome, Reason};
use crate::notify::config::Price;

/// The channels every report lists, sent or not, so "no SMS at all" reads
/// as a zero rather than a missing row.
const CHANNELS: [&str; 2] = ["sms", "email"];

/// Code sends of one channel.
#[derive(Debug, Default, Clone, Copy)]
struct Sends {
    login: u64,
    enrolment: u64,
    delivery_failed: u64,
    not_sent: u64,
}

/// What this part of the report counts, line by line.
#[derive(Debug, Default)]
pub(super) struct AdoptionTally {
    sends: HashMap<String, Sends>,
    /// Users who completed a login step with each method.
    method_users: HashMap<String, HashSet<String>>,
    /// Successful login steps with each method.
    method_logins: HashMap<String, u64>,
    active: HashSet<String>,
    /// `login` successes by SMS from outside, per user.
    sms_outside: HashMap<String, u64>,
    /// SMS codes sent (any reason, any network), per user.
    sms_codes: HashMap<String, u64>,
}

impl AdoptionTally {
    /// Count one auth-log record.
    pub(super) fn add(&mut self, r: &Record<'_>) {
        let f = &r.f;
        let event = f.event.as_deref();
        let success = f.result.as_deref() == Some(Outcome::Success.as_str());
        let method = or_dash(f.method.as_deref());
        if event == Some(Event::CodeSent.as_str()) {
            let reason = f.reason.as_deref();
            with(&mut self.sends, method, |s| {
                match (success, reason) {
                    (true, Some(r)) if r == Reason::Enrolment.as_str() => s.enrolment += 1,
                    (true, _) => s.login += 1,
                    (false, Some(r)) if r == Reason::DeliveryFailed.as_str() => {
                        s.delivery_failed += 1
                    }
                    (false, _) => s.not_sent += 1,
                };
            });
            if let (true, "sms", Some(user)) = (success, method, f.user.as_deref()) {
                with(&mut self.sms_codes, user, |n| *n += 1);
            }
            return;
        }
        if event != Some(Event::Login.as_str()) || !success {
            return;
        }
        with(&mut self.method_logins, method, |n| *n += 1);
        let Some(user) = f.user.as_deref() else {
            return;
        };
        remember(&mut self.active, user);
        with(&mut self.method_users, method, |users| {
            remember(users, user)
        });
        if method == "sms" && f.network.as_deref() == Some("external") {
            with(&mut self.sms_outside, user, |n| *n += 1);
        }
    }

    /// Codes per channel (priced if `price` is given).
    pub(super) fn codes(&self, price: Option<&Price>) -> Codes {
        let mut rows: BTreeMap<&str, Sends> =
            CHANNELS.iter().map(|c| (*c, Sends::default())).collect();
        for (channel, s) in &self.sends {
            rows.insert(channel, *s);
        }
        let known = |c: &str| {
            CHANNELS
                .iter()
                .position(|k| *k == c)
                .unwrap_or(CHANNELS.len())
        };
        let mut channels: Vec<ChannelRow> = rows
            .into_iter()
            .map(|(channel, s)| {
                let sent = s.login + s.enrolment;
                ChannelRow {
                    channel: channel.to_owned(),
                    sent,
                    login: s.login,
                    enrolment: s.enrolment,
                    delivery_failed: s.delivery_failed,
                    not_sent: s.not_sent,
                    estimated_cost: price.filter(|_| channel == "sms").map(|p| p.of(sent)),
                }
            })
            .collect();
        // sms, email, then anything else by name (the map sorted those).
        channels.sort_by_key(|c| known(&c.channel));
        Codes {
            cost_per_message: price.cloned(),
            channels,
        }
    }

    /// The share of active users on each method, most used first.
    pub(super) fn methods(&self) -> Methods {
        let active = self.active.len() as u64;
        let mut rows: Vec<MethodRow> = self
            .method_users
            .iter()
            .map(|(method, users)| {
                let users = users.len() as u64;
                MethodRow {
                    method: method.clone(),
                    users,
                    share_percent: percent(users, active),
                    logins: self.method_logins.get(method).copied().unwrap_or(0),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.users.cmp(&a.users).then_with(|| a.method.cmp(&b.method)));
        Methods {
            active_users: active,
            methods: rows,
        }
    }

    /// The `top` users with the most SMS logins from outside.
    pub(super) fn sms_from_outside(&self, top: usize, price: Option<&Price>) -> Vec<SmsUserRow> {
        let mut ranked: Vec<(&String, u64)> =
            self.sms_outside.iter().map(|(u, n)| (u, *n)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked.truncate(top);
        ranked
            .into_iter()
            .map(|(user, sms_logins)| {
                let sms_codes = self.sms_codes.get(user).copied().unwrap_or(0);
                let mut methods: Vec<String> = self
                    .method_users
                    .iter()
                    .filter(|(_, users)| users.contains(user))
                    .map(|(m, _)| m.clone())
                    .collect();
                methods.sort();
                SmsUserRow {
                    user: user.clone(),
                    sms_logins,
                    sms_codes,
                    estimated_cost: price.map(|p| p.of(sms_codes)),
                    methods,
                }
            })
            .collect()
    }
}

/// `part` of `whole` in per cent, one decimal, rounded half up (0 of 0 is 0).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    let tenths = (u128::from(part) * 1000 + u128::from(whole) / 2) / u128::from(whole);
    tenths as f64 / 10.0
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_have_one_decimal_rounded_half_up() {
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(1, 8), 12.5);
        assert_eq!(percent(1, 16), 6.3);
        assert_eq!(percent(3, 3), 100.0);
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(u64::MAX, u64::MAX), 100.0);
    }
}
