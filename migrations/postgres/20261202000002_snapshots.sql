-- Snapshots of aggregates with long histories (src/store/aggregate_loader.rs).
--
-- The `snapshots` table of the first migration had postgres-es's shape and was never
-- written: Board keeps its own, one row per aggregate, the newest only. A snapshot is a
-- cache of what the events fold to, never the truth: it is written after the events it
-- covers have committed, a load reads it together with every event after it, and one
-- whose `schema` is not the aggregate's current one is ignored.
--
-- Accounts have none: their state holds personal data, which is kept at rest only sealed.
DROP TABLE snapshots;

CREATE TABLE snapshots
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    -- The sequence number of the last event the state includes.
    sequence       bigint      NOT NULL CHECK (sequence >= 1),
    -- The aggregate's SNAPSHOT_SCHEMA when it was taken.
    schema         text        NOT NULL,
    payload        jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
