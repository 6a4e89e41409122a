//! Log-in, refresh and logout.
//!
//! Log-ins are throttled twice: per client address at the HTTP edge (`AUTH_RATE_PER_MINUTE`)
//! and here per account, by the email tried (`FAILED_LOG_INS_PER_ACCOUNT_PER_HOUR`), so a
//! credential stuffer spreading guesses over many addresses is slowed all the same. Only
//! failures count: each attempt takes a place up front (so concurrent guesses cannot all
//! slip through) and a success gives it back. Unknown addresses are throttled like known
//! ones, so the answer never tells which exist. Wrong passwords to `DELETE /account`
//! count against the same limit ([`AccountService::limit_wrong_passwords`]).

use std::future::Future;

use uuid::Uuid;

use aggregates::rules;

use super::{AccountError, AccountService, SessionError, Tokens};
use crate::auth::tokens::{SessionTicket, TokenError, TokenKind};

impl AccountService {
    /// Checks an email and password and opens a session. Unknown email and wrong
    /// password look the same.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<Tokens, AccountError> {
        // No address with a NUL was ever signed up (`rules::email`), and PostgreSQL text
        // cannot hold one, so it is not looked up, nor counted against anyone.
        if email.contains('\0') {
            return Err(AccountError::InvalidCredentials);
        }
        let account_id = self
            .limit_wrong_passwords(email, self.check_password(email, password))
            .await?;
        let (account, _) = self.buses.accounts.load(account_id).await?;
        if !account.is_live() {
            return Err(AccountError::InvalidCredentials);
        }
        if !account.verified {
            return Err(AccountError::NotVerified);
        }
        let role = self.effective_role(&account);
        let ticket = self.sessions.open(account_id).await?;
        Ok(Tokens {
            access: self.tokens.issue_access(account_id, role),
            refresh: self.tokens.issue_refresh(account_id, role, ticket),
        })
    }

    /// Runs `check`, one password attempt for the account `email` names, under the
    /// per-account limit on wrong passwords (`FAILED_LOG_INS_PER_ACCOUNT_PER_HOUR`), which
    /// log-ins and account closings share: a place is taken up front, so concurrent
    /// guesses cannot all slip through, and given back unless the password was wrong.
    pub(super) async fn limit_wrong_passwords<T>(
        &self,
        email: &str,
        check: impl Future<Output = Result<T, AccountError>>,
    ) -> Result<T, AccountError> {
        let throttle_key = rules::normalize_email(email);
        self.failed_log_ins
            .take(&throttle_key)
            .await?
            .map_err(|retry_after| AccountError::TooManyAttempts { retry_after })?;
        let result = check.await;
        let wrong = matches!(
            result,
            Err(AccountError::InvalidCredentials | AccountError::WrongPassword)
        );
        if !wrong {
            // A right password is not refused for want of the refund: the place runs out
            // by itself.
            if let Err(error) = self.failed_log_ins.give_back(&throttle_key).await {
                tracing::warn!(%error, "could not give back a password attempt");
            }
        }
        result
    }

    /// The account `email` and `password` belong to, or `InvalidCredentials`.
    async fn check_password(&self, email: &str, password: &str) -> Result<Uuid, AccountError> {
        let account_id = self.account_id_for(email).await?;
        let stored: Option<String> = match account_id {
            Some(id) => {
                sqlx::query_scalar(
                    "SELECT password_hash FROM account_credentials WHERE account_id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
            }
            None => None,
        };
        // Verified even without a stored hash (against a dummy), so that an unknown
        // address takes as long as a wrong password.
        let matches = self.passwords.verify(password.to_string(), stored).await?;
        match (account_id, matches) {
            (Some(account_id), true) => Ok(account_id),
            _ => Err(AccountError::InvalidCredentials),
        }
    }

    /// A new access token and a new refresh token for the live refresh token of a
    /// session; the presented one is spent. A spent one ends the session (see
    /// [`super::sessions`]).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AccountError> {
        let (account_id, presented) = self.read_refresh_token(refresh_token)?;
        let ticket = self.sessions.rotate(account_id, presented).await??;
        let (account, _) = self.buses.accounts.load(account_id).await?;
        if !account.is_live() || !account.verified {
            return Err(SessionError::Ended.into());
        }
        let role = self.effective_role(&account);
        Ok(Tokens {
            access: self.tokens.issue_access(account_id, role),
            refresh: self.tokens.issue_refresh(account_id, role, ticket),
        })
    }

    /// Ends the session of `refresh_token` (any of its refresh tokens will do).
    pub async fn log_out(&self, refresh_token: &str) -> Result<(), AccountError> {
        let (account_id, ticket) = self.read_refresh_token(refresh_token)?;
        self.sessions.end(account_id, ticket).await?;
        Ok(())
    }

    fn read_refresh_token(&self, token: &str) -> Result<(Uuid, SessionTicket), AccountError> {
        let claims = self.tokens.verify(token, TokenKind::Refresh)?;
        let ticket = SessionTicket::of(&claims).ok_or(TokenError::Invalid)?;
        Ok((claims.sub, ticket))
    }
}
