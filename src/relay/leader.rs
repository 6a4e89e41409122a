//! One active relay: a session-level PostgreSQL advisory lock held on a dedicated
//! connection. If the process dies, its connection closes and the lock is released, so a
//! waiting relay takes over.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(1);

/// The held lock. Dropping it closes the connection, which releases the lock.
pub struct Leadership {
    conn: PgConnection,
}

impl Leadership {
    /// Fails when the lock's connection is gone (and with it, the lock), or hangs.
    pub async fn check(&mut self) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(5), self.conn.ping())
            .await
            .map_err(|_| anyhow::anyhow!("the leadership connection does not answer"))??;
        Ok(())
    }
}

/// Waits until this process holds the lock named `name`; `None` on shutdown.
pub async fn acquire(
    pool: &PgPool,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Leadership>, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
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
