//! Account flows shared by the HTTP API, the command line and the purge: sign-up with its
//! verification mail and the replacement of sign-ups nobody verified ([`sign_up`]),
//! log-in sessions with rotating refresh tokens ([`sessions`], [`log_in`]), password
//! reset by mail ([`password_reset`]), closing ([`closing`]), and promotion.
//!
//! Secrets live beside the event stream, never in it: password hashes
//! (`account_credentials`), the SHA-256 of mailed link tokens (`email_verifications`,
//! `password_resets`) and sessions, all in PostgreSQL so that every API replica sees them.

mod closing;
mod log_in;
mod password_reset;
pub mod sessions;
mod sign_up;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use thiserror::Error;
use tokio::sync::Semaphore;
use uuid::Uuid;

use aggregates::account::{Account, AccountCommand};
use aggregates::Role;

use crate::auth::password::{HashingError, Passwords};
use crate::auth::tokens::{Issued, TokenError, TokenIssuer};
use crate::config::Config;
use crate::limits::RateLimiter;
use crate::mail::Mailer;
use crate::store::{self, ClaimKind, CommandBuses, CommandError, Metadata};

pub use sessions::SessionError;
pub use sign_up::CLAIM_GRACE;

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
    #[error("unknown, used or expired password-reset link")]
    UnknownPasswordReset,
    /// A password confirmation (closing the account) that did not match.
    #[error("the password does not match")]
    WrongPassword,
    /// The account behind a still-valid access token was closed meanwhile.
    #[error("the account is closed")]
    AccountGone,
    /// Too many wrong passwords for one account (log-ins, closings), from wherever they
    /// came.
    #[error("too many wrong passwords for this account")]
    TooManyAttempts { retry_after: Duration },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Hashing(#[from] HashingError),
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
    pub refresh: Issued,
}

pub struct AccountService {
    pool: PgPool,
    buses: Arc<CommandBuses>,
    tokens: TokenIssuer,
    sessions: sessions::Sessions,
    passwords: Arc<Passwords>,
    mailer: Mailer,
    config: Arc<Config>,
    /// Failed log-ins per account (by email), whichever addresses they come from.
    failed_log_ins: RateLimiter,
    /// Password-reset mails per address, so nobody can flood someone's mailbox.
    reset_mails: RateLimiter,
    /// Places for password-reset mails being sent (`RESET_MAILS_IN_FLIGHT`): they go out
    /// in the background, and their number must not grow with the requests.
    reset_mails_in_flight: Arc<Semaphore>,
}

impl AccountService {
    /// `limits`: the rate limiters' pool (`store::connect_limits_lazy`).
    pub fn new(
        pool: PgPool,
        limits: PgPool,
        buses: Arc<CommandBuses>,
        tokens: TokenIssuer,
        passwords: Arc<Passwords>,
        mailer: Mailer,
        config: Arc<Config>,
    ) -> Self {
        Self {
            sessions: sessions::Sessions::new(pool.clone(), tokens.refresh_ttl()),
            failed_log_ins: RateLimiter::per_hour(
                limits.clone(),
                "failed_log_ins",
                config.failed_log_ins_per_account_per_hour,
            ),
            reset_mails: RateLimiter::per_hour(
                limits,
                "reset_mails",
                password_reset::MAILS_PER_ADDRESS_PER_HOUR,
            ),
            reset_mails_in_flight: Arc::new(Semaphore::new(config.reset_mails_in_flight)),
            pool,
            buses,
            tokens,
            passwords,
            mailer,
            config,
        }
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

    /// The email address of an account that is still open, opened from its history with
    /// its key; `None` once it is closed or released (its key, and so its address, is
    /// gone). This, not the history, is where an operator gets an address.
    pub async fn email_of(&self, account_id: Uuid) -> Result<Option<String>, AccountError> {
        let (account, version) = self.buses.accounts.load(account_id).await?;
        if version == 0 {
            return Err(AccountError::AccountGone);
        }
        Ok(account.is_live().then_some(account.email))
    }

    /// Forgets what `limiters` counted against the address `email`: its owner closed the
    /// account, or proved the mailbox. A failure only leaves the count to run out by
    /// itself, so it is logged, not returned.
    async fn forget_address(&self, email: &str, limiters: &[&RateLimiter]) {
        let address = aggregates::rules::normalize_email(email);
        for limiter in limiters {
            if let Err(error) = limiter.forget(&address).await {
                tracing::warn!(%error, "could not forget an address's count (it runs out by itself)");
            }
        }
    }

    /// The account that holds `email`: a verified one, or a sign-up not yet released.
    async fn account_id_for(&self, email: &str) -> Result<Option<Uuid>, AccountError> {
        let holder = store::claim_holder(&self.pool, ClaimKind::AccountEmail, email).await?;
        Ok(holder.and_then(|id| id.parse().ok()))
    }

    /// Admins are the verified accounts that were promoted or whose email the
    /// configuration lists. An unverified one never is: anybody can sign up with an
    /// address from `ADMIN_EMAILS`, only its owner can verify it.
    fn effective_role(&self, account: &Account) -> Role {
        if account.verified
            && (account.role == Role::Admin || self.config.is_admin_email(&account.email))
        {
            Role::Admin
        } else {
            Role::Member
        }
    }

    fn public_link(&self, path_and_query: &str) -> String {
        format!(
            "{}{path_and_query}",
            self.config.public_base_url.trim_end_matches('/')
        )
    }
}

/// Deletes what an account that is over (released or closed) kept beside its events, in
/// the caller's transaction: its password hash, its links, and the key of its personal
/// data, which erases its email and nickname from the whole history.
async fn delete_secrets(
    conn: &mut sqlx::PgConnection,
    account_id: Uuid,
) -> Result<(), sqlx::Error> {
    for table in [
        "email_verifications",
        "password_resets",
        "account_credentials",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
            .bind(account_id)
            .execute(&mut *conn)
            .await?;
    }
    crate::personal_data::destroy_key_in(conn, account_id).await
}

/// A random link token (256 bits, URL-safe) and the hash that is stored in its place.
fn new_link_token() -> (String, Vec<u8>) {
    let mut token = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut token);
    let token = URL_SAFE_NO_PAD.encode(token);
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
