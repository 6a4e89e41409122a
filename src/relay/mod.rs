//! The relay: publishes every committed event to Kafka, in global order, without loss.
//!
//! - Reads with [`crate::store::reader`], which never skips a late-committing event.
//! - Waits for the broker's acknowledgement of a whole batch before it advances its
//!   checkpoint in PostgreSQL. Killed at any instant it loses nothing; the next relay
//!   re-publishes at most the unacknowledged batch (consumers deduplicate by sequence).
//! - One relay is active at a time: it holds a PostgreSQL advisory lock on a dedicated
//!   connection, and reads and records its progress on that connection ([`leader`]);
//!   others wait for it, and take over when its connection dies.
//! - Wakes on `NOTIFY board_events` (sent after commits, `store::CommitSignal`) and also
//!   polls briefly, since an event can become readable when an unrelated transaction ends.
//! - Says `NOTIFY board_relayed` once the broker acknowledged a batch, with the topic and
//!   each partition's end ([`Published`]): projectors that have read that far stop
//!   fetching and wait for the next one (see `crate::projector`).

mod checkpoint;
pub(crate) mod leader;
mod published;

pub use published::Published;

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::kafka::{self, publish, KafkaSettings};
use crate::store::{self, reader};
use crate::supervise::{until_shutdown, Supervised};
use leader::answered;

/// The channel of the relay's "published" notification; its payload is a [`Published`].
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
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        until_shutdown(&mut self, shutdown).await;
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
        listener.listen(store::EVENTS_CHANNEL).await?;
        let mut checkpoint = answered(checkpoint::load(lock.connection(), &self.name)).await?;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let events = answered(reader::read_after(lock.connection(), checkpoint, BATCH)).await?;
            if events.is_empty() {
                store::wait_for_commits(&mut listener, IDLE_POLL, shutdown).await?;
                continue;
            }
            let ends = publish(&producer, &self.settings.topic, &events).await?;
            // The broker has the batch: wake idle projectors first, then record it. The
            // wake-up is a hint (projectors also check the partitions' ends): a failure
            // to send it must not make the batch be published again.
            let published = Published {
                topic: self.settings.topic.clone(),
                ends,
            };
            let wake_up = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RELAYED_CHANNEL)
                .bind(published.payload())
                .execute(lock.connection());
            if let Err(error) = answered(wake_up).await {
                tracing::warn!(%error, "could not notify the projectors");
            }
            let last = events.last().expect("non-empty").checkpoint;
            answered(checkpoint::save(lock.connection(), &self.name, last)).await?;
            checkpoint = last;
            tracing::debug!(
                count = events.len(),
                position = last.global_position,
                "published"
            );
        }
    }
}

impl Supervised for Relay {
    const PART: &'static str = "relay";
    const PAUSE: Duration = RETRY_PAUSE;

    fn work(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        self.lead(shutdown)
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
