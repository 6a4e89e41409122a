//! The read models' quarantine as an operator sees it: the events the fold could not apply,
//! and those of the same aggregates waiting behind them (see [`crate::fold`] for how they
//! get there). `board projections quarantine list | retry`, `status`, `verify` and
//! `/metrics` read it through here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::MySql;

use crate::fold::READ_MODELS;

/// The table. A rebuild swaps it in with the view tables, since it tells which events
/// their rows lack.
pub const TABLE: &str = "quarantined_events";

/// One quarantined event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
}

/// The quarantined events, by aggregate and sequence; only `aggregate`'s (type, id) if
/// given.
pub async fn list<'c>(
    conn: impl sqlx::Executor<'c, Database = MySql>,
    aggregate: Option<(&str, &str)>,
) -> Result<Vec<Entry>, sqlx::Error> {
    let (aggregate_type, aggregate_id) = aggregate.unzip();
    sqlx::query_as(&format!(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, reason,
                quarantined_at
           FROM {TABLE}
          WHERE projection = ? AND (? IS NULL OR (aggregate_type = ? AND aggregate_id = ?))
          ORDER BY aggregate_type, aggregate_id, sequence"
    ))
    .bind(READ_MODELS)
    .bind(aggregate_type)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(conn)
    .await
}

/// How many events are in quarantine.
pub async fn count<'c>(
    conn: impl sqlx::Executor<'c, Database = MySql>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {TABLE} WHERE projection = ?"
    ))
    .bind(READ_MODELS)
    .fetch_one(conn)
    .await
}

/// The aggregates with events in quarantine, as (type, id).
pub async fn aggregates<'c>(
    conn: impl sqlx::Executor<'c, Database = MySql>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT DISTINCT aggregate_type, aggregate_id FROM {TABLE}
          WHERE projection = ? ORDER BY aggregate_type, aggregate_id"
    ))
    .bind(READ_MODELS)
    .fetch_all(conn)
    .await
}
