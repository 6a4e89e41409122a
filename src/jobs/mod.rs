//! Periodic jobs that run once across all replicas: each is run by whichever API process
//! holds its lease in PostgreSQL ([`lease`]), which another takes over when the holder
//! stops renewing it; every round is recorded in `job_runs` ([`runs`]). There is one job
//! today, the [`purge`] of the API's stored helpers.

pub mod lease;
pub mod purge;
pub mod runs;

use serde::Serialize;
use sqlx::PgPool;

/// The jobs `board jobs status` reports on.
pub const JOBS: [&str; 1] = [purge::JOB];

/// Who holds a job's lease and how its latest round went.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub job: &'static str,
    /// The process holding the lease, while it runs.
    pub holder: Option<String>,
    /// Seconds until the lease expires unless renewed.
    pub lease_expires_in_seconds: Option<f64>,
    /// The latest round, finished or not.
    pub last_run: Option<runs::Run>,
}

/// The status of `job`, read now.
pub async fn status(pool: &PgPool, job: &'static str) -> Result<JobStatus, sqlx::Error> {
    let lease: Option<(String, f64)> = sqlx::query_as(
        "SELECT holder, extract(epoch FROM expires_at - now())::float8
           FROM job_leases WHERE job = $1 AND holder IS NOT NULL AND expires_at > now()",
    )
    .bind(job)
    .fetch_optional(pool)
    .await?;
    let (holder, expires_in) = lease.unzip();
    Ok(JobStatus {
        job,
        holder,
        lease_expires_in_seconds: expires_in,
        last_run: runs::latest(pool, job, false).await?,
    })
}
