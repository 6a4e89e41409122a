//! Command-to-read-model latency at rest, on the real PostgreSQL, Kafka broker and MySQL.
//!
//!     make latency            (or: cargo run --release --example latency -- [COUNT])
//!
//! Starts the API, the relay and the projector in this process on scratch databases and
//! a scratch topic, then creates COUNT posts one at a time (nothing else running: "at
//! rest"). For each it measures the time from sending the command to the read model
//! showing it, and, within that, from the command's answer to the read model. It prints
//! percentiles, beside a baseline measured in the same run: a plain INSERT of one row
//! into MySQL and reading it back, the floor any read model update stands on.

mod support;

use std::time::{Duration, Instant};

use support::{mysql_round_trip, report, Stack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(200), |n| n.parse())?;
    let stack = Stack::start(true, true).await?;

    let mut end_to_end = Vec::with_capacity(count);
    let mut after_answer = Vec::with_capacity(count);
    for i in 0..count + 20 {
        let sent = Instant::now();
        let (status, body) = stack.create_post(i).await;
        assert_eq!(status, 201);
        let answered = Instant::now();
        stack
            .wait_visible(body["postId"].as_str().unwrap(), Duration::from_micros(500))
            .await?;
        if i >= 20 {
            // The first 20 warm up connections and caches.
            end_to_end.push(sent.elapsed());
            after_answer.push(answered.elapsed());
        }
    }

    // Baseline: one row inserted into MySQL (autocommit) and read back, same pool.
    let baseline = mysql_round_trip(&stack.read_pool, count).await?;

    println!(
        "\ncommand-to-read-model latency at rest ({count} posts, one at a time, 3 partitions)\n"
    );
    let total = report("command sent -> visible in read model", end_to_end);
    report("command answered -> visible in read model", after_answer);
    let base = report("baseline: MySQL insert + read back", baseline);
    println!("\nratio (end to end / baseline, p50): {:.1}x", total / base);
    stack.stop().await;
    Ok(())
}
