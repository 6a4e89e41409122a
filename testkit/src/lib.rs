//! What the tests and the benchmarks share to stand up a real Board: scratch databases on
//! the configured servers ([`scratch`]), and the application assembled from `board`'s own
//! flags, as `board serve` assembles it, with its relay and projector run as tasks
//! ([`Stack`]).
//!
//! None of this is in the production library: `board` itself never creates databases.
//!
//! The servers come from the environment, with the local defaults of `make services`:
//! `TEST_DATABASE_URL` (a PostgreSQL server URL), `TEST_READ_DATABASE_URL` (a MySQL
//! server URL) and `KAFKA_BROKERS`.

pub mod history;
pub mod scratch;
mod stack;

pub use stack::{Running, Stack, StackBuilder, ADMIN_EMAIL};

/// The PostgreSQL server scratch event stores are made on.
pub fn postgres_server() -> String {
    env_or(
        "TEST_DATABASE_URL",
        "postgres://board:board@127.0.0.1:5432/postgres",
    )
}

/// The MySQL server scratch read databases are made on.
pub fn mysql_server() -> String {
    env_or(
        "TEST_READ_DATABASE_URL",
        "mysql://board:board@127.0.0.1:3306",
    )
}

/// The Kafka bootstrap servers scratch topics are made on.
pub fn brokers() -> String {
    env_or("KAFKA_BROKERS", "127.0.0.1:9092")
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
