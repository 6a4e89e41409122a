//! Password hashing with Argon2id. Hashing is deliberately slow and takes 19 MiB, so it
//! runs on the blocking thread pool (not on the async workers), a few at a time: each
//! hash needs one of [`Passwords`]' slots. A burst of log-ins waits a moment for one, and
//! past `PASSWORD_HASHING_WAIT` is turned away (503 with `Retry-After`) instead of
//! queueing without bound behind a flood.

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

use thiserror::Error;
use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Debug, Error)]
pub enum HashingError {
    /// Every slot stayed taken for the whole wait: the process is saturated with hashing.
    #[error("every password-hashing slot is busy")]
    Busy,
    #[error("password hashing failed")]
    Failed(#[source] anyhow::Error),
}

/// The process's password hashing, a bounded number at a time.
pub struct Passwords {
    slots: Semaphore,
    /// How long a password waits for a slot before it is turned away.
    wait: Duration,
}

impl Passwords {
    /// `slots` hashes at once (`None`: two per core, which keeps every core busy), each
    /// waiting at most `wait` for its slot.
    pub fn new(slots: Option<usize>, wait: Duration) -> Self {
        let slots = slots.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            cores * 2
        });
        Self {
            slots: Semaphore::new(slots.max(1)),
            wait,
        }
    }

    /// One slot, held until dropped; [`HashingError::Busy`] when none frees up in time.
    pub async fn slot(&self) -> Result<SemaphorePermit<'_>, HashingError> {
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => Ok(slot),
            // The semaphore is never closed.
            Ok(Err(closed)) => Err(HashingError::Failed(closed.into())),
            Err(_) => Err(HashingError::Busy),
        }
    }

    /// Hashes `password` with a fresh random salt (PHC string format).
    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        let _slot = self.slot().await?;
        blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
        })
        .await
    }

    /// Checks `password` against `stored`. With no stored hash (unknown email) it checks
    /// against a fixed dummy so that the answer takes as long either way.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        let _slot = self.slot().await?;
        blocking(move || {
            let known = stored.is_some();
            let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| anyhow::anyhow!("stored hash is malformed: {e}"))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await
    }
}

/// Runs `work` on the blocking thread pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, HashingError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HashingError::Failed(e.into()))?
        .map_err(HashingError::Failed)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .expect("hashing a constant cannot fail")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let passwords = Passwords::new(None, Duration::from_secs(10));
        let stored = passwords.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(passwords
            .verify("correct horse".into(), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse".into(), Some(stored))
            .await
            .unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_password_that_finds_no_slot_in_time_is_turned_away() {
        let passwords = Passwords::new(Some(1), Duration::from_millis(50));
        let held = passwords.slot().await.unwrap();
        assert!(matches!(
            passwords.hash("correct horse".into()).await,
            Err(HashingError::Busy)
        ));
        drop(held);
        assert!(passwords.hash("correct horse".into()).await.is_ok());
    }
}
