//! `board projections status | rebuild | verify | quarantine`: for operators.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

use super::progress;
use super::quarantine::{self, QuarantineCommand};
use crate::app::App;
use crate::config::parse_duration;
use crate::rebuild::{self, RebuildOutcome};
use crate::status::{self, Status};
use crate::store::reader;

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Where the relay and each projector partition are, and how far behind the event
    /// store's head, in events and in seconds.
    Status {
        /// Print JSON instead of a table, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild read models from the event store into fresh tables and swap them in, while
    /// the query API keeps answering. Ctrl-C before the swap leaves the live read models
    /// untouched; running it again starts clean.
    Rebuild {
        /// The projection to rebuild.
        #[arg(value_enum, required_unless_present = "all")]
        name: Option<Projection>,
        /// Rebuild every projection.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// Compare the live read models with ones rebuilt from the event store and print the
    /// differences, quarantined events among them. Exits 0 only when they are equal and
    /// nothing is in quarantine.
    Verify {
        /// How long to wait for the live read models to catch up before reporting.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// The events the read models could not apply, held in quarantine with those of their
    /// aggregates that came after: list them, or retry them after a fix.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Projection {
    /// Accounts, categories, posts and comments: everything the query API reads.
    ReadModels,
}

pub async fn run(command: ProjectionsCommand, state: App) -> anyhow::Result<ExitCode> {
    match command {
        ProjectionsCommand::Status { json } => {
            let mut status = status::collect(
                &state.pool,
                &state.read_pool,
                &state.broker,
                &state.config.projector_group,
            )
            .await?;
            // Asked by a person now and then: worth an exact count (see `count_events`).
            status.head.events = Some(status::count_events(&state.pool).await?);
            let (relays, projectors) = status::processes(
                &state.pool,
                &state.read_pool,
                &state.config.kafka_topic,
                &state.config.projector_group,
            )
            .await?;
            status.relay_processes = Some(relays);
            status.projector_members = Some(projectors);
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Rebuild { .. } => {
            let total = reader::count(&state.pool, &reader::Filter::default()).await?;
            let bar = progress::bar(total as u64, "rebuilding");
            let outcome = rebuild::rebuild(
                &state.pool,
                state.config.read_database_url.expose(),
                total as u64,
                &|n| bar.inc(n),
                progress::cancel_on_ctrl_c(),
            )
            .await?;
            bar.finish_and_clear();
            match outcome {
                RebuildOutcome::Swapped { events, elapsed } => {
                    let rate = events as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
                    println!(
                        "rebuilt read-models from {events} events in {:.1}s ({rate:.0} events/s); now live",
                        elapsed.as_secs_f64()
                    );
                    // The rebuilt quarantine is live too: say so if it holds anything.
                    match projections::quarantine::count(&state.read_pool).await? {
                        0 => {}
                        n => {
                            println!("{n} events in quarantine (board projections quarantine list)")
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                RebuildOutcome::Interrupted => {
                    eprintln!("rebuild interrupted; the live read models are untouched");
                    Ok(ExitCode::from(130))
                }
            }
        }
        ProjectionsCommand::Verify { wait } => {
            let total = reader::count(&state.pool, &reader::Filter::default()).await?;
            let bar = progress::bar(total as u64, "verifying");
            let differences = rebuild::verify(
                &state.pool,
                state.config.read_database_url.expose(),
                wait,
                &|n| bar.inc(n),
            )
            .await?;
            bar.finish_and_clear();
            if differences.is_empty() {
                println!("read-models: equal to a rebuild from {total} events");
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "read-models: {} differences (- live, + rebuilt):",
                    differences.len()
                );
                for line in &differences {
                    println!("  {line}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        ProjectionsCommand::Quarantine { command } => quarantine::run(command, state).await,
    }
}

fn print_status(status: &Status) {
    println!(
        "event store: {} events, head at position {}",
        status.head.events.map_or("-".into(), |n| n.to_string()),
        status
            .head
            .global_position
            .map_or("-".into(), |p| p.to_string())
    );
    println!(
        "\n{:<32} {:>10} {:>12} {:>10}",
        "RELAY", "POSITION", "LAG EVENTS", "LAG SECS"
    );
    for relay in &status.relays {
        println!(
            "{:<32} {:>10} {:>12} {:>10.1}",
            relay.name, relay.global_position, relay.lag_events, relay.lag_seconds
        );
    }
    match status.relay_processes.as_deref().unwrap_or_default() {
        [] => println!("relay processes: none connected"),
        processes => {
            let listed: Vec<String> = processes
                .iter()
                .map(|r| {
                    let role = if r.active { "active" } else { "waiting" };
                    format!("{} ({role})", r.process)
                })
                .collect();
            println!("relay processes: {}", listed.join(", "));
        }
    }
    println!(
        "\n{:<14} {:>9} {:>11} {:>11} {:>12} {:>10}  {:<11}  HOLDER",
        "PROJECTOR", "PARTITION", "NEXT OFFSET", "END OFFSET", "LAG EVENTS", "LAG SECS", "STATE"
    );
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for p in &status.projectors {
        println!(
            "{:<14} {:>9} {:>11} {:>11} {:>12} {:>10}  {:<11}  {}",
            p.projector,
            p.partition,
            p.next_offset,
            or_dash(p.end_offset.map(|v| v.to_string())),
            or_dash(p.lag_events.map(|v| v.to_string())),
            or_dash(p.lag_seconds.map(|v| format!("{v:.1}"))),
            p.state.as_str(),
            p.holder.as_deref().unwrap_or("-"),
        );
    }
    match status.projector_members.as_deref().unwrap_or_default() {
        [] => println!("\nprojector processes: none in the group"),
        members => println!("\nprojector processes: {}", members.join(", ")),
    }
    match status.quarantined_events {
        0 => println!("\nquarantined events: 0"),
        n => println!("\nquarantined events: {n} (board projections quarantine list)"),
    }
}
