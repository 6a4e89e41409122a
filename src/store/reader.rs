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
use sqlx::{ConnectOptions, Connection, PgConnection, PgExecutor, PgPool, Row};

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

/// One event exactly as stored, borrowed from its row: the payload and metadata are the
/// JSON text PostgreSQL sent, not parsed, and not raised to the current version yet. A
/// reader that passes most events on unchanged (the export) parses only the others
/// ([`StoredRow::decode`]).
#[derive(Debug, Clone, Copy)]
pub struct StoredRow<'r> {
    pub checkpoint: Checkpoint,
    pub aggregate_type: &'r str,
    pub aggregate_id: &'r str,
    pub sequence: i64,
    pub event_type: &'r str,
    pub event_version: &'r str,
    /// `{"<EventType>": {fields}}`, as cqrs-es stores it.
    pub payload: &'r str,
    pub metadata: &'r str,
    pub recorded_at: DateTime<Utc>,
}

impl<'r> StoredRow<'r> {
    /// The row's columns, as the readers here select them ([`COLUMNS`]).
    pub fn borrow(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            checkpoint: checkpoint(row)?,
            aggregate_type: row.try_get(column::AGGREGATE_TYPE)?,
            aggregate_id: row.try_get(column::AGGREGATE_ID)?,
            sequence: row.try_get(column::SEQUENCE)?,
            event_type: row.try_get(column::EVENT_TYPE)?,
            event_version: row.try_get(column::EVENT_VERSION)?,
            payload: row.try_get(column::PAYLOAD)?,
            metadata: row.try_get(column::METADATA)?,
            recorded_at: row.try_get(column::RECORDED_AT)?,
        })
    }

    /// Whether the event's stored version is its current one (no upcaster applies).
    pub fn is_current(&self) -> bool {
        super::upcasting::is_current(self.event_type, self.event_version)
    }

    /// The event parsed and raised to its current version.
    pub fn decode(&self) -> Result<RecordedEvent, sqlx::Error> {
        let parse = |json: &str| -> Result<Value, sqlx::Error> {
            serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        };
        let mut event_version = self.event_version.to_string();
        let mut payload = parse(self.payload)?;
        super::upcasting::upcast(self.event_type, &mut event_version, &mut payload);
        Ok(RecordedEvent {
            checkpoint: self.checkpoint,
            aggregate_type: self.aggregate_type.to_string(),
            aggregate_id: self.aggregate_id.to_string(),
            sequence: self.sequence,
            event_type: self.event_type.to_string(),
            event_version,
            payload,
            metadata: parse(self.metadata)?,
            recorded_at: self.recorded_at,
        })
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

/// Pages of the global order read ahead of the caller: while it decodes and handles a
/// page, a task is already reading the next ones, so the database's time and the caller's
/// overlap instead of adding up (an export or a rebuild goes about twice as fast).
/// Decoding the rows (their JSON above all) is the caller's share: done in the reading
/// task, it made the reading the slower side.
///
/// The task asks for [`PAGES_PER_QUERY`] pages at a time and hands them over one by one
/// through a channel of one page: every query is a round trip, and a page the size of a
/// query would hold that many rows in memory. It reads on a connection of its own, not
/// one of the pool's: it keeps its connection while it waits for the caller to take a
/// page, and a caller that needed the pool meanwhile (the vault, for its keys) would
/// otherwise wait for it, for ever with a pool of one. Dropping this stops the read.
pub struct ReadAhead {
    pages: tokio::sync::mpsc::Receiver<Result<Vec<PgRow>, sqlx::Error>>,
    reader: tokio::task::JoinHandle<()>,
}

/// How many pages one query of a [`ReadAhead`] reads.
const PAGES_PER_QUERY: i64 = 8;

impl ReadAhead {
    /// Starts reading after `after`, in pages of `limit` events.
    pub fn start(pool: &PgPool, filter: Filter, after: Checkpoint, limit: i64) -> Self {
        let (sender, pages) = tokio::sync::mpsc::channel(1);
        let options = pool.connect_options();
        let reader = tokio::spawn(async move {
            let read = async {
                let mut connection = options.connect().await?;
                read_ahead(&mut connection, &filter, after, limit, &sender).await?;
                connection.close().await
            };
            if let Err(error) = read.await {
                // The caller hears of it after the pages before it.
                let _ = sender.send(Err(error)).await;
            }
        });
        Self { pages, reader }
    }

    /// The next page (empty at the end of what is readable), and the reading of the one
    /// after it started.
    pub async fn next_page(&mut self) -> anyhow::Result<Vec<RecordedEvent>> {
        let rows = self.next_rows().await?;
        let page = rows.iter().map(decode).collect::<Result<_, _>>();
        if page.is_err() {
            // The next page follows this one: reading on would skip it.
            self.reader.abort();
        }
        Ok(page?)
    }

    /// [`ReadAhead::next_page`]'s rows, not decoded: read them with [`StoredRow::borrow`].
    /// A caller that cannot read one must stop (and drop this), or it would skip it.
    pub async fn next_rows(&mut self) -> anyhow::Result<Vec<PgRow>> {
        match self.pages.recv().await {
            Some(page) => Ok(page?),
            // The reader has read everything readable and stopped.
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// [`ReadAhead`]'s task: sends the pages after `after` until a query finds nothing more,
/// or the caller is gone.
async fn read_ahead(
    connection: &mut PgConnection,
    filter: &Filter,
    mut after: Checkpoint,
    limit: i64,
    pages: &tokio::sync::mpsc::Sender<Result<Vec<PgRow>, sqlx::Error>>,
) -> Result<(), sqlx::Error> {
    use futures_util::TryStreamExt;

    // The planner cannot tell how many events lie after a checkpoint (it guesses a fifth
    // of the table), and once a query's limit looks large beside that guess it sorts
    // everything after the checkpoint instead of walking the index: on a store of 100,000
    // events, 10,000 rows took 170 ms instead of 5. The index gives the order, so these
    // queries never need a sort. (The connection is this reader's alone, and closes with it.)
    sqlx::query("SET enable_sort = off")
        .execute(&mut *connection)
        .await?;
    let page_size = usize::try_from(limit).unwrap_or(1).max(1);
    loop {
        let mut rows =
            filtered_query(filter, after, limit * PAGES_PER_QUERY).fetch(&mut *connection);
        let mut page = Vec::with_capacity(page_size);
        let mut found_any = false;
        while let Some(row) = rows.try_next().await? {
            found_any = true;
            page.push(row);
            if page.len() == page_size {
                after = checkpoint(&page[page_size - 1])?;
                if pages.send(Ok(std::mem::take(&mut page))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !found_any {
            return Ok(());
        }
        if let Some(last) = page.last() {
            after = checkpoint(last)?;
            if pages.send(Ok(page)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// The columns every reader here selects, as [`StoredRow::borrow`] reads them.
///
/// xid8 has no binary mapping in sqlx; it travels as text, under another name than the
/// column's: ORDER BY would otherwise sort by the text ("10" before "9"). The JSON comes
/// as text, which a reader that passes it on copies without parsing (sqlx would check a
/// jsonb value's syntax a second time as it decoded it).
const COLUMNS: &str = "transaction_id::text AS txid, global_position, aggregate_type, aggregate_id,
    sequence, event_type, event_version, payload::text AS payload, metadata::text AS metadata,
    recorded_at";

/// Where each of [`COLUMNS`] sits in a row. Rows are read by position: by name, sqlx
/// hashes the name for every column of every row, and that was a third of an export's
/// time. (A test holds these to the order of [`COLUMNS`].)
mod column {
    pub const TXID: usize = 0;
    pub const GLOBAL_POSITION: usize = 1;
    pub const AGGREGATE_TYPE: usize = 2;
    pub const AGGREGATE_ID: usize = 3;
    pub const SEQUENCE: usize = 4;
    pub const EVENT_TYPE: usize = 5;
    pub const EVENT_VERSION: usize = 6;
    pub const PAYLOAD: usize = 7;
    pub const METADATA: usize = 8;
    pub const RECORDED_AT: usize = 9;
}

/// Up to `limit` events after `after` in global order, all from finished transactions.
/// On a pool, or on a connection of the caller's (the relay reads on the one that holds
/// its leadership).
pub async fn read_after<'c>(
    db: impl PgExecutor<'c>,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    read_filtered(db, &Filter::default(), after, limit).await
}

/// Like [`read_after`], only the events `filter` admits.
pub async fn read_filtered<'c>(
    db: impl PgExecutor<'c>,
    filter: &Filter,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = filtered_query(filter, after, limit).fetch_all(db).await?;
    rows.iter().map(decode).collect()
}

/// The query of up to `limit` events `filter` admits after `after`, in global order,
/// all from finished transactions.
fn filtered_query(
    filter: &Filter,
    after: Checkpoint,
    limit: i64,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS}
               FROM events
              WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
                AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                AND {}
              ORDER BY transaction_id, global_position
              LIMIT $3",
            Filter::CLAUSE_FROM_4
        )
    });
    let query = sqlx::query(SQL.as_str())
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit);
    filter.bind(query)
}

/// The last `limit` events of the global order that are readable now (all from finished
/// transactions), oldest first: where a reader that starts at the end primes itself.
pub async fn read_last(pool: &PgPool, limit: i64) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}
           FROM events
          WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY transaction_id DESC, global_position DESC
          LIMIT $1"
    ))
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
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2
          ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode).collect()
}

