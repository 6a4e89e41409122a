//! Publishing stored events: each as its [`Envelope`](projections::Envelope), keyed by
//! aggregate id, in order, acknowledged before anyone may count on it.
//!
//! A message is its key and its envelope, with no Kafka headers. The envelope already
//! holds the event type and the request id, and is what every reader decodes; headers
//! repeating them cost the local broker two more statements per event on the way in (it
//! stores each header as a row of its own): 80 µs of its CPU per event, a third of what
//! publishing cost it (docs/PERFORMANCE.md, "Headers").

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::envelope::envelope;
use crate::store::reader::RecordedEvent;

/// Publishes `events` in order and returns once the broker acknowledged every one.
/// Returns, for each partition the events went to, the offset after the last of them: a
/// lower bound of that partition's end from now on.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    events: &[RecordedEvent],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let envelope = envelope(event);
        let body = serde_json::to_vec(&envelope)?;
        // Enqueued in global order; the idempotent producer keeps that order per partition.
        loop {
            let record = FutureRecord::to(topic)
                .key(event.aggregate_id.as_str())
                .payload(&body);
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
    let mut ends = BTreeMap::new();
    for delivery in deliveries {
        let delivered = delivery
            .await
            .context("the producer went away")?
            .map_err(|(error, _)| error)
            .context("the broker did not acknowledge an event")?;
        let end = ends.entry(delivered.partition).or_insert(0);
        *end = (*end).max(delivered.offset + 1);
    }
    Ok(ends)
}

fn is_queue_full(error: &rdkafka::error::KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
}
