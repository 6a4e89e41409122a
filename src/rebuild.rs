//! Rebuilding read models from the event store, the source of truth whatever Kafka still
//! retains: every event in global order, through the same projector code as the live
//! path, in batches of one transaction each.

use sqlx::{MySqlPool, PgPool};

use projections::projector;

use crate::relay::envelope;
use crate::store::reader::{self, Checkpoint};

const BATCH: i64 = 1_000;

/// Applies every readable event to the read models in `target`. Returns how many events
/// were read and the checkpoint it reached.
pub async fn replay_into(source: &PgPool, target: &MySqlPool) -> anyhow::Result<(u64, Checkpoint)> {
    let mut checkpoint = Checkpoint::default();
    let mut count = 0u64;
    loop {
        let events = reader::read_after(source, checkpoint, BATCH).await?;
        let Some(last) = events.last() else {
            return Ok((count, checkpoint));
        };
        let mut tx = target.begin().await?;
        for event in &events {
            match projector::apply(&mut tx, &envelope(event)).await {
                Ok(_) => {}
                Err(projections::ProjectionError::Database(error)) => return Err(error.into()),
                Err(malformed) => {
                    tracing::error!(error = %malformed, "skipping an event that cannot be projected")
                }
            }
        }
        tx.commit().await?;
        checkpoint = last.checkpoint;
        count += events.len() as u64;
    }
}
