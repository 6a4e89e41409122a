//! Loads an aggregate from the event store: from its snapshot and the events after it when
//! it has one, from its whole history otherwise; and keeps its snapshot up to date.
//!
//! Without snapshots every command replays the aggregate's whole history: an edit of a
//! post with 5,000 earlier events took six times as long as one of a fresh post (issue
//! 12). A snapshot is a cache of what the events fold to, never the truth:
//! - a load reads the snapshot and every event after it in one statement, so it always
//!   returns the current version, never a stale one;
//! - a snapshot is written after the events it covers have committed, from the state the
//!   command folded from them, and only replaces an older one;
//! - one of another schema than the aggregate's [`Snapshot::SNAPSHOT_SCHEMA`], or one that
//!   does not deserialize, is ignored: the history is replayed, and the next command
//!   writes a new snapshot;
//! - aggregates that do not implement [`Snapshot`] (accounts, whose state holds plain
//!   personal data) are never snapshotted.

use std::marker::PhantomData;

use cqrs_es::persist::SerializedEvent;
use cqrs_es::Aggregate;
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use aggregates::Snapshot;

use super::upcasting;
use super::CommandError;
use crate::personal_data::{Reveal, Vault};

/// A snapshot is written once this many events have been recorded since the one the
/// load started from. A load then reads fewer than this many events (plus the
/// snapshot), whatever the history's length, for one more write per this many events.
/// At 100, an edit of a post with 5,000 earlier events measured 1.5-2.3 times one of a
/// fresh post (`make bench`): the fifty-odd events after the snapshot still showed.
pub const SNAPSHOT_EVERY: u64 = 25;

/// An aggregate as loaded.
pub struct Loaded<A> {
    pub state: A,
    /// The sequence number of its last event; 0 when it has none.
    pub version: u64,
    /// The version of the snapshot it was loaded from; 0 when it was replayed from its
    /// first event.
    pub snapshot_version: u64,
}

impl<A: Default> Loaded<A> {
    /// An aggregate with no events.
    pub fn nothing() -> Self {
        Self {
            state: A::default(),
            version: 0,
            snapshot_version: 0,
        }
    }
}

pub struct AggregateLoader<A> {
    pool: PgPool,
    vault: Vault,
    /// The schema snapshots are read and written under; `None`: no snapshots.
    schema: Option<&'static str>,
    aggregate: PhantomData<fn() -> A>,
}

/// The snapshot (a row whose `event_type` is NULL) and the events after it, in order.
/// Without a snapshot of the schema asked for (`$3`), the whole history.
const LOAD: &str = "
WITH snapshot AS (
    SELECT sequence, payload FROM snapshots
     WHERE aggregate_type = $1 AND aggregate_id = $2 AND schema = $3
)
SELECT sequence, NULL AS event_type, NULL AS event_version, payload FROM snapshot
UNION ALL
SELECT sequence, event_type, event_version, payload FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2
   AND sequence > COALESCE((SELECT sequence FROM snapshot), 0)
ORDER BY sequence";

/// Replaces an older snapshot (or one of another schema), never a newer one: two commands
/// that both find a snapshot due may finish in either order.
const KEEP: &str = "
INSERT INTO snapshots (aggregate_type, aggregate_id, sequence, schema, payload)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
   SET sequence = EXCLUDED.sequence, schema = EXCLUDED.schema,
       payload = EXCLUDED.payload, taken_at = clock_timestamp()
 WHERE snapshots.sequence < EXCLUDED.sequence OR snapshots.schema <> EXCLUDED.schema";

impl<A: Aggregate> AggregateLoader<A> {
    /// A loader that always replays the whole history.
    pub fn without_snapshots(pool: PgPool) -> Self {
        Self::new(pool, None)
    }

    fn new(pool: PgPool, schema: Option<&'static str>) -> Self {
        Self {
            vault: Vault::new(pool.clone()),
            pool,
            schema,
            aggregate: PhantomData,
        }
    }

    /// The aggregate's current state and version.
    pub async fn load(&self, id: Uuid) -> Result<Loaded<A>, CommandError> {
        match self.load_with(id, self.schema).await {
            Err(LoadError::Snapshot(error)) => {
                tracing::warn!(
                    aggregate = A::TYPE, %id, %error,
                    "a snapshot of the current schema does not deserialize; replaying the history"
                );
                self.load_with(id, None)
                    .await
                    .map_err(LoadError::into_command)
            }
            other => other.map_err(LoadError::into_command),
        }
    }

