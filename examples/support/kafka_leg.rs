//! Measurements of the Kafka leg (relay, broker, projector) that `bench` and
//! `steadiness` share: a burst followed to the read model, a steady load, a backlog read
//! by the projector and by a plain consumer, and the broker at rest.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use sqlx::MySqlPool;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use board::kafka::{self, KafkaSettings};
use board::projector::Projector;

use super::Stack;

/// Concurrent clients of a load.
pub const CLIENTS: usize = 16;

/// Runs `total` operations over `CLIENTS` concurrent tasks; returns per-operation
/// latencies and the elapsed wall time.
pub async fn load<F, Fut>(total: usize, op: F) -> (Vec<Duration>, Duration)
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

/// Commands whose post the read model does not show yet, and when each was sent.
pub type Pending = Arc<Mutex<Vec<(String, Instant)>>>;

/// How often the watcher looks for pending posts while none has waited long: the
/// resolution of the steady command-to-read-model figures.
pub const WATCH_EVERY: Duration = Duration::from_millis(2);
/// The watcher looks every [`WATCH_EVERY`], or every 1/RESOLUTION of the longest wait
/// among the posts still pending when that is longer (from a wait of 100 ms on), so each
/// latency is read within 2 ms or within 2 % of that wait. Looking every 2 ms through a
/// burst, whose posts wait seconds, doubled MariaDB's CPU while the burst lasted
/// (docs/PERFORMANCE.md, "What is left of the gap").
const RESOLUTION: u32 = 50;

/// Follows posts to the read model: one watcher looks for every pending post in a single
/// query every [`WATCH_EVERY`], or less often while they wait long (see [`RESOLUTION`]).
/// Returns the list to add posts to, the flag to clear when no more will come, and the
/// watcher, which ends with the latencies once the list is empty and the flag cleared.
pub fn follow(stack: &Stack) -> (Pending, Arc<AtomicBool>, JoinHandle<Vec<Duration>>) {
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
                let mut every = WATCH_EVERY;
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
                    if let Some(longest) = pending.iter().map(|(_, sent)| now - *sent).max() {
                        every = every.max(longest / RESOLUTION);
                    }
                }
                tokio::time::sleep(every).await;
            }
        }
    });
    (pending, more_coming, watcher)
}

/// Commands sent, uncounted, before a measured load: a fresh stack's first concurrent
/// commands open its database connections, which made the first burst's latency a figure
/// of connection set-up (measured: p99 0.66 s on a fresh stack, 0.16-0.18 s on the next
/// bursts of the same stack).
pub const WARM_UP: usize = 10 * CLIENTS;

/// A burst: `commands` posts as fast as `CLIENTS` clients send them, every 20th followed
/// to the read model, after a warm-up that is not counted. Returns the command latencies,
/// the load's duration, and the command-to-read-model latencies of the followed ones.
pub async fn burst(
    stack: &Arc<Stack>,
    commands: usize,
) -> (Vec<Duration>, Duration, Vec<Duration>) {
    // The warm-up, followed to the read model, so that the measured load starts on a
    // pipeline at rest.
    let (pending, warming, watcher) = follow(stack);
    load(WARM_UP, {
        let (stack, pending) = (stack.clone(), pending.clone());
        move |i| {
            let (stack, pending) = (stack.clone(), pending.clone());
            async move {
                let (status, body) = stack.create_post(usize::MAX - i).await;
                assert_eq!(status, 201, "{body}");
                let id = body["postId"].as_str().unwrap().to_string();
                pending.lock().await.push((id, Instant::now()));
            }
        }
    })
    .await;
    warming.store(false, Ordering::SeqCst);
    watcher.await.unwrap();

    let (pending, loading, watcher) = follow(stack);
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
    let visible = watcher.await.unwrap();
    (latencies, elapsed, visible)
}

/// Sends `rate` commands a second for `seconds`, each on its own task (a client that
/// does not wait for the previous answer, as many users would not), and follows every
/// one to the read model.
pub async fn steady_load(stack: &Arc<Stack>, rate: u32, seconds: u32) -> Vec<Duration> {
    steady_load_recorded(stack, rate, seconds).await.0
}

/// As [`steady_load`], also returning each post created and when its command was sent,
/// for figures that follow the same commands elsewhere (the live streams).
pub async fn steady_load_recorded(
    stack: &Arc<Stack>,
    rate: u32,
    seconds: u32,
) -> (Vec<Duration>, Vec<(String, Instant)>) {
    let (pending, more_coming, watcher) = follow(stack);
    let (sent, _) = send_steadily(stack, rate, seconds, Some(pending)).await;
    more_coming.store(false, Ordering::SeqCst);
    (watcher.await.unwrap(), sent)
}

