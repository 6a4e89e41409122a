-- Each projection's lock row. The live projector reads it LOCK IN SHARE MODE at the start
-- of every batch; a rebuild holds it FOR UPDATE during its final catch-up and the swap,
-- so no batch can land in the old tables after the rebuild's last read of the store.
CREATE TABLE projection_locks
(
    projection VARCHAR(64) NOT NULL PRIMARY KEY
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

INSERT INTO projection_locks (projection) VALUES ('read-models');
