-- The fingerprint is an HMAC-SHA256 keyed by the server's signing secret, not the plain
-- SHA-256 that 20261122000003_idempotency.sql's comment says. That file cannot be
-- corrected in place: sqlx checks an applied migration's checksum, so any edit (even to a
-- comment) would stop existing databases from migrating. The schema says it instead.
COMMENT ON COLUMN idempotency_keys.request_fingerprint IS
    'HMAC-SHA256, keyed by the signing secret (JWT_SECRET), of method, path and body';