/// A row's place in the global order.
fn checkpoint(row: &PgRow) -> Result<Checkpoint, sqlx::Error> {
    let transaction_id: &str = row.try_get(column::TXID)?;
    Ok(Checkpoint {
        transaction_id: transaction_id
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        global_position: row.try_get(column::GLOBAL_POSITION)?,
    })
}

fn decode(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    StoredRow::borrow(row)?.decode()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The name each of [`COLUMNS`] goes by in a row: its alias, or the column's own name.
    fn selected_names() -> Vec<String> {
        COLUMNS
            .split(',')
            .map(|item| item.split_whitespace().last().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_column_positions_follow_the_selected_columns() {
        let positions = [
            ("txid", column::TXID),
            ("global_position", column::GLOBAL_POSITION),
            ("aggregate_type", column::AGGREGATE_TYPE),
            ("aggregate_id", column::AGGREGATE_ID),
            ("sequence", column::SEQUENCE),
            ("event_type", column::EVENT_TYPE),
            ("event_version", column::EVENT_VERSION),
            ("payload", column::PAYLOAD),
            ("metadata", column::METADATA),
            ("recorded_at", column::RECORDED_AT),
        ];
        let names = selected_names();
        assert_eq!(names.len(), positions.len(), "{names:?}");
        for (name, position) in positions {
            assert_eq!(names[position], name);
        }
    }
}
