//! The write side's storage: the PostgreSQL event store (postgres-es) and the tables kept
//! beside it (credentials, verification tokens, idempotency keys, uniqueness claims).

mod command_bus;
mod error;
mod lookup;
pub mod reader;
pub mod upcasting;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

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

/// Which kind of unique value a claim protects; see the `unique_claims` table.
#[derive(Debug, Clone, Copy)]
pub enum ClaimKind {
    AccountEmail,
    CategoryName,
}

impl ClaimKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccountEmail => "account.email",
            Self::CategoryName => "category.name",
        }
    }
}

/// The aggregate that holds a unique value (compared case-insensitively), if any.
pub async fn claim_holder(
    pool: &PgPool,
    kind: ClaimKind,
    value: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT aggregate_id FROM unique_claims WHERE claim_kind = $1 AND claim_value = lower($2)",
    )
    .bind(kind.as_str())
    .bind(value)
    .fetch_optional(pool)
    .await
}

/// When an aggregate's first and last events were recorded (its created and updated time).
pub async fn recorded_span(
    pool: &PgPool,
    aggregate_type: &str,
    id: uuid::Uuid,
) -> Result<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>), sqlx::Error> {
    sqlx::query_as(
        "SELECT min(recorded_at), max(recorded_at) FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2::text",
    )
    .bind(aggregate_type)
    .bind(id.to_string())
    .fetch_one(pool)
    .await
}

/// How many comments of a post are live (added and not deleted), from the event store.
pub async fn live_comment_count(pool: &PgPool, post_id: uuid::Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM events added
          WHERE added.event_type = 'CommentAdded'
            AND added.payload -> 'CommentAdded' ->> 'post_id' = $1
            AND NOT EXISTS (SELECT 1 FROM events deleted
                             WHERE deleted.aggregate_type = added.aggregate_type
                               AND deleted.aggregate_id = added.aggregate_id
                               AND deleted.event_type = 'CommentDeleted')",
    )
    .bind(post_id.to_string())
    .fetch_one(pool)
    .await
}
