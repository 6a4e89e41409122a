//! The process's one reader of the event store for live updates.
//!
//! It follows the store's gap-safe global order (`store::reader`), wakes on `NOTIFY
//! board_events` (and looks every [`IDLE_POLL`] anyway: an event becomes readable when
//! an older, unrelated transaction ends), renders each event once and publishes it to
//! every subscriber. Started, it first primes the history with the store's last
//! `LIVE_REPLAY_EVENTS` events, so that a client resuming on a replica that has just
//! started is served like anywhere else. Through database outages it is restarted
//! (`supervise`) from the last event it published: nothing is skipped or published twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::DomainEvent;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use aggregates::account::AccountEvent;
use aggregates::AggregateKind;

use super::facts::Facts;
use super::message::{self, Message};
use super::Shared;
use crate::store::reader::{self, Checkpoint, RecordedEvent};
use crate::supervise::{until_shutdown, Supervised};

/// Events read at a time.
pub const BATCH: i64 = 500;
/// How long to wait for a notification before looking anyway.
const IDLE_POLL: Duration = Duration::from_millis(200);

struct Feed {
    shared: Arc<Shared>,
    facts: Facts,
    primed: bool,
}

/// Runs until the server shuts down.
pub(super) async fn run(shared: Arc<Shared>) {
    let closing = shared.closing.subscribe();
    let mut feed = Feed {
        facts: Facts::new(shared.pool.clone()),
        shared,
        primed: false,
    };
    until_shutdown(&mut feed, closing).await;
    tracing::debug!("live feed stopped");
}

impl Supervised for Feed {
    const PART: &'static str = "live feed";
    const PAUSE: Duration = Duration::from_secs(1);

    fn work(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        self.follow(shutdown)
    }
}

impl Feed {
    async fn follow(&mut self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let pool = self.shared.pool.clone();
        // Listening before reading: a commit between the two still wakes the loop.
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(crate::store::EVENTS_CHANNEL).await?;
        if !self.primed {
            self.prime().await?;
            self.primed = true;
            self.shared.ready.send_replace(true);
        }
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let head = self.shared.lock().head;
            let events = reader::read_after(&pool, head, BATCH).await?;
            if events.is_empty() {
                crate::store::wait_for_commits(&mut listener, IDLE_POLL, shutdown).await?;
                continue;
            }
            for event in &events {
                self.take(event).await?;
            }
            self.shared.drop_laggards();
        }
    }

    /// Fills the history with the messages of the store's last events.
    async fn prime(&mut self) -> anyhow::Result<()> {
        let replay = self.shared.settings.replay;
        let mut events = reader::read_last(&self.shared.pool, replay as i64 + 1).await?;
        // The oldest of one more than the history holds is where replays start from.
        let floor = if events.len() > replay {
            events.remove(0).checkpoint
        } else {
            Checkpoint::default()
        };
        {
            let mut history = self.shared.lock();
            history.floor = floor;
            history.head = floor;
        }
        for event in &events {
            self.take(event).await?;
        }
        tracing::debug!(events = events.len(), "live feed primed");
        Ok(())
    }

    /// Renders and publishes the message of `event`, if it has one; an account's closing
    /// also rewrites the recent messages that named it.
    async fn take(&mut self, event: &RecordedEvent) -> anyhow::Result<()> {
        let message = message::render(&mut self.facts, event).await?;
        self.shared.publish(event.checkpoint, message);
        if closes_account(event) {
            self.shared.close_author(&event.aggregate_id);
        }
        Ok(())
    }
}

fn closes_account(event: &RecordedEvent) -> bool {
    event.aggregate_type == AggregateKind::Account.as_str()
        && event.event_type == AccountEvent::AccountClosed {}.event_type()
}

impl Shared {
    /// Records that the feed has read up to `at`, and publishes its message if it has one.
    fn publish(&self, at: Checkpoint, message: Option<Message>) {
        let mut history = self.lock();
        history.head = at;
        let Some(mut message) = message else {
            return;
        };
        history.count += 1;
        message.number = history.count;
        let message = Arc::new(message);
        history.messages.push_back(message.clone());
        if history.messages.len() > self.settings.replay {
            if let Some(oldest) = history.messages.pop_front() {
                history.floor = oldest.checkpoint;
            }
        }
        // No receiver at all is no error: nobody listens yet.
        let _ = self.sender.send(message);
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Rewrites the recent messages whose author is `account_id`, now closed, so that a
    /// client resuming from before the closing is never replayed the nickname.
    fn close_author(&self, account_id: &str) {
        let mut history = self.lock();
        for message in history.messages.iter_mut() {
            if let Some(closed) = message.with_author_closed(account_id) {
                *message = Arc::new(closed);
            }
        }
    }

    /// Disconnects the subscribers more than `LIVE_SUBSCRIBER_BUFFER` messages behind.
    /// Done here, by the feed, because a subscriber that stops reading is not asked for
    /// its next message any more: it could never notice by itself.
    fn drop_laggards(&self) {
        let limit = self.settings.subscriber_buffer as u64;
        let mut history = self.lock();
        let published = history.count;
        let mut dropped = 0;
        history.subscribers.retain(|_, progress| {
            let behind = published.saturating_sub(progress.taken.load(Ordering::Relaxed));
            let keep = behind <= limit;
            if !keep {
                progress.hang_up.send_replace(true);
                dropped += 1;
            }
            keep
        });
        drop(history);
        for _ in 0..dropped {
            self.count_dropped();
        }
    }

    pub(super) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        crate::metrics::record_live_subscriber_dropped();
        tracing::info!("a live subscriber fell too far behind and was disconnected");
    }
}
