//! portvakt — an authentication gateway: a TLS-terminating reverse proxy
//! (pingora + rustls) that puts a login wall in front of intranet services.
//!
//! # Layout
//! Where a request is routed, checked and logged: start at [`proxy`].
//!
//! - [`cli`]: subcommands (`serve`, `check-config`, `config-reference`, `demo`,
//!   `hash-password`, `whoami`).
//! - [`config`]: the YAML file → validated model, errors with file/line/key.
//! - [`server`]: pingora server, listeners, background sweeping, SIGHUP reload.
//! - [`launch`]: what the starter hands in (clock, signals); a gateway run in-process for tests.
//! - [`tls`]: certificates chosen by SNI.
//! - [`gateway`]: state per configuration ([`gateway::Runtime`]) and across reloads.
//! - [`proxy`]: pingora's phases: route, session, policy, identity, logging.
//! - [`request`]: the normalised path (or 400) and header limits and hygiene, before routing.
//! - [`net`]: client address (trusted proxies), internal networks.
//! - [`proxy_protocol`]: PROXY protocol v1/v2 before TLS on the HTTPS listener.
//! - [`routing`]: host + longest path prefix → service.
//! - [`policy`]: bypass / one_factor / two_factor / deny / two_factor_offsite, groups.
//! - [`session`]: server-side sessions, cookies, handoff codes.
//! - [`directory`]: users, passwords and groups (YAML file).
//! - [`password`]: argon2id hashing off the async threads.
//! - [`basic`]: HTTP Basic for internal non-browser clients, with a keyed cache.
//! - [`regulation`]: lockout after failures, per user and per IP.
//! - [`signing`]: the secret key: return addresses, CSRF tokens.
//! - [`assertion`]: signed identity for upstreams: ES256 JWTs, the key ring, the JWKS.
//! - [`login`]: the login flow's decisions: password, second step, re-auth, handoff (typed outcomes).
//! - [`pages`]: our own pages: login, handoff, logout, portal, errors; they render [`login`]'s outcomes.
//! - [`audit`]: access log and hash-chained auth events (JSON lines); `audit verify|query|report`;
//!   the auth log's vocabulary (`audit::vocabulary`: events, results, reasons).
//! - [`clock`]: time as a seam for tests.
//! - [`factors`]: second factors: codes, authenticator apps, hardware tokens.
//! - [`notify`]: SMS over HTTP, e-mail over SMTP, the demo outbox.
//! - [`storage`]: durable enrolments (SQLite), seeds encrypted at rest.
//! - [`enrolment`]: enrolments waiting for their confirming code.
//! - [`admin`]: admin commands (tokens, devices, enrolments).
//! - [`admin_listener`]: `/healthz`, `/readyz`, `/metrics` and the sessions API.
//! - [`lifecycle`]: SIGTERM drain that exits when idle, socket hand-over on upgrade.
//! - [`metrics`]: Prometheus counters fed by the access and auth logs' hooks.
//! - [`demo`]: `portvakt demo`; [`whoami`]: the echo upstream.

pub mod admin;
pub mod admin_listener;
pub mod assertion;
pub mod audit;
pub mod basic;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod directory;
pub mod enrolment;
pub mod factors;
pub mod gateway;
pub mod launch;
pub mod lifecycle;
pub mod login;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod pages;
pub mod passkey;
pub mod password;
pub mod policy;
pub mod proxy;
pub mod proxy_protocol;
pub mod regulation;
pub mod request;
pub mod routing;
pub mod server;
pub mod session;
pub mod signing;
pub mod state;
pub mod storage;
pub mod tls;
pub mod whoami;

#[cfg(test)]
pub(crate) mod testutil;
