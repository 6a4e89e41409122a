-- Per-client limits shared by every API replica (see src/limits.rs): one row per limit and
-- key (a client address, an email), holding the key's "theoretical arrival time" (GCRA):
-- each request moves it on by period / capacity from now or from where it was, and is
-- refused when that would put it more than a whole period ahead of now. A row whose time
-- has passed holds a full bucket, as no row does: the purge removes it.
CREATE TABLE rate_limits
(
    limiter text        NOT NULL, -- which limit: 'auth', 'failed_log_ins', 'reset_mails'
    key     text        NOT NULL,
    tat     timestamptz NOT NULL,
    PRIMARY KEY (limiter, key)
);

-- No index on tat: every request updates it, and an index on it would make each update
-- a new index entry (no HOT update) and bloat under a flood. The purge scans this small
-- table instead.
