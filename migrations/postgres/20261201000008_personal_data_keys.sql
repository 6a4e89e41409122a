-- One key per account for its personal data in the events (email, nickname), kept here
-- and never in the events; see src/personal_data/. Deleting a row erases that account's
-- personal data from the whole history (crypto-shredding).
CREATE TABLE personal_data_keys
(
    account_id uuid PRIMARY KEY,
    data_key   bytea       NOT NULL CHECK (length(data_key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
