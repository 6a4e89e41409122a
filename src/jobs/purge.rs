//! The purge: removes the API's stored helpers once they are of no use, every
//! `PURGE_INTERVAL`, in one process at a time across all replicas (the holder of the
//! `purge` lease, see [`super::lease`]).
//!
//! First it releases the sign-ups nobody verified before their link expired (each a
//! `SignUpReleased` event through the account service, which frees the address and
//! forgets the sign-up's password). Then it removes [`KINDS`], one entry per kind of row:
//! a table and the condition that says a row is done with. Each kind goes in batches of [`BATCH`], each batch its own
//! short transaction that first confirms the lease, so a large backlog never holds many
//! locks for long, a shutdown stops the round between two batches, and a process that lost
//! the lease stops before its next batch. Rows a request holds locked (an idempotency key
//! whose command is running) are skipped, never waited for.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

use super::lease::Lease;
use super::runs;
use crate::accounts::AccountService;
use crate::store::Metadata;
use crate::supervise::{until_shutdown, Supervised};

/// The job's name in `job_leases` and `job_runs`.
pub const JOB: &str = "purge";
/// Rows deleted per statement.
const BATCH: i64 = 1_000;
const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// The least a process waits between two looks at the lease, so a round that cannot
/// start (the lease lost right after it was taken) cannot spin.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// The settings the purge runs with (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct PurgeSettings {
    /// How often a round runs, across all replicas.
    pub interval: Duration,
    /// How long the lease lasts unrenewed: a holder that dies hands the job over after it.
    pub lease_ttl: Duration,
    /// How long an idempotency key is kept after its first request.
    pub idempotency_key_ttl: Duration,
}

/// One kind of row the purge removes.
pub struct Kind {
    /// Its name in logs, in the run records and in `/metrics`.
    pub name: &'static str,
    table: &'static str,
    /// Which rows are done with; `$1` is the kind's retention, in seconds.
    condition: &'static str,
    /// How long a row is kept past the moment `condition` measures from.
    retention: fn(&PurgeSettings) -> Duration,
}

/// The name, in the run records and `/metrics`, of the sign-ups released as expired.
pub const EXPIRED_SIGN_UPS: &str = "expired_sign_ups";

/// The condition on a row with an `account_id` whose account has ended (closed by its
/// owner, or a sign-up released) for longer than `$1` seconds. Closing and releasing
/// delete such rows at once, after their event; one is left only when that deletion
/// failed, and the purge finishes it. Each candidate costs one probe of the events'
/// primary key (one account's few events).
macro_rules! of_an_ended_account {
    () => {
        "EXISTS (SELECT 1 FROM events e WHERE e.aggregate_type = 'account'
                   AND e.aggregate_id = account_id::text
                   AND e.event_type IN ('AccountClosed', 'SignUpReleased')
                   AND e.recorded_at <= now() - make_interval(secs => $1))"
    };
}

/// How long after an account's end the purge looks for what its closing left: far longer
/// than a closing takes, so it never races one.
const ENDED_ACCOUNT_GRACE: Duration = Duration::from_secs(60);

