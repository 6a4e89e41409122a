//! Noticing a projector that the consumer group has left without partitions while the
//! read models fall behind, and making it rejoin.
//!
//! A group coordinator can leave a member "joined" yet assigned nothing. Tansu 0.6.0 does
//! this when a new member joins while an old one's session is still alive (a projector
//! killed and restarted within `session.timeout.ms`, or a broker restart): SyncGroup in
//! the formed state hands out the stored, empty assignment, and the group stays like that
//! for good. Nothing errors: the read models just stop. A member that has nothing
//! assigned while nobody in its group makes progress and the event store is ahead of the
//! read models therefore leaves the group and joins again; joining an empty group forms
//! a new generation with a real assignment. A spare member (more members than
//! partitions) is left alone, since others progress.

use std::time::Duration;

use sqlx::{MySqlPool, PgPool};
use tokio::time::Instant;

/// How long a member may sit without partitions while nobody progresses. Longer than
/// the group session (`session.timeout.ms`, 10 s, in `crate::kafka`), so that a dead
/// member that caused the trouble has expired by the time this one joins again.
pub const STRANDED_AFTER: Duration = Duration::from_secs(15);
/// How often to look.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What the last look saw.
pub struct Watch {
    /// The group's progress (sum of next offsets) when it stopped moving.
    progress: i64,
    since: Option<Instant>,
}

impl Watch {
    pub fn new() -> Self {
        Self {
            progress: -1,
            since: None,
        }
    }

    /// True when this member should leave the group and join again.
    pub async fn stranded(
        &mut self,
        assigned: usize,
        read_models: &MySqlPool,
        store: &PgPool,
        projection: &str,
        topic: &str,
    ) -> anyhow::Result<bool> {
        if assigned > 0 {
            self.since = None;
            return Ok(false);
        }
        let (progress, projected): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(next_offset), 0) AS SIGNED),
                    CAST(COALESCE(MAX(last_position), 0) AS SIGNED)
               FROM projection_progress WHERE projector = ? AND topic = ?",
        )
        .bind(projection)
        .bind(topic)
        .fetch_one(read_models)
        .await?;
        let stored: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
                .fetch_one(store)
                .await?;
        if stored <= projected || progress != self.progress {
            self.progress = progress;
            self.since = None;
            return Ok(false);
        }
        let since = *self.since.get_or_insert_with(|| {
            tracing::warn!(
                topic,
                "this projector has no partitions and the read models are behind the store"
            );
            Instant::now()
        });
        Ok(since.elapsed() >= STRANDED_AFTER)
    }
}
