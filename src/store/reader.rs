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
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::personal_data::PersonalEvent;

/// A place in the global order: the last event a reader has handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Checkpoint {
    pub transaction_id: u64,
    pub global_position: i64,
}

/// One event as stored (raised to its current version), with its place in the global order.
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

/// Waits until every transaction that was running when this was called has ended, so that
/// everything committed before the call is readable. Gives up after `patience` (a
/// transaction left open for that long holds readers back; it is logged).
pub async fn settle(pool: &PgPool, patience: std::time::Duration) -> Result<(), sqlx::Error> {
    let started = std::time::Instant::now();
    let target: String = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await?;
    loop {
        let settled: bool =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8")
                .bind(&target)
                .fetch_one(pool)
                .await?;
        if settled {
            return Ok(());
        }
        if started.elapsed() >= patience {
            tracing::warn!("an old transaction is still open; reading what is readable so far");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Which events a reader wants; every field narrows, `None` admits all.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    pub until: Option<DateTime<Utc>>,
    pub from_position: Option<i64>,
    pub to_position: Option<i64>,
}

/// Pages of the global order read one ahead of the caller: while it decodes and handles
/// a page, the next is already being read, so the database's time and the caller's
/// overlap instead of adding up (an export or a rebuild goes about twice as fast).
/// Decoding the rows (their JSON above all) is the caller's share: done in the reading
/// task, it made the reading the slower side. Dropping it stops the read under way.
pub struct ReadAhead {
    pool: PgPool,
    filter: Filter,
    limit: i64,
    next: tokio::task::JoinHandle<Result<Vec<PgRow>, sqlx::Error>>,
}

impl ReadAhead {
    /// Starts reading the first page after `after`.
    pub fn start(pool: &PgPool, filter: Filter, after: Checkpoint, limit: i64) -> Self {
        let next = Self::read(pool.clone(), filter.clone(), after, limit);
        Self {
            pool: pool.clone(),
            filter,
            limit,
            next,
        }
    }

    /// The next page (empty at the end of what is readable), and the reading of the one
    /// after it started.
    pub async fn next_page(&mut self) -> anyhow::Result<Vec<RecordedEvent>> {
        let rows = (&mut self.next)
            .await
            .map_err(|e| anyhow::anyhow!("the page reader stopped: {e}"))??;
        if let Some(last) = rows.last() {
            self.next = Self::read(
                self.pool.clone(),
                self.filter.clone(),
                checkpoint(last)?,
                self.limit,
            );
        }
        let page = rows.iter().map(decode).collect::<Result<_, _>>();
        if page.is_err() {
            // The next page follows this one: reading on would skip it.
            self.next.abort();
        }
        Ok(page?)
    }

    fn read(
        pool: PgPool,
        filter: Filter,
        after: Checkpoint,
        limit: i64,
    ) -> tokio::task::JoinHandle<Result<Vec<PgRow>, sqlx::Error>> {
        tokio::spawn(async move { read_filtered_rows(&pool, &filter, after, limit).await })
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.next.abort();
    }
}

/// Up to `limit` events after `after` in global order, all from finished transactions.
pub async fn read_after(
    pool: &PgPool,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    read_filtered(pool, &Filter::default(), after, limit).await
}

/// Like [`read_after`], only the events `filter` admits.
pub async fn read_filtered(
    pool: &PgPool,
    filter: &Filter,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = read_filtered_rows(pool, filter, after, limit).await?;
    rows.iter().map(decode).collect()
}

/// [`read_filtered`]'s rows, not decoded yet.
async fn read_filtered_rows(
    pool: &PgPool,
    filter: &Filter,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<PgRow>, sqlx::Error> {
    // xid8 has no binary mapping in sqlx; it travels as text, under another name than the
    // column's: ORDER BY would otherwise sort by the text ("10" before "9").
    let sql = format!(
        "SELECT transaction_id::text AS txid, global_position, aggregate_type,
                aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at
           FROM events
          WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            AND {}
          ORDER BY transaction_id, global_position
          LIMIT $3",
        Filter::CLAUSE_FROM_4
    );
    let query = sqlx::query(&sql)
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit);
    filter.bind(query).fetch_all(pool).await
}

/// The last `limit` events of the global order that are readable now (all from finished
/// transactions), oldest first: where a reader that starts at the end primes itself.
pub async fn read_last(pool: &PgPool, limit: i64) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT transaction_id::text AS txid, global_position, aggregate_type,
                aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at
           FROM events
          WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY transaction_id DESC, global_position DESC
          LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut events = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    events.reverse();
    Ok(events)
}

/// How many events `filter` admits, for progress reports.
pub async fn count(pool: &PgPool, filter: &Filter) -> Result<i64, sqlx::Error> {
    // Numbered from $4 like the reader's; $1..$3 are bound to nothing-filters.
    let sql = format!(
        "SELECT count(*) FROM events WHERE $1::int IS NULL AND $2::int IS NULL AND $3::int IS NULL AND {}",
        Filter::CLAUSE_FROM_4
    );
    let query = sqlx::query(&sql)
        .bind(None::<i32>)
        .bind(None::<i32>)
        .bind(None::<i32>);
    filter.bind(query).fetch_one(pool).await?.try_get(0)
}

impl Filter {
    /// The filter as SQL, its parameters numbered $4 to $10 (see [`Filter::bind`]).
    const CLAUSE_FROM_4: &'static str = "($4::text IS NULL OR aggregate_type = $4)
            AND ($5::text IS NULL OR aggregate_id = $5)
            AND ($6::text[] IS NULL OR event_type = ANY($6))
            AND ($7::timestamptz IS NULL OR recorded_at >= $7)
            AND ($8::timestamptz IS NULL OR recorded_at < $8)
            AND ($9::bigint IS NULL OR global_position >= $9)
            AND ($10::bigint IS NULL OR global_position <= $10)";

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.aggregate_type)
            .bind(&self.aggregate_id)
            .bind(&self.event_types)
            .bind(self.since)
            .bind(self.until)
            .bind(self.from_position)
            .bind(self.to_position)
    }
}

/// One aggregate's events in sequence order, upcast.
pub async fn aggregate_events(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT transaction_id::text AS txid, global_position, aggregate_type,
                aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2
          ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode).collect()
}

/// A row's place in the global order.
fn checkpoint(row: &PgRow) -> Result<Checkpoint, sqlx::Error> {
    let transaction_id: String = row.try_get("txid")?;
    Ok(Checkpoint {
        transaction_id: transaction_id
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        global_position: row.try_get("global_position")?,
    })
}

fn decode(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let event_type: String = row.try_get("event_type")?;
    let mut event_version: String = row.try_get("event_version")?;
    let mut payload: Value = row.try_get("payload")?;
    super::upcasting::upcast(&event_type, &mut event_version, &mut payload);
    Ok(RecordedEvent {
        checkpoint: checkpoint(row)?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type,
        event_version,
        payload,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

impl PersonalEvent for RecordedEvent {
    fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn body_mut(&mut self) -> &mut Value {
        crate::personal_data::stored_body(&self.event_type, &mut self.payload)
    }
}
