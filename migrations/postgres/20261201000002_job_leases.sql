-- Periodic jobs that must run once across all replicas (the purge of stored helpers).
--
-- One lease row per job. A process takes it when it is free (released: holder NULL) or
-- expired, and renews it while it holds it; every time is the database's (now()), so the
-- replicas' clocks never matter. A holder that dies stops renewing and loses the lease
-- once expires_at passes. Every step of a round re-checks and renews the lease in its own
-- transaction, holding the row locked: a taker waits for that step, and a step after the
-- takeover finds the lease gone. See src/jobs/lease.rs.
CREATE TABLE job_leases
(
    job        text        PRIMARY KEY,
    holder     text,                 -- host:pid:nonce of the holding process; NULL once released
    taken_at   timestamptz NOT NULL, -- when the current holder took it
    expires_at timestamptz NOT NULL
);

-- One row per round a job started: who ran it, when, and how many rows it removed of each
-- kind (updated with every batch, so a round cut short still tells what it did).
-- finished_at stays NULL for a round that did not finish (shutdown, crash, lost lease).
CREATE TABLE job_runs
(
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text        NOT NULL,
    holder      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    removed     jsonb       NOT NULL
);

CREATE INDEX job_runs_by_job ON job_runs (job, started_at);

-- The purge finds idempotency keys past their time by age; without this, every batch
-- would scan the whole table.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
