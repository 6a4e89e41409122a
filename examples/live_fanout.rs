//! Live updates under load, each figure beside a baseline measured in the same run:
//! - command to subscriber delivery, p50 and p99, at a steady 100 commands/s with 1,000
//!   subscribers on one API process, beside command to read model for the same commands;
//! - the same delivery with the Kafka leg at rest (relay and projector stopped): on two
//!   cores, the broker, MySQL and the projector take a large share of the CPU the streams
//!   need, and this row shows what the live path costs alone, beside the floor under any
//!   delivery: the commands' own latency (a message can only follow its stored event);
//! - the server's memory per open stream, beside its memory per idle connection;
//! - the largest number of subscribers the process held with delivery p99 under 100 ms
//!   and nothing missed or dropped, doubling from 1,000, with the Kafka leg at rest.
//!
//! Run by `make bench` after the others, alone by `make bench-live`, or by
//! `cargo build --release --bin board && cargo run --release --example live_fanout -- [N]`
//! for N subscribers instead of 1,000 (after `ulimit -n $(ulimit -Hn)`: each subscriber is
//! a socket here and one in the server).
//!
//! The API process is the release `board` binary, alone in its process so that its memory
//! is its own. The commands, the relay, the projector and every subscriber's socket run
//! in this process, on the same two cores: the figures include that contention.
//! Writes `target/bench-live.json`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use support::kafka_leg::{send_steadily, steady_load_recorded};
use support::live::{idle_connections, ApiServer, Delivery, Fleet};
use support::{percentiles, Stack};

const RATE: u32 = 100;
const SECONDS: u32 = 10;
/// Each step of the search for the largest subscriber count is shorter.
const STEP_SECONDS: u32 = 5;
/// The delivery p99 a subscriber count must keep to count as held.
const HELD_P99_MS: f64 = 100.0;
/// Sockets this process keeps for everything but the subscribers.
const SPARE_FILES: u64 = 2_000;

/// p50 and p99 in milliseconds, or `None` when nothing arrived.
fn p50_p99(delivery: &Delivery) -> Option<(f64, f64)> {
    if delivery.latencies.is_empty() {
        return None;
    }
    let (p50, p99, _) = percentiles(delivery.latencies.clone());
    Some((p50, p99))
}

/// This process's limit on open files (each subscriber is a socket here and one in the
/// server; `make bench-live` raises the soft limit to the hard one first).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// Resident memory the server gained per connection while `count` connections were open.
fn per_connection_kib(before: u64, after: u64, count: usize) -> f64 {
    after.saturating_sub(before) as f64 / count as f64
}

/// One row of delivery figures, as printed and written.
fn step_json(subscribers: usize, delivery: &Delivery) -> serde_json::Value {
    let (p50, p99) = p50_p99(delivery).unwrap_or((f64::NAN, f64::NAN));
    json!({
        "subscribers": subscribers, "p50Ms": p50, "p99Ms": p99,
        "missing": delivery.missing, "dropped": delivery.ended,
    })
}

fn held(delivery: &Delivery) -> bool {
    delivery.complete() && p50_p99(delivery).is_some_and(|(_, p99)| p99 < HELD_P99_MS)
}

/// The search for the largest subscriber count held: `first` streams on `address`, then
/// twice as many, and so on while each count is held and the next fits under `ceiling`.
struct Ramp {
    /// The figures at the first count.
    first: Delivery,
    /// The commands' own latency at the first count.
    commands: Vec<Duration>,
    steps: Vec<serde_json::Value>,
    held: Option<usize>,
    /// The search stopped at the open-file limit, not at a count that failed.
    limited_by_files: bool,
}

