//! The `board` command line. `board --help` lists the commands; each module here is one
//! group of them: [`serve`], [`projections`] (status, rebuild, verify, and [`quarantine`]),
//! [`events`] (export, replay, show), [`jobs`] (status).

mod events;
mod jobs;
mod progress;
mod projections;
mod quarantine;
mod serve;

pub use serve::shutdown_signal;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{migrate_event_store, migrate_read_models, App};
use crate::config::Config;
use crate::store::Metadata;

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
    /// Operate the read models: status, rebuild, verify, quarantine.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
    /// Read event history: export, replay into a topic, show one aggregate over time.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// The periodic jobs run once across the API replicas (the purge): status.
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The HTTP API (commands and queries), and the periodic jobs: the purge of stored
    /// helpers runs in the one API process that holds its lease.
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
    /// Print the email address of an open account, which the history never shows (it is
    /// sealed there); a closed account has none any more (exit code 1).
    Email {
        /// The account's id (as the read models and the history name it).
        account_id: uuid::Uuid,
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
        Command::Projections { command } => projections::run(command, App::assemble(config)?).await,
        Command::Events { command } => events::run(command, App::assemble(config)?).await,
        Command::Jobs { command } => jobs::run(command, App::assemble(config)?).await,
        Command::Migrate => {
            let state = App::assemble(config)?;
            migrate_event_store(&state.pool).await?;
            migrate_read_models(&state.read_pool).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts {
            command: AccountsCommand::Promote { email },
        } => {
            let state = App::assemble(config)?;
            let metadata = Metadata {
                request_id: uuid::Uuid::now_v7().to_string(),
                correlation_id: "cli:accounts-promote".into(),
                account_id: None,
            };
            let account_id = state.accounts.promote(&email, &metadata).await?;
            println!("{email} ({account_id}) is now an admin");
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts {
            command: AccountsCommand::Email { account_id },
        } => {
            let state = App::assemble(config)?;
            match state.accounts.email_of(account_id).await? {
                Some(email) => {
                    println!("{email}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("account {account_id} is closed: its address was erased");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
