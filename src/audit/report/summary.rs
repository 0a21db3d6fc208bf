//! What `portvakt audit report` found, as `--json` prints it and the text
//! page is rendered from: the report's output schema.

use std::path::PathBuf;

use serde::Serialize;

use crate::notify::config::{Amount, Price};

/// The report as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Asked for and seen.
    pub period: PeriodSummary,
    /// Files read.
    pub files: Vec<FileSummary>,
    /// Headline numbers.
    pub totals: Totals,
    /// Each gateway's share, by name (`-`: lines from before gateways had names).
    pub gateways: Vec<GatewayRow>,
    /// Login steps by method and network.
    pub logins: Vec<LoginRow>,
    /// The share of active users on each method.
    pub methods: Methods,
    /// One-time codes sent, per channel, with the estimated SMS cost.
    pub codes: Codes,
    /// The users with the most SMS logins from outside (top N): the ones
    /// worth moving to the authenticator app.
    pub sms_from_outside: Vec<SmsUserRow>,
    /// Auth lines with result `failure`, by event and reason.
    pub failures: Vec<FailureRow>,
    /// Lockout events by user (top N).
    pub lockouts: Vec<CountRow>,
    /// IP-block events by client address (top N).
    pub ip_blocks: Vec<CountRow>,
    /// Users with the most refusals (top N).
    pub refused_users: Vec<RefusedRow>,
    /// Client addresses with the most refusals (top N).
    pub refused_ips: Vec<RefusedRow>,
    /// Every service seen.
    pub services: Vec<ServiceRow>,
    /// Access lines by decision.
    pub decisions: Vec<CountRow>,
    /// Auth lines by event and result.
    pub events: Vec<EventRow>,
}

/// The period asked for and the times seen in it.
#[derive(Debug, Serialize)]
pub struct PeriodSummary {
    /// `--since`, if given.
    pub since: Option<String>,
    /// `--until`, if given.
    pub until: Option<String>,
    /// Earliest line counted.
    pub first: Option<String>,
    /// Latest line counted.
    pub last: Option<String>,
}

/// One file read.
#[derive(Debug, Serialize)]
pub struct FileSummary {
    /// As given (or found beside the configured log).
    pub path: PathBuf,
    /// Non-empty lines read, in the period or not.
    pub lines: u64,
}

/// Headline numbers.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Access lines.
    pub requests: u64,
    /// Access lines with decision `deny` or `closed`.
    pub refused_requests: u64,
    /// Auth lines (without the hash chain's anchors).
    pub auth_events: u64,
    /// Successful login steps.
    pub logins_succeeded: u64,
    /// Failed login steps.
    pub logins_failed: u64,
    /// Auth lines with result `failure` (any event).
    pub auth_failures: u64,
    /// `lockout` events.
    pub lockouts: u64,
    /// `ip_block` events.
    pub ip_blocks: u64,
    /// Distinct users with a successful login or an allowed request.
    pub users: u64,
    /// Distinct client addresses.
    pub client_ips: u64,
    /// Lines skipped as malformed.
    pub malformed_lines: u64,
}

/// What one gateway wrote.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct GatewayRow {
    /// Its name (audit.gateway).
    pub gateway: String,
    /// Access lines.
    pub requests: u64,
    /// Auth lines (without the hash chain's anchors).
    pub auth_events: u64,
    /// Successful login steps it decided.
    pub logins_succeeded: u64,
    /// Failed login steps.
    pub logins_failed: u64,
}

/// Login steps of one method from one kind of network.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LoginRow {
    /// password, basic, sms, email, totp, token.
    pub method: String,
    /// internal or external.
    pub network: String,
    /// Succeeded.
    pub success: u64,
    /// Failed.
    pub failure: u64,
}

/// Failures of one event for one reason.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FailureRow {
    /// The event.
    pub event: String,
    /// The reason.
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// Lines of one event with one result.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct EventRow {
    /// The event.
    pub event: String,
    /// The result.
    pub result: String,
    /// How many.
    pub count: u64,
}

/// A name and a count.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CountRow {
    /// User, address or decision.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// Refusals of one user or address.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RefusedRow {
    /// The user or the client address.
    pub who: String,
    /// Auth lines with result `failure`.
    pub auth_failures: u64,
    /// Access lines with decision `deny` or `closed`.
    pub refused_requests: u64,
    /// Both.
    pub total: u64,
}

/// Use of one service.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ServiceRow {
    /// Its name.
    pub service: String,
    /// Access lines.
    pub requests: u64,
    /// Decision `allow`.
    pub allowed: u64,
    /// Decision `deny` or `closed`.
    pub refused: u64,
    /// Distinct users on allowed requests.
    pub users: u64,
}

/// The login methods of the period's active users.
#[derive(Debug, Serialize, PartialEq)]
pub struct Methods {
    /// Distinct users with at least one successful `login` event.
    pub active_users: u64,
    /// Each method used, most users first (then by name).
    pub methods: Vec<MethodRow>,
}

/// One method's users.
#[derive(Debug, Serialize, PartialEq)]
pub struct MethodRow {
    /// password, basic, sms, email, totp, token, passkey.
    pub method: String,
    /// Active users who completed a login step with it.
    pub users: u64,
    /// `users` of the active users, per cent, one decimal. A user counts
    /// for every method used: the shares add up to more than 100.
    pub share_percent: f64,
    /// Successful login steps with it.
    pub logins: u64,
}

/// One-time codes sent.
#[derive(Debug, Serialize, PartialEq)]
pub struct Codes {
    /// `notify.sms.cost_per_message` and `currency` of the configuration
    /// (`null`: not configured, or no `--config`).
    pub cost_per_message: Option<Price>,
    /// `sms`, `email` (always, sent or not), then any other channel seen.
    pub channels: Vec<ChannelRow>,
}

/// The codes of one channel.
#[derive(Debug, Serialize, PartialEq)]
pub struct ChannelRow {
    /// `sms` or `email`.
    pub channel: String,
    /// Handed to the provider: `login` + `enrolment`.
    pub sent: u64,
    /// Sent for a login (reason `sent`).
    pub login: u64,
    /// Sent to confirm a new SMS number (reason `enrolment`).
    pub enrolment: u64,
    /// The provider refused or did not answer (not counted as sent).
    pub delivery_failed: u64,
    /// Refused before sending: resend wait, hourly budgets, state down.
    pub not_sent: u64,
    /// `sent` × the price per message, in its currency; `null` for e-mail
    /// and where no price is configured.
    pub estimated_cost: Option<Amount>,
}

/// A user who logs in from outside by SMS.
#[derive(Debug, Serialize, PartialEq)]
pub struct SmsUserRow {
    /// The user name.
    pub user: String,
    /// `login` successes with method `sms` from the `external` network.
    pub sms_logins: u64,
    /// SMS codes sent to the user (any reason, any network).
    pub sms_codes: u64,
    /// `sms_codes` × the price per message; `null` without a price.
    pub estimated_cost: Option<Amount>,
    /// Every method the user completed a login step with in the period.
    pub methods: Vec<String>,
}
