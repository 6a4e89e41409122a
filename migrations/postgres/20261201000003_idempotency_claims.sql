-- A request claims its key for a bounded time instead of holding the key's row lock (and
-- so a pooled connection) while its command runs: a command needs connections of its own,
-- and requests that each held one while waiting for another drained the pool (issue 10:
-- one member's 64 concurrent keyed POSTs answered 503 to everyone). A claim whose request
-- died runs out at `claimed_until`, and the next retry takes the key over.
ALTER TABLE idempotency_keys
    ADD COLUMN claimed_by    uuid,
    ADD COLUMN claimed_until timestamptz;
