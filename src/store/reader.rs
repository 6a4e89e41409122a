//! Reads the event store in global order without ever skipping an event.
//!
//! Positions come from an identity column, so they are allocated when a row is inserted,
//! not when its transaction commits: a transaction can take position 5, stay open, and
//! commit after another transaction has committed position 6. A reader that simply asked
//! for "positions after the last one I saw" would read 6, move past 5, and never see it
//! (the sequence-gap bug of Marten, Eventuous and Axon).
//!
//! Instead every event records its writing transaction's id, and the global order is
//! (transaction_id, global_position). A reader takes only events whose transaction is
//! older than the oldest one still running (`pg_snapshot_xmin`). Those transactions have
//! all ended, and every transaction that writes later gets a larger id, so nothing can
//! ever appear behind the reader's checkpoint. An open transaction holds the reader back
//! (never forward) until it ends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Row};

/// A place in the global order: the last event a reader has handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Checkpoint {
    pub transaction_id: u64,
    pub global_position: i64,
}

/// One event as stored, with its place in the global order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub checkpoint: Checkpoint,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    pub fn global_position(&self) -> i64 {
        self.checkpoint.global_position
    }
}

/// Up to `limit` events after `after` in global order, all from finished transactions.
pub async fn read_after(
    pool: &PgPool,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    // xid8 has no binary mapping in sqlx; it travels as text.
    let rows = sqlx::query(
        "SELECT transaction_id::text AS transaction_id, global_position, aggregate_type,
                aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at
           FROM events
          WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY transaction_id, global_position
          LIMIT $3",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode).collect()
}

fn decode(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let transaction_id: String = row.try_get("transaction_id")?;
    let transaction_id = transaction_id
        .parse()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(RecordedEvent {
        checkpoint: Checkpoint {
            transaction_id,
            global_position: row.try_get("global_position")?,
        },
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}
