//! Sign-up and verification, and who owns an email address.
//!
//! A verified account owns its address. A sign-up nobody verified only holds it: a new
//! sign-up for the same address replaces it (`SignUpReleased { reason: replaced }`), and
//! one whose link expired is released by the purge (`expired`), so that nobody can squat
//! an address by signing up with it. The release frees the address in the event store's
//! claim table in the same transaction (see migration 20261201000004).

use std::time::Duration;

use uuid::Uuid;

use aggregates::account::{Account, AccountCommand, ReleaseReason};

use super::{delete_secrets, new_link_token, token_hash, AccountError, AccountService, NewAccount};
use crate::store::{self, ClaimKind, CommandError, Metadata};

/// How many times a sign-up re-reads who holds its address after losing a race for it
/// (a verification, another sign-up or the purge got there first).
const TAKE_OVER_ATTEMPTS: usize = 3;

/// How long a sign-up holds its address whatever happens: sign-ups racing for one address
/// within it get 409, all but the first. After it, a sign-up that was never verified (or
/// whose registration was never recorded) is replaced by the next one for the address.
/// The purge removes claims without a registration after as long.
pub const CLAIM_GRACE: Duration = Duration::from_secs(60);

impl AccountService {
    /// Whether a new sign-up would get `email` without replacing anyone: nobody holds
    /// it, or only a sign-up whose link expired. (A sign-up whose link is still valid
    /// counts as holding it here, though a new sign-up would replace it too.)
    pub async fn email_available(&self, email: &str) -> Result<bool, AccountError> {
        let Some(holder) = self.account_id_for(email).await? else {
            return Ok(true);
        };
        let (account, version) = self.buses.accounts.load(holder).await?;
        // No event yet: a sign-up for it is under way.
        Ok(version > 0 && !account.verified && !self.has_live_verification_link(holder).await?)
    }

    /// Registers account `account_id` and mails its verification link. Returns the
    /// account's version. Running it again with the same id and data changes nothing.
    pub async fn sign_up(
        &self,
        account_id: Uuid,
        new: NewAccount,
        metadata: &Metadata,
    ) -> Result<u64, AccountError> {
        // Hashing is slow: done before the address is claimed, so that a claim whose
        // registration is under way lasts as short a time as it can.
        let hash = self.passwords.hash(new.password).await?;
        self.claim_email(account_id, &new.email, metadata).await?;
        let command = AccountCommand::Register {
            email: new.email.clone(),
            nickname: new.nickname,
        };
        let registered = async {
            // The hash goes in first, keyed by the new id: if registration then fails,
            // no email leads to it, and the clean-up below removes it.
            sqlx::query(
                "INSERT INTO account_credentials (account_id, password_hash) VALUES ($1, $2)
                 ON CONFLICT (account_id) DO NOTHING",
            )
            .bind(account_id)
            .bind(&hash)
            .execute(&self.pool)
            .await?;
            Ok::<_, AccountError>(
                self.buses
                    .accounts
                    .execute(account_id, command, None, metadata)
                    .await?,
            )
        }
        .await;
        let outcome = match registered {
            Ok(outcome) => outcome,
            Err(err) => {
                self.forget_unregistered(account_id, &new.email).await;
                return Err(err);
            }
        };
        // A retry (nothing recorded) re-sends the link if the first attempt never got to.
        if outcome.recorded > 0
            || self
                .needs_verification_link(account_id, &outcome.state)
                .await?
        {
            self.send_verification(account_id, &outcome.state.email)
                .await?;
        }
        Ok(outcome.version)
    }

    /// Claims `email` for `account_id` before its registration is recorded. A claim
    /// younger than [`CLAIM_GRACE`] is never taken, so of sign-ups racing for an address
    /// exactly one wins and the others get 409. After that, a holder that never verified
    /// is replaced (released), as is a claim whose sign-up died before recording
    /// anything; a verified holder keeps the address (409).
    async fn claim_email(
        &self,
        account_id: Uuid,
        email: &str,
        metadata: &Metadata,
    ) -> Result<(), AccountError> {
        let me = account_id.to_string();
        let kind = ClaimKind::AccountEmail;
        for _ in 0..TAKE_OVER_ATTEMPTS {
            if store::claim(&self.pool, kind, email, &me).await? {
                return Ok(());
            }
            let holder =
                match store::claim_holder_since(&self.pool, kind, email, CLAIM_GRACE).await? {
                    Some((holder, _)) if holder == me => return Ok(()), // a retried sign-up
                    Some((_, false)) => return Err(AccountError::EmailTaken),
                    Some((holder, true)) => holder,
                    None => continue, // freed since: claim again
                };
            let Ok(holder_id) = holder.parse::<Uuid>() else {
                return Err(AccountError::EmailTaken);
            };
            let (account, version) = self.buses.accounts.load(holder_id).await?;
            if version == 0 {
                // Its sign-up died before recording anything.
                if store::take_over(&self.pool, kind, email, &holder, &me, CLAIM_GRACE).await? {
                    return Ok(());
                }
                continue;
            }
            if account.verified {
                return Err(AccountError::EmailTaken);
            }
            match self
                .release(holder_id, ReleaseReason::Replaced, metadata)
                .await
            {
                // The release freed the address: claim it on the next round.
                Ok(()) => {}
                // Verified, or released by someone else, since it was read: look again.
                Err(AccountError::Command(CommandError::Domain(_) | CommandError::Conflict)) => {}
                Err(err) => return Err(err),
            }
        }
        Err(AccountError::EmailTaken)
    }

