//! The `board` command line: `serve`, `migrate`, `accounts promote`.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::time::Duration;

use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlPool, PgPool};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accounts::AccountService;
use crate::auth::tokens::TokenIssuer;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::mail::Mailer;
use crate::projector::Projector;
use crate::relay::Relay;
use crate::store::{self, CommandBuses, Metadata};

#[derive(Debug, Parser)]
#[command(
    name = "board",
    version,
    about = "Board: an event-sourced community board backend"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the databases and run the API, the relay and the projector (or some of them)
    /// until SIGINT or SIGTERM.
    Serve {
        /// Which parts to run in this process: api, relay, projector (comma-separated).
        /// Run projectors and API replicas as separate processes to scale them apart.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "api,relay,projector"
        )]
        components: Vec<Component>,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The HTTP API (commands and queries).
    Api,
    /// Publishes the event store to Kafka; one is active at a time, others wait.
    Relay,
    /// Keeps the MySQL read models from Kafka; several split the partitions.
    Projector,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Make the account with this email an admin (from its next log-in or token refresh).
    Promote {
        /// The account's email address.
        email: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    cli.config
        .validate()
        .map_err(|problem| anyhow::anyhow!("invalid configuration: {problem}"))?;
    let config = Arc::new(cli.config);
    match cli.command {
        Command::Serve { components } => serve(config, &components).await,
        Command::Migrate => {
            let state = build_state(config)?;
            migrate(&state.pool).await?;
            migrate_read_models(&state.read_pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Accounts {
            command: AccountsCommand::Promote { email },
        } => {
            let state = build_state(config)?;
            let metadata = Metadata {
                request_id: uuid::Uuid::now_v7().to_string(),
                correlation_id: "cli:accounts-promote".into(),
                account_id: None,
            };
            let account_id = state.accounts.promote(&email, &metadata).await?;
            println!("{email} ({account_id}) is now an admin");
            Ok(())
        }
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    store::MIGRATOR
        .run(pool)
        .await
        .context("migrating the event store (PostgreSQL)")
}

pub async fn migrate_read_models(pool: &MySqlPool) -> anyhow::Result<()> {
    projections::MIGRATOR
        .run(pool)
        .await
        .context("migrating the read models (MySQL)")
}

/// Builds the application state from configuration. Connections open lazily, so a
/// process starts (and serves what it can) while a database is away.
pub fn build_state(config: Arc<Config>) -> anyhow::Result<AppState> {
    let pool = store::connect_lazy(config.database_url.expose(), 16)?;
    let read_pool = MySqlPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(config.read_database_url.expose())?;
    let buses = Arc::new(CommandBuses::new(pool.clone()));
    let tokens = TokenIssuer::new(
        config.jwt_secret.expose().as_bytes(),
        config.access_token_ttl,
        config.refresh_token_ttl,
    );
    let mailer = Mailer::from_config(&config)?;
    let accounts = Arc::new(AccountService::new(
        pool.clone(),
        buses.clone(),
        tokens.clone(),
        mailer,
        config.clone(),
    ));
    Ok(AppState {
        config,
        pool,
        read_pool,
        buses,
        accounts,
        tokens,
    })
}

/// Migrates, then runs the chosen components until a shutdown signal. In-flight requests
/// finish; the relay and the projector stop between batches.
pub async fn serve(config: Arc<Config>, components: &[Component]) -> anyhow::Result<()> {
    let state = build_state(config.clone())?;
    migrate_or_defer(&state).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    if components.contains(&Component::Relay) {
        let relay = Relay::new(state.pool.clone(), config.kafka());
        tasks.spawn(relay.run(stopped.clone()));
    }
    if components.contains(&Component::Projector) {
        let projector = Projector::new(
            state.read_pool.clone(),
            config.kafka(),
            config.projector_group.clone(),
        );
        tasks.spawn(projector.run(stopped.clone()));
    }
    if components.contains(&Component::Api) {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        tracing::info!(address = %config.listen, "listening");
        axum::serve(listener, http::app(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
    } else {
        shutdown_signal().await;
    }
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Applies both databases' migrations. A database that is down at start does not keep
/// the rest from running: its migrations are retried in the background until it is back.
async fn migrate_or_defer(state: &AppState) -> anyhow::Result<()> {
    if let Err(error) = migrate(&state.pool).await {
        defer_unless_unavailable(error, "event store", {
            let pool = state.pool.clone();
            move || {
                let pool = pool.clone();
                async move { migrate(&pool).await }
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
    let unavailable = error
        .chain()
        .any(|cause| cause.downcast_ref::<sqlx::Error>().is_some_and(store::is_unavailable)
            || cause.downcast_ref::<sqlx::migrate::MigrateError>().is_some_and(|e| {
                matches!(e, sqlx::migrate::MigrateError::Execute(inner) if store::is_unavailable(inner))
            }));
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
