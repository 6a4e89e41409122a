//! How far one machine goes, and what runs out first: the figures behind
//! `docs/SCALING.md`, each beside a baseline measured in the same run.
//!
//! - **The event store.** Commands per second through HTTP for `SECONDS` from `CLIENTS`
//!   keep-alive connections: with one API process, with two on the same store, and with
//!   one while the relay and a projector run beside it. Beside them: plain INSERTs of the
//!   same event rows from as many connections, the most this PostgreSQL takes. For each:
//!   where the machine's CPU went (API processes, PostgreSQL, the broker, this load) and
//!   what one command cost PostgreSQL (transactions, WAL bytes, WAL flushes).
//! - **The projectors.** The events those commands stored, applied to fresh read models
//!   by one projector process, then by two in one group (the topic's partitions bound how
//!   many can share the work), with the CPU each side used.
//!
//! Every part is the release `board` binary in a process of its own, as deployed; this
//! process only sends the load, and its own CPU is shown apart. On a machine with few
//! cores every part shares them: the CPU table says which one a bigger machine would
//! have to give more to. Run by `make bench-scaling`. Writes `target/bench-scaling.json`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use support::http::KeepAlive;
use support::machine::{CpuSnapshot, CpuUse};
use support::processes::BoardProcess;
use support::{percentiles, Stack, MEMBER_EMAIL, MEMBER_PASSWORD};

/// Connections sending commands at once, as many as the event store's pool of one API
/// process has connections twice over, so that the pool, not the load, is the bound.
const CLIENTS: usize = 32;
/// How long each load runs.
const SECONDS: u64 = 10;

/// What PostgreSQL did for a load, from its own statistics.
#[derive(Clone, Copy, Default)]
struct PgWork {
    commits: i64,
    wal_bytes: f64,
    wal_syncs: i64,
}

impl PgWork {
    async fn read(pool: &PgPool) -> anyhow::Result<Self> {
        let (commits, wal_bytes, wal_syncs): (i64, f64, i64) = sqlx::query_as(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                    (SELECT wal_bytes::float8 FROM pg_stat_wal),
                    (SELECT wal_sync FROM pg_stat_wal)",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self {
            commits,
            wal_bytes,
            wal_syncs,
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            commits: self.commits - before.commits,
            wal_bytes: self.wal_bytes - before.wal_bytes,
            wal_syncs: self.wal_syncs - before.wal_syncs,
        }
    }
}

/// One load's figures.
struct Run {
    label: String,
    done: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    cpu: CpuUse,
    pg: PgWork,
}

impl Run {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    /// Milliseconds of one core a group spent per operation.
    fn cpu_ms_per_op(&self, group: &str) -> f64 {
        self.cpu.of(group) * self.elapsed.as_secs_f64() * 1000.0 / self.done.max(1) as f64
    }

    fn print(&self) {
        let (p50, p99, _) = percentiles(self.latencies.clone());
        let per = self.done.max(1) as f64;
        println!(
            "{:<46} {:>7.0}/s  p50 {:>6.2} ms  p99 {:>7.2} ms  failed {}",
            self.label,
            self.rate(),
            p50,
            p99,
            self.failed
        );
        println!(
            "    PostgreSQL per operation: {:.2} commits, {:.0} WAL bytes, {:.2} WAL flushes; CPU {:.2} ms",
            self.pg.commits as f64 / per,
            self.pg.wal_bytes / per,
            self.pg.wal_syncs as f64 / per,
            self.cpu_ms_per_op("PostgreSQL"),
        );
        println!("    CPU: {}", self.cpu.summary());
    }

    fn to_json(&self) -> Value {
        let (p50, p99, _) = percentiles(self.latencies.clone());
        let per = self.done.max(1) as f64;
        json!({
            "label": self.label, "perSecond": self.rate(), "done": self.done,
            "failed": self.failed, "p50Ms": p50, "p99Ms": p99,
            "postgresPerOperation": {
                "commits": self.pg.commits as f64 / per,
                "walBytes": self.pg.wal_bytes / per,
                "walFlushes": self.pg.wal_syncs as f64 / per,
                "cpuMs": self.cpu_ms_per_op("PostgreSQL"),
            },
            "cpu": self.cpu.to_json(),
        })
    }
}

/// Names the `board` processes this benchmark started, for the CPU table.
#[derive(Default, Clone)]
struct Roles(Vec<(u32, &'static str)>);

impl Roles {
    fn add(&mut self, process: &BoardProcess, role: &'static str) {
        self.0.push((process.pid(), role));
    }

    fn of(&self, pid: u32) -> Option<String> {
        self.0
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, role)| role.to_string())
    }
}

