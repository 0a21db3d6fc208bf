//! The auth log's vocabulary: every `event`, `result` and `reason` the
//! gateway writes, each spelt once here. The writer ([`super::AuthEvent`]),
//! the metrics' labels, `audit query`'s known values, `audit report` and the
//! auth-log table in docs/audit.md (a test compares them) all take their
//! strings from these enums, so the vocabulary cannot drift between them.
//!
//! The strings are the log format: changing one breaks every reader of old
//! logs, so a variant's string never changes once released.

use std::fmt;
use std::str::FromStr;

/// Defines a vocabulary enum: its variants with their one string each, the
/// list of all of them, and the conversions to and from that string.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order docs/audit.md lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one string form, as written to the auth log.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = Unknown;

            fn from_str(s: &str) -> Result<Self, Unknown> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| Unknown { what: $what, value: s.to_owned() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// A string that is not one of a vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {what} portvakt writes")]
pub struct Unknown {
    /// `an event`, `a result`, `a reason`.
    pub what: &'static str,
    /// The string given.
    pub value: String,
}

vocabulary! {
    /// What happened (the `event` field).
    Event, "an event" {
        /// The record that starts every auth-log file's hash chain.
        ChainAnchor = "chain_anchor",
        /// A login step that proves something: the password (form or
        /// Basic), or a second factor's success.
        Login = "login",
        /// A second-factor code that was refused.
        SecondFactor = "second_factor",
        /// A one-time code was (or could not be) sent.
        CodeSent = "code_sent",
        /// A user was locked after failures.
        Lockout = "lockout",
        /// A client address was blocked after failures.
        IpBlock = "ip_block",
        /// The user logged out.
        Logout = "logout",
        /// A session ended by itself.
        Expired = "expired",
        /// The password again before a self-service change.
        Reauth = "reauth",
        /// A self-service change of the user's own enrolments.
        Enrolment = "enrolment",
        /// A login handed to a service host was refused.
        Handoff = "handoff",
        /// An admin command (`portvakt token|totp|enrolments …`).
        Admin = "admin",
        /// A session ended through the admin listener's sessions API.
        SessionRevoked = "session_revoked",
        /// The shared state or the durable store stopped answering
        /// (`failure`) or answers again (`success`): one record per outage
        /// edge, per gateway.
        Backend = "backend",
    }
}

vocabulary! {
    /// How it went (the `result` field).
    Outcome, "a result" {
        /// The step succeeded.
        Success = "success",
        /// The step was refused or failed.
        Failure = "failure",
        /// A consequence or a fact, neither success nor failure (a lockout,
        /// an expiry, a chain anchor).
        Info = "info",
    }
}

impl Outcome {
    /// `success` if `ok`, else `failure`.
    pub fn of(ok: bool) -> Outcome {
        if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

vocabulary! {
    /// Why (the `reason` field).
    Reason, "a reason" {
        /// The step succeeded (a password, a re-auth).
        Ok = "ok",
        /// A one-factor session completed its second factor.
        SecondFactor = "second_factor",
        /// The directory knows the user, but not with this password.
        WrongPassword = "wrong_password",
        /// The directory does not know the user.
        UnknownUser = "unknown_user",
        /// The account is disabled in the directory.
        Disabled = "disabled",
        /// The user is locked: the directory was not asked.
        Locked = "locked",
        /// The client address is blocked: the directory was not asked.
        IpBlocked = "ip_blocked",
        /// As many attempts as the limit has left were already under way.
        TooManyAtOnce = "too_many_at_once",
        /// An empty or overlong name, or no password.
        EmptyOrInvalidInput = "empty_or_invalid_input",
        /// The directory could not be asked.
        DirectoryUnavailable = "directory_unavailable",
        /// A wrong one-time code.
        WrongCode = "wrong_code",
        /// The code is older than its validity.
        Expired = "expired",
        /// The code's tries are used up.
        TooManyTries = "too_many_tries",
        /// No code was sent for this login (or it was used).
        NoCodeSent = "no_code_sent",
        /// A code sent by one channel typed as the other's.
        WrongChannel = "wrong_channel",
        /// An authenticator or token code that was already used.
        Replay = "replay",
        /// A hardware token asked for its next code to resynchronise.
        TokenResyncStarted = "token_resync_started",
        /// A login code asked for before the resend wait was over.
        Cooldown = "cooldown",
        /// The user's hourly budget of login codes is used up.
        UserBudget = "user_budget",
        /// The address's hourly budget of login codes is used up.
        IpBudget = "ip_budget",
        /// An enrolment code asked for before the resend wait was over.
        ResendCooldown = "resend_cooldown",
        /// The user's hourly code budget is used up (enrolment).
        UserCodeBudget = "user_code_budget",
        /// The address's hourly code budget is used up (enrolment).
        IpCodeBudget = "ip_code_budget",
        /// A login code was handed to the provider.
        Sent = "sent",
        /// The provider could not take the code.
        DeliveryFailed = "delivery_failed",
        /// A code confirming a new SMS number was sent.
        Enrolment = "enrolment",
        /// The user was locked after too many failures in the window.
        TooManyFailures = "too_many_failures",
        /// The user was held after a run of consecutive failures.
        TooManyConsecutiveFailures = "too_many_consecutive_failures",
        /// The handoff code was redeemed in a browser that did not start the login.
        NotThisBrowser = "not_this_browser",
        /// Another user's live session is in this browser on the host.
        OtherUserLoggedIn = "other_user_logged_in",
        /// The user logged out.
        User = "user",
        /// No use for the idle timeout.
        Idle = "idle",
        /// Older than the absolute lifetime.
        Lifetime = "lifetime",
        /// An authenticator app was added.
        TotpAdded = "totp_added",
        /// An authenticator app was removed.
        TotpRemoved = "totp_removed",
        /// The code confirming a new authenticator app was wrong.
        TotpWrongCode = "totp_wrong_code",
        /// A passkey or security key was registered.
        PasskeyAdded = "passkey_added",
        /// A passkey or security key was removed.
        PasskeyRemoved = "passkey_removed",
        /// The browser's answer registering a passkey did not verify.
        PasskeyInvalid = "passkey_invalid",
        /// The key is already registered (to this or another user).
        PasskeyDuplicate = "passkey_duplicate",
        /// A passkey login's signature, challenge, origin or credential did
        /// not verify.
        PasskeyRefused = "passkey_refused",
        /// A passkey's signature counter did not move forward: two copies
        /// of the key may exist.
        CounterRegression = "counter_regression",
        /// A login with a passkey alone for a user who has none registered.
        NoPasskey = "no_passkey",
        /// A login with a passkey alone whose authenticator did not verify
        /// the user (no PIN or fingerprint): possession alone is one factor.
        UserNotVerified = "user_not_verified",
        /// An SMS number was added.
        SmsAdded = "sms_added",
        /// An SMS number was removed.
        SmsRemoved = "sms_removed",
        /// Admin: hardware tokens imported.
        TokenImport = "token_import",
        /// Admin: a token assigned to a user.
        TokenAssign = "token_assign",
        /// Admin: a token taken from its user.
        TokenUnassign = "token_unassign",
        /// Admin: a token resynchronised.
        TokenResync = "token_resync",
        /// Admin: an authenticator app added for a user.
        TotpAdd = "totp_add",
        /// Admin: an authenticator app removed.
        TotpRemove = "totp_remove",
        /// Admin: a user's enrolments listed.
        EnrolmentsList = "enrolments_list",
        /// Admin: an SMS number removed.
        SmsRemove = "sms_remove",
        /// Admin: all of a user's enrolments removed.
        ResetUser = "reset_user",
        /// Admin: the rows of a one-realm store listed.
        StorageLegacy = "storage_legacy",
        /// Admin: a one-realm store's rows adopted into a realm.
        StorageAdopt = "storage_adopt",
        /// Admin: every enrolment copied into another, empty store.
        StorageCopy = "storage_copy",
        /// Admin: a user's lockout or hold, or an address block, cleared.
        LockoutCleared = "lockout_cleared",
        /// A session revoked by an administrator.
        Admin = "admin",
        /// The shared state (memory or Redis) did not answer.
        StateUnavailable = "state_unavailable",
        /// The shared state answers again.
        StateRestored = "state_restored",
        /// The durable enrolment store did not answer.
        StorageUnavailable = "storage_unavailable",
        /// The durable enrolment store answers again.
        StorageRestored = "storage_restored",
        /// The first record ever of a chain.
        NewChain = "new_chain",
        /// A rotated or recreated file continuing the chain.
        NewFile = "new_file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn check<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + FromStr + PartialEq + fmt::Debug,
        <T as FromStr>::Err: fmt::Debug,
    {
        let mut seen = BTreeSet::new();
        for &v in all {
            let s = as_str(v);
            assert!(seen.insert(s), "{s} is spelt twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s} is not snake_case"
            );
            assert_eq!(s.parse::<T>().unwrap(), v, "{s} does not round-trip");
        }
    }

    #[test]
    fn every_string_is_unique_and_round_trips() {
        check(Event::ALL, Event::as_str);
        check(Outcome::ALL, Outcome::as_str);
        check(Reason::ALL, Reason::as_str);
        assert!("wrong-password".parse::<Reason>().is_err());
        assert!("Login".parse::<Event>().is_err());
    }

    #[test]
    fn serialises_as_its_string() {
        let json = serde_json::to_string(&(Event::IpBlock, Outcome::Info, Reason::NotThisBrowser));
        assert_eq!(json.unwrap(), r#"["ip_block","info","not_this_browser"]"#);
    }

    /// The backquoted words in the auth-log table's row for `field`, in
    /// docs/audit.md (where auditors read what each value means).
    fn documented(field: &str) -> BTreeSet<String> {
        let doc = include_str!("../../docs/audit.md");
        let section = doc
            .split("## Auth log")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/audit.md has an `## Auth log` section");
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| `{field}` |")))
            .unwrap_or_else(|| panic!("the auth-log table has no `{field}` row"));
        let meaning = row.split('|').nth(3).expect("a meaning column");
        meaning
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    fn spelt<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> BTreeSet<String> {
        all.iter().map(|&v| as_str(v).to_owned()).collect()
    }

    #[test]
    fn the_audit_doc_lists_exactly_the_vocabulary() {
        assert_eq!(documented("event"), spelt(Event::ALL, Event::as_str));
        assert_eq!(documented("result"), spelt(Outcome::ALL, Outcome::as_str));
        assert_eq!(documented("reason"), spelt(Reason::ALL, Reason::as_str));
    }
}
