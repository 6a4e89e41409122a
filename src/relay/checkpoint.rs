//! The relay's checkpoint in PostgreSQL: the last event the broker acknowledged.

use sqlx::PgConnection;

use crate::store::reader::Checkpoint;

pub async fn load(conn: &mut PgConnection, relay: &str) -> Result<Checkpoint, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM relay_checkpoints WHERE relay = $1",
    )
    .bind(relay)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((transaction_id, global_position)) => Checkpoint {
            transaction_id: transaction_id
                .parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            global_position,
        },
        None => Checkpoint::default(),
    })
}

pub async fn save(
    conn: &mut PgConnection,
    relay: &str,
    checkpoint: Checkpoint,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (relay, transaction_id, global_position, updated_at)
         VALUES ($1, $2::text::xid8, $3, now())
         ON CONFLICT (relay) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id,
                global_position = EXCLUDED.global_position,
                updated_at = EXCLUDED.updated_at
          -- Only forward: a relay that lost its lock unnoticed cannot move it back.
          WHERE (relay_checkpoints.transaction_id, relay_checkpoints.global_position)
              < (EXCLUDED.transaction_id, EXCLUDED.global_position)",
    )
    .bind(relay)
    .bind(checkpoint.transaction_id.to_string())
    .bind(checkpoint.global_position)
    .execute(conn)
    .await?;
    Ok(())
}
