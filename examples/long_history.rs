//! The steady-load latency on a topic that holds a long history.
//!
//!     make bench-long     (or: cargo run --release --example long_history -- [EVENTS])
//!
//! Fills a scratch topic with EVENTS (default 1,000,000) event envelopes of an aggregate
//! type the read models do not follow, written straight to the broker in large batches,
//! and records them as already projected (the projector's progress at the partitions'
//! ends): what is measured is a broker whose store holds that history, not a catch-up.
//! Then the relay and the projector start on that topic, and 100 commands a second for
//! 10 s are followed to the read model, beside the same load on an empty topic measured
//! in the same run.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;

use board::kafka;
use board::projector::Projector;
use board::relay::Relay;
use support::kafka_leg::{burst, steady_load};
use support::{percentiles, Stack};

const RATE: u32 = 100;
const SECONDS: u32 = 10;
/// Messages in flight at once while filling.
const WINDOW: usize = 20_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |n| n.parse())?;

    // The baseline: the same load on a topic with nothing but its own events.
    let empty = Arc::new(Stack::start(true, true).await?);
    burst(&empty, 200).await;
    let (empty_p50, empty_p99, _) = percentiles(steady_load(&empty, RATE, SECONDS).await);
    Arc::try_unwrap(empty).ok().expect("load over").stop().await;

    let stack = Stack::start(false, false).await?;
    let settings = stack.state.config.kafka();
    kafka::ensure_topic(&settings, &settings.topic).await?;
    let filled = fill(&settings.brokers, &settings.topic, events).await?;
    println!(
        "filled {} with {events} events in {:.1}s ({:.0}/s)",
        settings.topic,
        filled.as_secs_f64(),
        events as f64 / filled.as_secs_f64()
    );
    mark_projected(&stack).await?;

    // The relay and the projector, as `board serve` runs them, on the long topic.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay =
        tokio::spawn(Relay::new(stack.state.pool.clone(), settings.clone()).run(stopped.clone()));
    let projector = tokio::spawn(
        Projector::new(
            sqlx::MySqlPool::connect(&stack.read_url).await?,
            stack.state.pool.clone(),
            settings.clone(),
            stack.topic.clone(),
        )
        .run(stopped),
    );
    let stack = Arc::new(stack);
    burst(&stack, 200).await;
    let (p50, p99, max) = percentiles(steady_load(&stack, RATE, SECONDS).await);
    let _ = stop.send(true);
    let _ = tokio::join!(relay, projector);

    println!("\ncommand to read model at {RATE} commands/s for {SECONDS}s (release build)\n");
    println!(
        "{:<36} p50 {p50:>6.1} ms   p99 {p99:>6.1} ms   max {max:>6.1} ms",
        format!("topic holding {events} events")
    );
    println!(
        "{:<36} p50 {empty_p50:>6.1} ms   p99 {empty_p99:>6.1} ms",
        "baseline: a new, empty topic"
    );
    println!("goal: p50 under 15 ms, p99 under 50 ms");
    let json = json!({
        "events": events, "rate": RATE, "seconds": SECONDS,
        "longMs": { "p50": p50, "p99": p99, "max": max },
        "emptyMs": { "p50": empty_p50, "p99": empty_p99 },
        "fillSeconds": filled.as_secs_f64(),
    });
    std::fs::create_dir_all("target")?;
    std::fs::write(
        "target/bench-long.json",
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("\nwritten: target/bench-long.json");
    Arc::try_unwrap(stack).ok().expect("load over").stop().await;
    Ok(())
}

/// Writes `events` envelopes of a `filler` aggregate to `topic`, in large batches.
async fn fill(brokers: &str, topic: &str, events: usize) -> anyhow::Result<Duration> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("compression.type", "lz4")
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "0")
        .create()?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    for chunk_start in (0..events).step_by(WINDOW) {
        let chunk: Vec<(String, Vec<u8>)> = (chunk_start..(chunk_start + WINDOW).min(events))
            .map(|i| {
                let id = uuid::Uuid::now_v7().to_string();
                let body = json!({
                    "eventId": uuid::Uuid::new_v4(), "globalPosition": -(i as i64) - 1,
                    "transactionId": 0, "aggregateType": "filler", "aggregateId": id,
                    "sequence": 1, "eventType": "Filled", "eventVersion": "1.0",
                    "recordedAt": chrono::Utc::now(), "payload": { "n": i }, "metadata": {},
                });
                (id, serde_json::to_vec(&body).unwrap())
            })
            .collect();
        let deliveries = chunk.iter().map(|(key, body)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(body),
                Duration::from_secs(60),
            )
        });
        for delivery in join_all(deliveries).await {
            delivery.map_err(|(error, _)| error)?;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            println!(
                "  {} of {events} written ({:.0}/s)",
                chunk_start + WINDOW,
                (chunk_start + WINDOW) as f64 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    Ok(started.elapsed())
}

/// Records the filler as applied: the projector's progress at each partition's end.
async fn mark_projected(stack: &Stack) -> anyhow::Result<()> {
    let ends = stack
        .state
        .broker
        .topic_ends(Duration::from_secs(30))
        .await?
        .ends;
    for (partition, end) in ends.iter().enumerate() {
        sqlx::query(
            "INSERT INTO projection_progress
                    (projector, topic, partition_id, next_offset, last_position, last_recorded_at,
                     updated_by, updated_at)
             VALUES ('read-models', ?, ?, ?, 0, UTC_TIMESTAMP(3), 'long-history', UTC_TIMESTAMP(3))",
        )
        .bind(&stack.topic)
        .bind(partition as i32)
        .bind(end)
        .execute(&stack.read_pool)
        .await?;
    }
    Ok(())
}
