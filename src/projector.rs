//! The projector process: a member of a Kafka consumer group that keeps the MySQL read
//! models.
//!
//! Each batch of messages is applied in one MySQL transaction, together with the progress
//! of each partition (`projection_progress`); the Kafka offsets are committed only after
//! that transaction. A crash between the two redelivers the batch, which changes nothing
//! (see `projections::projector`). While MySQL is down the batch is kept and retried, so
//! nothing is skipped; the write side is unaffected. Events missing from the stream (a
//! producer gave up on them, or the broker no longer keeps them) are fetched from the
//! event store, so a gap in Kafka never becomes a gap in the read models. Two projector
//! processes in one group split the partitions between them; one the group leaves without
//! partitions while nobody progresses rejoins (see [`stranded`]).

mod stranded;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{MySqlPool, PgPool};
use tokio::sync::watch;

use projections::projector::{self, BatchError, Gap, READ_MODELS};
use projections::Envelope;

use crate::kafka::{self, KafkaSettings};
use crate::relay::envelope;
use crate::store::reader;

/// How many messages one MySQL transaction takes at most.
const BATCH: usize = 500;
/// How long to gather more messages once one has arrived.
const GATHER: Duration = Duration::from_millis(5);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// One received message, detached from the consumer's buffers.
struct Received {
    partition: i32,
    offset: i64,
    event: Option<Envelope>,
}

pub struct Projector {
    pool: MySqlPool,
    /// The event store, to fetch events missing from the stream (see `fill`).
    store: PgPool,
    settings: KafkaSettings,
    group: String,
    /// Names this member in `projection_progress.updated_by`.
    member: String,
}

impl Projector {
    pub fn new(pool: MySqlPool, store: PgPool, settings: KafkaSettings, group: String) -> Self {
        let member = format!("{}:{}", hostname(), std::process::id());
        Self {
            pool,
            store,
            settings,
            group,
            member,
        }
    }

    /// Names this member in `projection_progress` (default: host and process id).
    pub fn with_member(mut self, member: impl Into<String>) -> Self {
        self.member = member.into();
        self
    }

