//! A real PostgreSQL for gateways that share one durable store: the server
//! the store's own unit tests start (`initdb` in a temporary directory,
//! `postgres` as the `postgres` user on a free loopback port, killed on
//! drop), included from the library's test code rather than copied.

#[allow(dead_code)]
#[path = "../../../src/storage/postgres/test_server.rs"]
mod server;

pub(crate) use server::TestPostgres;

/// Start one; the integration tests need it (`tests/install-deps.sh` installs it).
pub(crate) fn start() -> TestPostgres {
    TestPostgres::start().expect("PostgreSQL is installed (tests/install-deps.sh installs it)")
}
