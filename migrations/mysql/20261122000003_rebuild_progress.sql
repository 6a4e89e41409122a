-- Where a running `board projections rebuild` reports how far it is, so that every
-- server's /metrics can show it (the rebuild runs in a process of its own). It lives in
-- the live database and is not among the tables a rebuild swaps.
CREATE TABLE rebuild_progress
(
    projection     VARCHAR(64) NOT NULL PRIMARY KEY,
    -- running, swapped, interrupted or failed
    state          VARCHAR(16) NOT NULL,
    events_applied BIGINT      NOT NULL,
    events_total   BIGINT      NOT NULL,
    started_at     DATETIME(3) NOT NULL,
    -- Written at least every few seconds while running: a stale `running` row is a
    -- rebuild that died without saying so (kill -9).
    updated_at     DATETIME(3) NOT NULL
);
