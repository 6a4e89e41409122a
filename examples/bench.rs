//! The benchmark: the real system through HTTP, every figure beside a baseline measured in
//! the same run on the same machine.
//!
//!     make bench        (or: cargo run --release --example bench -- [COMMANDS])
//!
//! Prints a table and writes `target/bench.json`. Figures:
//! - commands through HTTP (16 clients) against plain INSERTs of the same event rows;
//! - command-to-read-model latency under that load (a sample of the commands), and under
//!   a steady load the system sustains, against a MySQL insert and read-back;
//! - post list and post content queries through HTTP against the same SELECTs run directly;
//! - the relay's rate against raw acknowledged produce of the same messages;
//! - the projector's rate on the same backlog against a plain consumer of it;
//! - the process's peak memory.
//!
//! Rebuild and export rates are measured by `examples/history_rates.rs`, which `make bench`
//! runs next (alone: `make bench-history`; it writes `target/bench-history.json`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use sqlx::MySqlPool;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use board::kafka::{self, KafkaSettings};
use board::projector::Projector;
use board::relay::{envelope, Relay};
use board::store::reader::{self, Checkpoint};
use support::{call, mysql_round_trip, percentiles, Stack};

const CLIENTS: usize = 16;
/// The steady load for command-to-read-model latency: well below the command throughput
/// measured first, so that the figure is latency, not a queue growing.
const STEADY_RATE: u32 = 100;
const STEADY_SECONDS: u32 = 10;

/// Runs `total` operations over `CLIENTS` concurrent tasks; returns per-operation
/// latencies and the elapsed wall time.
async fn load<F, Fut>(total: usize, op: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let workers = (0..CLIENTS).map(|_| {
        let (op, next) = (op.clone(), next.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = {
                    let mut n = next.lock().await;
                    if *n >= total {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                let t = Instant::now();
                op(i).await;
                samples.push(t.elapsed());
            }
            samples
        })
    });
    let samples = join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    (samples, started.elapsed())
}

struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    baseline_name: &'static str,
    baseline: f64,
    detail: String,
}

impl Figure {
    fn ratio(&self) -> f64 {
        self.value / self.baseline
    }

