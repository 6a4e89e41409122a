//! `board serve`: the API, the relay and the projector, in one process or several.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Component;
use crate::app::{migrate_event_store, migrate_read_models, App};
use crate::config::Config;
use crate::databases::is_unavailable;
use crate::http;

/// Migrates, then runs the chosen components until a shutdown signal. In-flight requests
/// finish (within `SHUTDOWN_TIMEOUT`); the relay, the projector and the purge stop between
/// batches.
pub async fn serve(config: Arc<Config>, components: &[Component]) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let state = App::assemble(config.clone())?;
    // Only the API issues and checks tokens.
    if config.jwt_secret.is_none() && components.contains(&Component::Api) {
        tracing::warn!(
            "JWT_SECRET is unset: tokens are signed with a random key and die with this process"
        );
    }
    migrate_or_defer(&state).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    if components.contains(&Component::Relay) {
        tasks.spawn(state.relay().run(stopped.clone()));
    }
    if components.contains(&Component::Projector) {
        tasks.spawn(state.projector()?.run(stopped.clone()));
    }
    if components.contains(&Component::Api) {
        // Every API replica runs the purge; the one holding its lease does the rounds.
        tasks.spawn(state.purge().run(stopped.clone()));
        serve_http(&config, state, shutdown).await?;
    } else {
        shutdown.await;
    }
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// The API on BOARD_LISTEN and, when it has an address of its own, `/metrics` on that one
/// (`Config::metrics_address`), until `shutdown`; both stop together. Both addresses are
/// bound before either serves, so a taken port stops the start.
async fn serve_http(
    config: &Config,
    state: App,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let api = bind(config.listen).await?;
    // The addresses bound, which say which port `:0` was given.
    tracing::info!(address = %api.local_addr()?, "listening");
    let metrics = match config.metrics_address() {
        Some(address) => {
            let listener = bind(address).await?;
            tracing::info!(address = %listener.local_addr()?, "serving /metrics apart");
            Some(listener)
        }
        None => None,
    };
    let (stop_metrics, metrics_stopped) = watch::channel(false);
    let metrics = metrics.map(|listener| {
        let mut stopped = metrics_stopped;
        tokio::spawn(http::server::serve_metrics(
            listener,
            state.clone(),
            async move {
                // Told to stop, or the API's server is gone (its sender dropped).
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ))
    });
    let served = http::server::serve(api, state, async move {
        shutdown.await;
        let _ = stop_metrics.send(true);
    })
    .await;
    if let Some(metrics) = metrics {
        metrics.await.context("the /metrics server")??;
    }
    Ok(served?)
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))
}

/// Applies both databases' migrations. A database that is down at start does not keep
/// the rest from running: its migrations are retried in the background until it is back.
async fn migrate_or_defer(state: &App) -> anyhow::Result<()> {
    if let Err(error) = migrate_event_store(&state.pool).await {
        defer_unless_unavailable(error, "event store", {
            let pool = state.pool.clone();
            move || {
                let pool = pool.clone();
                async move { migrate_event_store(&pool).await }
            }
        })?;
    }
    if let Err(error) = migrate_read_models(&state.read_pool).await {
        defer_unless_unavailable(error, "read models", {
            let pool = state.read_pool.clone();
            move || {
                let pool = pool.clone();
                async move { migrate_read_models(&pool).await }
            }
        })?;
    }
    Ok(())
}

fn defer_unless_unavailable<F, Fut>(
    error: anyhow::Error,
    what: &'static str,
    retry: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let unavailable = error.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(is_unavailable)
            || cause.downcast_ref::<sqlx::migrate::MigrateError>().is_some_and(|e| {
                matches!(e, sqlx::migrate::MigrateError::Execute(inner) if is_unavailable(inner))
            })
    });
    if !unavailable {
        return Err(error);
    }
    tracing::warn!(what, error = %format!("{error:#}"), "database unavailable at start; will migrate when it is back");
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if retry().await.is_ok() {
                tracing::info!(what, "migrations applied");
                return;
            }
        }
    });
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives in between (the
/// port is open, the server not yet polled) must not kill the process the default way.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (interrupt, terminate) = handlers;
            let wait = |handler: std::io::Result<tokio::signal::unix::Signal>| async move {
                match handler {
                    Ok(mut handler) => {
                        handler.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}
