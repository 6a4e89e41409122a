//! The write side's storage: the PostgreSQL event store (postgres-es) and the tables kept
//! beside it (credentials, verification tokens, idempotency keys, uniqueness claims).

mod aggregate_loader;
mod claims;
mod command_bus;
mod commit_signal;
mod error;
mod group_commit;
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
pub use commit_signal::{wait_for_commits, EVENTS_CHANNEL};
pub use error::CommandError;
pub use group_commit::GroupCommit;
pub use lookup::EventStoreLookup;
pub use sealing::SealingRepository;

/// The PostgreSQL migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Opens a pool that fails fast when PostgreSQL is down, so commands answer 503 promptly
/// instead of hanging. Connecting is lazy: the server starts and serves queries even
/// while PostgreSQL is away.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    crate::databases::checked_when_idle(PgPoolOptions::new())
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(url)
}

/// Connections the rate limiters (`crate::limits`) have for themselves.
const LIMITS_POOL_SIZE: u32 = 4;

/// The rate limiters' own small pool on the event store's server: a flood of log-in
/// attempts waits for these connections, never for the commands'. Their writes do not
/// wait for the WAL to reach the disk (`synchronous_commit = off`): a limiter update lost
/// in a crash forgets a few attempts, nothing more.
pub fn connect_limits_lazy(url: &str) -> Result<PgPool, sqlx::Error> {
    crate::databases::checked_when_idle(PgPoolOptions::new())
        .max_connections(LIMITS_POOL_SIZE)
        .acquire_timeout(Duration::from_secs(3))
        .after_connect(|connection, _| {
            Box::pin(async move {
                sqlx::query("SET synchronous_commit = off")
                    .execute(connection)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy(url)
}
