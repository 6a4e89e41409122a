-- The event store: postgres-es's `events` table, plus what a global reader needs.
--
-- postgres-es writes aggregate_type .. metadata and relies on the primary key for
-- optimistic concurrency (a clash becomes AggregateConflict). We add three columns it
-- never writes, filled in by defaults inside the writing transaction:
--
--   global_position  unique, increasing in allocation order (not commit order);
--   transaction_id   the writing transaction's id (xid8, never wraps around);
--   recorded_at      when the event was written, in UTC.
--
-- The global order is (transaction_id, global_position). A reader takes only events
-- whose transaction id is below the oldest transaction still in flight
-- (pg_snapshot_xmin(pg_current_snapshot())): those transactions are all finished, and any
-- event written later has a higher transaction id. So a reader that keeps
-- (transaction_id, global_position) as its checkpoint can never skip an event that
-- commits late with a lower position. See src/store/reader.rs.
CREATE TABLE events
(
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    global_position bigint      NOT NULL GENERATED ALWAYS AS IDENTITY UNIQUE,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX events_global_order ON events (transaction_id, global_position);
CREATE INDEX events_recorded_at ON events (recorded_at);

-- postgres-es reads this table when snapshots are configured; Board does not use them,
-- but the library's repository expects the table to exist.
CREATE TABLE snapshots
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Values that must be unique across aggregates (an account's email, a category's name).
-- A trigger claims them in the same transaction that records the creating event, so two
-- racing creates cannot both commit: the loser's insert violates the primary key here,
-- which postgres-es reports as AggregateConflict, and the command layer then looks the
-- claim up to tell "taken" from an ordinary version conflict.
CREATE TABLE unique_claims
(
    claim_kind   text NOT NULL,
    claim_value  text NOT NULL,
    aggregate_id text NOT NULL,
    PRIMARY KEY (claim_kind, claim_value)
);

CREATE INDEX unique_claims_by_aggregate ON unique_claims (aggregate_id);

-- Reads the payload shape of version 1.0 of these two events. A new version of either
-- event must come with a migration that teaches this function its shape.
CREATE FUNCTION claim_unique_values() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.event_type = 'AccountRegistered' THEN
        INSERT INTO unique_claims (claim_kind, claim_value, aggregate_id)
        VALUES ('account.email', lower(NEW.payload -> 'AccountRegistered' ->> 'email'), NEW.aggregate_id);
    ELSIF NEW.event_type = 'CategoryCreated' THEN
        INSERT INTO unique_claims (claim_kind, claim_value, aggregate_id)
        VALUES ('category.name', lower(NEW.payload -> 'CategoryCreated' ->> 'name'), NEW.aggregate_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_claim_unique_values
    BEFORE INSERT ON events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('AccountRegistered', 'CategoryCreated'))
EXECUTE FUNCTION claim_unique_values();
