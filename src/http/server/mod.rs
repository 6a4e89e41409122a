//! Serving the API on a socket, with the bounds a public server needs against slow, idle
//! and too many clients (each a flag, see [`crate::config::Config`]):
//!
//! - a connection must send its request headers within `HEADER_READ_TIMEOUT`, and a
//!   kept-alive one is closed once idle for `IDLE_TIMEOUT` ([`connection`]);
//! - a request body must arrive within `BODY_READ_TIMEOUT` (408, in
//!   [`super::body::JsonBody`], where bodies are read);
//! - at most `MAX_CONNECTIONS` are served at once; past it, a new connection gets a 503
//!   with `Retry-After` at once rather than waiting in the kernel's backlog ([`busy`]);
//! - at most `MAX_CONNECTIONS_PER_ADDRESS` of them come from one client address, so one
//!   client cannot take every place; past it, 429 (0 turns this off, for a server that
//!   only a proxy connects to, where every connection has the proxy's address);
//! - on shutdown, live streams end, requests in flight get `SHUTDOWN_TIMEOUT` to finish;
//!   then whatever is still open is closed, so the process exits.
//!
//! `/metrics` on an address of its own (`METRICS_ADDR`) is served by the same loop, with
//! the same bounds but room for a few scrapers only ([`serve_metrics`]).
//!
//! HTTP/1.1 only, as `axum::serve` served it with axum's default features.

mod busy;
mod connection;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::app::App;
use crate::config::Config;
use crate::http::client_address::{limit_key, TrustedProxies};
use crate::limits::ConcurrencyLimiter;
use busy::TurnAway;
pub use connection::Hangup;
use connection::Timeouts;

/// How often, at most, the log says that connections are being turned away.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Connections the address of `/metrics` serves at once: room for a few scrapers, and no
/// more sockets than that for anyone who reaches it.
const METRICS_CONNECTIONS: usize = 16;

/// Serves the API (`http::app`) on `listener` until `shutdown` resolves, then drains the
/// connections as `SHUTDOWN_TIMEOUT` allows. The limits come from the application's
/// configuration.
pub async fn serve(
    listener: TcpListener,
    state: App,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = Limits::of(&state.config, state.config.max_connections);
    let live = state.live.clone();
    // Live streams never end by themselves: end them once accepting stops, so that their
    // clients reconnect to another replica (with `Last-Event-ID`) instead of waiting for
    // the deadline.
    let end_streams = move || live.close();
    serve_router(listener, super::app(state), limits, shutdown, end_streams).await
}

/// Serves `/metrics` alone (`http::metrics_app`) on `listener`, as [`serve`] serves the
/// API, for at most [`METRICS_CONNECTIONS`] at once.
pub async fn serve_metrics(
    listener: TcpListener,
    state: App,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = Limits::of(&state.config, METRICS_CONNECTIONS);
    // Its log lines say which listener they are about.
    serve_router(listener, super::metrics_app(state), limits, shutdown, || {})
        .instrument(tracing::info_span!("metrics_listener"))
        .await
}

/// The bounds of one listener.
struct Limits {
    timeouts: Timeouts,
    max_connections: usize,
    /// 0: no limit per client address.
    max_connections_per_address: usize,
    /// Peers whose connections carry many clients: not limited per address.
    trusted_proxies: TrustedProxies,
    shutdown: Duration,
}

impl Limits {
    fn of(config: &Config, max_connections: usize) -> Self {
        Self {
            timeouts: Timeouts {
                header_read: config.header_read_timeout,
                idle: config.idle_timeout,
            },
            max_connections,
            max_connections_per_address: config.max_connections_per_address,
            trusted_proxies: config.trusted_proxies.clone(),
            shutdown: config.shutdown_timeout,
        }
    }
}

/// The accept loop behind [`serve`] and [`serve_metrics`]; `before_drain` runs once no
/// new connection is accepted, before the ones open are given time to finish.
async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    before_drain: impl FnOnce(),
) -> io::Result<()> {
    let Limits {
        timeouts,
        max_connections,
        max_connections_per_address,
        trusted_proxies,
        shutdown: shutdown_timeout,
    } = limits;
    let places = Arc::new(Semaphore::new(max_connections));
    let per_address = (max_connections_per_address > 0)
        .then(|| Arc::new(ConcurrencyLimiter::new(max_connections_per_address)));
    let busy = TurnAway::new(busy::server_full(), max_connections).await;
    let address_busy = TurnAway::new(busy::address_full(), max_connections).await;
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
                    limit = max_connections,
                    turned_away,
                    "connection limit reached: new connections get 503 until some close"
                );
                warned = Some(Instant::now());
                turned_away = 0;
            }
            continue;
        };
        let address_place = match &per_address {
            Some(_) if trusted_proxies.contains(peer.ip()) => None,
            Some(limiter) => match limiter.try_acquire(&limit_key(peer.ip())) {
                Some(slot) => Some(slot),
                None => {
                    address_busy.turn_away(stream);
                    continue;
                }
            },
            None => None,
        };
        connections.spawn(connection::serve(
            stream,
            peer,
            router.clone(),
            timeouts,
            graceful.watcher(),
            (place, address_place),
        ));
    }
    // New connections are refused from here on.
    drop(listener);
    before_drain();
    tracing::info!(
        open = connections.len(),
        "no longer accepting; letting requests in flight finish"
    );
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            after = ?shutdown_timeout,
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
