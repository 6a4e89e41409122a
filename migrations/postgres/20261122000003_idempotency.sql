-- Idempotency-Key handling for POST commands.
--
-- The first request with a key reserves the id of the resource it creates. A retry runs
-- the same command with the same id, which the aggregate treats as a no-op, so the
-- command takes effect at most once even if the server died before saving the response.
-- Once a 2xx response is saved, retries get it back byte for byte.
CREATE TABLE idempotency_keys
(
    scope               text        NOT NULL, -- the acting account's id, or 'anonymous'
    idempotency_key     text        NOT NULL,
    request_fingerprint bytea       NOT NULL, -- SHA-256 of method, path and body
    resource_id         uuid        NOT NULL,
    response_status     smallint,
    response_headers    jsonb,
    response_body       bytea,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idempotency_key)
);