    fn shown(&self, value: f64) -> String {
        match self.unit {
            "/s" | "events/s" => format!("{value:.0}/s"),
            "ms" => format!("{value:.1} ms"),
            _ => format!("{value:.0}"),
        }
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Commands whose post the read model does not show yet, and when each was sent.
type Pending = Arc<Mutex<Vec<(String, Instant)>>>;

/// Follows posts to the read model: one watcher looks for every pending post in a single
/// query every 10 ms (probing must not load MySQL, and so slow the projector it
/// measures, more than the projector itself does). Returns the list to add posts to, the
/// flag to clear when no more will come, and the watcher, which ends with the latencies
/// once the list is empty and the flag cleared.
fn follow(stack: &Stack) -> (Pending, Arc<AtomicBool>, JoinHandle<Vec<Duration>>) {
    let pending: Pending = Arc::new(Mutex::new(Vec::new()));
    let more_coming = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (pool, pending, more_coming) = (
            stack.read_pool.clone(),
            pending.clone(),
            more_coming.clone(),
        );
        async move {
            let mut seen = Vec::new();
            loop {
                let waiting: Vec<(String, Instant)> = pending.lock().await.clone();
                if waiting.is_empty() && !more_coming.load(Ordering::SeqCst) {
                    return seen;
                }
                if !waiting.is_empty() {
                    let mut query = sqlx::QueryBuilder::new(
                        "SELECT post_id FROM posts_view WHERE version >= 1 AND post_id IN (",
                    );
                    let mut ids = query.separated(", ");
                    for (id, _) in &waiting {
                        ids.push_bind(id.clone());
                    }
                    query.push(")");
                    let visible: Vec<String> =
                        query.build_query_scalar().fetch_all(&pool).await.unwrap();
                    let now = Instant::now();
                    let mut pending = pending.lock().await;
                    pending.retain(|(id, sent)| {
                        let done = visible.contains(id);
                        if done {
                            seen.push(now - *sent);
                        }
                        !done
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    (pending, more_coming, watcher)
}

/// Sends `rate` commands a second for `seconds`, each on its own task (a client that
/// does not wait for the previous answer, as many users would not), and follows every
/// one to the read model.
async fn steady_load(stack: &Arc<Stack>, rate: u32, seconds: u32) -> Vec<Duration> {
    let (pending, more_coming, watcher) = follow(stack);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut sent = Vec::new();
    for i in 0..(rate * seconds) as usize {
        ticks.tick().await;
        let (stack, pending) = (stack.clone(), pending.clone());
        sent.push(tokio::spawn(async move {
            let at = Instant::now();
            let (status, body) = stack.create_post(1_000_000 + i).await;
            assert_eq!(status, 201, "{body}");
            let id = body["postId"].as_str().unwrap().to_string();
            pending.lock().await.push((id, at));
        }));
    }
    join_all(sent).await.into_iter().for_each(Result::unwrap);
    more_coming.store(false, Ordering::SeqCst);
    watcher.await.unwrap()
}

/// How a new group member went through a backlog: the rate over the whole of it, joining
/// the group included (as after a restart or a deploy), and how long until the first
/// message or applied batch, which is mostly that joining.
struct Drain {
    first_after: Duration,
    rate: f64,
}

impl Drain {
    fn measured(started: Instant, first_after: Duration, total: i64) -> Self {
        Self {
            first_after,
            rate: total as f64 / started.elapsed().as_secs_f64(),
        }
    }
}

/// A plain member of a new group reading `total` messages of `topic`.
async fn plain_consume(settings: &KafkaSettings, topic: &str, total: i64) -> anyhow::Result<Drain> {
    let consumer = kafka::consumer(settings, &format!("{topic}-plain"))?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    consumer.recv().await?;
    let first_after = started.elapsed();
    for _ in 1..total {
        consumer.recv().await?;
    }
    Ok(Drain::measured(started, first_after, total))
}

/// The projector, in a new group, applying the topic of `stack` until its progress
/// covers `total` messages.
async fn projector_drain(stack: &Stack, total: i64) -> anyhow::Result<Drain> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let projector = Projector::new(
        MySqlPool::connect(&stack.read_url).await?,
        stack.state.pool.clone(),
        stack.state.config.kafka(),
        format!("{}-drain", stack.topic),
    );
    let started = Instant::now();
    let running = tokio::spawn(projector.run(stopped));
    let mut first = None;
    loop {
        let applied: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(next_offset), 0) AS SIGNED)
               FROM projection_progress WHERE topic = ?",
        )
        .bind(&stack.topic)
        .fetch_one(&stack.read_pool)
        .await?;
        if applied > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if applied >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);
    let first_after = first.expect("the loop saw progress");
    let drain = Drain::measured(started, first_after, total);
    let _ = running.await;
    Ok(drain)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let commands: usize = std::env::args().nth(1).map_or(Ok(2_000), |n| n.parse())?;
    let mut figures = Vec::new();

    // 1 and 2: commands under load, and how soon the read model shows a sample of them.
    let stack = Arc::new(Stack::start(true, true).await?);
    // Every 20th command is also followed to the read model (see `follow`).
    let (pending, loading, watcher) = follow(&stack);
    // Where the backlog sits while the read model catches up: the relay's lag (events in
    // the store not yet acknowledged by the broker) and the projector's (events in the
    // broker not yet applied), sampled every 250 ms.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (stack, sampling) = (stack.clone(), sampling.clone());
        async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                let settings = stack.state.config.kafka();
                // Stamped when the sample starts: under load, collecting takes a while.
                let at = started.elapsed();
                if let Ok(status) =
                    board::status::collect(&stack.state.pool, &stack.read_pool, &settings).await
                {
                    let relay: i64 = status.relays.iter().map(|r| r.lag_events).sum();
                    let projector: i64 =
                        status.projectors.iter().filter_map(|p| p.lag_events).sum();
                    samples.push((at, status.head.events, relay, projector));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        }
    });
    let (latencies, elapsed) = load(commands, {
        let (stack, pending) = (stack.clone(), pending.clone());
        move |i| {
            let (stack, pending) = (stack.clone(), pending.clone());
            async move {
                let sent = Instant::now();
                let (status, body) = stack.create_post(i).await;
                assert_eq!(status, 201, "{body}");
                if i % 20 == 0 {
                    let id = body["postId"].as_str().unwrap().to_string();
                    pending.lock().await.push((id, sent));
                }
            }
        }
    })
    .await;
    loading.store(false, Ordering::SeqCst);
    let visible = watcher.await?;
    sampling.store(false, Ordering::SeqCst);
    let backlog_trace = sampler.await?;
    let command_rate = commands as f64 / elapsed.as_secs_f64();
    let (p50, p99, _) = percentiles(latencies);

    // Baseline: the same number of event rows, plain single-row INSERTs, same concurrency.
    let pool = stack.state.pool.clone();
    sqlx::query("CREATE TABLE baseline_events (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await?;
    let (base_latencies, base_elapsed) = load(commands, move |i| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO baseline_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 VALUES ('post', $1, 1, 'PostCreated', '1.0', $2, '{}')",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(json!({"PostCreated": {"title": format!("Post {i}"), "content": "benchmark content"}}))
            .execute(&pool)
            .await
            .unwrap();
        }
    })
    .await;
    let (base_p50, _, _) = percentiles(base_latencies);
    figures.push(Figure {
        name: "commands through HTTP",
        value: command_rate,
        unit: "/s",
        baseline_name: "plain INSERT of the event rows",
        baseline: commands as f64 / base_elapsed.as_secs_f64(),
        detail: format!("p50 {p50:.2} ms, p99 {p99:.2} ms (baseline p50 {base_p50:.2} ms)"),
    });
    let (vis_p50, vis_p99, _) = percentiles(visible);

