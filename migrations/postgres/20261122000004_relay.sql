-- The relay's checkpoint: the last event (in global order) that the broker acknowledged.
CREATE TABLE relay_checkpoints
(
    relay           text        NOT NULL PRIMARY KEY,
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Wakes the relay when events commit (NOTIFY is delivered at commit), so a new event
-- reaches Kafka in milliseconds rather than at the next poll. One per statement is enough.
CREATE FUNCTION notify_events() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('board_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT
EXECUTE FUNCTION notify_events();