/// Everything the purge removes. Another kind of row is one more entry, with an index that
/// serves its condition.
pub const KINDS: [Kind; 10] = [
    // The API's contract keeps a key's answer for 24 hours (`IDEMPOTENCY_KEY_TTL`).
    Kind {
        name: "idempotency_keys",
        table: "idempotency_keys",
        condition: "created_at <= now() - make_interval(secs => $1)",
        retention: |settings| settings.idempotency_key_ttl,
    },
    // A link past its expiry opens nothing (404). A verification link is not spent by
    // use: verifying twice through it is harmless and answers 200 until it expires.
    Kind {
        name: "verification_links",
        table: "email_verifications",
        condition: "expires_at <= now() - make_interval(secs => $1)",
        retention: |_| Duration::ZERO,
    },
    // A reset link works for an hour, once; a used one is deleted when it is used.
    Kind {
        name: "password_reset_links",
        table: "password_resets",
        condition: "expires_at <= now() - make_interval(secs => $1)",
        retention: |_| Duration::ZERO,
    },
    // An address claimed by a sign-up that died before recording its registration; the
    // next sign-up for it may take it over after the same grace (see `claim_email`).
    Kind {
        name: "abandoned_email_claims",
        table: "unique_claims",
        condition: "claim_kind = 'account.email'
            AND claimed_at <= now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM events e WHERE e.aggregate_type = 'account'
                              AND e.aggregate_id = unique_claims.aggregate_id)",
        retention: |_| crate::accounts::CLAIM_GRACE,
    },
    // A session whose last refresh token expired can never be renewed (ended or not).
    Kind {
        name: "sessions",
        table: "sessions",
        condition: "expires_at <= now() - make_interval(secs => $1)",
        retention: |_| Duration::ZERO,
    },
    // A limit's row whose time has passed holds a full bucket, as no row does.
    Kind {
        name: "rate_limits",
        table: "rate_limits",
        condition: "tat <= now() - make_interval(secs => $1)",
        retention: |_| Duration::ZERO,
    },
    // An ended account's key: while it exists, its personal data can be read.
    Kind {
        name: "keys_of_ended_accounts",
        table: "personal_data_keys",
        condition: of_an_ended_account!(),
        retention: |_| ENDED_ACCOUNT_GRACE,
    },
    // An ended account's password: while it exists, a log-in could be tried with it.
    Kind {
        name: "passwords_of_ended_accounts",
        table: "account_credentials",
        condition: of_an_ended_account!(),
        retention: |_| ENDED_ACCOUNT_GRACE,
    },
    // An ended account's open session: its refresh token could still be renewed.
    Kind {
        name: "sessions_of_ended_accounts",
        table: "sessions",
        condition: concat!("ended_at IS NULL AND ", of_an_ended_account!()),
        retention: |_| ENDED_ACCOUNT_GRACE,
    },
    // The purge's own records (and any other job's) keep a week of history.
    Kind {
        name: "job_runs",
        table: "job_runs",
        condition: "finished_at <= now() - make_interval(secs => $1)",
        retention: |_| Duration::from_secs(7 * 86_400),
    },
];

pub struct Purge {
    pool: PgPool,
    accounts: Arc<AccountService>,
    settings: PurgeSettings,
    lease: Lease,
}

impl Purge {
    pub fn new(pool: PgPool, accounts: Arc<AccountService>, settings: PurgeSettings) -> Self {
        let lease = Lease::new(
            pool.clone(),
            JOB,
            crate::supervise::process_name(),
            settings.lease_ttl,
        );
        Self {
            pool,
            accounts,
            settings,
            lease,
        }
    }

