//! The benchmark: the real system through HTTP, every figure beside a baseline measured in
//! the same run on the same machine.
//!
//!     make bench        (or: cargo run --release --example bench -- [COMMANDS])
//!
//! Prints a table and writes `target/bench.json`. Figures:
//! - commands through HTTP (16 clients) against plain INSERTs of the same event rows, in
//!   rounds (the median round is the figure);
//! - the CPU a command costs every process on its way (Board, PostgreSQL, the broker,
//!   MySQL) until the read model has it, against the CPU of a plain INSERT, in rounds;
//! - command-to-read-model latency under that load (a sample of the commands), and under
//!   a steady load the system sustains, against a MySQL insert and read-back;
//! - post list and post content queries through HTTP against the same SELECTs run directly,
//!   in rounds (the median round is the figure);
//! - the relay's rate against raw acknowledged produce of the same messages;
//! - the projector's rate on the same backlog against a plain consumer of it;
//! - the broker at rest: its CPU and a metadata request's latency while Board runs idle,
//!   beside the same with nothing of Board running; and its CPU while 20 commands a
//!   second trickle in;
//! - the process's peak memory.
//!
//! Whether these figures hold with use is `examples/steadiness.rs` (`make bench-steady`).
//!
//! Rebuild and export rates are measured by `examples/history_rates.rs`, which `make bench`
//! runs next (alone: `make bench-history`; it writes `target/bench-history.json`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::producer::FutureRecord;
use serde_json::json;

use board::kafka;
use board::kafka::envelope;
use board::store::reader::{self, Checkpoint};
use support::kafka_leg::{
    at_rest, burst, load, plain_consume, projector_drain, relay_backlog, steady_load, CLIENTS,
    WARM_UP,
};
use support::machine::{CpuSnapshot, CpuUse};
use support::{flood, get, long_history, mysql_round_trip, percentiles, Stack};

/// The steady load for command-to-read-model latency: well below the command throughput
/// measured first, so that the figure is latency, not a queue growing.
const STEADY_RATE: u32 = 100;
const STEADY_SECONDS: u32 = 10;
/// Log-ins measured at rest and during the flood; the flood's concurrency (the issue's).
const LOG_INS: usize = 50;
const FLOOD_CONCURRENCY: usize = 64;
/// Each query figure is measured in this many rounds, HTTP and direct taking turns at
/// going first: an odd number, so that the median round is the middle one.
const QUERY_ROUNDS: usize = 9;
/// Queries of each figure, each way, at the least. 2,000 posts' contents are read in a
/// fifth of a second, and in one round of that the same build came out anywhere from
/// 0.67x to 1.08x from one run to the next (2026-12-04).
const QUERIES: usize = 20_000;
/// Commands in each round of the CPU figure (at the least): in rounds of 2,000 the
/// figure moved from 620 to 840 µs within one run.
const CPU_COMMANDS: usize = 5_000;
/// How long the broker is watched at rest.
const AT_REST: Duration = Duration::from_secs(10);
/// Commands a second while the broker is watched with commands trickling in: the
/// projector should rest between two of them, not fetch on.
const TRICKLE_RATE: u32 = 20;
/// The command burst and its baseline are measured in this many rounds, and the round
/// with the median ratio is the figure: each plain INSERT waits for its own flush of the
/// write-ahead log, so the baseline follows the disk, and on one machine it moved sixfold
/// from one run to the next while the commands (which share their flushes) moved little.
const COMMAND_ROUNDS: usize = 3;

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
            "µs" => format!("{value:.0} µs"),
            _ => format!("{value:.0}"),
        }
    }
}

/// One round of a burst (commands, or one kind of query) beside its baseline, run in the
/// same round.
struct Round {
    rate: f64,
    /// p50, p99 and max, in ms.
    latencies: (f64, f64, f64),
    baseline: f64,
    baseline_p50: f64,
}

impl Round {
    /// `count` operations each way: the measured ones' and the baseline's latencies, and
    /// the time each took in all.
    fn of(
        count: usize,
        (latencies, elapsed): (Vec<Duration>, Duration),
        (base_latencies, base_elapsed): (Vec<Duration>, Duration),
    ) -> Self {
        Self {
            rate: count as f64 / elapsed.as_secs_f64(),
            latencies: percentiles(latencies),
            baseline: count as f64 / base_elapsed.as_secs_f64(),
            baseline_p50: percentiles(base_latencies).0,
        }
    }

