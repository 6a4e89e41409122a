//! The record of a job's rounds (`job_runs`): when each started and finished, who ran it,
//! and how many rows of each kind it removed. A round is due once none started within the
//! job's interval; the holder of the job's lease checks that and records the new round in
//! one transaction, so each round is started by exactly one process.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// One round of a job.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub holder: String,
    pub started_at: DateTime<Utc>,
    /// `None` while it runs, or when it never finished (shutdown, crash, lost lease).
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows removed, by kind.
    pub removed: BTreeMap<String, i64>,
    /// Seconds since it finished (or started, when it has not finished), by the
    /// database's clock.
    pub age_seconds: f64,
}

/// Starts a round of `job` by `holder` if none started within `interval`; its id, or
/// `None` when no round is due. Run it in a transaction that holds the job's lease.
/// `kinds` start at 0 removed, so every kind shows in the record.
pub async fn start_if_due(
    tx: &mut PgConnection,
    job: &str,
    holder: &str,
    interval: Duration,
    kinds: &[&str],
) -> Result<Option<i64>, sqlx::Error> {
    let removed: BTreeMap<&str, i64> = kinds.iter().map(|kind| (*kind, 0)).collect();
    sqlx::query_scalar(
        "INSERT INTO job_runs (job, holder, started_at, removed)
         SELECT $1, $2, now(), $4
          WHERE NOT EXISTS (SELECT 1 FROM job_runs
                             WHERE job = $1 AND started_at > now() - make_interval(secs => $3))
         RETURNING id",
    )
    .bind(job)
    .bind(holder)
    .bind(interval.as_secs_f64())
    .bind(sqlx::types::Json(removed))
    .fetch_optional(tx)
    .await
}

/// Adds `count` removed rows of `kind` to round `run`.
pub async fn add_removed(
    tx: &mut PgConnection,
    run: i64,
    kind: &str,
    count: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE job_runs
            SET removed = removed || jsonb_build_object($2::text, coalesce((removed ->> $2)::bigint, 0) + $3)
          WHERE id = $1",
    )
    .bind(run)
    .bind(kind)
    .bind(count as i64)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn finish(tx: &mut PgConnection, run: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE job_runs SET finished_at = now() WHERE id = $1")
        .bind(run)
        .execute(tx)
        .await?;
    Ok(())
}

/// How long until a round of `job` is due: zero when none started within `interval`.
pub async fn due_in(pool: &PgPool, job: &str, interval: Duration) -> Result<Duration, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(started_at) + make_interval(secs => $2) - now())::float8
           FROM job_runs WHERE job = $1",
    )
    .bind(job)
    .bind(interval.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(Duration::from_secs_f64(seconds.unwrap_or(0.0).max(0.0)))
}

/// The latest round of `job` (only among finished ones when `finished`).
pub async fn latest(pool: &PgPool, job: &str, finished: bool) -> Result<Option<Run>, sqlx::Error> {
    type Row = (
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        sqlx::types::Json<BTreeMap<String, i64>>,
        f64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT holder, started_at, finished_at, removed,
                extract(epoch FROM now() - coalesce(finished_at, started_at))::float8
           FROM job_runs
          WHERE job = $1 AND (finished_at IS NOT NULL OR NOT $2)
          ORDER BY started_at DESC LIMIT 1",
    )
    .bind(job)
    .bind(finished)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(holder, started_at, finished_at, removed, age_seconds)| Run {
            holder,
            started_at,
            finished_at,
            removed: removed.0,
            age_seconds,
        },
    ))
}
