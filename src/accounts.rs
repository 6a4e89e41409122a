//! Account flows shared by the HTTP API and the command line: sign-up with its
//! verification mail, verification, log-in, token refresh, and promotion.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use thiserror::Error;
use uuid::Uuid;

use aggregates::account::{Account, AccountCommand};
use aggregates::Role;

use crate::auth::password;
use crate::auth::tokens::{Issued, TokenError, TokenIssuer, TokenKind};
use crate::config::Config;
use crate::mail::Mailer;
use crate::store::{self, ClaimKind, CommandBuses, CommandError, Metadata};

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("the account's email address is not verified yet")]
    NotVerified,
    #[error("no account with this email")]
    UnknownEmail,
    #[error("unknown or expired verification link")]
    UnknownVerification,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("password hashing failed")]
    Hashing(#[source] anyhow::Error),
}

impl From<sqlx::Error> for AccountError {
    fn from(err: sqlx::Error) -> Self {
        Self::Command(err.into())
    }
}

/// What `POST /signup` asks for, already checked against the field rules.
pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub nickname: String,
}

/// What a successful log-in or refresh hands out.
pub struct Tokens {
    pub access: Issued,
    pub refresh: Option<Issued>,
}

pub struct AccountService {
    pool: PgPool,
    buses: Arc<CommandBuses>,
    tokens: TokenIssuer,
    mailer: Mailer,
    config: Arc<Config>,
}

impl AccountService {
    pub fn new(
        pool: PgPool,
        buses: Arc<CommandBuses>,
        tokens: TokenIssuer,
        mailer: Mailer,
        config: Arc<Config>,
    ) -> Self {
        Self {
            pool,
            buses,
            tokens,
            mailer,
            config,
        }
    }

    pub async fn email_available(&self, email: &str) -> Result<bool, AccountError> {
        Ok(
            store::claim_holder(&self.pool, ClaimKind::AccountEmail, email)
                .await?
                .is_none(),
        )
    }