    fn ratio(&self) -> f64 {
        self.rate / self.baseline
    }

    /// The round whose ratio is the median (the upper one of an even count).
    fn median(rounds: &[Round]) -> &Round {
        let mut sorted: Vec<&Round> = rounds.iter().collect();
        sorted.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        sorted[sorted.len() / 2]
    }

    /// Every round's rates and ratio, in the order they ran.
    fn ratios(rounds: &[Round]) -> String {
        rounds
            .iter()
            .map(|r| format!("{:.0}/{:.0} = {:.2}x", r.rate, r.baseline, r.ratio()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The processes a command's way runs in, by [`CpuUse`]'s group names, and how they are
/// shown: this benchmark's own (Board's server, relay and projector, and the load it
/// sends), PostgreSQL, the broker and MySQL. The machine's other processes are left out:
/// services nothing here uses, and the kernel's threads (among them those that write
/// PostgreSQL's flushes to disk), as are processes that begin and end inside a window.
/// A plain INSERT is counted on the first two only ([`BASELINE`]): the relay, the
/// projector, the broker and MySQL have nothing to do with it.
const SYSTEM: [(&str, &str); 4] = [
    ("load (this benchmark)", "Board and the load"),
    ("PostgreSQL", "PostgreSQL"),
    ("broker", "broker"),
    ("MySQL", "MySQL"),
];
const BASELINE: &[(&str, &str)] = &[SYSTEM[0], SYSTEM[1]];

/// The CPU time one operation cost the processes of [`SYSTEM`], in µs, in all and by
/// process. Unlike a rate over a burst of a second or two, it does not follow the disk
/// or what else the machine did meanwhile.
struct CpuPer {
    total: f64,
    parts: Vec<(&'static str, f64)>,
}

impl CpuPer {
    /// What `operations` cost the processes of `groups` (a part of [`SYSTEM`]) in `cpu`.
    fn of(cpu: &CpuUse, operations: usize, groups: &[(&str, &'static str)]) -> Self {
        let parts: Vec<(&'static str, f64)> = groups
            .iter()
            .map(|(group, shown)| (*shown, cpu.seconds_of(group) * 1e6 / operations as f64))
            .collect();
        Self {
            total: parts.iter().map(|(_, us)| us).sum(),
            parts,
        }
    }

    /// The process-by-process split, leaving out those that did not take part.
    fn split(&self) -> String {
        self.parts
            .iter()
            .filter(|(_, us)| *us >= 1.0)
            .map(|(shown, us)| format!("{shown} {us:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn to_json(&self) -> serde_json::Value {
        let mut parts: serde_json::Map<String, serde_json::Value> = self
            .parts
            .iter()
            .map(|(shown, us)| (shown.to_string(), json!(us)))
            .collect();
        parts.insert("total".into(), json!(self.total));
        serde_json::Value::Object(parts)
    }

    /// The median by total (the upper one of an even count).
    fn median(all: &[CpuPer]) -> &CpuPer {
        let mut sorted: Vec<&CpuPer> = all.iter().collect();
        sorted.sort_by(|a, b| a.total.total_cmp(&b.total));
        sorted[sorted.len() / 2]
    }
}

/// The baseline of the command burst: `total` plain single-row INSERTs of event rows like
/// a creation's into `baseline_events`, at the same concurrency.
async fn plain_inserts(pool: &sqlx::PgPool, total: usize) -> (Vec<Duration>, Duration) {
    let pool = pool.clone();
    load(total, move |i| {
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
    .await
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

/// Events stored, the relay's lag and the projectors' lag, each read off an index or a
/// checkpoint row (see the sampler in `main`).
async fn backlog_sample(stack: &Stack) -> anyhow::Result<(i64, i64, i64)> {
    let (stored, relayed): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT max(global_position) FROM events),
                (SELECT max(global_position) FROM relay_checkpoints)",
    )
    .fetch_one(&stack.state.pool)
    .await?;
    let (stored, relayed) = (stored.unwrap_or(0), relayed.unwrap_or(0));
    let projector = projector_partitions(stack)
        .await?
        .iter()
        .filter_map(|p| p.lag_events)
        .sum();
    Ok((stored, stored - relayed, projector))
}

/// Each partition of the stack's topic as `/status` reports it: the projector's progress
/// against the partition's end, asked of the broker.
async fn projector_partitions(
    stack: &Stack,
) -> anyhow::Result<Vec<board::status::PartitionStatus>> {
    let ends = stack
        .state
        .broker
        .topic_ends(board::status::BROKER_TIMEOUT)
        .await
        .ok()
        .map(|e| e.ends);
    Ok(board::status::partitions(
        &stack.read_pool,
        ends,
        stack.state.broker.topic(),
        &stack.state.config.projector_group,
    )
    .await?)
}

/// How long [`caught_up`] waits before it says what lags: far above a burst's catching up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

/// Waits until the relay has published every stored event (past its checkpoint in the
/// relay's own order, as `/status` counts it) and every partition's read models have
/// applied all the broker has, looking every 100 ms (each look asks the broker for the
/// partitions' ends).
async fn caught_up(stack: &Stack) -> anyhow::Result<()> {
    let relay = format!("relay:{}", stack.topic);
    let deadline = Instant::now() + CATCH_UP_LIMIT;
    loop {
        let relay_behind: bool = sqlx::query_scalar(
            "SELECT COALESCE(
                (SELECT EXISTS (SELECT 1 FROM events e
                                 WHERE (e.transaction_id, e.global_position)
                                     > (c.transaction_id, c.global_position))
                   FROM relay_checkpoints c WHERE c.relay = $1),
                EXISTS (SELECT 1 FROM events))",
        )
        .bind(&relay)
        .fetch_one(&stack.state.pool)
        .await?;
        let partitions = projector_partitions(stack).await?;
        let projected = !partitions.is_empty()
            && partitions
                .iter()
                .all(|p| p.state == board::status::PartitionState::CaughtUp);
        if !relay_behind && projected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline did not catch up within {CATCH_UP_LIMIT:?}: relay behind {relay_behind}, partitions {:?}",
            partitions.iter().map(|p| p.state.as_str()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let commands: usize = std::env::args().nth(1).map_or(Ok(2_000), |n| n.parse())?;
    let mut figures = Vec::new();

    // 1 and 2: commands under load, and how soon the read model shows a sample of them.
    let stack = Arc::new(Stack::start(true, true).await?);
    // Where the backlog sits while the read model catches up: the relay's lag (events in
    // the store not yet acknowledged by the broker) and the projector's (events in the
    // broker not yet applied), sampled every 250 ms. Read off positions, not counted as
    // `/status` counts them: that count grows with the lag, and at this rate it cost
    // PostgreSQL a quarter of a core during the burst it measures (87 ms a sample, read
    // from pg_stat_statements). Every command here is its own transaction, so position
    // differences are the counts, but for commits in flight.
    let sampling = Arc::new(AtomicBool::new(true));
    let mut sampler = Some(tokio::spawn({
        let (stack, sampling) = (stack.clone(), sampling.clone());
        async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                // Stamped when the sample starts: under load, collecting takes a while.
                let at = started.elapsed();
                if let Ok((stored, relay, projector)) = backlog_sample(&stack).await {
                    samples.push((at, stored, relay, projector));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        }
    }));
    // Every 20th command is also followed to the read model (see `kafka_leg::follow`).
    // The burst and its baseline run in rounds, each burst on a pipeline at rest (the
    // warm-up of `burst` is followed to the read model) and its baseline right after it.
    sqlx::query("CREATE TABLE baseline_events (LIKE events INCLUDING ALL)")
        .execute(&stack.state.pool)
        .await?;
    let mut rounds = Vec::new();
    let mut visible = Vec::new();
    let mut backlog_trace = Vec::new();
    let mut elapsed = Duration::ZERO;
    for _ in 0..COMMAND_ROUNDS {
        let (latencies, burst_elapsed, seen) = burst(&stack, commands).await;
        if let Some(sampler) = sampler.take() {
            // The trace shows the first round alone.
            sampling.store(false, Ordering::SeqCst);
            backlog_trace = sampler.await?;
            elapsed = burst_elapsed;
        }
        visible.extend(seen);
        let (base_latencies, base_elapsed) = plain_inserts(&stack.state.pool, commands).await;
        rounds.push(Round::of(
            commands,
            (latencies, burst_elapsed),
            (base_latencies, base_elapsed),
        ));
    }
    let median = Round::median(&rounds);
    let base_rate = median.baseline;
    let (p50, p99, _) = median.latencies;
    figures.push(Figure {
        name: "commands through HTTP",
        value: median.rate,
        unit: "/s",
        baseline_name: "plain INSERT of the event rows",
        baseline: base_rate,
        detail: format!(
            "the median of {COMMAND_ROUNDS} rounds ({}); p50 {p50:.2} ms, p99 {p99:.2} ms (baseline p50 {:.2} ms); commands that arrive together are written with one INSERT (group commit) and share a NOTIFY",
            Round::ratios(&rounds),
            median.baseline_p50,
        ),
    });
    // What a command costs the machine's CPU, in rounds of their own: the bursts above
    // follow a sample of their commands to the read model, and those queries cost MySQL
    // two-thirds of what the projector's writes do (docs/PERFORMANCE.md). Here nothing is
    // followed: each round starts and ends with the relay and the projector caught up.
    let (mut command_cpus, mut insert_cpus) = (Vec::new(), Vec::new());
    let cpu_commands = commands.max(CPU_COMMANDS);
    for _ in 0..COMMAND_ROUNDS {
        caught_up(&stack).await?;
        let cpu_before = CpuSnapshot::take();
        load(cpu_commands, {
            let stack = stack.clone();
            move |i| {
                let stack = stack.clone();
                async move {
                    let (status, body) = stack.create_post(i).await;
                    assert_eq!(status, 201, "{body}");
                }
            }
        })
        .await;
        caught_up(&stack).await?;
        let cpu = CpuSnapshot::take().since(&cpu_before, |_| None);
        command_cpus.push(CpuPer::of(&cpu, cpu_commands, &SYSTEM));
        let cpu_before = CpuSnapshot::take();
        plain_inserts(&stack.state.pool, cpu_commands).await;
        let cpu = CpuSnapshot::take().since(&cpu_before, |_| None);
        insert_cpus.push(CpuPer::of(&cpu, cpu_commands, BASELINE));
    }
    let insert_cpu = CpuPer::median(&insert_cpus);
    let pipeline_cpu = CpuPer::median(&command_cpus);
    figures.push(Figure {
        name: "CPU per command",
        value: pipeline_cpu.total,
        unit: "µs",
        baseline_name: "CPU per plain INSERT",
        baseline: insert_cpu.total,
        detail: format!(
            "the median of {COMMAND_ROUNDS} rounds ({}); {}; the plain INSERT: {}; {cpu_commands} commands a round, until the relay and the projector caught up",
            command_cpus.iter().map(|c| format!("{:.0}", c.total)).collect::<Vec<_>>().join(", "),
            pipeline_cpu.split(),
            insert_cpu.split(),
        ),
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
    let queries = commands.max(QUERIES);
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
        let list = name.starts_with("post list");
        // Rounds that take turns at going first: run one after the other, the second
        // always found MySQL quieter (the burst's writes still being flushed while the
        // first ran), and the ratio moved with the order. The median round is the
        // figure, as for the commands: a round that MySQL's own background work fell on
        // does not move it.
        let each = queries / QUERY_ROUNDS;
        let mut rounds = Vec::new();
        for round in 0..QUERY_ROUNDS {
            let (mut http, mut direct) = (None, None);
            for through_http in [round % 2 == 0, round % 2 == 1] {
                let measured = if through_http {
                    load(each, {
                        let (app, path) = (stack.app.clone(), path.clone());
                        move |_| {
                            let (app, path) = (app.clone(), path.clone());
                            async move {
                                assert_eq!(get(&app, &path).await.0, 200);
                            }
                        }
                    })
                    .await
                } else {
                    load(each, {
                        // The server's own pool: the benchmark's (sqlx's defaults) pings
                        // a connection before every query, a round trip the server's
                        // pool makes only after 500 ms idle (`databases`).
                        let pool = stack.state.read_pool.clone();
                        move |_| {
                            let pool = pool.clone();
                            async move {
                                if list {
                                    projections::queries::posts_in_category(
                                        &pool, category, None, 30,
                                    )
                                    .await
                                    .unwrap();
                                } else {
                                    projections::queries::post(&pool, post).await.unwrap();
                                }
                            }
                        }
                    })
                    .await
                };
                *(if through_http { &mut http } else { &mut direct }) = Some(measured);
            }
            rounds.push(Round::of(
                each,
                http.expect("measured"),
                direct.expect("measured"),
            ));
        }
        let median = Round::median(&rounds);
        let (h50, h99, _) = median.latencies;
        figures.push(Figure {
            name: if list {
                "post list (30) through HTTP"
            } else {
                "post content through HTTP"
            },
            value: median.rate,
            unit: "/s",
            baseline_name: "the same SELECT run directly",
            baseline: median.baseline,
            detail: format!(
                "the median of {QUERY_ROUNDS} rounds of {each} queries each way ({}); p50 {h50:.2} ms, p99 {h99:.2} ms (direct p50 {:.2} ms)",
                Round::ratios(&rounds),
                median.baseline_p50,
            ),
        });
    }
    // 3b: an edit of a post with a long history, against the same edit of a fresh post.
    let (long_p50, long_p99, fresh_p50) = long_history::edit_latencies(&stack).await?;
    figures.push(Figure {
        name: "edit of a 5,000-event post",
        value: long_p50,
        unit: "ms",
        baseline_name: "the same edit of a fresh post",
        baseline: fresh_p50,
        detail: format!(
            "p50, one client; p99 {long_p99:.1} ms; {} earlier events",
            long_history::EARLIER_EVENTS
        ),
    });
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
    // Before the flood below, whose 64 in-process clients are not what this figure is about.
    let memory = peak_rss_mib();
    // 2c: a log-in while one member floods keyed commands, 64 at a time, beside a log-in
    // at rest (issue 10: the flood used to answer 503 to others, a log-in after 5.8 s).
    // On a stack of its own with the server's limits (the others raise the per-account one).
    let deployed = Arc::new(Stack::start_as_deployed(false, false).await?);
    let quiet = flood::log_ins(&deployed, LOG_INS).await;
    let (flooded, answers) = flood::while_flooding(
        &deployed,
        FLOOD_CONCURRENCY,
        flood::log_ins(&deployed, LOG_INS),
    )
    .await;
    Arc::try_unwrap(deployed)
        .ok()
        .expect("the flood is over")
        .stop()
        .await;
    let (rest_p50, _, _) = percentiles(quiet);
    let (flood_p50, flood_p99, _) = percentiles(flooded);
    figures.push(Figure {
        name: "log-in, one member flooding",
        value: flood_p50,
        unit: "ms",
        baseline_name: "log-in at rest",
        baseline: rest_p50,
        detail: format!(
            "p50; p99 {flood_p99:.1} ms; the flood: {} keyed commands, {FLOOD_CONCURRENCY} at a time, {} answered 503, {} refused for the member's limit",
            answers.sent, answers.unavailable, answers.refused_for_the_limit
        ),
    });
    Arc::try_unwrap(stack)
        .ok()
        .expect("no load is running")
        .stop()
        .await;

    // 4: the relay's rate on a backlog, against raw acknowledged produce of the same messages.
    // Its commands are sent as the burst's were, with no relay or projector running: the
    // command path alone, beside the same baseline. The gap between this row and the
    // first is what the pipeline's share of these two cores costs the commands.
    let backlog = Arc::new(Stack::start(false, false).await?);
    let send = |total: usize, from: usize| {
        load(total, {
            let backlog = backlog.clone();
            move |i| {
                let backlog = backlog.clone();
                async move {
                    let (status, body) = backlog.create_post(from + i).await;
                    assert_eq!(status, 201, "{body}");
                }
            }
        })
    };
    send(WARM_UP, commands).await;
    let cpu_before = CpuSnapshot::take();
    let (alone, alone_elapsed) = send(commands, 0).await;
    let alone_cpu = CpuPer::of(
        &CpuSnapshot::take().since(&cpu_before, |_| None),
        commands,
        &SYSTEM,
    );
    let (alone_p50, alone_p99, _) = percentiles(alone);
    figures.insert(
        1,
        Figure {
            name: "commands, API alone",
            value: commands as f64 / alone_elapsed.as_secs_f64(),
            unit: "/s",
            baseline_name: "plain INSERT of the event rows",
            baseline: base_rate,
            detail: format!(
                "p50 {alone_p50:.2} ms, p99 {alone_p99:.2} ms; the burst above with no relay or projector running beside it"
            ),
        },
    );
    figures.insert(
        3,
        Figure {
            name: "CPU per command, API alone",
            value: alone_cpu.total,
            unit: "µs",
            baseline_name: "CPU per plain INSERT",
            baseline: insert_cpu.total,
            detail: format!(
                "{}; one round, the burst of \"commands, API alone\" (a stack of its own); the baseline is the median above",
                alone_cpu.split()
            ),
        },
    );
    let events = reader::read_after(&backlog.state.pool, Checkpoint::default(), i64::MAX).await?;
    let settings = backlog.state.config.kafka();
    let raw_topic = backlog.scratch_topic("raw");
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
    let (relay_rate, total) = relay_backlog(&backlog).await?;
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
    let plain = plain_consume(&settings, total).await?;
    let projector = projector_drain(&backlog, total).await?;
    Arc::try_unwrap(backlog)
        .ok()
        .expect("the backlog's loads are over")
        .stop()
        .await;
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

    // 6: the broker at rest: its CPU and a metadata request's latency while Board runs
    // idle (API, relay and projector up, no commands), beside the same with nothing of
    // Board running; then its CPU with commands trickling in.
    let brokers = settings.brokers.clone();
    let rest = at_rest(&brokers, AT_REST).await;
    let idle_stack = Arc::new(Stack::start(true, true).await?);
    // Past the projector's start: it pauses once it has read everything.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = at_rest(&brokers, AT_REST).await;
    // The same while commands trickle in: the projector rests between them.
    let (trickle_latencies, trickling) = tokio::join!(
        steady_load(&idle_stack, TRICKLE_RATE, AT_REST.as_secs() as u32),
        at_rest(&brokers, AT_REST)
    );
    let (trickle_p50, _, _) = percentiles(trickle_latencies);
    Arc::try_unwrap(idle_stack)
        .ok()
        .expect("the trickle is over")
        .stop()
        .await;

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
        "{:<32} p50 {vis_p50:.1} ms, p99 {vis_p99:.1} ms (every 20th command of the bursts)",
        "command to read model, burst"
    );
    println!(
        "{:<32} {memory:.0} MiB (server, relay, projector and load generator in one process)",
        "peak memory"
    );
    let shown_cpu = |cpu: Option<f64>| {
        cpu.map_or("not measured (no broker pid; set BROKER_PID)".into(), |c| {
            format!("{:.1}% of a core", c * 100.0)
        })
    };
    println!(
        "{:<32} {} with Board idle; {} with nothing of Board running (goal: under 5%)",
        "broker CPU at rest",
        shown_cpu(idle.cpu),
        shown_cpu(rest.cpu)
    );
    println!(
        "{:<32} {} at {TRICKLE_RATE} commands/s (command to read model p50 {trickle_p50:.1} ms)",
        "broker CPU, commands trickling",
        shown_cpu(trickling.cpu),
    );
    println!(
        "{:<32} p50 {:.1} ms, p99 {:.1} ms with Board idle; p50 {:.1} ms, p99 {:.1} ms with nothing running (goal: under 50 ms)",
        "metadata request (all topics)",
        idle.metadata.0,
        idle.metadata.1,
        rest.metadata.0,
        rest.metadata.1
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
        "commandRounds": rounds.iter().map(|r| json!({
            "commandsPerSecond": r.rate, "baselinePerSecond": r.baseline, "ratio": r.ratio(),
        })).collect::<Vec<_>>(),
        "cpuRounds": command_cpus.iter().zip(&insert_cpus).map(|(command, insert)| json!({
            "commandMicroseconds": command.to_json(), "plainInsertMicroseconds": insert.to_json(),
        })).collect::<Vec<_>>(),
        "commandToReadModelMs": { "p50": vis_p50, "p99": vis_p99 },
        "backlog": backlog_trace.iter().map(|(at, stored, relay, projector)| json!({
            "seconds": at.as_secs_f64(), "stored": stored, "relayLag": relay, "projectorLag": projector,
        })).collect::<Vec<_>>(),
        "peakMemoryMiB": memory,
        "atRest": {
            "brokerCpuIdle": idle.cpu, "brokerCpuNothingRunning": rest.cpu,
            "brokerCpuTrickle": trickling.cpu, "trickleCommandsPerSecond": TRICKLE_RATE,
            "trickleCommandToReadModelMsP50": trickle_p50,
            "metadataMsIdle": { "p50": idle.metadata.0, "p99": idle.metadata.1 },
            "metadataMsNothingRunning": { "p50": rest.metadata.0, "p99": rest.metadata.1 },
        },
    });
    std::fs::create_dir_all("target")?;
    std::fs::write("target/bench.json", serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten: target/bench.json");
    Ok(())
}
