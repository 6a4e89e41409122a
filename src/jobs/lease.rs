//! A job's lease: a row in PostgreSQL (`job_leases`) that one process holds at a time.
//!
//! Why a row with an expiry rather than the advisory lock the relay holds
//! (`relay::leader`): an advisory lock lives exactly as long as one connection, so it needs
//! a dedicated connection for as long as it is held, cannot pass through a pooler in
//! transaction mode, and shows nobody who holds it. A lease row goes through any pool or
//! proxy, `board jobs status` reads its holder, and its bound is explicit: a holder that
//! dies (or hangs, or is cut off) loses it once `expires_at` passes, and not before, so a
//! database connection that merely blips does not hand the job over.
//!
//! Every time is the database's `now()`, so the replicas' clocks never matter. A holder
//! renews the lease in each step of a round ([`Lease::confirm_in`]), inside that step's
//! transaction and first, which keeps the row locked until the step commits: a process
//! taking the lease over waits for the step, and the step after a takeover finds the lease
//! gone. So two processes never work on one job at once, however long either one pauses.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

pub struct Lease {
    pool: PgPool,
    job: &'static str,
    holder: String,
    ttl: Duration,
}

impl Lease {
    /// The lease of `job`, as `holder` (see [`crate::supervise::process_name`]) would
    /// hold it, for `ttl` from each renewal.
    pub fn new(pool: PgPool, job: &'static str, holder: String, ttl: Duration) -> Self {
        Self {
            pool,
            job,
            holder,
            ttl,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease when it is free or expired, or renews it when this process holds
    /// it. True while this process holds it.
    pub async fn hold(&self) -> Result<bool, sqlx::Error> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO job_leases AS lease (job, holder, taken_at, expires_at)
             VALUES ($1, $2, now(), now() + make_interval(secs => $3))
             ON CONFLICT (job) DO UPDATE
                SET taken_at = CASE WHEN lease.holder = EXCLUDED.holder
                                    THEN lease.taken_at ELSE now() END,
                    holder = EXCLUDED.holder,
                    expires_at = EXCLUDED.expires_at
              WHERE lease.holder = EXCLUDED.holder
                 OR lease.holder IS NULL
                 OR lease.expires_at <= now()
             RETURNING holder",
        )
        .bind(self.job)
        .bind(&self.holder)
        .bind(self.ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    /// Renews the lease inside `tx` if this process still holds it, which keeps its row
    /// locked until `tx` ends. Must be `tx`'s first statement (`now()` is the
    /// transaction's start). False when the lease expired or another process took it: the
    /// caller must then do nothing more in `tx`.
    pub async fn confirm_in(&self, tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "UPDATE job_leases SET expires_at = now() + make_interval(secs => $3)
              WHERE job = $1 AND holder = $2 AND expires_at > now()",
        )
        .bind(self.job)
        .bind(&self.holder)
        .bind(self.ttl.as_secs_f64())
        .execute(tx)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease back, so another process can take it at once.
    pub async fn release(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE job_leases SET holder = NULL, expires_at = now()
              WHERE job = $1 AND holder = $2",
        )
        .bind(self.job)
        .bind(&self.holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