    /// Runs until `shutdown` turns true, through database outages; then gives the lease
    /// back, so another replica takes the job over at once.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        until_shutdown(&mut self, shutdown).await;
        if let Err(error) = self.lease.release().await {
            tracing::warn!(%error, "could not give the purge's lease back; it expires by itself");
        }
        tracing::info!("purge stopped");
    }

    /// Holds (or waits for) the lease, and runs each round that falls due while held.
    async fn take_turns(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        // Renewed three times a lease: one late renewal does not hand the job over.
        let renew_every = self.settings.lease_ttl / 3;
        let mut holding = false;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let mut wait = renew_every;
            let held = self.lease.hold().await?;
            if held != holding {
                let change = if held { "took" } else { "lost" };
                tracing::info!(holder = self.lease.holder(), "{change} the purge's lease");
                holding = held;
            }
            if held {
                self.round(shutdown).await?;
                let due_in = runs::due_in(&self.pool, JOB, self.settings.interval).await?;
                wait = wait.min(due_in).max(MIN_WAIT);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One round, when one is due and this process holds the lease: every kind, batch by
    /// batch, until none is left, the lease is lost, or shutdown.
    async fn round(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        if !self.lease.confirm_in(&mut tx).await? {
            return Ok(());
        }
        let names: Vec<&str> = std::iter::once(EXPIRED_SIGN_UPS)
            .chain(KINDS.iter().map(|kind| kind.name))
            .collect();
        let started = runs::start_if_due(
            &mut tx,
            JOB,
            self.lease.holder(),
            self.settings.interval,
            &names,
        )
        .await?;
        let Some(run) = started else { return Ok(()) };
        tx.commit().await?;

        let mut removed = Vec::with_capacity(names.len());
        let Some(released) = self.release_expired_sign_ups(run, shutdown).await? else {
            return Ok(());
        };
        removed.push(format!("{EXPIRED_SIGN_UPS}={released}"));
        for kind in &KINDS {
            let mut total = 0;
            loop {
                if *shutdown.borrow() {
                    tracing::info!("purge round interrupted by shutdown");
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                if !self.lease.confirm_in(&mut tx).await? {
                    tracing::warn!("purge lease lost during a round; its new holder goes on");
                    return Ok(());
                }
                let count = self.delete_batch(&mut tx, kind).await?;
                if count > 0 {
                    runs::add_removed(&mut tx, run, kind.name, count).await?;
                }
                tx.commit().await?;
                total += count;
                if count < BATCH as u64 {
                    break;
                }
            }
            removed.push(format!("{}={total}", kind.name));
        }

        let mut tx = self.pool.begin().await?;
        if !self.lease.confirm_in(&mut tx).await? {
            tracing::warn!("purge lease lost at the end of a round");
            return Ok(());
        }
        runs::finish(&mut tx, run).await?;
        tx.commit().await?;
        tracing::info!(removed = %removed.join(" "), "purge round done");
        Ok(())
    }

    /// Releases the expired sign-ups, a batch at a time while the lease holds; `None` when
    /// the round must stop (shutdown, lease lost). A release is a command on the account,
    /// which refuses a verified or already released one, so a batch that runs on after
    /// the lease was lost repeats nothing.
    async fn release_expired_sign_ups(
        &self,
        run: i64,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<Option<u64>> {
        let metadata = Metadata {
            request_id: format!("{JOB}:{run}"),
            correlation_id: format!("{JOB}:{run}"),
            account_id: None,
        };
        let mut total = 0;
        loop {
            if *shutdown.borrow() {
                tracing::info!("purge round interrupted by shutdown");
                return Ok(None);
            }
            let mut tx = self.pool.begin().await?;
            if !self.lease.confirm_in(&mut tx).await? {
                tracing::warn!("purge lease lost during a round; its new holder goes on");
                return Ok(None);
            }
            tx.commit().await?;
            let count = self
                .accounts
                .release_expired_sign_ups(BATCH, &metadata)
                .await? as u64;
            if count > 0 {
                let mut tx = self.pool.begin().await?;
                runs::add_removed(&mut tx, run, EXPIRED_SIGN_UPS, count).await?;
                tx.commit().await?;
            }
            total += count;
            if count < BATCH as u64 {
                return Ok(Some(total));
            }
        }
    }

    /// Deletes up to [`BATCH`] rows of `kind` that are done with. The rows are picked and
    /// locked by one sub-select (skipping those a request holds), then deleted by their
    /// physical address: a TID scan, whatever the size of the backlog.
    async fn delete_batch(&self, tx: &mut PgConnection, kind: &Kind) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM {table} WHERE {condition}
                 LIMIT $2 FOR UPDATE SKIP LOCKED))",
            table = kind.table,
            condition = kind.condition,
        );
        let done = sqlx::query(&sql)
            .bind((kind.retention)(&self.settings).as_secs_f64())
            .bind(BATCH)
            .execute(tx)
            .await?;
        Ok(done.rows_affected())
    }
}

impl Supervised for Purge {
    const PART: &'static str = "purge";
    const PAUSE: Duration = RETRY_PAUSE;

    fn work(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        self.take_turns(shutdown)
    }
}