/// Runs `op` from `CLIENTS` tasks for `SECONDS`, measuring the machine meanwhile.
async fn measure<F, Fut>(label: &str, pool: &PgPool, roles: &Roles, op: F) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Vec<(Duration, bool)>>> + Send,
{
    let op = Arc::new(op);
    let pg_before = PgWork::read(pool).await?;
    let cpu_before = CpuSnapshot::take();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move { op(client).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        for (latency, ok) in task.await?? {
            if ok {
                latencies.push(latency);
            } else {
                failed += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = CpuSnapshot::take().since(&cpu_before, |pid| roles.of(pid));
    let pg = PgWork::read(pool).await?.since(pg_before);
    Ok(Run {
        label: label.to_string(),
        done: latencies.len(),
        failed,
        elapsed,
        latencies,
        cpu,
        pg,
    })
}

/// One client's commands until the deadline: posts created through the API process
/// `address`, on one keep-alive connection (a new one after an error).
async fn post_until(
    address: SocketAddr,
    token: Arc<str>,
    category: Arc<str>,
    deadline: Instant,
) -> anyhow::Result<Vec<(Duration, bool)>> {
    let path = format!("/board/categories/{category}/posts");
    let body = json!({"title": "Scaling", "content": "benchmark content"}).to_string();
    let mut connection = KeepAlive::connect(address).await?;
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        match connection
            .request("POST", &path, Some(&token), Some(&body))
            .await
        {
            Ok((status, _)) => samples.push((started.elapsed(), status == 201)),
            Err(_) => {
                samples.push((started.elapsed(), false));
                connection = KeepAlive::connect(address).await?;
            }
        }
    }
    Ok(samples)
}

/// Commands from `CLIENTS` connections spread over `addresses`.
async fn commands(
    label: &str,
    stack: &Stack,
    roles: &Roles,
    addresses: &[SocketAddr],
    token: &str,
) -> anyhow::Result<Run> {
    let addresses = addresses.to_vec();
    let token: Arc<str> = token.into();
    let category: Arc<str> = stack.category.as_str().into();
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    measure(label, &stack.state.pool, roles, move |client| {
        post_until(
            addresses[client % addresses.len()],
            token.clone(),
            category.clone(),
            deadline,
        )
    })
    .await
}

/// The baseline: the rows one command stores, as plain single-row INSERTs.
async fn plain_inserts(stack: &Stack, roles: &Roles) -> anyhow::Result<Run> {
    let pool = PgPoolOptions::new()
        .max_connections(CLIENTS as u32)
        .connect(&stack.database_url)
        .await?;
    sqlx::query("CREATE TABLE baseline_events (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let inserting = pool.clone();
    let run = measure(
        "baseline: plain INSERT of the event rows",
        &stack.state.pool,
        roles,
        move |_| {
            let pool = inserting.clone();
            async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let inserted = sqlx::query(
                        "INSERT INTO baseline_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                         VALUES ('post', $1, 1, 'PostCreated', '1.0', $2, '{}')",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(json!({"PostCreated": {"title": "Scaling", "content": "benchmark content"}}))
                    .execute(&pool)
                    .await;
                    samples.push((started.elapsed(), inserted.is_ok()));
                }
                Ok(samples)
            }
        },
    )
    .await?;
    pool.close().await;
    Ok(run)
}

async fn log_in(address: SocketAddr) -> anyhow::Result<String> {
    let body = json!({"email": MEMBER_EMAIL, "password": MEMBER_PASSWORD}).to_string();
    let (status, answer) = KeepAlive::connect(address)
        .await?
        .request("POST", "/auth", None, Some(&body))
        .await?;
    anyhow::ensure!(status == 200, "log-in: {status}");
    let tokens: Value = serde_json::from_slice(&answer)?;
    Ok(tokens["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no access token"))?
        .to_string())
}

/// Events the relay has acknowledged, of those in the store.
async fn relayed(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM events e, relay_checkpoints c
                  WHERE (e.transaction_id, e.global_position) <= (c.transaction_id, c.global_position)),
                (SELECT count(*) FROM events)",
    )
    .fetch_one(pool)
    .await?)
}

