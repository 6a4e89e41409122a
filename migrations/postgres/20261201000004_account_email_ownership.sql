-- Who holds an account's email (see src/accounts/sign_up.rs and aggregates/src/account.rs).
--
-- The account service claims the address itself, in `unique_claims`, just before it
-- records `AccountRegistered`: the event carries the address sealed with the account's
-- key (src/personal_data/), so a trigger could not read it. The primary key lets one
-- sign-up win; `claimed_at` keeps a fresh claim out of reach for a while (sign-ups racing
-- for one address: exactly one wins) and tells a claim whose sign-up died before
-- recording anything, which a later sign-up may take over.
--
-- An address is freed in the transaction of the event that gives it up: `SignUpReleased`
-- (a sign-up never verified, replaced or expired) or `AccountClosed`. Category names are
-- still claimed by the trigger, from `CategoryCreated`, as before.
ALTER TABLE unique_claims ADD COLUMN claimed_at timestamptz NOT NULL DEFAULT now();

CREATE OR REPLACE FUNCTION claim_unique_values() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.event_type = 'CategoryCreated' THEN
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
    WHEN (NEW.event_type IN ('CategoryCreated', 'SignUpReleased', 'AccountClosed'))
EXECUTE FUNCTION claim_unique_values();

-- The sign-ups that were never verified nor released, kept by a trigger in the
-- transaction of the events that start and end them, so the purge finds the expired ones
-- by index, without scanning every account.
CREATE TABLE pending_sign_ups
(
    account_id    text PRIMARY KEY,
    registered_at timestamptz NOT NULL
);

CREATE INDEX pending_sign_ups_by_age ON pending_sign_ups (registered_at);

CREATE FUNCTION track_pending_sign_ups() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.event_type = 'AccountRegistered' THEN
        INSERT INTO pending_sign_ups (account_id, registered_at)
        VALUES (NEW.aggregate_id, NEW.recorded_at);
    ELSE
        DELETE FROM pending_sign_ups WHERE account_id = NEW.aggregate_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_track_pending_sign_ups
    BEFORE INSERT ON events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('AccountRegistered', 'AccountVerified', 'SignUpReleased', 'AccountClosed'))
EXECUTE FUNCTION track_pending_sign_ups();

-- The accounts that were pending when this migration ran.
INSERT INTO pending_sign_ups (account_id, registered_at)
SELECT r.aggregate_id, r.recorded_at
FROM events r
WHERE r.aggregate_type = 'account'
  AND r.event_type = 'AccountRegistered'
  AND NOT EXISTS (SELECT 1 FROM events v
                  WHERE v.aggregate_type = 'account' AND v.aggregate_id = r.aggregate_id
                    AND v.event_type = 'AccountVerified');
