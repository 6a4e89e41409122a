-- Events a projection could not apply, with the reason, and the later events of their
-- aggregates, which wait behind them so that each aggregate's events still apply in order.
-- The projection goes on with every other aggregate. Written by the fold in the batch's own
-- transaction; `board projections quarantine list | retry` reads and empties it.
--
-- It describes the view tables beside it (which events their rows lack), so a rebuild
-- swaps it in together with them. See docs/ARCHITECTURE.md ("Events that cannot be
-- applied").
CREATE TABLE quarantined_events
(
    projection     VARCHAR(64)  NOT NULL,
    aggregate_type VARCHAR(32)  NOT NULL,
    aggregate_id   VARCHAR(255) NOT NULL,
    sequence       BIGINT       NOT NULL,
    event_id       CHAR(36)     NOT NULL,
    -- TEXT, not VARCHAR: whatever a bad event carries must fit, or the batch would fail.
    event_type     TEXT         NOT NULL,
    event_version  TEXT         NOT NULL,
    reason         TEXT         NOT NULL,
    -- The envelope as received, as JSON.
    envelope       MEDIUMTEXT   NOT NULL,
    quarantined_at DATETIME(3)  NOT NULL,
    PRIMARY KEY (projection, aggregate_type, aggregate_id, sequence)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
