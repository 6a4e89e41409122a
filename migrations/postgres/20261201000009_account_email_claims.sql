-- An account's email is no longer claimed by the trigger on `AccountRegistered`: the
-- event now carries the address sealed (see 20261201000008 and src/personal_data/), so
-- the trigger cannot read it. The account service claims it instead, before it records
-- the registration (src/accounts/sign_up.rs): an insert that the primary key lets only
-- one sign-up win. `claimed_at` tells a claim whose sign-up is still under way from one
-- whose sign-up died before recording anything, which a later sign-up may take over.
-- Releasing and closing still free the address in their event's transaction.
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
