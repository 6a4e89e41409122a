-- Which projector process applies which partition of the events topic.
--
-- Projectors do not lean on the broker's consumer-group coordinator: each process keeps
-- a row in `projector_members` alive, the live members split the partitions between them
-- by a rule every member computes alike, and a member applies a partition only while it
-- holds that partition's lease here. All times are this server's clock (NOW(3)), so the
-- members' own clocks never matter. A killed member's leases run out and are taken over;
-- every batch re-checks its leases in its own transaction, so a member that lost one can
-- never write after the new holder began. See docs/ARCHITECTURE.md ("Who projects which
-- partition").
CREATE TABLE projector_members
(
    member_group VARCHAR(128) NOT NULL,
    topic        VARCHAR(249) NOT NULL,
    member       VARCHAR(128) NOT NULL,
    -- The member is counted in the split until then; renewed every second or so.
    expires_at   DATETIME(3)  NOT NULL,
    PRIMARY KEY (member_group, topic, member)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE partition_leases
(
    member_group VARCHAR(128) NOT NULL,
    topic        VARCHAR(249) NOT NULL,
    partition_id INT          NOT NULL,
    -- NULL once released; a lease whose expires_at has passed is free to take.
    holder       VARCHAR(128) NULL,
    expires_at   DATETIME(3)  NOT NULL,
    -- When the holder last showed that it keeps up with this partition: it took the
    -- lease, applied a batch of it, or had read all of it. Lag with an old active_at is a
    -- stalled partition (`board projections status`, /metrics, /health/ready).
    active_at    DATETIME(3)  NULL,
    PRIMARY KEY (member_group, topic, partition_id)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
