//! The `board` command line: `serve`, `migrate`, `accounts promote`.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::accounts::AccountService;
use crate::auth::tokens::TokenIssuer;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::mail::Mailer;
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
    /// Migrate the databases and serve the HTTP API until SIGINT or SIGTERM.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
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
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let pool = store::connect_lazy(config.database_url.expose(), 2)?;
            migrate(&pool).await?;
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

/// Builds the application state from configuration. Connections open lazily.
pub fn build_state(config: Arc<Config>) -> anyhow::Result<AppState> {
    let pool = store::connect_lazy(config.database_url.expose(), 16)?;
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
        buses,
        accounts,
        tokens,
    })
}

/// Migrates, then serves the API until a shutdown signal; in-flight requests finish.
pub async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let state = build_state(config.clone())?;
    migrate(&state.pool).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(address = %config.listen, "listening");
    axum::serve(listener, http::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
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