    // 3: queries through HTTP against the same SELECT run directly.
    let post_id = {
        let (_, body) = stack.create_post(usize::MAX).await;
        body["postId"].as_str().unwrap().to_string()
    };
    stack
        .wait_visible(&post_id, Duration::from_millis(5))
        .await?;
    let category: uuid::Uuid = stack.category.parse()?;
    let post: uuid::Uuid = post_id.parse()?;
    let queries = commands;
    for (name, path) in [
        (
            "post list (30) through HTTP",
            format!("/board/categories/{category}/posts?size=30"),
        ),
        (
            "post content through HTTP",
            format!("/board/posts/{post}/content"),
        ),
    ] {
        let (http, http_elapsed) = load(queries, {
            let (app, path) = (stack.app.clone(), path.clone());
            move |_| {
                let (app, path) = (app.clone(), path.clone());
                async move {
                    assert_eq!(call(&app, "GET", &path, None, Value::Null).await.0, 200);
                }
            }
        })
        .await;
        let list = name.starts_with("post list");
        let (direct, direct_elapsed) = load(queries, {
            let pool = stack.read_pool.clone();
            move |_| {
                let pool = pool.clone();
                async move {
                    if list {
                        projections::queries::posts_in_category(&pool, category, None, 30)
                            .await
                            .unwrap();
                    } else {
                        projections::queries::post(&pool, post).await.unwrap();
                    }
                }
            }
        })
        .await;
        let (h50, h99, _) = percentiles(http);
        let (d50, _, _) = percentiles(direct);
        figures.push(Figure {
            name: if list {
                "post list (30) through HTTP"
            } else {
                "post content through HTTP"
            },
            value: queries as f64 / http_elapsed.as_secs_f64(),
            unit: "/s",
            baseline_name: "the same SELECT run directly",
            baseline: queries as f64 / direct_elapsed.as_secs_f64(),
            detail: format!("p50 {h50:.2} ms, p99 {h99:.2} ms (direct p50 {d50:.2} ms)"),
        });
    }
    // 2b: command-to-read-model latency under a steady load the system can sustain,
    // beside the floor of a MySQL insert and read-back.
    let steady = steady_load(&stack, STEADY_RATE, STEADY_SECONDS).await;
    let floor = mysql_round_trip(&stack.read_pool, 200).await?;
    let (steady_p50, steady_p99, _) = percentiles(steady);
    let (floor_p50, _, _) = percentiles(floor);
    figures.push(Figure {
        name: "command to read model, steady",
        value: steady_p50,
        unit: "ms",
        baseline_name: "MySQL insert + read back",
        baseline: floor_p50,
        detail: format!(
            "p50, at {STEADY_RATE} commands/s for {STEADY_SECONDS}s; p99 {steady_p99:.1} ms"
        ),
    });
    let memory = peak_rss_mib();
    Arc::try_unwrap(stack)
        .ok()
        .expect("no load is running")
        .stop()
        .await;