/// `count` projector processes of one new group applying the whole topic to fresh read
/// models. The rate is taken between 10 % and 90 % of the messages, so that starting and
/// sharing out the partitions' leases (`docs/ARCHITECTURE.md`) are not in it.
async fn projectors(
    stack: &Stack,
    roles: &Roles,
    count: usize,
    total: i64,
) -> anyhow::Result<Value> {
    let read_url =
        testkit::scratch::migrated_mysql(&testkit::mysql_server(), "board_bench").await?;
    let read_pool = sqlx::MySqlPool::connect(&read_url).await?;
    let group = format!("{}-scale-{count}", stack.topic);
    let mut roles = roles.clone();
    let cpu_before = CpuSnapshot::take();
    let started = Instant::now();
    let mut processes = Vec::new();
    for _ in 0..count {
        let process = BoardProcess::background(
            stack,
            "projector",
            Some(&read_url),
            &["--projector-group", &group],
        )?;
        roles.add(&process, "projectors");
        processes.push(process);
    }
    let (mut tenth, mut nine_tenths) = (None, None);
    loop {
        let applied: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(next_offset), 0) AS SIGNED)
               FROM projection_progress WHERE topic = ?",
        )
        .bind(&stack.topic)
        .fetch_one(&read_pool)
        .await?;
        if tenth.is_none() && applied * 10 >= total {
            tenth = Some(started.elapsed());
        }
        if nine_tenths.is_none() && applied * 10 >= total * 9 {
            nine_tenths = Some(started.elapsed());
        }
        if applied >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = CpuSnapshot::take().since(&cpu_before, |pid| roles.of(pid));
    drop(processes);
    let (tenth, nine_tenths) = (tenth.unwrap(), nine_tenths.unwrap());
    let rate = (total as f64 * 0.8) / (nine_tenths - tenth).as_secs_f64();
    println!(
        "{:<46} {:>7.0}/s  all {} in {:.1} s (first 10 % after {:.1} s)",
        format!("{count} projector process(es), one group"),
        rate,
        total,
        elapsed.as_secs_f64(),
        tenth.as_secs_f64()
    );
    println!("    CPU: {}", cpu.summary());
    Ok(json!({
        "projectors": count, "eventsPerSecond": rate, "events": total,
        "seconds": elapsed.as_secs_f64(), "cpu": cpu.to_json(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The stack's own relay and projector stay off: the parts run as processes below.
    let stack = Stack::start(false, false).await?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let api_args = [
        "--jwt-secret",
        secret.as_str(),
        "--commands-per-account",
        "1024",
        "--max-connections-per-address",
        "0",
    ];
    let mut roles = Roles::default();
    println!(
        "\nBoard on one machine: {CLIENTS} connections for {SECONDS} s per load, release build\n"
    );

    let baseline = plain_inserts(&stack, &roles).await?;
    baseline.print();

    let first = BoardProcess::api(&stack, &api_args).await?;
    roles.add(&first, "API processes");
    let token = log_in(first.address.unwrap()).await?;
    let one = commands(
        "commands, 1 API process",
        &stack,
        &roles,
        &[first.address.unwrap()],
        &token,
    )
    .await?;
    one.print();

    let second = BoardProcess::api(&stack, &api_args).await?;
    roles.add(&second, "API processes");
    let two = commands(
        "commands, 2 API processes",
        &stack,
        &roles,
        &[first.address.unwrap(), second.address.unwrap()],
        &token,
    )
    .await?;
    two.print();
    drop(second);

    // The whole system: the relay and a projector publish and apply as commands arrive
    // (they begin with the backlog of the loads above).
    let relay = BoardProcess::background(&stack, "relay", None, &[])?;
    roles.add(&relay, "relay");
    let projector = BoardProcess::background(&stack, "projector", None, &[])?;
    roles.add(&projector, "projectors");
    let whole = commands(
        "commands, 1 API process, relay and projector",
        &stack,
        &roles,
        &[first.address.unwrap()],
        &token,
    )
    .await?;
    whole.print();
    drop(projector);
    drop(first);

    // The read side alone: the topic holds every event once the relay caught up.
    let total = loop {
        let (relayed, stored) = relayed(&stack.state.pool).await?;
        if relayed >= stored {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(relay);
    println!();
    let mut read_side = Vec::new();
    for count in [1, 2] {
        read_side.push(projectors(&stack, &roles, count, total).await?);
    }

    let report = json!({
        "clients": CLIENTS, "seconds": SECONDS,
        "commands": [baseline.to_json(), one.to_json(), two.to_json(), whole.to_json()],
        "projectors": read_side,
    });
    std::fs::write(
        "target/bench-scaling.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("\nwritten: target/bench-scaling.json");
    stack.stop().await;
    Ok(())
}
