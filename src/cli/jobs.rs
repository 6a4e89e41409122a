//! `board jobs status`: who holds each periodic job's lease, and how its latest round went.

use std::process::ExitCode;

use chrono::SecondsFormat;
use clap::Subcommand;

use crate::app::App;
use crate::jobs::{self, JobStatus};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The process holding each job's lease, and the job's latest round: when, by whom,
    /// and the rows it removed of each kind.
    Status {
        /// Print JSON instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: JobsCommand, state: App) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::Status { json } => {
            let mut statuses = Vec::new();
            for job in jobs::JOBS {
                statuses.push(jobs::status(&state.pool, job).await?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&statuses)?);
            } else {
                statuses.iter().for_each(print_status);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_status(status: &JobStatus) {
    match (&status.holder, status.lease_expires_in_seconds) {
        (Some(holder), Some(expires)) => println!(
            "{}: lease held by {holder} (expires in {expires:.1}s unless renewed)",
            status.job
        ),
        _ => println!("{}: lease free (no API process runs it)", status.job),
    }
    let Some(run) = &status.last_run else {
        println!("  last round: none yet");
        return;
    };
    let at =
        |time: chrono::DateTime<chrono::Utc>| time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let ended = match run.finished_at {
        Some(finished) => format!("finished {}", at(finished)),
        None => "did not finish (or still runs)".into(),
    };
    let removed: Vec<String> = run
        .removed
        .iter()
        .map(|(kind, count)| format!("{kind}={count}"))
        .collect();
    println!(
        "  last round: started {} by {}, {ended}; removed {}",
        at(run.started_at),
        run.holder,
        removed.join(" ")
    );
}
