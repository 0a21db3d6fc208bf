//! The attack suite (issue 12): black-box attacks on the real binary, one
//! module per class of problem, each test failing when its rule in
//! `SECURITY.md` is broken. Tests read as what an attacker tries and what
//! must happen instead.

mod client_address;
mod handoff;
mod headers;
mod lockout;
mod paths;
mod realms;
mod small;
mod smuggling;
