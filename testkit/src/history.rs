//! Long histories written straight into the event store, for what a long history costs
//! (the snapshots' test, the long-history benchmark): through the API, each of thousands
//! of edits would first load an ever longer history.

use sqlx::PgPool;

/// Appends `edits` title edits to post `post` (sequences 2 to `edits` + 1, titled
/// "Edit 2", "Edit 3", ...), as the post's own edits record them.
pub async fn append_title_edits(pool: &PgPool, post: &str, edits: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'post', $1, n, 'PostEdited', '1.0',
                jsonb_build_object('PostEdited', jsonb_build_object('title', 'Edit ' || n)), '{}'
           FROM generate_series(2, $2::bigint + 1) AS n",
    )
    .bind(post)
    .bind(edits)
    .execute(pool)
    .await?;
    Ok(())
}
