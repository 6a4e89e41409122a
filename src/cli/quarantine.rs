//! `board projections quarantine list | retry`: the events the read models could not apply
//! (see `projections::fold`), and applying them again after a fix.

use std::process::ExitCode;

use chrono::SecondsFormat;
use clap::Subcommand;

use projections::quarantine::{self, Entry};

use crate::app::App;
use crate::quarantine::{self as retrying, AggregateRef};

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List the quarantined events: those that could not be applied, with the reason, and
    /// the later events of their aggregates, waiting behind them.
    List {
        /// Print JSON instead of a table, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Apply the quarantined events again, read afresh from the event store (so a fixed
    /// event or a new upcaster counts), one aggregate at a time; what still fails stays in
    /// quarantine. Exits 0 only when nothing retried is left in quarantine.
    Retry {
        /// Only this aggregate, as TYPE:ID (e.g. post:0190a5e4-…); all by default.
        aggregate: Option<AggregateRef>,
    },
}

pub async fn run(command: QuarantineCommand, state: App) -> anyhow::Result<ExitCode> {
    match command {
        QuarantineCommand::List { json } => {
            let entries = quarantine::list(&state.read_pool, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else if entries.is_empty() {
                println!("no quarantined events");
            } else {
                print_entries(&entries);
            }
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Retry { aggregate } => {
            let retried =
                retrying::retry(&state.pool, &state.read_pool, aggregate.as_ref()).await?;
            if retried.is_empty() {
                match aggregate {
                    Some(aggregate) => println!("{aggregate} has no quarantined events"),
                    None => println!("no quarantined events"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut left = Vec::new();
            for outcome in &retried {
                let still = match outcome.left.len() {
                    0 => "none left in quarantine".to_string(),
                    n => format!("{n} still in quarantine"),
                };
                println!(
                    "{}: {} applied, {still}",
                    outcome.aggregate, outcome.applied
                );
                left.extend(outcome.left.iter().cloned());
            }
            if left.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            println!("\nstill in quarantine:");
            print_entries(&left);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_entries(entries: &[Entry]) {
    println!(
        "{:<46} {:>8}  {:<20} {:<24}  REASON",
        "AGGREGATE", "SEQUENCE", "EVENT TYPE", "QUARANTINED AT"
    );
    for entry in entries {
        println!(
            "{:<46} {:>8}  {:<20} {:<24}  {}",
            format!("{}:{}", entry.aggregate_type, entry.aggregate_id),
            entry.sequence,
            format!("{} {}", entry.event_type, entry.event_version),
            entry
                .quarantined_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            entry.reason,
        );
    }
}
