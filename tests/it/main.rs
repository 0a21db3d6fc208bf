//! portvakt's integration tests: one binary, one module per feature. Every
//! test starts its own gateway (`portvakt serve`, or the same config run
//! in-process on a manual clock when the test is about time) and upstreams
//! on free loopback ports and talks to them like a browser would. See
//! `support/`.

mod support;

mod a11y;
mod assertion;
mod attack;
mod audit;
mod audit_chain;
mod audit_cli;
mod audit_cluster;
mod audit_cost;
mod authenticator;
mod bad_requests;
mod basic_auth;
mod browser;
mod browser_realms;
mod cli;
mod cluster;
mod codes;
mod cookies;
mod csrf;
mod demo;
mod failed_login;
mod identity;
mod in_process;
mod ldap;
mod ldap_gateway;
mod lifecycle;
mod login;
mod open_redirect;
mod opening_hours;
mod operations;
mod pages;
mod passkeys;
mod passwordless;
mod policies;
mod reload;
mod routing;
mod second_factor;
mod sessions;
mod step_up;
mod throttling;
mod tls;
mod tokens;
mod upstreams;
mod websocket;
