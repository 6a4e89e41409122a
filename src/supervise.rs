//! How the long-running parts (the relay, the projector) stay up: each runs its work
//! until shutdown, and when the work fails (a broker or database away, a lost lock) it
//! logs why, pauses, and starts it again. Coming back by itself is part of each part's
//! contract; this is the one loop that does it, so they cannot drift apart.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// A part that [`until_shutdown`] keeps running.
pub trait Supervised {
    /// Its name in the logs.
    const PART: &'static str;
    /// How long to wait after a failure before starting again.
    const PAUSE: Duration;

    /// Works until `shutdown` turns true (checked between batches) or an error. Shutdown
    /// also cancels it wherever it waits, so it must leave nothing half done at an await.
    fn work(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Runs `part` until `shutdown` turns true, starting it again after each failure.
pub async fn until_shutdown<P: Supervised>(part: &mut P, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let mut watching = shutdown.clone();
        let result = tokio::select! {
            result = part.work(&mut watching) => result,
            _ = shutdown.changed() => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(error = %format!("{error:#}"), "{} interrupted; retrying", P::PART);
            tokio::select! {
                () = tokio::time::sleep(P::PAUSE) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Names this process where it holds a lease (`host:pid:nonce`), so an operator can tell
/// which one it is. The pid alone could come back after a restart (pid 1 in a container),
/// hence the nonce: each call names a new holder.
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "board".into());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &nonce[..6])
}
