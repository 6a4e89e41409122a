//! The one sanctioned rewrite of history: sealing the personal fields of the events
//! written before the event store sealed them (see `crate::personal_data`).
//!
//! Events are otherwise never changed. This pass runs once per event store, as part of
//! its migrations (`board migrate`, and `board serve` at start), before any server of this
//! release writes: it walks the events that have personal fields in key order, seals each
//! plain one in place with its account's key, a page per transaction, and records that it
//! finished (`history_rewrites`), so later starts skip it with one lookup. Interrupted, it
//! starts over and skips what it already sealed. Only `payload` changes: positions,
//! sequence numbers and times stay, so the relay does not publish the events again; the
//! plain copies already on the topic are left behind by moving to a new topic (README,
//! "Personal data").

use sqlx::PgPool;

use crate::personal_data::{self, Vault, PERSONAL_FIELDS};

/// Its name in `history_rewrites`.
pub const SEAL_PERSONAL_DATA: &str = "seal-personal-data";
const PAGE: i64 = 500;

/// Seals what is still plain; returns how many events it rewrote (0 once done before).
pub async fn seal_history(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done: Option<i32> = sqlx::query_scalar("SELECT 1 FROM history_rewrites WHERE rewrite = $1")
        .bind(SEAL_PERSONAL_DATA)
        .fetch_optional(pool)
        .await?;
    if done.is_some() {
        return Ok(0);
    }
    let vault = Vault::new(pool.clone());
    let event_types: Vec<&str> = PERSONAL_FIELDS.iter().map(|(name, _)| *name).collect();
    let mut after = (String::new(), String::new(), -1_i64);
    let mut rewritten = 0;
    loop {
        let page: Vec<(String, String, i64, String, serde_json::Value)> = sqlx::query_as(
            "SELECT aggregate_type, aggregate_id, sequence, event_type, payload FROM events
             WHERE event_type = ANY($1) AND (aggregate_type, aggregate_id, sequence) > ($2, $3, $4)
             ORDER BY aggregate_type, aggregate_id, sequence
             LIMIT $5",
        )
        .bind(&event_types)
        .bind(&after.0)
        .bind(&after.1)
        .bind(after.2)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let Some(last) = page.last() else { break };
        after = (last.0.clone(), last.1.clone(), last.2);
        let mut tx = pool.begin().await?;
        for (aggregate_type, aggregate_id, sequence, event_type, mut payload) in page {
            if !personal_data::has_plain_fields(&event_type, &mut payload) {
                continue;
            }
            let key = vault.key_for_sealing(&aggregate_id).await?;
            personal_data::seal_payload(&event_type, &mut payload, &key);
            sqlx::query(
                "UPDATE events SET payload = $4
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
            )
            .bind(&aggregate_type)
            .bind(&aggregate_id)
            .bind(sequence)
            .bind(&payload)
            .execute(&mut *tx)
            .await?;
            rewritten += 1;
        }
        tx.commit().await?;
    }
    // Two processes migrating at once may both have walked the events: one records it.
    sqlx::query(
        "INSERT INTO history_rewrites (rewrite, rewritten) VALUES ($1, $2)
         ON CONFLICT (rewrite) DO NOTHING",
    )
    .bind(SEAL_PERSONAL_DATA)
    .bind(rewritten as i64)
    .execute(pool)
    .await?;
    if rewritten > 0 {
        tracing::info!(
            rewritten,
            "sealed the personal data of events written before sealing"
        );
    }
    Ok(rewritten)
}
