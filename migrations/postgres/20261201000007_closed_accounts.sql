-- Closing an account (`AccountClosed`) frees its email like a released sign-up does, in
-- the event's own transaction, and ends a pending sign-up's tracking.
CREATE OR REPLACE FUNCTION claim_unique_values() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.event_type = 'AccountRegistered' THEN
        INSERT INTO unique_claims (claim_kind, claim_value, aggregate_id)
        VALUES ('account.email', lower(NEW.payload -> 'AccountRegistered' ->> 'email'), NEW.aggregate_id);
    ELSIF NEW.event_type = 'CategoryCreated' THEN
        INSERT INTO unique_claims (claim_kind, claim_value, aggregate_id)
        VALUES ('category.name', lower(NEW.payload -> 'CategoryCreated' ->> 'name'), NEW.aggregate_id);
    ELSIF NEW.event_type IN ('SignUpReleased', 'AccountClosed') THEN
        DELETE FROM unique_claims
        WHERE claim_kind = 'account.email' AND aggregate_id = NEW.aggregate_id;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER events_claim_unique_values ON events;

CREATE TRIGGER events_claim_unique_values
    BEFORE INSERT ON events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('AccountRegistered', 'CategoryCreated', 'SignUpReleased', 'AccountClosed'))
EXECUTE FUNCTION claim_unique_values();

DROP TRIGGER events_track_pending_sign_ups ON events;

CREATE TRIGGER events_track_pending_sign_ups
    BEFORE INSERT ON events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('AccountRegistered', 'AccountVerified', 'SignUpReleased', 'AccountClosed'))
EXECUTE FUNCTION track_pending_sign_ups();
