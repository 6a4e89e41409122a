//! `board events export | replay | show`: event history for analysts and support.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::progress;
use crate::app::App;
use crate::history::{self, AsOf, Format};
use crate::store::reader::{self, Filter};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Stream history as JSON Lines or CSV, in global order, in constant memory.
    /// Progress goes to stderr when it is a terminal.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Republish history into a Kafka topic (created if missing), in global order, with
    /// the relay's envelope, for analytics consumers that read from the start.
    Replay {
        /// The topic to publish into. Never the live events topic.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One aggregate's events and its state, now or as of a moment or a version.
    Show {
        /// account, category, post or comment.
        aggregate_type: String,
        aggregate_id: String,
        /// The state as it was at this time (RFC 3339, e.g. 2026-01-15T10:36:39Z).
        #[arg(long, conflicts_with = "version")]
        as_of: Option<DateTime<Utc>>,
        /// The state after this many events.
        #[arg(long)]
        version: Option<i64>,
    },
}

/// Which events; every option narrows.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// account, category, post or comment.
    #[arg(long)]
    aggregate_type: Option<String>,
    #[arg(long)]
    aggregate_id: Option<String>,
    /// One or more event types, comma-separated (e.g. PostCreated,PostDeleted).
    #[arg(long, value_delimiter = ',')]
    event_type: Option<Vec<String>>,
    /// Recorded at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Recorded before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Global positions from this one on.
    #[arg(long)]
    from_position: Option<i64>,
    /// Global positions up to and including this one.
    #[arg(long)]
    to_position: Option<i64>,
}

impl From<FilterArgs> for Filter {
    fn from(args: FilterArgs) -> Self {
        Self {
            aggregate_type: args.aggregate_type,
            aggregate_id: args.aggregate_id,
            event_types: args.event_type,
            since: args.since,
            until: args.until,
            from_position: args.from_position,
            to_position: args.to_position,
        }
    }
}

pub async fn run(command: EventsCommand, state: App) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Export {
            filter,
            format,
            output,
        } => {
            let filter = Filter::from(filter);
            let total = reader::count(&state.pool, &filter).await?;
            let bar = progress::bar(total as u64, "exporting");
            let mut out: Box<dyn Write + Send> = match &output {
                Some(path) => Box::new(BufWriter::new(File::create(path)?)),
                None => Box::new(BufWriter::new(std::io::stdout())),
            };
            let cancel = progress::cancel_on_ctrl_c();
            let (count, interrupted) = history::export(
                &state.pool,
                &filter,
                format,
                &mut out,
                &|n| bar.inc(n),
                &cancel,
            )
            .await?;
            bar.finish_and_clear();
            finish("exported", count, interrupted)
        }
        EventsCommand::Replay { topic, filter } => {
            anyhow::ensure!(
                topic != state.config.kafka_topic,
                "refusing to replay into the live events topic `{topic}`"
            );
            let filter = Filter::from(filter);
            let total = reader::count(&state.pool, &filter).await?;
            let bar = progress::bar(total as u64, "replaying");
            let cancel = progress::cancel_on_ctrl_c();
            let (count, interrupted) = history::replay_to_topic(
                &state.pool,
                &filter,
                &state.config.kafka(),
                &topic,
                &|n| bar.inc(n),
                &cancel,
            )
            .await?;
            bar.finish_and_clear();
            finish(&format!("replayed into {topic}:"), count, interrupted)
        }
        EventsCommand::Show {
            aggregate_type,
            aggregate_id,
            as_of,
            version,
        } => {
            let as_of = match (as_of, version) {
                (Some(time), _) => AsOf::Time(time),
                (None, Some(version)) => AsOf::Version(version),
                (None, None) => AsOf::Now,
            };
            let shown = history::show(&state.pool, &aggregate_type, &aggregate_id, as_of).await?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reports on stderr (stdout may be the data) and picks the exit code.
fn finish(what: &str, count: u64, interrupted: bool) -> anyhow::Result<ExitCode> {
    if interrupted {
        eprintln!("interrupted after {count} events");
        Ok(ExitCode::from(130))
    } else {
        eprintln!("{what} {count} events");
        Ok(ExitCode::SUCCESS)
    }
}
