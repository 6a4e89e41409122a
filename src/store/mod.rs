//! The write side's storage: the PostgreSQL event store (postgres-es) and the tables kept
//! beside it (credentials, verification tokens, idempotency keys, uniqueness claims).

mod claims;
mod command_bus;
mod error;
pub mod history_sealing;
mod lookup;
pub mod positions;
pub mod reader;
mod sealing;
pub mod upcasting;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub use claims::{claim, claim_holder, claim_holder_since, give_up, take_over, ClaimKind};
pub use command_bus::{CommandBus, CommandBuses, CommandOutcome, Metadata};
pub use error::CommandError;
pub use lookup::EventStoreLookup;

/// The PostgreSQL migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Opens a pool that fails fast when PostgreSQL is down, so commands answer 503 promptly
/// instead of hanging. Connecting is lazy: the server starts and serves queries even
/// while PostgreSQL is away.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(url)
}
