//! The projector process: keeps the MySQL read models from the events topic.
//!
//! Each batch of messages is applied in one MySQL transaction, together with the progress
//! of each partition (`projection_progress`): that progress is where the projector starts
//! again, so a crash anywhere redelivers at most an uncommitted batch, which changes
//! nothing (see `projections::fold`). While MySQL is down the batch is kept and
//! retried, so nothing is skipped, and its partitions are paused, so the broker is not
//! asked for more meanwhile; the write side is unaffected. Events missing from the
//! stream (a producer gave up on them, or the broker no longer keeps them) are fetched
//! from the event store, so a gap in Kafka never becomes a gap in the read models. An
//! event that cannot be applied is quarantined by the fold, with its aggregate's later
//! events behind it, and the partition goes on (see `projections::fold`).
//!
//! Projector processes of one group split the partitions by leases in the read database
//! ([`leases`]), not through the broker's group coordinator, and read them with a plain
//! `assign()`. With nothing to read they stop fetching until the relay says it published
//! ([`idle`]).

mod idle;
pub mod leases;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::postgres::PgListener;
use sqlx::{MySqlPool, PgPool};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use projections::fold::{self, BatchError, Gap, READ_MODELS};
use projections::Envelope;

use crate::kafka::{self, envelope, BrokerProbe, KafkaSettings};
use crate::personal_data::{Reveal, Vault};
use crate::relay::{Published, RELAYED_CHANNEL};
use crate::store::reader;
use crate::supervise::{until_shutdown, Supervised};
use idle::{Action, Idle};
use leases::Leases;

/// How many messages one MySQL transaction takes at most.
const BATCH: usize = 500;
/// How long to wait for more messages once one has arrived: only what the last fetch
/// brought is taken, nothing is waited for.
const GATHER: Duration = Duration::ZERO;
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// After an error the consumer reports (the broker unreachable, a fetch refused), a short
/// pause, no more: every report waiting in the consumer's queue holds its next fetch back
/// (`kafka::consumer`, `queued.min.messages`), so the reports must be taken promptly. Each
/// comes once per broker connection and kind of error (librdkafka repeats an identical
/// one at most every 30 s), so the pause only keeps a misbehaving client from spinning.
const ERROR_PAUSE: Duration = Duration::from_millis(20);
/// How long a look at the partitions' ends may take. It holds up the projector's loop
/// (lease renewals among it), so it stays well under the lease's life.
const END_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// One received message, detached from the consumer's buffers.
struct Received {
    partition: i32,
    offset: i64,
    event: Option<Envelope>,
}

pub struct Projector {
    pool: MySqlPool,
    /// The event store, to fetch events missing from the stream (see `fill`), and the
    /// relay's notifications.
    store: PgPool,
    settings: KafkaSettings,
    group: String,
    /// The accounts' keys, to open the personal fields the read models show.
    vault: Vault,
    /// Names this member in its leases and in `projection_progress.updated_by`.
    member: String,
}

/// A projector at work: its leases live as long as [`Projector::run`], across the
/// restarts of its consumer.
struct Member<'a> {
    projector: &'a Projector,
    leases: Leases,
}

impl Supervised for Member<'_> {
    const PART: &'static str = "projector";
    const PAUSE: Duration = RETRY_PAUSE;

    fn work(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        self.projector.consume(&mut self.leases, shutdown)
    }
}

impl Projector {
    pub fn new(pool: MySqlPool, store: PgPool, settings: KafkaSettings, group: String) -> Self {
        let member = crate::supervise::process_name();
        Self {
            vault: Vault::new(store.clone()),
            pool,
            store,
            settings,
            group,
            member,
        }
    }

    /// Joins the projector group `group` instead of the configured one.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Names this member in its leases and in `projection_progress`.
    pub fn with_member(mut self, member: impl Into<String>) -> Self {
        self.member = member.into();
        self
    }