    /// Releases the unverified sign-up `account_id` and forgets its secrets: its
    /// password, links and (though it can have none) sessions.
    pub(super) async fn release(
        &self,
        account_id: Uuid,
        reason: ReleaseReason,
        metadata: &Metadata,
    ) -> Result<(), AccountError> {
        self.buses
            .accounts
            .execute(
                account_id,
                AccountCommand::Release { reason },
                None,
                metadata,
            )
            .await?;
        let mut tx = self.pool.begin().await?;
        delete_secrets(&mut tx, account_id).await?;
        tx.commit().await?;
        tracing::info!(%account_id, ?reason, "released a sign-up that was never verified");
        Ok(())
    }

    /// Releases up to `limit` sign-ups whose verification links all expired unused;
    /// returns how many. The purge runs it in the process that holds its lease. A sign-up
    /// that cannot be released is logged and skipped: one broken account must not stop
    /// the purge of the others (nor of the other kinds), round after round.
    pub async fn release_expired_sign_ups(
        &self,
        limit: i64,
        metadata: &Metadata,
    ) -> Result<usize, AccountError> {
        let candidates: Vec<String> = sqlx::query_scalar(EXPIRED_SIGN_UPS)
            .bind(self.config.verification_ttl.as_secs_f64())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut released = 0;
        for candidate in candidates {
            let Ok(account_id) = candidate.parse::<Uuid>() else {
                continue;
            };
            match self
                .release(account_id, ReleaseReason::Expired, metadata)
                .await
            {
                Ok(()) => released += 1,
                // Verified (or replaced) since the scan: nothing to do.
                Err(AccountError::Command(CommandError::Domain(_) | CommandError::Conflict)) => {}
                Err(err) => {
                    let error = format!("{:#}", anyhow::Error::from(err));
                    tracing::warn!(%account_id, %error, "could not release an expired sign-up");
                }
            }
        }
        Ok(released)
    }

    /// Removes the credentials and the email claim of an account whose registration did
    /// not happen (if it did after all, as a retry may find, it keeps both).
    async fn forget_unregistered(&self, account_id: Uuid, email: &str) {
        let (_, version) = match self.buses.accounts.load(account_id).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(%account_id, %error, "could not tell whether the registration happened");
                return;
            }
        };
        if version > 0 {
            return;
        }
        let result = async {
            sqlx::query("DELETE FROM account_credentials WHERE account_id = $1")
                .bind(account_id)
                .execute(&self.pool)
                .await?;
            store::give_up(
                &self.pool,
                ClaimKind::AccountEmail,
                email,
                &account_id.to_string(),
            )
            .await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%account_id, %error, "could not remove what a failed sign-up left");
        }
    }

    async fn has_live_verification_link(&self, account_id: Uuid) -> Result<bool, AccountError> {
        let live: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM email_verifications WHERE account_id = $1 AND expires_at > now() LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(live.is_some())
    }

    /// True for an unverified account without a live verification link.
    async fn needs_verification_link(
        &self,
        account_id: Uuid,
        account: &Account,
    ) -> Result<bool, AccountError> {
        Ok(!account.verified && !self.has_live_verification_link(account_id).await?)
    }

    async fn send_verification(&self, account_id: Uuid, email: &str) -> Result<(), AccountError> {
        let (token, hash) = new_link_token();
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(self.config.verification_ttl).unwrap_or_default();
        sqlx::query(
            "INSERT INTO email_verifications (token_hash, account_id, expires_at)
             VALUES ($1, $2, $3)",
        )
        .bind(hash)
        .bind(account_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        let link = self.public_link(&format!("/verify?verify_id={token}"));
        let body = format!(
            "Welcome to Board!\n\nConfirm your email address by opening this link:\n\n{link}\n\n\
             The link is valid until {}.\n",
            expires_at.format("%Y-%m-%d %H:%M UTC")
        );
        // The account is recorded either way; a failed mail is logged for an operator
        // rather than turning a successful sign-up into an error.
        if let Err(error) = self
            .mailer
            .send(email, "Confirm your Board account", body)
            .await
        {
            tracing::error!(%account_id, error = %format!("{error:#}"), "verification mail not sent");
        }
        Ok(())
    }

    /// Marks the account behind a verification link verified. Harmless to repeat; the
    /// link of a sign-up that was replaced or expired opens nothing.
    pub async fn verify(&self, token: &str, metadata: &Metadata) -> Result<Uuid, AccountError> {
        let account_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT account_id FROM email_verifications WHERE token_hash = $1 AND expires_at > now()",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        let account_id = account_id.ok_or(AccountError::UnknownVerification)?;
        match self
            .buses
            .accounts
            .execute(account_id, AccountCommand::Verify, None, metadata)
            .await
        {
            Ok(_) => Ok(account_id),
            // Released between the lookup and the command.
            Err(CommandError::Domain(aggregates::DomainError::NotFound(_))) => {
                Err(AccountError::UnknownVerification)
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Sign-ups never verified nor released (`pending_sign_ups`, kept by a trigger) that
/// are older than a verification link lives and have no live link (a retried sign-up
/// mails a new one). The age test also keeps a sign-up whose first link is still being
/// written out of reach.
const EXPIRED_SIGN_UPS: &str = "
    SELECT p.account_id
    FROM pending_sign_ups p
    WHERE p.registered_at <= now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM email_verifications v
                      WHERE v.account_id = p.account_id::uuid AND v.expires_at > now())
    ORDER BY p.registered_at
    LIMIT $2";
