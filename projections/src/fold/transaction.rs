//! The caller's transaction around a batch: the projection's share lock, the progress it
//! records, and which failures are worth trying the batch again for.

use sqlx::MySqlConnection;

use super::READ_MODELS;
use crate::Envelope;

/// Takes the projection's lock in shared mode for the caller's transaction: the live
/// projector does this first in every batch, so that a rebuild (which takes it
/// exclusively) can swap tables between two batches, never during one.
pub async fn share_lock(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT projection FROM projection_locks WHERE projection = ? LOCK IN SHARE MODE")
        .bind(READ_MODELS)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// Records how far a projector has come on a partition, in the caller's transaction.
pub async fn record_progress(
    conn: &mut MySqlConnection,
    projector: &str,
    topic: &str,
    partition: i32,
    next_offset: i64,
    last: &Envelope,
    member: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_progress
                (projector, topic, partition_id, next_offset, last_position, last_recorded_at,
                 updated_by, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))
         ON DUPLICATE KEY UPDATE
                next_offset = GREATEST(next_offset, VALUES(next_offset)),
                last_position = VALUES(last_position),
                last_recorded_at = VALUES(last_recorded_at),
                updated_by = VALUES(updated_by),
                updated_at = VALUES(updated_at)",
    )
    .bind(projector)
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .bind(last.global_position)
    .bind(last.recorded_at)
    .bind(member)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True for the errors after which the same batch may simply be tried again: a deadlock
/// or lock wait time-out between two appliers.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001") | Some("HY000"))
                && (db.message().contains("Deadlock") || db.message().contains("Lock wait timeout"))
        }
        _ => false,
    }
}
