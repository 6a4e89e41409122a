//! One active relay: a session-level PostgreSQL advisory lock held on a dedicated
//! connection. If the process dies, its connection closes and the lock is released, so a
//! waiting relay takes over.
//!
//! The active relay reads, notifies and records its checkpoint on that same connection
//! ([`Leadership::connection`]): a statement that ran on it ran while the lock was held,
//! since the lock lives as long as the session, so no separate check of the lock is
//! needed, and a connection that died fails the very next statement. (It used to ping
//! the lock's connection before each batch and work on the pool, which pings every
//! connection it takes back: seven round trips a batch instead of three.)
//!
//! That connection carries the process's name as its `application_name`
//! ([`APPLICATION_NAME`] and `supervise::process_name`), so the server itself tells who
//! takes part in the election and who holds the lock (`crate::status`): every relay
//! waiting or active is one such session, the active one with the lock granted.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(1);
/// How long a statement on the lock's connection may take before the connection, and
/// with it the lock, counts as lost: a connection that hangs must not keep the relay
/// waiting for ever while another could take over.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the election's sessions are named, before the process's name.
pub const APPLICATION_NAME: &str = "board relay ";

/// The held lock. Dropping it closes the connection, which releases the lock.
pub struct Leadership {
    conn: PgConnection,
}

impl Leadership {
    /// The connection that holds the lock, for the active relay's statements; run them
    /// through [`answered`].
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// `statement`'s outcome, or an error when it fails or takes longer than [`PATIENCE`]:
/// either way the lock's connection, and with it the lock, may be gone.
pub async fn answered<T>(
    statement: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(PATIENCE, statement)
        .await
        .map_err(|_| anyhow::anyhow!("the leadership connection does not answer"))?
        .map_err(Into::into)
}

/// Waits until this process holds the lock named `name`; `None` on shutdown.
pub async fn acquire(
    pool: &PgPool,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Leadership>, sqlx::Error> {
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .application_name(&format!(
            "{APPLICATION_NAME}{}",
            crate::supervise::process_name()
        ));
    let mut conn = PgConnection::connect_with(&options).await?;
    let mut announced = false;
    loop {
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        if held {
            return Ok(Some(Leadership { conn }));
        }
        if !announced {
            tracing::info!(lock = name, "another relay is active; waiting to take over");
            announced = true;
        }
        tokio::select! {
            () = tokio::time::sleep(WAIT) => {}
            _ = shutdown.changed() => return Ok(None),
        }
        if *shutdown.borrow() {
            return Ok(None);
        }
    }
}
