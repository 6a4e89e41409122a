//! Does the Kafka leg stay as fast with use? The same rounds on one broker, compared.
//!
//!     make bench-steady   (five rounds, then `make test` on the same broker, then one more)
//!     cargo run --release --example steadiness -- ROUNDS | report | reset
//!
//! A round measures, each beside nothing but itself on the same broker:
//! - a burst of 2,000 commands (16 clients), every 20th followed to the read model;
//! - a backlog of 2,000 events read by a plain consumer and by a new projector;
//! - the broker's CPU, a metadata request's latency, and `/health/ready` (200 with the
//!   broker `up`, asked every 0.5 s) while Board runs idle.
//!
//! Each round is appended to `target/steadiness.json`; `report` prints the first and the
//! last round of each figure and whether the last is within 20 % of the first.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use support::kafka_leg::{at_rest, burst, plain_consume, projector_drain, relay_backlog};
use support::{call, percentiles, Stack};

const COMMANDS: usize = 2_000;
const HISTORY: &str = "target/steadiness.json";
/// How far the last round may fall behind the first.
const TOLERANCE: f64 = 0.20;

/// A figure of a round: its name, how to read it, and whether more is better.
const FIGURES: [(&str, &str, bool); 6] = [
    ("plainConsumePerSecond", "plain consume, events/s", true),
    ("projectorPerSecond", "projector drain, events/s", true),
    ("burstP50Ms", "burst to read model p50, ms", false),
    ("burstP99Ms", "burst to read model p99, ms", false),
    (
        "brokerCpuIdle",
        "broker CPU at rest, share of a core",
        false,
    ),
    ("metadataP99Ms", "metadata request p99, ms", false),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let what = std::env::args().nth(1).unwrap_or_else(|| "1".into());
    match what.as_str() {
        "report" => report(),
        "reset" => {
            let _ = std::fs::remove_file(HISTORY);
            println!("cleared {HISTORY}");
            Ok(())
        }
        rounds => {
            let rounds: usize = rounds.parse()?;
            for n in 1..=rounds {
                let round = round().await?;
                println!("round {n}/{rounds}: {round}");
                append(round)?;
            }
            Ok(())
        }
    }
}

async fn round() -> anyhow::Result<Value> {
    // The burst, on a whole Board.
    let stack = Arc::new(Stack::start(true, true).await?);
    let (_, _, visible) = burst(&stack, COMMANDS).await;
    let (burst_p50, burst_p99, _) = percentiles(visible);
    Arc::try_unwrap(stack)
        .ok()
        .expect("the burst is over")
        .stop()
        .await;

    // A backlog, read by a plain consumer and by a new projector.
    let backlog = Stack::start(false, false).await?;
    for i in 0..COMMANDS {
        backlog.create_post(i).await;
    }
    let (_, total) = relay_backlog(&backlog).await?;
    let settings = backlog.state.config.kafka();
    let plain = plain_consume(&settings, total).await?;
    let projector = projector_drain(&backlog, total).await?;
    backlog.stop().await;

    // Board at rest.
    let idle = Stack::start(true, true).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Readiness, asked as a load balancer would, every half second meanwhile.
    let readiness = async {
        let mut answers = Vec::new();
        for _ in 0..20 {
            let (status, body) = call(&idle.app, "GET", "/health/ready", None, Value::Null).await;
            answers.push((
                status,
                body["checks"]["broker"].as_str().map(str::to_string),
            ));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        answers
    };
    let (rest, readiness) = tokio::join!(
        at_rest(&settings.brokers, Duration::from_secs(10)),
        readiness
    );
    idle.stop().await;
    let ready_ok = readiness
        .iter()
        .filter(|(status, broker)| *status == 200 && broker.as_deref() == Some("up"))
        .count();

    Ok(json!({
        "at": chrono::Utc::now().to_rfc3339(),
        "plainConsumePerSecond": plain.rate,
        "projectorPerSecond": projector.rate,
        "burstP50Ms": burst_p50,
        "burstP99Ms": burst_p99,
        "brokerCpuIdle": rest.cpu,
        "metadataP99Ms": rest.metadata.1,
        "brokerStoreBytes": broker_store_bytes(),
        "readinessUp": format!("{ready_ok} of {}", readiness.len()),
    }))
}

/// The size of the local broker's store, when it is the one `scripts/services.sh` runs.
fn broker_store_bytes() -> Option<u64> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/tansu");
    let size = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len()).ok();
    Some(size("tansu.db")? + size("tansu.db-wal").unwrap_or(0))
}

fn history() -> anyhow::Result<Vec<Value>> {
    match std::fs::read_to_string(HISTORY) {
        Ok(text) => Ok(serde_json::from_str(&text)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

fn append(round: Value) -> anyhow::Result<()> {
    let mut rounds = history()?;
    rounds.push(round);
    std::fs::create_dir_all("target")?;
    std::fs::write(HISTORY, serde_json::to_string_pretty(&rounds)?)?;
    Ok(())
}

fn report() -> anyhow::Result<()> {
    let rounds = history()?;
    let (Some(first), Some(last)) = (rounds.first(), rounds.last()) else {
        anyhow::bail!("no rounds in {HISTORY}: run some first");
    };
    println!(
        "steadiness: first and last of {} rounds on one broker ({HISTORY})\n",
        rounds.len()
    );
    println!(
        "{:<38} {:>12} {:>12} {:>8}  within {:.0}%",
        "figure",
        "first",
        "last",
        "change",
        TOLERANCE * 100.0
    );
    for (key, label, more_is_better) in FIGURES {
        let (Some(a), Some(b)) = (first[key].as_f64(), last[key].as_f64()) else {
            println!("{label:<38} {:>12} {:>12}", "-", "-");
            continue;
        };
        let change = if a == 0.0 { 0.0 } else { (b - a) / a };
        let worse = if more_is_better { -change } else { change };
        // A CPU share under 5 % of a core is at rest whatever its change.
        let steady = worse <= TOLERANCE || (key == "brokerCpuIdle" && b < 0.05);
        println!(
            "{label:<38} {a:>12.3} {b:>12.3} {:>+7.0}%  {}",
            change * 100.0,
            if steady { "yes" } else { "NO" }
        );
    }
    println!(
        "{:<38} {:>12} {:>12}",
        "readiness 200 with the broker up",
        first["readinessUp"].as_str().unwrap_or("-"),
        last["readinessUp"].as_str().unwrap_or("-")
    );
    let store = |r: &Value| r["brokerStoreBytes"].as_u64().map(|b| b / 1_000_000);
    if let (Some(a), Some(b)) = (store(first), store(last)) {
        println!("\nbroker store: {a} MB at the first round, {b} MB at the last");
    }
    Ok(())
}
