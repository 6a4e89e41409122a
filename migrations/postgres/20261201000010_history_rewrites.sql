-- The rewrites of history that ran, each once (see src/store/history_sealing.rs): events
-- are never changed except by one of these, and this table says which ran and when.
CREATE TABLE history_rewrites
(
    rewrite     text PRIMARY KEY,
    rewritten   bigint      NOT NULL, -- how many events it changed
    finished_at timestamptz NOT NULL DEFAULT now()
);