    /// Runs until `shutdown` turns true. Shutdown interrupts whatever is in flight: an
    /// uncommitted batch rolls back and is redelivered, which changes nothing. Leases are
    /// given back on the way out, so another member takes over at once.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let leases = Leases::new(
            self.pool.clone(),
            &self.group,
            &self.settings.topic,
            &self.member,
        );
        let mut member = Member {
            projector: &self,
            leases,
        };
        until_shutdown(&mut member, shutdown).await;
        if let Err(error) = member.leases.release_all().await {
            tracing::warn!(%error, "could not give the partition leases back; they expire");
        }
        tracing::info!("projector stopped");
    }

    async fn consume(
        &self,
        leases: &mut Leases,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        kafka::ensure_topic(&self.settings, &self.settings.topic).await?;
        let probe = BrokerProbe::new(&self.settings);
        let mut partitions = probe.partition_count().await?;
        let consumer = kafka::consumer(&self.settings, &self.group)?;
        let mut relayed = Relayed::listen(&self.store).await;
        tracing::info!(
            topic = %self.settings.topic, group = %self.group, member = %self.member, partitions,
            "projector consuming"
        );
        // The held partitions, each with the next offset to read: where it was assigned,
        // then after the last message received.
        let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
        let mut idle = Idle::new(Instant::now());
        let mut renewals = tokio::time::interval(leases::RENEW_EVERY);
        let mut ticks = tokio::time::interval(idle::TICK);
        // After a long batch, one renewal and one look, not a burst of them.
        renewals.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                message = consumer.recv(), if !positions.is_empty() => match message {
                    Ok(message) => message,
                    // The consumer reconnects by itself.
                    Err(error) if is_transient(&error) => {
                        tracing::warn!(%error, "broker unavailable; the consumer keeps retrying");
                        tokio::time::sleep(ERROR_PAUSE).await;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                },
                _ = renewals.tick() => {
                    let keeping_up = idle.keeping_up();
                    match leases.renew(partitions, &keeping_up).await {
                        Ok(held) if !held.iter().eq(positions.keys()) => {
                            positions = self.assign(&consumer, &held).await?;
                            idle = Idle::new(Instant::now());
                        }
                        Ok(_) => {}
                        // Leases run out while MySQL is away; nothing can be applied then
                        // either, and each batch checks its leases anyway.
                        Err(error) => tracing::warn!(%error, "could not renew the partition leases"),
                    }
                    continue;
                }
                _ = ticks.tick() => {
                    let action = match idle.tick(Instant::now()) {
                        Some(Action::CheckEnds) => {
                            let ends = self.check_ends(&probe, &positions).await;
                            // A topic that gained partitions is split again at the next renewal.
                            if let Some(ends) = &ends {
                                partitions = partitions.max(ends.partitions);
                            }
                            let held = ends.as_ref().map(|ends| &ends.held);
                            idle.on_end_check(Instant::now(), held, &positions)
                        }
                        action => action,
                    };
                    pause_or_resume(&consumer, &self.settings.topic, &positions, action)?;
                    continue;
                }
                wake = relayed.next() => {
                    let now = Instant::now();
                    let action = match wake {
                        Wake::Published(published) if published.topic == self.settings.topic => {
                            idle.on_published(now, &published, &positions)
                        }
                        // Another topic's relay: nothing of ours moved.
                        Wake::Published(_) => None,
                        Wake::Unknown => idle.on_wake(now),
                    };
                    pause_or_resume(&consumer, &self.settings.topic, &positions, action)?;
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
            };
            let now = Instant::now();
            idle.on_message(first.partition(), now);
            let mut batch = vec![detach(&first)];
            drop(first);
            while batch.len() < BATCH {
                match tokio::time::timeout(GATHER, consumer.recv()).await {
                    Ok(Ok(message)) => {
                        idle.on_message(message.partition(), now);
                        batch.push(detach(&message));
                    }
                    Ok(Err(error)) if is_transient(&error) => break,
                    Ok(Err(error)) => return Err(error.into()),
                    Err(_) => break,
                }
            }
            for received in &batch {
                positions.insert(received.partition, received.offset + 1);
            }
            // Retry until MySQL takes the batch: skipping it would lose events. While it
            // refuses, the partitions are paused: the consumer would otherwise fetch
            // what follows the batch, and at a partition's end fetch again every
            // `fetch.wait.max.ms`, for as long as MySQL is away (Tansu used 0.7 of a core).
            let mut held_back = false;
            loop {
                match self.apply(&batch).await {
                    Ok(Applied::All) => {
                        tracing::debug!(messages = batch.len(), "batch applied");
                        if held_back {
                            pause_or_resume(
                                &consumer,
                                &self.settings.topic,
                                &positions,
                                Some(Action::Resume),
                            )?;
                        }
                        break;
                    }
                    Ok(Applied::LostLeases(lost)) => {
                        // Another member holds these now: stop reading them.
                        tracing::info!(?lost, "partition leases taken over; dropping them");
                        let kept: BTreeSet<i32> = positions
                            .keys()
                            .filter(|p| !lost.contains(p))
                            .copied()
                            .collect();
                        positions = self.assign(&consumer, &kept).await?;
                        break;
                    }
                    Err(error) if is_lock_conflict(&error) => {
                        // Two appliers on one row (two members briefly sharing a
                        // partition, or a rebuild handing over): MySQL gave up on this one.
                        tracing::info!(error = %format!("{error:#}"), "lock conflict with another applier; applying the batch again");
                    }
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "read models unavailable; retrying the batch");
                        if !held_back {
                            pause_or_resume(
                                &consumer,
                                &self.settings.topic,
                                &positions,
                                Some(Action::Pause),
                            )?;
                            held_back = true;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(RETRY_PAUSE) => {}
                            _ = shutdown.changed() => return Ok(()),
                        }
                    }
                }
            }
            let action = idle.after_batch(&positions);
            pause_or_resume(&consumer, &self.settings.topic, &positions, action)?;
        }
    }

    /// Reads `partitions` from where the read models say each one stands; returns those
    /// offsets.
    async fn assign(
        &self,
        consumer: &StreamConsumer,
        partitions: &BTreeSet<i32>,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let next: BTreeMap<i32, i64> = sqlx::query_as(
            "SELECT partition_id, next_offset FROM projection_progress
              WHERE projector = ? AND topic = ?",
        )
        .bind(READ_MODELS)
        .bind(&self.settings.topic)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        let mut list = TopicPartitionList::new();
        let mut assigned = BTreeMap::new();
        for partition in partitions {
            let offset = next.get(partition).copied();
            list.add_partition_offset(
                &self.settings.topic,
                *partition,
                offset.map_or(Offset::Beginning, Offset::Offset),
            )?;
            assigned.insert(*partition, offset.unwrap_or(0));
        }
        consumer
            .assign(&list)
            .context("assigning the leased partitions")?;
        tracing::info!(partitions = ?partitions, "projecting partitions");
        Ok(assigned)
    }

    /// Asks the broker where each held partition ends; `None` when it cannot be asked.
    async fn check_ends(
        &self,
        probe: &BrokerProbe,
        positions: &BTreeMap<i32, i64>,
    ) -> Option<Ends> {
        let ends = match probe.topic_ends(END_CHECK_TIMEOUT).await {
            Ok(answer) => answer.ends,
            Err(error) => {
                tracing::debug!(error = %format!("{error:#}"), "could not ask the partitions' ends");
                return None;
            }
        };
        let held = positions
            .keys()
            .filter_map(|&partition| Some((partition, *ends.get(partition as usize)?)))
            .collect();
        Some(Ends {
            held,
            partitions: ends.len() as i32,
        })
    }

    /// Applies a batch and records progress, in one transaction, for the partitions this
    /// member still holds (their leases stay locked until the commit). Events missing from
    /// the stream are fetched from the event store and applied in their place.
    async fn apply(&self, batch: &[Received]) -> anyhow::Result<Applied> {
        let partitions: BTreeSet<i32> = batch.iter().map(|r| r.partition).collect();
        let (mut tx, lost) = self.begin(&partitions).await?;
        if !lost.is_empty() {
            return Ok(Applied::LostLeases(lost));
        }
        let mut events: Vec<Envelope> = batch.iter().filter_map(|r| r.event.clone()).collect();
        loop {
            // The topic carries personal fields sealed; the read models show the nickname.
            // (Again after a gap was filled: those already open are left as they are.)
            self.vault.open_all(&mut events, Reveal::Public).await?;
            match fold::apply_batch(&mut tx, &events).await {
                Ok(applied) => {
                    if applied.quarantined > 0 {
                        tracing::warn!(
                            quarantined = applied.quarantined,
                            "events quarantined; see `board projections quarantine list`"
                        );
                    }
                    break;
                }
                // This ends: the gap's first event, now at its index, is its row's next
                // one, so it is applied or quarantined, and the same gap cannot come back.
                // (Skipping an event that cannot be applied left the gap, for ever.)
                Err(BatchError::Gap(gap)) => {
                    // A failed statement may leave the transaction unusable: start over
                    // (the leases are checked again).
                    drop(tx);
                    let missing = self.fill(&gap).await?;
                    events.splice(gap.index..gap.index, missing);
                    let (again, lost) = self.begin(&partitions).await?;
                    if !lost.is_empty() {
                        return Ok(Applied::LostLeases(lost));
                    }
                    tx = again;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let mut last_per_partition: BTreeMap<i32, (i64, &Envelope)> = BTreeMap::new();
        for received in batch {
            if let Some(event) = &received.event {
                last_per_partition.insert(received.partition, (received.offset, event));
            }
        }
        for (partition, (offset, event)) in last_per_partition {
            fold::record_progress(
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
        tx.commit().await?;
        Ok(Applied::All)
    }

    /// A batch's transaction: the projection's share lock (see `fold::share_lock`),
    /// then the leases of `partitions`, share-locked until the commit. Returns it with
    /// those of `partitions` this member no longer holds.
    async fn begin(
        &self,
        partitions: &BTreeSet<i32>,
    ) -> anyhow::Result<(sqlx::Transaction<'static, sqlx::MySql>, BTreeSet<i32>)> {
        let mut tx = self.pool.begin().await?;
        fold::share_lock(&mut tx).await?;
        let held = leases::held_in(
            &mut tx,
            &self.group,
            &self.settings.topic,
            &self.member,
            partitions,
        )
        .await?;
        let lost = partitions.difference(&held).copied().collect();
        Ok((tx, lost))
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

/// What an end check found.
struct Ends {
    /// Where each held partition ends.
    held: BTreeMap<i32, i64>,
    /// How many partitions the topic has.
    partitions: i32,
}

/// What became of a batch.
enum Applied {
    All,
    /// Nothing was applied: these partitions' leases are no longer this member's.
    LostLeases(BTreeSet<i32>),
}

/// Pausing takes the partitions off the consumer (`assign` of nothing), resuming assigns
/// them again at their positions. librdkafka's own pause and resume would do, but a
/// resumed partition waited up to a second for its broker thread to fetch it again.
fn pause_or_resume(
    consumer: &StreamConsumer,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    action: Option<Action>,
) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::new();
    match action {
        None | Some(Action::CheckEnds) => return Ok(()),
        Some(Action::Pause) => {}
        Some(Action::Resume) => {
            for (partition, next) in positions {
                list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            }
        }
    }
    consumer.assign(&list)?;
    tracing::trace!(?action, "partitions");
    Ok(())
}

/// The relay's "published" notifications. Without a listener (PostgreSQL away) the
/// projector falls back on its end checks, and listening is tried again every
/// [`RELISTEN`]. The listener reconnects by itself, and a reconnection counts as a
/// notification, since some may have been missed meanwhile.
struct Relayed {
    store: PgPool,
    listener: Option<PgListener>,
}

/// How often to try listening again while PostgreSQL is away.
const RELISTEN: Duration = Duration::from_secs(5);

impl Relayed {
    async fn listen(store: &PgPool) -> Self {
        let mut relayed = Self {
            store: store.clone(),
            listener: None,
        };
        relayed.connect().await;
        relayed
    }

    async fn connect(&mut self) {
        let listener = async {
            let mut listener = PgListener::connect_with(&self.store).await?;
            listener.listen(RELAYED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listener.await {
            Ok(listener) => self.listener = Some(listener),
            Err(error) => {
                tracing::warn!(%error, "no relay notifications for now; checking the partitions' ends instead");
            }
        }
    }

    /// Resolves on a notification, or on something that may have hidden one.
    async fn next(&mut self) -> Wake {
        let Some(listener) = self.listener.as_mut() else {
            tokio::time::sleep(RELISTEN).await;
            self.connect().await;
            return Wake::Unknown;
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => match Published::parse(notification.payload()) {
                Some(published) => Wake::Published(published),
                None => Wake::Unknown,
            },
            // The connection was lost and is made again by the next call.
            Ok(None) => Wake::Unknown,
            Err(error) => {
                tracing::debug!(%error, "relay notifications interrupted");
                tokio::time::sleep(RETRY_PAUSE).await;
                Wake::Unknown
            }
        }
    }
}

/// What woke the projector.
enum Wake {
    /// The relay published, and says where.
    Published(Published),
    /// Something may have been published: a notification that says nothing, or the
    /// listener reconnecting (notifications may have been missed meanwhile).
    Unknown,
}

/// Whether a batch failed only because MySQL chose it as a deadlock victim or its lock
/// wait timed out: the same batch simply applies again.
fn is_lock_conflict(error: &anyhow::Error) -> bool {
    let database = match error.downcast_ref::<BatchError>() {
        Some(BatchError::Database(error)) => Some(error),
        Some(_) => None,
        None => error.downcast_ref::<sqlx::Error>(),
    };
    database.is_some_and(fold::is_retryable)
}

/// Errors the consumer recovers from by itself (it reconnects and fetches again).
fn is_transient(error: &KafkaError) -> bool {
    matches!(error, KafkaError::MessageConsumption(_))
}
