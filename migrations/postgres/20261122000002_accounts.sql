-- Account secrets, kept beside the event stream and never in it.
--
-- A row is written before the account's AccountRegistered event, keyed by the new
-- account's id. If registration then fails, the row is an orphan no email leads to.
CREATE TABLE account_credentials
(
    account_id    uuid PRIMARY KEY,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Email verification links carry a random token; only its SHA-256 is stored.
CREATE TABLE email_verifications
(
    token_hash bytea PRIMARY KEY,
    account_id uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX email_verifications_expiry ON email_verifications (expires_at);
