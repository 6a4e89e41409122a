//! Where the relay and the projectors are, against the head of the event store.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use serde::Serialize;
use sqlx::{MySqlPool, PgPool};

use crate::kafka::KafkaSettings;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub head: Head,
    pub relays: Vec<RelayStatus>,
    pub projectors: Vec<PartitionStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub events: i64,
    pub global_position: Option<i64>,
    pub recorded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    pub name: String,
    pub global_position: i64,
    pub lag_events: i64,
    /// How long the oldest unpublished event has waited; 0 when caught up.
    pub lag_seconds: f64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub projector: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    /// The partition's end on the broker; `None` when the broker cannot be asked.
    pub end_offset: Option<i64>,
    pub lag_events: Option<i64>,
    /// Age of the last applied event while behind; 0 when caught up.
    pub lag_seconds: Option<f64>,
    pub last_position: Option<i64>,
    pub updated_by: Option<String>,
}

pub async fn collect(
    pg: &PgPool,
    mysql: &MySqlPool,
    kafka: &KafkaSettings,
) -> anyhow::Result<Status> {
    let now = Utc::now();
    let (events, global_position, recorded_at): (i64, Option<i64>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT count(*), max(global_position), max(recorded_at) FROM events")
            .fetch_one(pg)
            .await?;
    let relays = sqlx::query_as::<_, (String, i64, i64, Option<DateTime<Utc>>, DateTime<Utc>)>(
        "SELECT c.relay, c.global_position,
                (SELECT count(*) FROM events e
                  WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)),
                (SELECT min(e.recorded_at) FROM events e
                  WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)),
                c.updated_at
           FROM relay_checkpoints c ORDER BY c.relay",
    )
    .fetch_all(pg)
    .await?
    .into_iter()
    .map(|(name, position, lag_events, oldest, updated_at)| RelayStatus {
        name,
        global_position: position,
        lag_events,
        lag_seconds: oldest.map_or(0.0, |t| seconds_between(t, now)),
        updated_at,
    })
    .collect();

    type Row = (String, String, i32, i64, i64, DateTime<Utc>, String);
    let progress: Vec<Row> = sqlx::query_as(
        "SELECT projector, topic, partition_id, next_offset, last_position, last_recorded_at, updated_by
           FROM projection_progress WHERE topic = ? ORDER BY projector, partition_id",
    )
    .bind(&kafka.topic)
    .fetch_all(mysql)
    .await?;
    let ends = end_offsets(kafka).await;
    let mut projectors = Vec::new();
    for (partition, end) in ends.iter().enumerate() {
        let partition = partition as i32;
        let row = progress.iter().find(|r| r.2 == partition);
        let next_offset = row.map_or(0, |r| r.3);
        let lag_events = end.map(|end| (end - next_offset).max(0));
        projectors.push(PartitionStatus {
            projector: row.map_or_else(
                || projections::projector::READ_MODELS.to_string(),
                |r| r.0.clone(),
            ),
            topic: kafka.topic.clone(),
            partition,
            next_offset,
            end_offset: *end,
            lag_events,
            lag_seconds: lag_events.map(|lag| {
                if lag == 0 {
                    0.0
                } else {
                    row.map_or(0.0, |r| seconds_between(r.5, now))
                }
            }),
            last_position: row.map(|r| r.4),
            updated_by: row.map(|r| r.6.clone()),
        });
    }
    if ends.is_empty() {
        // The broker cannot be asked: report what MySQL knows.
        for row in &progress {
            projectors.push(PartitionStatus {
                projector: row.0.clone(),
                topic: row.1.clone(),
                partition: row.2,
                next_offset: row.3,
                end_offset: None,
                lag_events: None,
                lag_seconds: None,
                last_position: Some(row.4),
                updated_by: Some(row.6.clone()),
            });
        }
    }
    Ok(Status {
        head: Head {
            events,
            global_position,
            recorded_at,
        },
        relays,
        projectors,
    })
}

fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier).num_milliseconds().max(0) as f64 / 1000.0
}

/// How long the broker may take to tell the partitions' ends, all asks together. Well
/// under a `/metrics` scrape's own limit, so that while the broker is down the scrape
/// still reports what the stores know (the relay's lag above all).
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// The end offset of each partition of the topic, asked of the broker (blocking calls,
/// so on the blocking pool); empty when the broker does not answer.
async fn end_offsets(kafka: &KafkaSettings) -> Vec<Option<i64>> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = match ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("group.id", "board-status")
            .create()
        {
            Ok(consumer) => consumer,
            Err(_) => return Vec::new(),
        };
        let deadline = Instant::now() + BROKER_TIMEOUT;
        let left = || deadline.saturating_duration_since(Instant::now());
        let Ok(metadata) = consumer.fetch_metadata(Some(&kafka.topic), left()) else {
            return Vec::new();
        };
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == kafka.topic) else {
            return Vec::new();
        };
        topic
            .partitions()
            .iter()
            .map(|p| {
                consumer
                    .fetch_watermarks(&kafka.topic, p.id(), left())
                    .ok()
                    .map(|(_, high)| high)
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}
