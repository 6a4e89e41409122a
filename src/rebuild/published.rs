//! A rebuild's progress, published to the `rebuild_progress` table of the live read
//! database, where `/metrics` of every server reads it (see [`crate::metrics`]).
//!
//! The rebuild's loop only bumps a counter; a task of its own writes the row once a
//! second, so a slow or unreachable MySQL never slows the rebuild down, and a failed
//! write is only logged: progress reporting must not fail a rebuild.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const INTERVAL: Duration = Duration::from_secs(1);

/// How a rebuild ended, as the table and the metrics spell it.
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    Swapped,
    Interrupted,
    Failed,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Swapped => "swapped",
            Ended::Interrupted => "interrupted",
            Ended::Failed => "failed",
        }
    }
}

pub struct PublishedProgress {
    pool: MySqlPool,
    projection: &'static str,
    applied: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    writer: JoinHandle<()>,
}

impl PublishedProgress {
    /// Marks `projection` as rebuilding, `total` events to go, and starts publishing.
    pub async fn start(pool: MySqlPool, projection: &'static str, total: u64) -> Self {
        let started = sqlx::query(
            "INSERT INTO rebuild_progress
                 (projection, state, events_applied, events_total, started_at, updated_at)
             VALUES (?, 'running', 0, ?, NOW(3), NOW(3))
             ON DUPLICATE KEY UPDATE state = 'running', events_applied = 0,
                 events_total = VALUES(events_total), started_at = NOW(3), updated_at = NOW(3)",
        )
        .bind(projection)
        .bind(total as i64)
        .execute(&pool)
        .await;
        if let Err(error) = started {
            tracing::warn!(%error, "could not publish the rebuild's progress");
        }
        let applied = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let writer = tokio::spawn(publish_every_second(
            pool.clone(),
            projection,
            applied.clone(),
            stopped,
        ));
        Self {
            pool,
            projection,
            applied,
            stop,
            writer,
        }
    }

    /// Counts `events` more applied; cheap enough to call for every batch.
    pub fn add(&self, events: u64) {
        self.applied.fetch_add(events, Ordering::Relaxed);
    }

    /// Stops publishing and records how the rebuild ended.
    pub async fn finish(self, ended: Ended) {
        let _ = self.stop.send(true);
        let _ = self.writer.await;
        let written = sqlx::query(
            "UPDATE rebuild_progress SET state = ?, events_applied = ?, updated_at = NOW(3)
              WHERE projection = ?",
        )
        .bind(ended.as_str())
        .bind(self.applied.load(Ordering::Relaxed) as i64)
        .bind(self.projection)
        .execute(&self.pool)
        .await;
        if let Err(error) = written {
            tracing::warn!(%error, "could not record how the rebuild ended");
        }
    }
}

async fn publish_every_second(
    pool: MySqlPool,
    projection: &'static str,
    applied: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stopped.changed() => return,
        }
        let written = sqlx::query(
            "UPDATE rebuild_progress SET events_applied = ?, updated_at = NOW(3)
              WHERE projection = ? AND state = 'running'",
        )
        .bind(applied.load(Ordering::Relaxed) as i64)
        .bind(projection)
        .execute(&pool)
        .await;
        if let Err(error) = written {
            tracing::debug!(%error, "could not publish the rebuild's progress");
        }
    }
}

/// One projection's rebuild as the table holds it.
#[derive(Debug, sqlx::FromRow)]
pub struct RebuildRow {
    pub projection: String,
    pub state: String,
    pub events_applied: i64,
    pub events_total: i64,
    /// Seconds since the row was last written.
    pub age_seconds: f64,
}

/// Every projection that has been rebuilt at least once.
pub async fn read(pool: &MySqlPool) -> Result<Vec<RebuildRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT projection, state, events_applied, events_total,
                CAST(TIMESTAMPDIFF(MICROSECOND, updated_at, NOW(3)) / 1e6 AS DOUBLE) AS age_seconds
           FROM rebuild_progress",
    )
    .fetch_all(pool)
    .await
}
