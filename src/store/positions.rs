//! How far the event store has recorded aggregates: what tells a position the read models
//! will reach from one they never can (read-your-writes, `http::consistency`).

use std::collections::HashMap;

use sqlx::PgPool;

use aggregates::AggregateKind;

/// The last sequence of each of `aggregates`, in one query. An aggregate the store has
/// never recorded is absent from the answer.
pub async fn last_sequences(
    pool: &PgPool,
    aggregates: &[(AggregateKind, String)],
) -> Result<HashMap<(AggregateKind, String), i64>, sqlx::Error> {
    let kinds: Vec<&str> = aggregates.iter().map(|(kind, _)| kind.as_str()).collect();
    let ids: Vec<&str> = aggregates.iter().map(|(_, id)| id.as_str()).collect();
    // One backward step on the primary key per aggregate, however long its history.
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT wanted.aggregate_type, wanted.aggregate_id,
                (SELECT max(e.sequence) FROM events e
                  WHERE e.aggregate_type = wanted.aggregate_type
                    AND e.aggregate_id = wanted.aggregate_id)
           FROM unnest($1::text[], $2::text[]) AS wanted (aggregate_type, aggregate_id)",
    )
    .bind(&kinds)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(kind, id, last)| Some(((kind.parse().ok()?, id), last?)))
        .collect())
}
