//! Log-in sessions, kept in PostgreSQL (`sessions`) so that every API replica sees the
//! same ones.
//!
//! A log-in opens a session. Its refresh tokens carry the session's id and their own id;
//! only the newest one is live. A refresh swaps it for a new one in a single `UPDATE`
//! that names the old one, so of two refreshes with the same token exactly one wins. A
//! refresh token presented after it was swapped was copied (or the client lost the
//! answer to a refresh and retried it): the store cannot tell which, so it ends the whole
//! session, as the API contract asks, and its holder logs in again. Access tokens are not
//! checked here: they live out their short life.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use thiserror::Error;
use uuid::Uuid;

use crate::auth::tokens::SessionTicket;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SessionError {
    /// The token was already swapped for a newer one: the session is now ended.
    #[error("this refresh token was already used; the session has been ended, log in again")]
    Replayed,
    /// Logged out, ended by a password reset or a replay, or expired and purged.
    #[error("the session has ended; log in again")]
    Ended,
}

/// Why a session ended, as `sessions.end_reason` records it.
#[derive(Debug, Clone, Copy)]
pub enum EndReason {
    LoggedOut,
    RefreshTokenReplayed,
    PasswordReset,
    AccountClosed,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged out",
            Self::RefreshTokenReplayed => "refresh token replayed",
            Self::PasswordReset => "password reset",
            Self::AccountClosed => "account closed",
        }
    }
}

pub struct Sessions {
    pool: PgPool,
    /// How long a refresh token lives; each refresh gives the session that long again.
    refresh_ttl: Duration,
}

impl Sessions {
    pub fn new(pool: PgPool, refresh_ttl: Duration) -> Self {
        Self { pool, refresh_ttl }
    }

    /// Opens a session for `account_id`; the ticket is its first refresh token's.
    pub async fn open(&self, account_id: Uuid) -> Result<SessionTicket, sqlx::Error> {
        let ticket = SessionTicket {
            session_id: Uuid::now_v7(),
            refresh_id: Uuid::now_v7(),
        };
        sqlx::query(
            "INSERT INTO sessions (session_id, account_id, refresh_id, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        )
        .bind(ticket.session_id)
        .bind(account_id)
        .bind(ticket.refresh_id)
        .bind(self.refresh_ttl.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(ticket)
    }

    /// Swaps the live refresh token `presented` of `account_id`'s session for a new one.
    /// A token that is no longer the live one ends the session.
    pub async fn rotate(
        &self,
        account_id: Uuid,
        presented: SessionTicket,
    ) -> Result<Result<SessionTicket, SessionError>, sqlx::Error> {
        let next = SessionTicket {
            session_id: presented.session_id,
            refresh_id: Uuid::now_v7(),
        };
        let swapped = sqlx::query(
            "UPDATE sessions
             SET refresh_id = $4, refreshed_at = now(),
                 expires_at = now() + make_interval(secs => $5)
             WHERE session_id = $1 AND account_id = $2 AND refresh_id = $3
               AND ended_at IS NULL",
        )
        .bind(presented.session_id)
        .bind(account_id)
        .bind(presented.refresh_id)
        .bind(next.refresh_id)
        .bind(self.refresh_ttl.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if swapped == 1 {
            return Ok(Ok(next));
        }
        // Not the live token of an open session: a replay if the session is still open.
        let mut conn = self.pool.acquire().await?;
        let ended = end_in(
            &mut conn,
            account_id,
            Some(presented.session_id),
            EndReason::RefreshTokenReplayed,
        )
        .await?;
        if ended > 0 {
            tracing::warn!(
                session_id = %presented.session_id,
                %account_id,
                "a spent refresh token was presented again; the session is ended"
            );
            return Ok(Err(SessionError::Replayed));
        }
        Ok(Err(SessionError::Ended))
    }

    /// Ends the session `ticket` belongs to, whichever of its refresh tokens it is.
    pub async fn end(&self, account_id: Uuid, ticket: SessionTicket) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        end_in(
            &mut conn,
            account_id,
            Some(ticket.session_id),
            EndReason::LoggedOut,
        )
        .await?;
        Ok(())
    }
}

/// Ends `account_id`'s open session `session_id`, or all of them when `None`, in the
/// caller's transaction; returns how many ended.
pub async fn end_in(
    conn: &mut PgConnection,
    account_id: Uuid,
    session_id: Option<Uuid>,
    reason: EndReason,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sessions SET ended_at = now(), end_reason = $3
         WHERE account_id = $1 AND ($2::uuid IS NULL OR session_id = $2) AND ended_at IS NULL",
    )
    .bind(account_id)
    .bind(session_id)
    .bind(reason.as_str())
    .execute(conn)
    .await?
    .rows_affected())
}
