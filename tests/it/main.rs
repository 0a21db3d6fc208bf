//! portvakt's integration tests: one binary, one module per feature. Every
//! test starts its own gateway (`portvakt serve`) and upstreams on free
//! loopback ports and talks to them like a browser would. See `support/`.

mod support;

mod audit;
mod bad_requests;
mod basic_auth;
mod cli;
mod cookies;
mod csrf;
mod failed_login;
mod identity;
mod login;
mod open_redirect;
mod pages;
mod policies;
mod reload;
mod routing;
mod sessions;
mod throttling;
mod tls;
mod upstreams;
mod websocket;
