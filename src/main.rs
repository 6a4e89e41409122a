use clap::Parser;

use board::cli::{self, Cli};
use board::telemetry;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "board failed");
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
