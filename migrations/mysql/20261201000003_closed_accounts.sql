-- A closed account's posts and comments stay, shown with `nickname: null, closed: true`:
-- the author row keeps the account's id and says it is closed.
ALTER TABLE accounts_view ADD COLUMN closed BOOLEAN NOT NULL DEFAULT FALSE AFTER nickname;
