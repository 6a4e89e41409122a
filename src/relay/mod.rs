//! The relay: publishes every committed event to Kafka, in global order, without loss.
//!
//! - Reads with [`crate::store::reader`], which never skips a late-committing event.
//! - Waits for the broker's acknowledgement of a whole batch before it advances its
//!   checkpoint in PostgreSQL. Killed at any instant it loses nothing; the next relay
//!   re-publishes at most the unacknowledged batch (consumers deduplicate by sequence).
//! - One relay is active at a time: it holds a PostgreSQL advisory lock on a dedicated
//!   connection; others wait for it, and take over when its connection dies.
//! - Wakes on `NOTIFY board_events` (sent at commit) and also polls briefly, since an
//!   event can become readable when an unrelated transaction ends.
//! - Says `NOTIFY board_relayed` (payload: the topic) once the broker acknowledged a
//!   batch: idle projectors stop fetching and wait for it (see `crate::projector`).

mod checkpoint;
mod leader;

use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use projections::Envelope;

use crate::kafka::{self, KafkaSettings};
use crate::store::reader::{self, RecordedEvent};

/// The channel of the relay's "published" notification; its payload is the topic.
pub const RELAYED_CHANNEL: &str = "board_relayed";

const BATCH: i64 = 500;
/// How long to wait for a notification before looking anyway.
const IDLE_POLL: Duration = Duration::from_millis(200);
const RETRY_PAUSE: Duration = Duration::from_secs(1);

pub struct Relay {
    pool: PgPool,
    settings: KafkaSettings,
    /// The checkpoint's name; one per topic, so replays to other topics keep their own.
    name: String,
}

impl Relay {
    pub fn new(pool: PgPool, settings: KafkaSettings) -> Self {
        let name = format!("relay:{}", settings.topic);
        Self {
            pool,
            settings,
            name,
        }
    }

    /// Runs until `shutdown` turns true, through broker and database outages. Shutdown
    /// interrupts whatever is in flight: an unacknowledged batch is simply published again
    /// by the next relay.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let mut watching = shutdown.clone();
            let result = tokio::select! {
                result = self.lead(&mut watching) => result,
                _ = shutdown.changed() => Ok(()),
            };
            if let Err(error) = result {
                tracing::warn!(error = %format!("{error:#}"), "relay interrupted; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::info!("relay stopped");
    }

    /// Waits to become the active relay, then publishes until shutdown or an error.
    async fn lead(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let Some(mut lock) = leader::acquire(&self.pool, &self.name, shutdown).await? else {
            return Ok(());
        };
        tracing::info!(topic = %self.settings.topic, "relay active");
        check_transaction_ids(&self.pool).await?;
        kafka::ensure_topic(&self.settings, &self.settings.topic).await?;
        let producer = kafka::producer(&self.settings)?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("board_events").await?;
        let mut checkpoint = checkpoint::load(&self.pool, &self.name).await?;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            lock.check().await?;
            let events = reader::read_after(&self.pool, checkpoint, BATCH).await?;
            if events.is_empty() {
                tokio::select! {
                    notification = listener.recv() => { notification?; }
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            publish(&producer, &self.settings.topic, &events).await?;
            // The broker has the batch: wake idle projectors first, then record it. The
            // wake-up is a hint (projectors also check the partitions' ends): a failure
            // to send it must not make the batch be published again.
            if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RELAYED_CHANNEL)
                .bind(&self.settings.topic)
                .execute(&self.pool)
                .await
            {
                tracing::warn!(%error, "could not notify the projectors");
            }
            let last = events.last().expect("non-empty").checkpoint;
            checkpoint::save(&self.pool, &self.name, last).await?;
            checkpoint = last;
            tracing::debug!(
                count = events.len(),
                position = last.global_position,
                "published"
            );
        }
    }
}

/// The global order rests on this server's transaction ids. After a logical dump and
/// restore into another server, restored events can carry ids above the new server's
/// counter: they would stay unreadable until the counter passed them, while newer events
/// went out ahead of them, out of order. Refuse loudly instead.
async fn check_transaction_ids(pool: &PgPool) -> anyhow::Result<()> {
    let ahead: bool = sqlx::query_scalar(
        "SELECT COALESCE((SELECT transaction_id FROM events ORDER BY transaction_id DESC LIMIT 1)
                         >= pg_snapshot_xmax(pg_current_snapshot()), false)",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        !ahead,
        "the event store holds transaction ids above this server's counter (restored from \
         another server?): advance it (pg_resetwal -x) before relaying"
    );
    Ok(())
}

/// Publishes `events` in order and returns once the broker acknowledged every one.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    events: &[RecordedEvent],
) -> anyhow::Result<()> {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let envelope = envelope(event);
        let body = serde_json::to_vec(&envelope)?;
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "eventType",
            value: Some(event.event_type.as_str()),
        });
        if let Some(request_id) = event.metadata.get("requestId").and_then(|v| v.as_str()) {
            headers = headers.insert(Header {
                key: "requestId",
                value: Some(request_id),
            });
        }
        // Enqueued in global order; the idempotent producer keeps that order per partition.
        loop {
            let record = FutureRecord::to(topic)
                .key(event.aggregate_id.as_str())
                .payload(&body)
                .headers(headers.clone());
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((error, _)) if is_queue_full(&error) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _)) => return Err(error).context("enqueuing an event"),
            }
        }
    }
    for delivery in deliveries {
        delivery
            .await
            .context("the producer went away")?
            .map_err(|(error, _)| error)
            .context("the broker did not acknowledge an event")?;
    }
    Ok(())
}

fn is_queue_full(error: &rdkafka::error::KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
}

/// The Kafka envelope of a stored event.
pub fn envelope(event: &RecordedEvent) -> Envelope {
    Envelope {
        event_id: Envelope::event_id_for(
            &event.aggregate_type,
            &event.aggregate_id,
            event.sequence,
        ),
        global_position: event.checkpoint.global_position,
        transaction_id: event.checkpoint.transaction_id,
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        recorded_at: event.recorded_at,
        payload: Envelope::untag(&event.event_type, event.payload.clone()),
        metadata: event.metadata.clone(),
    }
}