    // 4: the relay's rate on a backlog, against raw acknowledged produce of the same messages.
    let backlog = Stack::start(false, false).await?;
    for i in 0..commands {
        backlog.create_post(i).await;
    }
    let events = reader::read_after(&backlog.state.pool, Checkpoint::default(), i64::MAX).await?;
    let settings = backlog.state.config.kafka();
    let raw_topic = format!("{}-raw", backlog.topic);
    kafka::ensure_topic(&settings, &raw_topic).await?;
    let producer = kafka::producer(&settings)?;
    let bodies: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| {
            (
                e.aggregate_id.clone(),
                serde_json::to_vec(&envelope(e)).unwrap(),
            )
        })
        .collect();
    let started = Instant::now();
    let deliveries: Vec<_> = bodies
        .iter()
        .map(|(key, body)| {
            producer.send(
                FutureRecord::to(&raw_topic).key(key).payload(body),
                Duration::from_secs(30),
            )
        })
        .collect();
    for delivery in join_all(deliveries).await {
        delivery.map_err(|(e, _)| e)?;
    }
    let raw_rate = bodies.len() as f64 / started.elapsed().as_secs_f64();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let relay = tokio::spawn(Relay::new(backlog.state.pool.clone(), settings.clone()).run(stopped));
    let total = events.len() as i64;
    loop {
        let relayed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events e, relay_checkpoints c
              WHERE (e.transaction_id, e.global_position) <= (c.transaction_id, c.global_position)",
        )
        .fetch_one(&backlog.state.pool)
        .await?;
        if relayed >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let relay_rate = total as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = relay.await;
    figures.push(Figure {
        name: "relay, store to broker",
        value: relay_rate,
        unit: "events/s",
        baseline_name: "raw produce of the same messages",
        baseline: raw_rate,
        detail: format!("{total} events"),
    });

    // 5: the projector's rate on that backlog, now in the topic, against a plain consumer
    // fetching the same messages with the projector's settings. The ratio tells the
    // broker's fetch from the projector's own work (loading, folding, upserting).
    // Joining a group takes seconds on some brokers, a large part of a small backlog: the
    // time to the first message is shown beside the rates.
    let plain = plain_consume(&settings, &backlog.topic, total).await?;
    let projector = projector_drain(&backlog, total).await?;
    backlog.stop().await;
    figures.push(Figure {
        name: "projector, broker to read model",
        value: projector.rate,
        unit: "events/s",
        baseline_name: "plain consume of the same messages",
        baseline: plain.rate,
        detail: format!(
            "{total} events; first batch applied after {:.2} s (plain: first message after {:.2} s)",
            projector.first_after.as_secs_f64(),
            plain.first_after.as_secs_f64()
        ),
    });

    println!("\nBoard benchmark ({commands} commands, {CLIENTS} clients, release build)\n");
    println!(
        "{:<32} {:>12}   {:<34} {:>12} {:>7}",
        "figure", "value", "baseline", "value", "ratio"
    );
    for f in &figures {
        println!(
            "{:<32} {:>12}   {:<34} {:>12} {:>6.2}x   {}",
            f.name,
            f.shown(f.value),
            f.baseline_name,
            f.shown(f.baseline),
            f.ratio(),
            f.detail
        );
    }
    println!(
        "{:<32} p50 {vis_p50:.1} ms, p99 {vis_p99:.1} ms (every 20th command of the first load)",
        "command to read model, burst"
    );
    println!(
        "{:<32} {memory:.0} MiB (server, relay, projector and load generator in one process)",
        "peak memory"
    );
    println!(
        "\nbacklog while the read model caught up (load ended at {:.1}s):",
        elapsed.as_secs_f64()
    );
    println!(
        "{:>8} {:>8} {:>12} {:>15}",
        "time", "stored", "relay lag", "projector lag"
    );
    for (at, stored, relay, projector) in &backlog_trace {
        println!(
            "{:>7.1}s {stored:>8} {relay:>12} {projector:>15}",
            at.as_secs_f64()
        );
    }

    let json = json!({
        "commands": commands,
        "clients": CLIENTS,
        "figures": figures.iter().map(|f| json!({
            "name": f.name, "value": f.value, "unit": f.unit,
            "baseline": f.baseline_name, "baselineValue": f.baseline, "ratio": f.ratio(), "detail": f.detail,
        })).collect::<Vec<_>>(),
        "commandToReadModelMs": { "p50": vis_p50, "p99": vis_p99 },
        "backlog": backlog_trace.iter().map(|(at, stored, relay, projector)| json!({
            "seconds": at.as_secs_f64(), "stored": stored, "relayLag": relay, "projectorLag": projector,
        })).collect::<Vec<_>>(),
        "peakMemoryMiB": memory,
    });
    std::fs::create_dir_all("target")?;
    std::fs::write("target/bench.json", serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten: target/bench.json");
    Ok(())
}
