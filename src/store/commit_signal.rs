//! Wakes the event store's readers (the relay, the live feed) once events have committed:
//! `NOTIFY board_events`, sent after the commit by a task of its own, once for all the
//! commits since it last sent one.
//!
//! Not from a trigger in the writing transaction, as it was: PostgreSQL serializes the
//! commits of every transaction that notifies (a cluster-wide lock taken at commit and
//! held through the flush of the write-ahead log), so one notification in every command
//! queued the commits of concurrent commands one behind the other. Measured with pgbench,
//! 16 clients, single-row INSERTs: 618/s with a statement trigger that notifies, 6,102/s
//! with the NOTIFY sent as a statement of its own after each commit, 7,344/s with none
//! (docs/PERFORMANCE.md). A transaction that only notifies writes nothing to flush.
//!
//! A notification is only a wake-up. The readers also look by themselves (the relay every
//! 200 ms), so an event whose notification was lost (the process died right after the
//! commit, the database refused the NOTIFY) or that was written by other means (an
//! operator's SQL) is read within that time all the same.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};

/// The channel the readers listen on.
pub const EVENTS_CHANNEL: &str = "board_events";

/// The least time between two notifications. Each wakes every reader for a read of its
/// own, and each is a transaction: one per commit, under a burst, was PostgreSQL's most
/// frequent statement beside the commands' own (`make bench`, pg_stat_statements). A
/// commit waits at most this long for its wake-up; at 100 commands a second, commits are
/// further apart than this, and none waits.
const SPACING: Duration = Duration::from_millis(2);

/// Cheap to clone; clones share one sending task, which ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct CommitSignal {
    pool: PgPool,
    /// Started with the first commit (construction may happen outside the runtime).
    sender: Arc<OnceLock<mpsc::Sender<()>>>,
}

impl CommitSignal {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sender: Arc::new(OnceLock::new()),
        }
    }

    /// Says that events have committed. Never waits: when a notification is already
    /// due, it is sent after this commit too, and covers it.
    pub fn committed(&self) {
        let sender = self.sender.get_or_init(|| spawn_sender(self.pool.clone()));
        // Full: a notification is pending and will be sent after this commit.
        let _ = sender.try_send(());
    }
}

fn spawn_sender(pool: PgPool) -> mpsc::Sender<()> {
    let (sender, mut due) = mpsc::channel(1);
    tokio::spawn(async move {
        while due.recv().await.is_some() {
            if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(EVENTS_CHANNEL)
                .execute(&pool)
                .await
            {
                tracing::debug!(%error, "could not wake the event store's readers; they will look by themselves");
            }
            // Commits meanwhile mark one more as due, sent after the pause.
            tokio::time::sleep(SPACING).await;
        }
    });
    sender
}

/// Waits until events may have committed: a notification on [`EVENTS_CHANNEL`] (the
/// listener must listen on it), `poll` passing, or `shutdown` changing. Notifications
/// that queued meanwhile are taken too: each only says "look again", and the reader's
/// next look covers every commit they announce.
pub async fn wait_for_commits(
    listener: &mut PgListener,
    poll: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), sqlx::Error> {
    tokio::select! {
        notification = listener.recv() => { notification?; }
        () = tokio::time::sleep(poll) => {}
        _ = shutdown.changed() => {}
    }
    while listener.next_buffered().is_some() {}
    Ok(())
}
