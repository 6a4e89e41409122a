//! Password reset by mail: whoever controls the mailbox controls the account.
//!
//! `POST /password-reset` always answers the same, whether the address has an account or
//! not; when it has, a link token valid for [`LINK_TTL`] is mailed. The mail is sent in
//! the background, so the time of the answer does not tell either, and at most
//! `RESET_MAILS_IN_FLIGHT` at once (past it one is dropped, and logged). Setting a password
//! through a link deletes every link of the account, ends every session and records
//! `PasswordReset` (and `AccountVerified` for an account not yet verified: the link proved
//! the mailbox), which is how the owner of an address takes back an account somebody else
//! signed up with it.

use std::time::Duration;

use aggregates::account::AccountCommand;

use super::sessions::{end_in, EndReason};
use super::{new_link_token, token_hash, AccountError, AccountService};
use crate::store::Metadata;

/// How long a password-reset link is valid (the API contract says one hour).
pub const LINK_TTL: Duration = Duration::from_secs(3_600);
/// Reset mails one address can receive in an hour, however many clients ask; past it,
/// requests are answered as usual and no mail goes out.
pub const MAILS_PER_ADDRESS_PER_HOUR: u32 = 5;

impl AccountService {
    /// Mails a reset link to `email` if an account holds it. Says nothing either way.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AccountError> {
        let Some(account_id) = self.account_id_for(email).await? else {
            return Ok(());
        };
        // The address as the account has it, not as this request spelled it.
        let email = aggregates::rules::normalize_email(email);
        // Taken first: a mail that cannot go out neither counts for the address nor
        // leaves a link.
        let Ok(sending) = self.reset_mails_in_flight.clone().try_acquire_owned() else {
            tracing::warn!(%account_id, "password-reset mail dropped: too many being sent");
            return Ok(());
        };
        if self.reset_mails.take(&email).await?.is_err() {
            tracing::info!(%account_id, "password-reset mail withheld: too many for this address");
            return Ok(());
        }
        let (token, hash) = new_link_token();
        sqlx::query(
            "INSERT INTO password_resets (token_hash, account_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))",
        )
        .bind(hash)
        .bind(account_id)
        .bind(LINK_TTL.as_secs_f64())
        .execute(&self.pool)
        .await?;
        let body = format!(
            "Somebody (we hope you) asked to set a new password for your Board account.\n\n\
             To do so, send this token with your new password to \
             POST {}:\n\n{token}\n\n\
             The token works once, for one hour. If you did not ask for it, ignore this mail: \
             your password stays as it is.\n",
            self.public_link("/password-reset/confirm"),
        );
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(error) = mailer.send(&email, "Reset your Board password", body).await {
                tracing::error!(%account_id, error = %format!("{error:#}"), "password-reset mail not sent");
            }
            drop(sending);
        });
        Ok(())
    }

    /// Sets `new_password` through the link `token`; ends every session of the account.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: String,
        metadata: &Metadata,
    ) -> Result<(), AccountError> {
        // The link first: a made-up token must not cost a hash (nor wait for a slot).
        let account_id: uuid::Uuid = sqlx::query_scalar(
            "SELECT account_id FROM password_resets WHERE token_hash = $1 AND expires_at > now()",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(AccountError::UnknownPasswordReset)?;
        // Hashing is slow: done before any transaction is open or row is held.
        let hash = self.passwords.hash(new_password).await?;
        // The event first, then the password in one transaction that spends the link: if
        // that transaction fails, the link still works and a retry sets the password (the
        // history then holds one `PasswordReset` too many, which is harmless). The other
        // order could leave a password set that the history never records.
        self.buses
            .accounts
            .execute(account_id, AccountCommand::ResetPassword, None, metadata)
            .await?;
        let mut tx = self.pool.begin().await?;
        // Spends the link, unless a concurrent confirmation already did (or it expired).
        let spent =
            sqlx::query("DELETE FROM password_resets WHERE token_hash = $1 AND expires_at > now()")
                .bind(token_hash(token))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if spent == 0 {
            return Err(AccountError::UnknownPasswordReset);
        }
        // Every other link of the account goes too: an older mail cannot reset again.
        sqlx::query("DELETE FROM password_resets WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE account_credentials SET password_hash = $2 WHERE account_id = $1")
            .bind(account_id)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        let ended = end_in(&mut tx, account_id, None, EndReason::PasswordReset).await?;
        tx.commit().await?;
        tracing::info!(%account_id, sessions_ended = ended, "password reset");
        // Whoever opened the mail owns the account: the failed log-ins others spent on it
        // (guesses, or a try at locking the owner out) no longer stand between the owner
        // and the new password.
        match self.buses.accounts.load(account_id).await {
            Ok((account, _)) => {
                self.forget_address(&account.email, &[&self.failed_log_ins])
                    .await
            }
            Err(error) => tracing::warn!(%error, "could not read a reset account's address"),
        }
        Ok(())
    }
}
