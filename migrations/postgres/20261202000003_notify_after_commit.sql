-- The relay and the live feed are woken after a command commits, by the writing process
-- (src/store/commit_signal.rs), no longer by a trigger inside the writing transaction.
--
-- PostgreSQL serializes the commits of all transactions that notify (a cluster-wide lock
-- taken at commit and held through the flush of the write-ahead log), so this trigger
-- made concurrent commands commit one at a time. pgbench, 16 clients, single-row
-- INSERTs on one machine: 618/s with this trigger, 6,102/s with the NOTIFY sent as its own
-- statement after each commit, 7,344/s with none.
DROP TRIGGER events_notify ON events;
DROP FUNCTION notify_events();