async fn ramp(
    stack: &Arc<Stack>,
    address: std::net::SocketAddr,
    first: usize,
    ceiling: usize,
) -> anyhow::Result<Ramp> {
    let mut fleet = Fleet::default();
    fleet.grow(address, "/board/live", first).await?;
    let (sent, commands) = send_steadily(stack, RATE, SECONDS, None).await;
    let first_delivery = fleet.delivered(&sent).await;
    println!("  {}", step_json(first, &first_delivery));
    let mut steps = vec![step_json(first, &first_delivery)];
    let mut largest = held(&first_delivery).then_some(first);
    let mut size = first;
    while largest == Some(size) && size * 2 <= ceiling {
        size *= 2;
        fleet.grow(address, "/board/live", size).await?;
        fleet.clear();
        let (sent, _) = send_steadily(stack, RATE, STEP_SECONDS, None).await;
        let step = fleet.delivered(&sent).await;
        println!("  {}", step_json(size, &step));
        steps.push(step_json(size, &step));
        if held(&step) {
            largest = Some(size);
        }
    }
    fleet.close();
    Ok(Ramp {
        first: first_delivery,
        commands,
        steps,
        held: largest,
        limited_by_files: largest == Some(size) && size * 2 > ceiling,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let subscribers: usize = std::env::args().nth(1).map_or(Ok(1_000), |n| n.parse())?;
    let open_files = open_files_limit();
    let stack = Arc::new(Stack::start(true, true).await?);

    // Memory: a fresh server holding idle connections (the baseline), then another fresh
    // server holding the same number of open streams.
    let idle_server = ApiServer::start(&stack).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_before = idle_server.rss_kib();
    let idle = idle_connections(idle_server.address, subscribers).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = per_connection_kib(idle_before, idle_server.rss_kib(), subscribers);
    drop(idle);
    drop(idle_server);

    let server = ApiServer::start(&stack).await?;
    // Past the feed's start: it primes its history from the store.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let streams_before = server.rss_kib();
    let mut fleet = Fleet::default();
    fleet
        .grow(server.address, "/board/live", subscribers)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stream_kib = per_connection_kib(streams_before, server.rss_kib(), subscribers);

    // Delivery at the steady load, beside the read model for the same commands.
    fleet.clear();
    let (read_model, sent) = steady_load_recorded(&stack, RATE, SECONDS).await;
    let whole = fleet.delivered(&sent).await;
    let after_load_kib = server.rss_kib();
    let (read_p50, read_p99, _) = percentiles(read_model);

    // The same with the Kafka leg at rest, and the search for the largest count held.
    stack.stop_background().await;
    fleet.close();
    let ceiling = open_files.saturating_sub(SPARE_FILES) as usize;
    anyhow::ensure!(
        subscribers <= ceiling,
        "{subscribers} subscribers need more open files than {open_files}: ulimit -n"
    );
    println!("Kafka leg at rest:");
    let board = ramp(&stack, server.address, subscribers, ceiling).await?;
    drop(server);
    Arc::try_unwrap(stack)
        .ok()
        .expect("no load is running")
        .stop()
        .await;

    let shown = |delivery: &Delivery| {
        p50_p99(delivery).map_or("nothing arrived".to_string(), |(p50, p99)| {
            format!("p50 {p50:.1}, p99 {p99:.1} ms")
        })
    };
    println!("\nBoard live updates ({subscribers} subscribers on one API process, {RATE} commands/s for {SECONDS}s, release build)\n");
    println!(
        "{:<40} {:>24}   {:<34} {:>24}",
        "figure", "value", "baseline", "value"
    );
    println!(
        "{:<40} {:>24}   {:<34} {:>24}",
        "command to subscriber",
        shown(&whole),
        "command to read model (same ones)",
        format!("p50 {read_p50:.1}, p99 {read_p99:.1} ms")
    );
    let (command_p50, command_p99, _) = percentiles(board.commands.clone());
    println!(
        "{:<40} {:>24}   {:<34} {:>24}",
        "  the same, Kafka leg at rest",
        shown(&board.first),
        "the commands themselves (stored)",
        format!("p50 {command_p50:.1}, p99 {command_p99:.1} ms")
    );
    println!(
        "{:<40} {:>24}   {:<34} {:>24}",
        "server memory per open stream",
        format!("{stream_kib:.1} KiB"),
        "per idle connection",
        format!("{idle_kib:.1} KiB")
    );
    let held = board.held.map_or("none".to_string(), |n| n.to_string());
    println!(
        "{:<40} {:>24}   (p99 under {HELD_P99_MS:.0} ms, nothing missed or dropped, at {RATE} commands/s{}; every step above)",
        "subscribers held, Kafka leg at rest",
        held,
        if board.limited_by_files {
            "; the next step would pass the open-file limit"
        } else {
            ""
        }
    );
    println!(
        "{:<40} {} missing, {} of {subscribers} streams dropped; server memory after it {:.1} MiB",
        "at the steady load",
        whole.missing,
        whole.ended,
        after_load_kib as f64 / 1024.0
    );

    let (whole_p50, whole_p99) = p50_p99(&whole).unwrap_or((f64::NAN, f64::NAN));
    let json = json!({
        "subscribers": subscribers,
        "rate": RATE,
        "seconds": SECONDS,
        "commandToSubscriberMs": { "p50": whole_p50, "p99": whole_p99 },
        "commandToReadModelMs": { "p50": read_p50, "p99": read_p99 },
        "missing": whole.missing,
        "dropped": whole.ended,
        "kafkaLegAtRest": board.steps,
        "commandMsAtRest": { "p50": command_p50, "p99": command_p99 },
        "memoryPerStreamKiB": stream_kib,
        "memoryPerIdleConnectionKiB": idle_kib,
        "serverMemoryAfterLoadKiB": after_load_kib,
        "subscribersHeld": board.held,
        "heldP99Ms": HELD_P99_MS,
        "limitedByOpenFiles": board.limited_by_files,
    });
    std::fs::create_dir_all("target")?;
    std::fs::write(
        "target/bench-live.json",
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("\nwritten: target/bench-live.json");
    Ok(())
}
