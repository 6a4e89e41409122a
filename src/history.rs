//! Event history for analysts and support: export, replay into a topic, and one
//! aggregate's state at a moment or version (time travel). Everything streams page by
//! page in global order, so memory stays flat whatever the size of the store.
//!
//! Personal data (see `crate::personal_data`): exports and time travel show a nickname
//! while its account's key exists, never an email; replays copy the events as stored,
//! sealed, like the relay's topic.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::watch;

use aggregates::account::Account;
use aggregates::category::Category;
use aggregates::comment::Comment;
use aggregates::post::Post;
use aggregates::AggregateKind;

use crate::kafka::{self, envelope, into_envelope, publish, KafkaSettings};
use crate::personal_data::{Reveal, Vault};
use crate::store::reader::{self, Checkpoint, Filter, ReadAhead, RecordedEvent};

const PAGE: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON envelope per line (the Kafka envelope).
    Jsonl,
    /// One row per event; payload and metadata as JSON text.
    Csv,
}

/// Calls `each` with every page of events `filter` admits, in global order, until done or
/// cancelled: everything committed before the call, and what commits meanwhile. With a
/// `vault`, the personal fields are opened as far as `Reveal::Public` allows first.
/// Returns the number of events, and whether it was cancelled.
async fn pages<F, Fut>(
    pool: &PgPool,
    filter: &Filter,
    cancel: Option<&watch::Receiver<bool>>,
    vault: Option<&Vault>,
    mut each: F,
) -> anyhow::Result<(u64, bool)>
where
    F: FnMut(Vec<RecordedEvent>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    reader::settle(pool, std::time::Duration::from_secs(30)).await?;
    let mut pages = ReadAhead::start(pool, filter.clone(), Checkpoint::default(), PAGE);
    let mut count = 0;
    loop {
        if cancel.is_some_and(|c| *c.borrow()) {
            return Ok((count, true));
        }
        let mut page = pages.next_page().await?;
        if page.is_empty() {
            return Ok((count, false));
        }
        count += page.len() as u64;
        if let Some(vault) = vault {
            vault.open_all(&mut page, Reveal::Public).await?;
        }
        each(page).await?;
    }
}

/// Writes the events `filter` admits to `out`. `progress` hears each page's size.
pub async fn export(
    pool: &PgPool,
    filter: &Filter,
    format: Format,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(u64) + Sync),
    cancel: &watch::Receiver<bool>,
) -> anyhow::Result<(u64, bool)> {
    if format == Format::Csv {
        csv::Writer::from_writer(&mut *out).write_record(CSV_HEADER)?;
    }
    let vault = Vault::new(pool.clone());
    let result = pages(pool, filter, Some(cancel), Some(&vault), |page| {
        let events = page.len() as u64;
        let written = write_page(page, format, out);
        progress(events);
        std::future::ready(written)
    })
    .await?;
    out.flush()?;
    Ok(result)
}

const CSV_HEADER: [&str; 11] = [
    "eventId",
    "globalPosition",
    "transactionId",
    "recordedAt",
    "aggregateType",
    "aggregateId",
    "sequence",
    "eventType",
    "eventVersion",
    "payload",
    "metadata",
];

fn write_page(
    page: Vec<RecordedEvent>,
    format: Format,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => {
            for event in page {
                serde_json::to_writer(&mut *out, &into_envelope(event))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut csv = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *out);
            for event in page {
                let e = into_envelope(event);
                csv.write_record([
                    e.event_id.to_string(),
                    e.global_position.to_string(),
                    e.transaction_id.to_string(),
                    crate::http::format_time(e.recorded_at),
                    e.aggregate_type,
                    e.aggregate_id,
                    e.sequence.to_string(),
                    e.event_type,
                    e.event_version,
                    e.payload.to_string(),
                    e.metadata.to_string(),
                ])?;
            }
            csv.flush()?;
        }
    }
    Ok(())
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
    // Copied as stored: personal fields stay sealed, as on the relay's topic.
    pages(pool, filter, Some(cancel), None, |page| {
        let producer = &producer;
        async move {
            publish(producer, topic, &page).await?;
            progress(page.len() as u64);
            Ok(())
        }
    })
    .await
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
