//! The `board` command line. `board --help` lists the commands; each module here is one
//! group of them: [`serve`], [`projections`] (status, rebuild, verify), [`events`]
//! (export, replay, show).

mod events;
mod progress;
mod projections;
mod serve;

pub use serve::shutdown_signal;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::time::Duration;

use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlPool, PgPool};

use crate::accounts::AccountService;
use crate::auth::tokens::TokenIssuer;
use crate::board::BoardService;
use crate::config::Config;
use crate::http::AppState;
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
    /// Operate the read models: status, rebuild, verify.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
    /// Read event history: export, replay into a topic, show one aggregate over time.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
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

/// Runs one command. The exit code is 0 on success, 1 when a check fails (such as
/// `projections verify` finding differences), 130 when interrupted.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cli.config
        .validate()
        .map_err(|problem| anyhow::anyhow!("invalid configuration: {problem}"))?;
    let config = Arc::new(cli.config);
    match cli.command {
        Command::Serve { components } => serve::serve(config, &components)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Projections { command } => projections::run(command, build_state(config)?).await,
        Command::Events { command } => events::run(command, build_state(config)?).await,
        Command::Migrate => {
            let state = build_state(config)?;
            migrate(&state.pool).await?;
            migrate_read_models(&state.read_pool).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
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
            Ok(ExitCode::SUCCESS)
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
    ::projections::MIGRATOR
        .run(pool)
        .await
        .context("migrating the read models (MySQL)")
}

/// Builds the application state from configuration. Connections open lazily, so a
/// process starts (and serves what it can) while a database is away.
pub fn build_state(config: Arc<Config>) -> anyhow::Result<AppState> {
    crate::metrics::handle();
    let pool = store::connect_lazy(config.database_url.expose(), 16)?;
    let read_pool = MySqlPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(config.read_database_url.expose())?;
    let buses = Arc::new(CommandBuses::new(pool.clone()));
    let tokens = TokenIssuer::new(
        config.signing_secret(),
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
    let board = Arc::new(BoardService::new(pool.clone(), buses));
    let auth_limiter = Arc::new(crate::http::rate_limit::RateLimiter::new(
        config.auth_rate_per_minute,
    ));
    let broker = Arc::new(crate::kafka::BrokerProbe::new(&config.kafka()));
    Ok(AppState {
        config,
        pool,
        read_pool,
        accounts,
        board,
        tokens,
        auth_limiter,
        broker,
    })
}