    /// Runs until `shutdown` turns true. Shutdown interrupts whatever is in flight: an
    /// uncommitted batch rolls back and is redelivered, which changes nothing.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let mut watching = shutdown.clone();
            let result = tokio::select! {
                result = self.consume(&mut watching) => result,
                _ = shutdown.changed() => Ok(()),
            };
            if let Err(error) = result {
                tracing::warn!(error = %format!("{error:#}"), "projector interrupted; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::info!("projector stopped");
    }

    async fn consume(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        kafka::ensure_topic(&self.settings, &self.settings.topic).await?;
        let consumer = kafka::consumer(&self.settings, &self.group)?;
        consumer.subscribe(&[&self.settings.topic])?;
        tracing::info!(topic = %self.settings.topic, group = %self.group, "projector consuming");
        let mut watch = stranded::Watch::new();
        let mut checks = tokio::time::interval(stranded::CHECK_EVERY);
        loop {
            let first = tokio::select! {
                message = consumer.recv() => match message {
                    Ok(message) => message,
                    // The consumer reconnects by itself; a new one would join the group
                    // as another member while this one is still registered.
                    Err(error) if is_transient(&error) => {
                        tracing::warn!(%error, "broker unavailable; the consumer keeps retrying");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                },
                _ = checks.tick() => {
                    let assigned = consumer.assignment().map_or(0, |list| list.count());
                    let stranded = watch
                        .stranded(assigned, &self.pool, &self.store, READ_MODELS, &self.settings.topic)
                        .await
                        .unwrap_or_else(|error| {
                            tracing::debug!(%error, "could not check the group's progress");
                            false
                        });
                    anyhow::ensure!(
                        !stranded,
                        "no partitions for {:?} while the read models are behind and nobody \
                         progresses: leaving the group to join it again",
                        stranded::STRANDED_AFTER
                    );
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
            };
            let mut batch = vec![detach(&first)];
            drop(first);
            while batch.len() < BATCH {
                match tokio::time::timeout(GATHER, consumer.recv()).await {
                    Ok(message) => batch.push(detach(&message?)),
                    Err(_) => break,
                }
            }
            // Retry until MySQL takes the batch: skipping it would lose events.
            while let Err(error) = self.apply(&batch).await {
                tracing::warn!(error = %error, "read models unavailable; retrying the batch");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
            commit_offsets(&consumer, &self.settings.topic, &batch);
        }
    }

    /// Applies a batch and records progress, in one transaction. Events missing from the
    /// stream are fetched from the event store and applied in their place.
    async fn apply(&self, batch: &[Received]) -> anyhow::Result<()> {
        let mut events: Vec<Envelope> = batch.iter().filter_map(|r| r.event.clone()).collect();
        loop {
            let mut tx = self.pool.begin().await?;
            projector::share_lock(&mut tx).await?;
            match projector::apply_batch(&mut tx, &events).await {
                Ok(_) => {}
                Err(BatchError::Gap(gap)) => {
                    drop(tx);
                    let missing = self.fill(&gap).await?;
                    events.splice(gap.index..gap.index, missing);
                    continue;
                }
                Err(BatchError::Database(error)) => return Err(error.into()),
            }
            let mut last_per_partition: BTreeMap<i32, (i64, &Envelope)> = BTreeMap::new();
            for received in batch {
                if let Some(event) = &received.event {
                    last_per_partition.insert(received.partition, (received.offset, event));
                }
            }
            for (partition, (offset, event)) in last_per_partition {
                projector::record_progress(
                    &mut tx,
                    READ_MODELS,
                    &self.settings.topic,
                    partition,
                    offset + 1,
                    event,
                    &self.member,
                )
                .await?;
            }
            return Ok(tx.commit().await?);
        }
    }

    /// The events of a gap, from the event store (the source of truth).
    async fn fill(&self, gap: &Gap) -> anyhow::Result<Vec<Envelope>> {
        tracing::warn!(
            aggregate = %gap.aggregate_id, from = gap.from, to = gap.to,
            "events missing from the stream; fetching them from the event store"
        );
        let missing: Vec<Envelope> =
            reader::aggregate_events(&self.store, &gap.aggregate_type, &gap.aggregate_id)
                .await?
                .iter()
                .filter(|e| (gap.from..=gap.to).contains(&e.sequence))
                .map(envelope)
                .collect();
        anyhow::ensure!(
            missing.len() as i64 == gap.to - gap.from + 1,
            "the event store lacks events {}..={} of {}",
            gap.from,
            gap.to,
            gap.aggregate_id
        );
        Ok(missing)
    }
}

fn detach(message: &rdkafka::message::BorrowedMessage<'_>) -> Received {
    let event = message.payload().and_then(|bytes| {
        serde_json::from_slice::<Envelope>(bytes)
            .map_err(|error| {
                tracing::error!(
                    partition = message.partition(),
                    offset = message.offset(),
                    %error,
                    "skipping a message that is not an event envelope"
                );
            })
            .ok()
    });
    Received {
        partition: message.partition(),
        offset: message.offset(),
        event,
    }
}

/// Commits the offset after the last message of each partition in the batch. A failure
/// (a rebalance took the partition away, say) only means some redelivery later.
fn commit_offsets(consumer: &StreamConsumer, topic: &str, batch: &[Received]) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for received in batch {
        next.insert(received.partition, received.offset + 1);
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in next {
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, partition, "cannot name an offset to commit");
        }
    }
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(%error, "offset commit failed; the batch may be redelivered");
    }
}

/// Errors the consumer recovers from by itself (it reconnects and fetches again).
fn is_transient(error: &KafkaError) -> bool {
    matches!(error, KafkaError::MessageConsumption(_))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "board".into())
}