    async fn load_with(&self, id: Uuid, schema: Option<&str>) -> Result<Loaded<A>, LoadError> {
        let id = id.to_string();
        let rows = sqlx::query(LOAD)
            .bind(A::TYPE)
            .bind(&id)
            .bind(schema)
            .fetch_all(&self.pool)
            .await
            .map_err(CommandError::from)?;
        let mut loaded = Loaded::<A>::nothing();
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let sequence = row.get::<i64, _>("sequence") as u64;
            let payload: Value = row.get("payload");
            match row.get::<Option<String>, _>("event_type") {
                None => {
                    loaded.state = serde_json::from_value(payload).map_err(LoadError::Snapshot)?;
                    loaded.snapshot_version = sequence;
                }
                Some(event_type) => events.push(SerializedEvent::new(
                    id.clone(),
                    sequence as usize,
                    A::TYPE.to_string(),
                    event_type,
                    row.get("event_version"),
                    payload,
                    Value::Null,
                )),
            }
            loaded.version = sequence;
        }
        self.vault
            .open_all(&mut events, Reveal::Everything)
            .await
            .map_err(CommandError::from)?;
        for mut event in events {
            upcasting::upcast(
                &event.event_type,
                &mut event.event_version,
                &mut event.payload,
            );
            let event = serde_json::from_value(event.payload)
                .map_err(|error| LoadError::Other(CommandError::Unexpected(Box::new(error))))?;
            loaded.state.apply(event);
        }
        Ok(loaded)
    }

    /// Writes a snapshot of `state` at `version` when enough events were recorded since
    /// the snapshot the command loaded (`loaded_from`). The command has committed by now:
    /// a snapshot that cannot be written is only a slower next load, so it is logged, not
    /// returned.
    pub async fn keep_snapshot(&self, id: Uuid, loaded_from: u64, version: u64, state: &A) {
        let Some(schema) = self.schema else { return };
        if !snapshot_due(loaded_from, version) {
            return;
        }
        let written = async {
            let payload = serde_json::to_value(state).map_err(|e| sqlx::Error::Encode(e.into()))?;
            sqlx::query(KEEP)
                .bind(A::TYPE)
                .bind(id.to_string())
                .bind(version as i64)
                .bind(schema)
                .bind(payload)
                .execute(&self.pool)
                .await
        };
        match written.await {
            Ok(_) => tracing::debug!(aggregate = A::TYPE, %id, version, "snapshot kept"),
            Err(error) => {
                tracing::warn!(aggregate = A::TYPE, %id, version, %error, "a snapshot was not written")
            }
        }
    }
}

impl<A: Snapshot> AggregateLoader<A> {
    /// A loader that reads and keeps snapshots under the aggregate's current schema.
    pub fn with_snapshots(pool: PgPool) -> Self {
        Self::new(pool, Some(A::SNAPSHOT_SCHEMA))
    }
}

/// Whether a command that loaded the snapshot at `loaded_from` and left the aggregate at
/// `version` should write a new one.
fn snapshot_due(loaded_from: u64, version: u64) -> bool {
    version.saturating_sub(loaded_from) >= SNAPSHOT_EVERY
}

enum LoadError {
    /// The snapshot did not deserialize into the current state.
    Snapshot(serde_json::Error),
    /// Anything else: the store, or an event that does not deserialize.
    Other(CommandError),
}

impl From<CommandError> for LoadError {
    fn from(error: CommandError) -> Self {
        Self::Other(error)
    }
}

impl LoadError {
    fn into_command(self) -> CommandError {
        match self {
            Self::Snapshot(error) => CommandError::Unexpected(Box::new(error)),
            Self::Other(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_every_so_many_events_since_the_one_loaded() {
        assert!(!snapshot_due(0, 1));
        assert!(!snapshot_due(0, SNAPSHOT_EVERY - 1));
        assert!(snapshot_due(0, SNAPSHOT_EVERY));
        // A history written before snapshots existed gets one on its next command.
        assert!(snapshot_due(0, 5_001));
        assert!(!snapshot_due(5_001, 5_001 + SNAPSHOT_EVERY - 1));
        assert!(snapshot_due(5_001, 5_001 + SNAPSHOT_EVERY));
    }
}
