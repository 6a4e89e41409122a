//! What a filter names, asked of the event store (like every fact of the live updates,
//! never of the read models, which may not have the category or post yet).

use sqlx::PgPool;
use uuid::Uuid;

use aggregates::AggregateKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The store has never recorded it.
    Missing,
    Live,
    Deleted,
}

/// Whether the category `id` exists.
pub async fn category(pool: &PgPool, id: Uuid) -> Result<Subject, sqlx::Error> {
    let (recorded, _) = recorded(pool, AggregateKind::Category, id).await?;
    Ok(if recorded {
        Subject::Live
    } else {
        Subject::Missing
    })
}

/// Whether the post `id` exists, and whether it was deleted.
pub async fn post(pool: &PgPool, id: Uuid) -> Result<Subject, sqlx::Error> {
    Ok(match recorded(pool, AggregateKind::Post, id).await? {
        (false, _) => Subject::Missing,
        (true, false) => Subject::Live,
        (true, true) => Subject::Deleted,
    })
}

/// Whether the aggregate has events, and whether one of them is a deletion.
async fn recorded(
    pool: &PgPool,
    kind: AggregateKind,
    id: Uuid,
) -> Result<(bool, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) > 0, COALESCE(bool_or(event_type = 'PostDeleted'), false)
           FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(kind.as_str())
    .bind(id.to_string())
    .fetch_one(pool)
    .await
}