/// Sends `rate` posts a second for `seconds`, each on its own task; returns each post and
/// when its command was sent, and each command's latency (until its answer: the event
/// is stored). Each answered one joins `pending` at once, when given.
pub async fn send_steadily(
    stack: &Arc<Stack>,
    rate: u32,
    seconds: u32,
    pending: Option<Pending>,
) -> (Vec<(String, Instant)>, Vec<Duration>) {
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
            let answered = at.elapsed();
            if let Some(pending) = pending {
                pending.lock().await.push((id.clone(), at));
            }
            ((id, at), answered)
        }));
    }
    join_all(sent).await.into_iter().map(Result::unwrap).unzip()
}

/// How a new reader went through a backlog: the rate over the whole of it, starting up
/// included (as after a restart or a deploy), and how long until the first message or
/// applied batch.
pub struct Drain {
    pub first_after: Duration,
    pub rate: f64,
}

impl Drain {
    fn measured(started: Instant, first_after: Duration, total: i64) -> Self {
        Self {
            first_after,
            rate: total as f64 / started.elapsed().as_secs_f64(),
        }
    }
}

/// Publishes what `stack`'s commands stored with a relay of its own; returns the relay's
/// rate and how many events it published.
pub async fn relay_backlog(stack: &Stack) -> anyhow::Result<(f64, i64)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&stack.state.pool)
        .await?;
    // Done when the relay's checkpoint reaches the last event in its order. Not by
    // counting what lies behind the checkpoint, as this did: a count every 5 ms of up to
    // 20,000 events took 4 ms each (pg_stat_statements), and slowed the relay it timed.
    let (last_transaction, last_position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events
          ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(&stack.state.pool)
    .await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let relay = tokio::spawn(stack.state.relay().run(stopped));
    loop {
        let done: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM relay_checkpoints
                             WHERE (transaction_id, global_position) >= ($1::text::xid8, $2))",
        )
        .bind(&last_transaction)
        .bind(last_position)
        .fetch_one(&stack.state.pool)
        .await?;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = relay.await;
    Ok((rate, total))
}

/// A plain consumer, configured as the projector's, reading `total` messages of the
/// stack's topic from the start of every partition.
pub async fn plain_consume(settings: &KafkaSettings, total: i64) -> anyhow::Result<Drain> {
    let started = Instant::now();
    let consumer = kafka::consumer(settings, &format!("{}-plain", settings.topic))?;
    let partitions = kafka::partition_count(settings).await?;
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(&settings.topic, partition, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    consumer.recv().await?;
    let first_after = started.elapsed();
    for _ in 1..total {
        consumer.recv().await?;
    }
    Ok(Drain::measured(started, first_after, total))
}

/// A new projector applying the topic of `stack` until its progress covers `total`
/// messages.
pub async fn projector_drain(stack: &Stack, total: i64) -> anyhow::Result<Drain> {
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

/// The local broker's process, when `scripts/services.sh` started it (its pid file), or
/// as `BROKER_PID` names it.
pub fn broker_pid() -> Option<u32> {
    if let Some(pid) = std::env::var("BROKER_PID")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        return Some(pid);
    }
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/tansu/broker.pid");
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// `count` metadata requests for every topic (what `kafka-topics --list` asks), one
/// every `every`, on one connection; their latencies.
pub async fn metadata_latency(brokers: &str, count: usize, every: Duration) -> Vec<Duration> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("a metadata client");
    let consumer = Arc::new(consumer);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let consumer = consumer.clone();
        let took = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            consumer
                .fetch_metadata(None, Duration::from_secs(30))
                .map(|_| started.elapsed())
        })
        .await
        .unwrap();
        if let Ok(took) = took {
            samples.push(took);
        }
        tokio::time::sleep(every).await;
    }
    samples
}

/// The broker over `window`: its CPU share (when its process is known) and the p50/p99,
/// in milliseconds, of a metadata request asked every 100 ms meanwhile.
pub struct AtRest {
    pub cpu: Option<f64>,
    pub metadata: (f64, f64),
}

pub async fn at_rest(brokers: &str, window: Duration) -> AtRest {
    let samples = (window.as_millis() / 100) as usize;
    let cpu = async {
        match broker_pid() {
            Some(pid) => super::machine::cpu_share(pid, window).await,
            None => None,
        }
    };
    let (cpu, metadata) = tokio::join!(
        cpu,
        metadata_latency(brokers, samples, Duration::from_millis(100))
    );
    let (p50, p99, _) = super::percentiles(metadata);
    AtRest {
        cpu,
        metadata: (p50, p99),
    }
}
