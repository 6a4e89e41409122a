//! Serving the API on a socket, with the bounds a public server needs against slow, idle
//! and too many clients (each a flag, see [`crate::config::Config`]):
//!
//! - a connection must send its request headers within `HEADER_READ_TIMEOUT`, and a
//!   kept-alive one is closed once idle for `IDLE_TIMEOUT` ([`connection`]);
//! - a request body must arrive within `BODY_READ_TIMEOUT` (408, in
//!   [`super::body::JsonBody`], where bodies are read);
//! - at most `MAX_CONNECTIONS` are served at once; past it, a new connection gets a 503
//!   with `Retry-After` at once rather than waiting in the kernel's backlog ([`busy`]);
//! - on shutdown, live streams end, requests in flight get `SHUTDOWN_TIMEOUT` to finish;
//!   then whatever is still open is closed, so the process exits.
//!
//! HTTP/1.1 only, as `axum::serve` served it with axum's default features.

mod busy;
mod connection;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::app::App;
use busy::TurnAway;
pub use connection::Hangup;
use connection::Timeouts;

/// How often, at most, the log says that connections are being turned away.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves the API (`http::app`) on `listener` until `shutdown` resolves, then drains the
/// connections as `SHUTDOWN_TIMEOUT` allows. The limits come from the application's
/// configuration.
pub async fn serve(
    listener: TcpListener,
    state: App,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = state.config.clone();
    let live = state.live.clone();
    let router = super::app(state);
    let timeouts = Timeouts {
        header_read: config.header_read_timeout,
        idle: config.idle_timeout,
    };
    let places = Arc::new(Semaphore::new(config.max_connections));
    let busy = TurnAway::new(config.max_connections).await;
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    // The log says the limit was reached once in a while, not once per connection.
    let mut turned_away: u64 = 0;
    let mut warned: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            // Forgets finished connections as they end.
            Some(_) = connections.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            busy.turn_away(stream);
            turned_away += 1;
            if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                tracing::warn!(
                    limit = config.max_connections,
                    turned_away,
                    "connection limit reached: new connections get 503 until some close"
                );
                warned = Some(Instant::now());
                turned_away = 0;
            }
            continue;
        };
        connections.spawn(connection::serve(
            stream,
            peer,
            router.clone(),
            timeouts,
            graceful.watcher(),
            place,
        ));
    }
    // New connections are refused from here on.
    drop(listener);
    // Live streams never end by themselves: end them, so that their clients reconnect
    // to another replica (with `Last-Event-ID`) instead of waiting for the deadline.
    live.close();
    tracing::info!(
        open = connections.len(),
        "no longer accepting; letting requests in flight finish"
    );
    if tokio::time::timeout(config.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            after = ?config.shutdown_timeout,
            "shutdown deadline passed: closing the connections still open"
        );
    }
    // Drops every connection still open, which closes its socket.
    connections.shutdown().await;
    Ok(())
}

/// A failed accept: a connection that died in the backlog is nothing; anything else
/// (out of file descriptors, most likely) is logged, and accepting pauses a moment
/// rather than spinning.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