    /// Registers account `account_id` and mails its verification link. Returns the
    /// account's version. Running it again with the same id and data changes nothing.
    pub async fn sign_up(
        &self,
        account_id: Uuid,
        new: NewAccount,
        metadata: &Metadata,
    ) -> Result<u64, AccountError> {
        let holder = store::claim_holder(&self.pool, ClaimKind::AccountEmail, &new.email).await?;
        if holder.is_some_and(|holder| holder != account_id.to_string()) {
            return Err(AccountError::EmailTaken);
        }
        let hash = password::hash(new.password)
            .await
            .map_err(AccountError::Hashing)?;
        // The hash goes in first, keyed by the new id: if registration then fails, no
        // email leads to it, and the clean-up below removes it.
        sqlx::query(
            "INSERT INTO account_credentials (account_id, password_hash) VALUES ($1, $2)
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(account_id)
        .bind(&hash)
        .execute(&self.pool)
        .await?;
        let command = AccountCommand::Register {
            email: new.email.clone(),
            nickname: new.nickname,
        };
        let outcome = match self
            .buses
            .accounts
            .execute(account_id, command, None, metadata)
            .await
        {
            Ok(outcome) => outcome,
            Err(err) => {
                self.forget_unregistered(account_id).await;
                // The email claim is written with the event; losing that race surfaces as
                // a conflict on an account id nobody else can have.
                if matches!(err, CommandError::Conflict) {
                    let holder =
                        store::claim_holder(&self.pool, ClaimKind::AccountEmail, &new.email)
                            .await?;
                    if holder.is_some_and(|holder| holder != account_id.to_string()) {
                        return Err(AccountError::EmailTaken);
                    }
                }
                return Err(err.into());
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

    /// Removes the credentials of an account whose registration did not happen.
    async fn forget_unregistered(&self, account_id: Uuid) {
        let result = sqlx::query(
            "DELETE FROM account_credentials WHERE account_id = $1 AND NOT EXISTS
               (SELECT 1 FROM events WHERE aggregate_type = $2 AND aggregate_id = $1::text)",
        )
        .bind(account_id)
        .bind(<Account as cqrs_es::Aggregate>::TYPE)
        .execute(&self.pool)
        .await;
        if let Err(error) = result {
            tracing::warn!(%account_id, %error, "could not remove orphaned credentials");
        }
    }

    /// True for an unverified account without a live verification link.
    async fn needs_verification_link(
        &self,
        account_id: Uuid,
        account: &Account,
    ) -> Result<bool, AccountError> {
        if account.verified {
            return Ok(false);
        }
        let live: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM email_verifications WHERE account_id = $1 AND expires_at > now() LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(live.is_none())
    }

    async fn send_verification(&self, account_id: Uuid, email: &str) -> Result<(), AccountError> {
        let mut token = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut token);
        let token = URL_SAFE_NO_PAD.encode(token);
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(self.config.verification_ttl).unwrap_or_default();
        sqlx::query(
            "INSERT INTO email_verifications (token_hash, account_id, expires_at)
             VALUES ($1, $2, $3)",
        )
        .bind(token_hash(&token))
        .bind(account_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        let link = format!(
            "{}/verify?verify_id={token}",
            self.config.public_base_url.trim_end_matches('/')
        );
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

    /// Marks the account behind a verification link verified. Harmless to repeat.
    pub async fn verify(&self, token: &str, metadata: &Metadata) -> Result<Uuid, AccountError> {
        let account_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT account_id FROM email_verifications WHERE token_hash = $1 AND expires_at > now()",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        let account_id = account_id.ok_or(AccountError::UnknownVerification)?;
        self.buses
            .accounts
            .execute(account_id, AccountCommand::Verify, None, metadata)
            .await?;
        Ok(account_id)
    }

    /// Checks an email and password. Unknown email and wrong password look the same.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<Tokens, AccountError> {
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
        let matches = password::verify(password.to_string(), stored)
            .await
            .map_err(AccountError::Hashing)?;
        let (Some(account_id), true) = (account_id, matches) else {
            return Err(AccountError::InvalidCredentials);
        };
        let (account, _) = self.buses.accounts.load(account_id).await?;
        if !account.registered {
            return Err(AccountError::InvalidCredentials);
        }
        if !account.verified {
            return Err(AccountError::NotVerified);
        }
        let role = self.effective_role(&account);
        Ok(Tokens {
            access: self.tokens.issue(account_id, role, TokenKind::Access),
            refresh: Some(self.tokens.issue(account_id, role, TokenKind::Refresh)),
        })
    }

    /// A new access token for a refresh token, and a new refresh token too once the old
    /// one has less than a third of its life left.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AccountError> {
        let claims = self.tokens.verify(refresh_token, TokenKind::Refresh)?;
        let (account, _) = self.buses.accounts.load(claims.sub).await?;
        if !account.registered || !account.verified {
            return Err(AccountError::InvalidCredentials);
        }
        let role = self.effective_role(&account);
        let remaining = claims.exp - chrono::Utc::now().timestamp();
        let renew = remaining < (self.tokens.refresh_ttl().as_secs() / 3) as i64;
        Ok(Tokens {
            access: self.tokens.issue(claims.sub, role, TokenKind::Access),
            refresh: renew.then(|| self.tokens.issue(claims.sub, role, TokenKind::Refresh)),
        })
    }

    /// Makes the account with `email` an admin. Returns its id.
    pub async fn promote(&self, email: &str, metadata: &Metadata) -> Result<Uuid, AccountError> {
        let account_id = self
            .account_id_for(email)
            .await?
            .ok_or(AccountError::UnknownEmail)?;
        self.buses
            .accounts
            .execute(account_id, AccountCommand::Promote, None, metadata)
            .await?;
        Ok(account_id)
    }

    async fn account_id_for(&self, email: &str) -> Result<Option<Uuid>, AccountError> {
        let holder = store::claim_holder(&self.pool, ClaimKind::AccountEmail, email).await?;
        Ok(holder.and_then(|id| id.parse().ok()))
    }

    /// Admins are the promoted accounts and those whose email the configuration lists.
    fn effective_role(&self, account: &Account) -> Role {
        if account.role == Role::Admin || self.config.is_admin_email(&account.email) {
            Role::Admin
        } else {
            Role::Member
        }
    }
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
