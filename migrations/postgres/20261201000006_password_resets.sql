-- Password-reset links, valid for an hour. As with verification links only the SHA-256 of
-- the random token is stored, so a copy of this table opens nothing. Setting a password
-- through one link deletes every link of the account in the same transaction: each is
-- single use, and an older one mailed earlier cannot set the password again.
CREATE TABLE password_resets
(
    token_hash bytea PRIMARY KEY,
    account_id uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Deleting an account's links; the purge's expiry scan.
CREATE INDEX password_resets_by_account ON password_resets (account_id);
CREATE INDEX password_resets_expiry ON password_resets (expires_at);
