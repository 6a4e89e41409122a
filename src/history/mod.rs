//! Event history for analysts and support: export, replay into a topic, and one
//! aggregate's state at a moment or version (time travel). Everything streams page by
//! page in global order, so memory stays flat whatever the size of the store.
//!
//! Personal data (see `crate::personal_data`): exports and time travel show a nickname
//! while its account's key exists, never an email; replays copy the events as stored,
//! sealed, like the relay's topic.

use anyhow::Context;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use tokio::sync::watch;

use aggregates::account::Account;
use aggregates::category::Category;
use aggregates::comment::Comment;
use aggregates::post::Post;
use aggregates::AggregateKind;

use crate::kafka::{self, envelope, publish, KafkaSettings};
use crate::personal_data::{Reveal, Vault};
use crate::store::reader::{self, Checkpoint, Filter, ReadAhead, RecordedEvent, StoredRow};

mod export;

pub use export::{export, Format};

const PAGE: i64 = 1_000;

/// The pages of events `filter` admits, in global order, until done or cancelled:
/// everything committed before [`Pages::start`], and what commits meanwhile.
struct Pages {
    rows: ReadAhead,
    cancel: watch::Receiver<bool>,
    /// Events handed out so far.
    count: u64,
    cancelled: bool,
}

impl Pages {
    async fn start(
        pool: &PgPool,
        filter: &Filter,
        cancel: &watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        reader::settle(pool, std::time::Duration::from_secs(30)).await?;
        Ok(Self {
            rows: ReadAhead::start(pool, filter.clone(), Checkpoint::default(), PAGE),
            cancel: cancel.clone(),
            count: 0,
            cancelled: false,
        })
    }

    /// The next page of rows (read them with [`StoredRow::borrow`]); `None` at the end, or
    /// once cancelled.
    async fn next(&mut self) -> anyhow::Result<Option<Vec<PgRow>>> {
        if *self.cancel.borrow() {
            self.cancelled = true;
            return Ok(None);
        }
        let rows = self.rows.next_rows().await?;
        if rows.is_empty() {
            return Ok(None);
        }
        self.count += rows.len() as u64;
        Ok(Some(rows))
    }

    /// How many events, and whether it was cancelled.
    fn outcome(&self) -> (u64, bool) {
        (self.count, self.cancelled)
    }
}

/// Republishes the events `filter` admits into `topic`, in global order, with the relay's
/// envelope; each page is acknowledged by the broker before the next is read.
pub async fn replay_to_topic(
    pool: &PgPool,
    filter: &Filter,
    kafka: &KafkaSettings,
    topic: &str,
    progress: &(dyn Fn(u64) + Sync),
    cancel: &watch::Receiver<bool>,
) -> anyhow::Result<(u64, bool)> {
    kafka::ensure_topic(kafka, topic).await?;
    let producer = kafka::producer(kafka)?;
    let mut pages = Pages::start(pool, filter, cancel).await?;
    while let Some(rows) = pages.next().await? {
        // Copied as stored: personal fields stay sealed, as on the relay's topic.
        let page = rows
            .iter()
            .map(|row| StoredRow::borrow(row)?.decode())
            .collect::<Result<Vec<_>, _>>()?;
        publish(&producer, topic, &page).await?;
        progress(page.len() as u64);
    }
    Ok(pages.outcome())
}

/// Where to stop when folding an aggregate's history.
#[derive(Debug, Clone, Copy)]
pub enum AsOf {
    Now,
    Time(DateTime<Utc>),
    Version(i64),
}

/// One aggregate's events up to `as_of`, and its state after them.
pub async fn show(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    as_of: AsOf,
) -> anyhow::Result<Value> {
    let mut events: Vec<RecordedEvent> = reader::aggregate_events(pool, aggregate_type, id)
        .await?
        .into_iter()
        .filter(|e| match as_of {
            AsOf::Now => true,
            AsOf::Time(time) => e.recorded_at <= time,
            AsOf::Version(version) => e.sequence <= version,
        })
        .collect();
    anyhow::ensure!(
        !events.is_empty(),
        "no {aggregate_type} {id} (at that point)"
    );
    Vault::new(pool.clone())
        .open_all(&mut events, Reveal::Public)
        .await?;
    let state = match aggregate_type.parse::<AggregateKind>()? {
        AggregateKind::Account => fold::<Account>(&events)?,
        AggregateKind::Category => fold::<Category>(&events)?,
        AggregateKind::Post => fold::<Post>(&events)?,
        AggregateKind::Comment => fold::<Comment>(&events)?,
    };
    let envelopes: Vec<Value> = events.iter().map(|e| json!(envelope(e))).collect();
    Ok(json!({
        "aggregateType": aggregate_type,
        "aggregateId": id,
        "version": events.last().map(|e| e.sequence),
        "asOf": events.last().map(|e| crate::http::format_time(e.recorded_at)),
        "state": state,
        "events": envelopes,
    }))
}

fn fold<A: Aggregate>(events: &[RecordedEvent]) -> anyhow::Result<Value> {
    let mut aggregate = A::default();
    for event in events {
        let decoded: A::Event =
            serde_json::from_value(event.payload.clone()).with_context(|| {
                format!(
                    "event {} {} cannot be read",
                    event.sequence, event.event_type
                )
            })?;
        aggregate.apply(decoded);
    }
    Ok(serde_json::to_value(&aggregate)?)
}
