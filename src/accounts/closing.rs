//! Closing an account at its owner's request (`DELETE /account`).
//!
//! `AccountClosed` frees the address (the claim trigger, in the event's transaction) and
//! tells the read models to show the account's posts and comments with no nickname. Then
//! the account's secrets go in one transaction: its password hash, its links, its key
//! (which erases its personal data from every copy of its events) and every session (so
//! no refresh token renews it). Should that transaction fail after the event, the owner's
//! retry or the next purge (`jobs::purge`, "secrets of closed accounts") finishes it.
//! Access tokens already issued live out their short life, as after a logout.

use uuid::Uuid;

use aggregates::account::AccountCommand;

use super::sessions::{end_in, EndReason};
use super::{delete_secrets, AccountError, AccountService};
use crate::store::{CommandError, Metadata};

impl AccountService {
    /// Closes `account_id` once `password` is confirmed (`WrongPassword` otherwise).
    pub async fn close_account(
        &self,
        account_id: Uuid,
        password: &str,
        metadata: &Metadata,
    ) -> Result<(), AccountError> {
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT password_hash FROM account_credentials WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        // No hash: the account is already closed (its token outlived it) or never was.
        let Some(stored) = stored else {
            return Err(AccountError::AccountGone);
        };
        // Wrong passwords count against the account's limit on failed log-ins: a stolen
        // access token must not let anyone guess the password at leisure (nor keep the
        // hashing slots busy). Opened while the key exists: the address keys these limits,
        // and the ones forgotten below.
        let (account, _) = self.buses.accounts.load(account_id).await?;
        self.limit_wrong_passwords(&account.email, async {
            match self
                .passwords
                .verify(password.to_string(), Some(stored))
                .await?
            {
                true => Ok(()),
                false => Err(AccountError::WrongPassword),
            }
        })
        .await?;
        match self
            .buses
            .accounts
            .execute(account_id, AccountCommand::Close, None, metadata)
            .await
        {
            Ok(_) => {}
            // Closed already, yet its password is still here: an earlier closing stopped
            // between its event and the deletion below. The owner asks again; finish it.
            // (The purge finishes it too, for an owner who never asks again.)
            Err(CommandError::Domain(aggregates::DomainError::NotFound(_))) => {
                tracing::warn!(%account_id, "finishing an earlier closing of this account");
            }
            Err(err) => return Err(err.into()),
        }
        let mut tx = self.pool.begin().await?;
        delete_secrets(&mut tx, account_id).await?;
        let ended = end_in(&mut tx, account_id, None, EndReason::AccountClosed).await?;
        tx.commit().await?;
        // The throttles keyed by the address would keep it for up to their period.
        self.forget_address(&account.email, &[&self.failed_log_ins, &self.reset_mails])
            .await;
        tracing::info!(%account_id, sessions_ended = ended, "account closed");
        Ok(())
    }
}
