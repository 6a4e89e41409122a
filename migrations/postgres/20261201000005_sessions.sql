-- Log-in sessions (see src/accounts/sessions.rs). A log-in opens one; each refresh token
-- names its session (`sid`) and carries its own id (`jti`). Only the newest refresh token
-- of a session is live (refresh_id): a refresh swaps it for a new one in one UPDATE, and a
-- refresh token presented after it was swapped is a replay (a stolen copy, most likely),
-- which ends the whole session. Rows live in the database, not in a process, so every API
-- replica sees the same sessions.
CREATE TABLE sessions
(
    session_id   uuid PRIMARY KEY,
    account_id   uuid        NOT NULL,
    refresh_id   uuid        NOT NULL, -- jti of the one refresh token that may be used next
    created_at   timestamptz NOT NULL DEFAULT now(),
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL, -- when the live refresh token expires
    ended_at     timestamptz,          -- NULL while the session is open
    end_reason   text                  -- 'logged out', 'refresh token replayed', 'password reset',
                                       -- 'account closed'
);

-- Ending every open session of an account (password reset, account closing).
CREATE INDEX sessions_open_by_account ON sessions (account_id) WHERE ended_at IS NULL;
-- The purge removes sessions whose last refresh token has expired.
CREATE INDEX sessions_expiry ON sessions (expires_at);
