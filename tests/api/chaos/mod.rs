//! The fault suite. Under a steady load of real HTTP commands it kills -9 and restarts the
//! API server, the relay and the projector, and stops and restarts the broker and MySQL.
//! Then every command that was answered 2xx ("accepted") must have its event in the event
//! store, in Kafka and in the read model, and `board projections verify` must pass.
//!
//! Every part runs as its own `board serve --components …` process, so each can die
//! alone. The broker and the MySQL server are private to this test (see
//! `private_services`): stopping the shared ones would break the tests running beside it.
//! PostgreSQL is the shared server, with a database of the test's own.
//!
//! Faults come in rounds (see [`plan`]): the sequence of issue 17 (the whole server killed,
//! then the broker), the schedule that takes each part down once per round, and rounds
//! drawn at random from a printed seed (`CHAOS_SEED` replays them), in which up to three
//! parts go down and come back at random moments, overlapping. After each round the test
//! waits until everything accepted so far has reached the read model, so a part that never
//! recovers is named by the round that broke it; a random round also checks the topic and
//! runs `board projections verify`. `make test` runs the fixed sequence, one schedule
//! round and two random rounds; `make chaos` runs more (`CHAOS_ROUNDS`,
//! `CHAOS_RANDOM_ROUNDS`). Nothing here asserts on a duration: waits poll, report progress
//! and give up only when nothing has moved for a long while; each round's recovery time
//! is printed in the summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::sync::SemaphorePermit;
use tokio::task::JoinHandle;
use uuid::Uuid;

use projections::Envelope;

use crate::http_client::{self, Reply};
use crate::pipeline::{fresh_read_database_on, Pipeline};
use crate::private_services::{
    free_port, room_for_board_processes, Daemon, PrivateBroker, PrivateMysql, Workdir,
};

mod plan;

use plan::{Fault, Part, Step};

const PARTITIONS: u32 = 3;
/// Members writing posts and comments; the admin writes categories besides them.
const MEMBERS: usize = 3;
/// Load between two rounds.
const LOAD_BETWEEN_FAULTS: Duration = Duration::from_secs(3);
/// Each member's pause between two commands: a steady load that leaves the two cores of
/// a small machine to the pipeline (and to the tests running beside this one).
const MEMBER_PACE: Duration = Duration::from_millis(20);
const ADMIN_PACE: Duration = Duration::from_millis(500);
/// A wait for convergence gives up once nothing has moved for this long.
const STALL_LIMIT: Duration = Duration::from_secs(180);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Shared by the in-process app (which logs the accounts in) and the API processes, so
/// tokens outlive a killed server.
const JWT_SECRET: &str = "chaos-suite-signing-key-at-least-32-bytes-long";

/// One event, as the store, Kafka and the read model can all name it.
type EventKey = (String, String, i64); // (aggregate type, aggregate id, sequence)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_under_load_loses_no_accepted_event() {
    let started = Instant::now();
    let plan = Plan::from_env();
    println!("chaos: {}", plan.describe());
    let mut cluster = Cluster::start().await;
    let load = Load::start(&cluster).await;

    let mut outcomes = Vec::new();
    for round in &plan.rounds {
        tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
        println!("chaos: {}: {}", round.name, labels(round));
        let outcome = cluster.run(round, &load).await;
        if round.checked {
            cluster.check_round(&load, &round.name).await;
        }
        outcomes.push(outcome);
    }
    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    let (tally, accepted) = load.stop().await;
    println!("chaos: load stopped; waiting for the pipeline to converge");

    cluster.wait_for_relay().await;
    let stored = cluster.stored_events().await;
    let (in_kafka, messages) = cluster.topic_events().await;
    cluster
        .wait_for_read_model(&accepted, "after the load")
        .await;
    let versions = cluster.read_model_versions().await;
    let lost = Losses::find(&accepted, &stored, &in_kafka, &versions);
    let (verify_code, verify_out) = cluster.verify().await;

    print_summary(&Summary {
        plan: &plan,
        elapsed: started.elapsed(),
        outcomes: &outcomes,
        tally: &tally,
        accepted: accepted.len(),
        stored: stored.len(),
        in_kafka: in_kafka.len(),
        messages,
        lost: &lost,
        verify: verify_out.trim(),
    });
    lost.assert_none();
    let unpublished: Vec<&EventKey> = stored.difference(&in_kafka).collect();
    assert!(
        unpublished.is_empty(),
        "{} stored events never reached Kafka, e.g. {:?}",
        unpublished.len(),
        &unpublished[..unpublished.len().min(10)]
    );
    assert_eq!(verify_code, 0, "board projections verify:\n{verify_out}");
    for outcome in &outcomes {
        for (fault, accepted) in &outcome.accepted_while_down {
            // Guarantee 7: the write side does not depend on the broker or MySQL. Only
            // where the API itself was up all along.
            let api_down_too = outcome.faults.iter().any(|other| {
                matches!(other.part, Part::Api | Part::Server)
                    && other.at < fault.at + fault.down
                    && fault.at < other.at + other.down + Duration::from_secs(1)
            });
            if fault.part.is_read_side_store()
                && fault.down >= Duration::from_secs(2)
                && !api_down_too
            {
                assert!(
                    *accepted > 0,
                    "no command was accepted while {} was down ({})",
                    fault.part.name(),
                    outcome.round
                );
            }
        }
    }
}

/// The rounds to run, from the environment:
/// - the fixed sequence of issue 17 (server kill, then broker kill), always;
/// - `CHAOS_ROUNDS` rounds of the schedule (every part once; default 1);
/// - `CHAOS_RANDOM_ROUNDS` rounds drawn at random (default 2) from `CHAOS_SEED`
///   (default: drawn from the clock, and printed, so that a failure can be replayed).
struct Plan {
    seed: u64,
    rounds: Vec<PlannedRound>,
}

struct PlannedRound {
    round: plan::Round,
    /// Random rounds end with the full check (store, topic, read model, verify).
    checked: bool,
}

impl std::ops::Deref for PlannedRound {
    type Target = plan::Round;
    fn deref(&self) -> &plan::Round {
        &self.round
    }
}

impl Plan {
    fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name).ok().map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
            })
        };
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let seed = number("CHAOS_SEED", clock % 1_000_000);
        let schedule_rounds = number("CHAOS_ROUNDS", 1) as usize;
        let random_rounds = number("CHAOS_RANDOM_ROUNDS", 2) as usize;
        let unchecked = |round: plan::Round| PlannedRound {
            round,
            checked: false,
        };
        let mut rounds = vec![unchecked(plan::server_then_broker_kill())];
        for n in 1..=schedule_rounds {
            rounds.extend(plan::schedule(n).into_iter().map(unchecked));
        }
        rounds.extend(
            plan::random(seed, random_rounds)
                .into_iter()
                .map(|round| PlannedRound {
                    round,
                    checked: true,
                }),
        );
        Self { seed, rounds }
    }

    fn describe(&self) -> String {
        format!(
            "{} rounds (seed {}; replay with CHAOS_SEED={})",
            self.rounds.len(),
            self.seed,
            self.seed
        )
    }
}

fn labels(round: &plan::Round) -> String {
    round
        .faults
        .iter()
        .map(|f| {
            format!(
                "{} at {:.1}s for {:.1}s",
                f.label(),
                f.at.as_secs_f64(),
                f.down.as_secs_f64()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a round did.
struct Outcome {
    round: String,
    faults: Vec<Fault>,
    /// Commands accepted while each fault's part was down.
    accepted_while_down: Vec<(Fault, usize)>,
    /// From the last restart until the read model held everything accepted before it.
    recovery: Duration,
}

// ---------------------------------------------------------------------------------------
// The cluster: private broker and MySQL, and one process per component
// ---------------------------------------------------------------------------------------

struct Cluster {
    // Processes first: fields drop in order, and the work folder must outlive them.
    api: Daemon,
    relay: Daemon,
    projector: Daemon,
    broker: PrivateBroker,
    mysql: PrivateMysql,
    pipeline: Pipeline,
    api_addr: SocketAddr,
    work: Workdir,
    /// Its place among the `board` processes tests run at once (api, relay, projector).
    _room: SemaphorePermit<'static>,
}

impl Cluster {
    async fn start() -> Self {
        let room = room_for_board_processes(3).await;
        let work = Workdir::new("board-chaos");
        let broker = PrivateBroker::start(&work).await;
        let mysql = PrivateMysql::start(&work).await;
        let read_url = fresh_read_database_on(&mysql.server_url).await;
        let app_args = ["--jwt-secret", JWT_SECRET, "--access-token-ttl", "12h"];
        let pipeline =
            Pipeline::on_servers(PARTITIONS, &read_url, &broker.brokers, &app_args).await;
        let api_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cluster = Self {
            api: component(&pipeline, &work, "api", Some(api_addr)),
            relay: component(&pipeline, &work, "relay", None),
            projector: component(&pipeline, &work, "projector", None),
            broker,
            mysql,
            pipeline,
            api_addr,
            work,
            _room: room,
        };
        cluster.relay.start().await;
        cluster.projector.start().await;
        cluster.api.start().await;
        println!(
            "chaos: running in {} (api {}, broker {}, {})",
            cluster.work.path().display(),
            cluster.api_addr,
            cluster.broker.brokers,
            cluster.mysql.server_url
        );
        cluster
    }

    fn daemons(&mut self, part: Part) -> Vec<&mut Daemon> {
        let Cluster {
            api,
            relay,
            projector,
            broker,
            mysql,
            ..
        } = self;
        match part {
            Part::Api => vec![api],
            Part::Relay => vec![relay],
            Part::Projector => vec![projector],
            Part::Server => vec![api, relay, projector],
            Part::Broker => vec![&mut broker.daemon],
            Part::Mysql => vec![&mut mysql.daemon],
        }
    }

    /// Plays a round's timeline under the load, then waits until the read model holds
    /// every command accepted so far.
    async fn run(&mut self, round: &plan::Round, load: &Load) -> Outcome {
        let began = Instant::now();
        let mut down_since: Vec<(Part, usize)> = Vec::new();
        let mut accepted_while_down = Vec::new();
        for (at, step) in round.timeline() {
            tokio::time::sleep(at.saturating_sub(began.elapsed())).await;
            match step {
                Step::Down(part, kill) => {
                    for daemon in self.daemons(part) {
                        if kill {
                            daemon.kill().await;
                        } else {
                            daemon.stop().await;
                        }
                    }
                    down_since.push((part, load.accepted_count()));
                }
                Step::Up(part) => {
                    for daemon in self.daemons(part) {
                        daemon.start().await;
                    }
                    let before = down_since
                        .iter()
                        .find(|(p, _)| *p == part)
                        .map_or(0, |(_, count)| *count);
                    let fault = *round
                        .faults
                        .iter()
                        .find(|f| f.part == part)
                        .expect("a fault of the round");
                    accepted_while_down.push((fault, load.accepted_count() - before));
                }
            }
        }
        let restarted = Instant::now();
        let label = format!("after {}", round.name);
        self.wait_for_read_model(&load.accepted_so_far(), &label)
            .await;
        Outcome {
            round: round.name.clone(),
            faults: round.faults.clone(),
            accepted_while_down,
            recovery: restarted.elapsed(),
        }
    }

    /// Everything accepted so far is in the store, the topic and the read model, and
    /// the read model equals one rebuilt from the store. The load pauses meanwhile, so
    /// that the two can be compared at rest.
    async fn check_round(&self, load: &Load, round: &str) {
        load.pause(true).await;
        let accepted = load.accepted_so_far();
        self.wait_for_relay().await;
        self.wait_for_read_model(&accepted, round).await;
        let stored = self.stored_events().await;
        let (in_kafka, _) = self.topic_events().await;
        let versions = self.read_model_versions().await;
        let lost = Losses::find(&accepted, &stored, &in_kafka, &versions);
        lost.assert_none();
        let unpublished = stored.difference(&in_kafka).count();
        assert_eq!(
            unpublished, 0,
            "{round}: stored events missing from the topic"
        );
        let (code, out) = self.verify().await;
        assert_eq!(code, 0, "{round}: board projections verify:\n{out}");
        println!(
            "chaos: {round}: checked {} accepted, {} stored, all in the topic and the read model; verify passed",
            accepted.len(),
            stored.len()
        );
        load.pause(false).await;
    }

    /// Waits until the relay's checkpoint covers every stored event.
    async fn wait_for_relay(&self) {
        let pipeline = &self.pipeline;
        let progress = || async { (pipeline.relayed().await, pipeline.stored_events().await) };
        if let Err(stalled) = converge("relay: events published", progress).await {
            panic!("{stalled}\n{}", last_lines(&self.relay));
        }
    }

    /// Waits until every command of `accepted` has its event in the read model.
    async fn wait_for_read_model(&self, accepted: &[Accepted], when: &str) {
        let progress = || async {
            let versions = self.read_model_versions().await;
            let present = accepted.iter().filter(|a| a.is_in(&versions)).count();
            (present as i64, accepted.len() as i64)
        };
        let what = format!("{when}: accepted events in the read model");
        if let Err(stalled) = converge(&what, progress).await {
            panic!(
                "{stalled}\nrelay: {} of {} stored events published\nprojection_progress:\n{}\n{}\n{}",
                self.pipeline.relayed().await,
                self.pipeline.stored_events().await,
                self.projection_progress().await,
                last_lines(&self.relay),
                last_lines(&self.projector)
            );
        }
    }

    /// Where the projector is on each partition, one line each.
    async fn projection_progress(&self) -> String {
        let rows: Vec<(i32, i64, String, String)> = sqlx::query_as(
            "SELECT partition_id, next_offset, updated_by, CAST(updated_at AS CHAR)
               FROM projection_progress ORDER BY partition_id",
        )
        .fetch_all(&self.pipeline.read_pool)
        .await
        .unwrap_or_default();
        rows.iter()
            .map(|(p, offset, by, at)| {
                format!("  partition {p}: next offset {offset}, by {by} at {at}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn stored_events(&self) -> HashSet<EventKey> {
        sqlx::query_as("SELECT aggregate_type, aggregate_id, sequence FROM events")
            .fetch_all(&self.pipeline.app.pool)
            .await
            .expect("read the event store")
            .into_iter()
            .collect()
    }

    /// The version of every category, post and comment row of the read model.
    async fn read_model_versions(&self) -> HashMap<(String, String), i64> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT 'category', category_id, version FROM categories_view
             UNION ALL SELECT 'post', post_id, version FROM posts_view
             UNION ALL SELECT 'comment', comment_id, version FROM comments_view",
        )
        .fetch_all(&self.pipeline.read_pool)
        .await
        .expect("read the read model");
        rows.into_iter()
            .map(|(kind, id, version)| ((kind, id), version))
            .collect()
    }

    /// Every distinct event in the topic, read from the beginning up to the high
    /// watermark of each partition, and how many messages that took (re-publications
    /// after a relay was killed come as extra messages).
    async fn topic_events(&self) -> (HashSet<EventKey>, usize) {
        let brokers = self.broker.brokers.clone();
        let topic = self.pipeline.topic.clone();
        tokio::task::spawn_blocking(move || read_whole_topic(&brokers, &topic))
            .await
            .unwrap()
    }

    async fn verify(&self) -> (i32, String) {
        self.pipeline
            .run_board(&["projections", "verify", "--wait", "60s"])
            .await
    }
}

/// `board serve --components <name>` on the pipeline's stores and the private servers.
fn component(
    pipeline: &Pipeline,
    work: &Workdir,
    name: &str,
    listen: Option<SocketAddr>,
) -> Daemon {
    let listen_arg = listen.map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
    let mail_dir = work.dir("mail").display().to_string();
    let partitions = PARTITIONS.to_string();
    let command = pipeline.board(&[
        "--listen",
        &listen_arg,
        "--jwt-secret",
        JWT_SECRET,
        "--kafka-partitions",
        &partitions,
        "--mail-dir",
        &mail_dir,
        "serve",
        "--components",
        name,
    ]);
    let log = work.path().join(format!("{name}.log"));
    Daemon::new(name, &command, log, listen.map(|a| a.port()))
}

/// Polls `progress` (reached, target) until reached >= target, printing it now and
/// then. Gives up only when it has not moved for STALL_LIMIT, saying where it stopped.
async fn converge<F, Fut>(what: &str, mut progress: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (i64, i64)>,
{
    let mut best = -1;
    let mut moved = Instant::now();
    let mut printed = Instant::now();
    loop {
        let (reached, target) = progress().await;
        if reached >= target {
            println!("chaos: {what}: {reached} of {target}");
            return Ok(());
        }
        if reached > best {
            best = reached;
            moved = Instant::now();
        }
        if moved.elapsed() >= STALL_LIMIT {
            return Err(format!(
                "{what}: stuck at {reached} of {target} for {STALL_LIMIT:?}"
            ));
        }
        if printed.elapsed() >= PROGRESS_EVERY {
            println!("chaos: {what}: {reached} of {target} so far");
            printed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn last_lines(daemon: &Daemon) -> String {
    format!(
        "last lines of {}:\n{}",
        daemon.log().display(),
        daemon.log_tail()
    )
}

fn read_whole_topic(brokers: &str, topic: &str) -> (HashSet<EventKey>, usize) {
    let timeout = Duration::from_secs(30);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("chaos-check-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("the topic's metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    // The next offset each partition must reach; empty partitions are done already.
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .expect("the partition's high watermark");
        if high > 0 {
            remaining.insert(partition, high);
        }
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign the partitions");

    let mut events = HashSet::new();
    let mut messages = 0;
    while !remaining.is_empty() {
        let Some(message) = consumer.poll(STALL_LIMIT) else {
            // Where the consumer stands tells a stalled fetch from an offset reset.
            let position = consumer.position().map(|list| format!("{list:?}"));
            panic!(
                "reading topic {topic}: nothing for {STALL_LIMIT:?}; still to read: \
                 {remaining:?}; the consumer's position: {position:?}"
            )
        };
        let message = message.expect("a message from the topic");
        messages += 1;
        let envelope: Envelope = serde_json::from_slice(message.payload().unwrap_or_default())
            .expect("every message is an event envelope");
        events.insert((
            envelope.aggregate_type,
            envelope.aggregate_id,
            envelope.sequence,
        ));
        if remaining
            .get(&message.partition())
            .is_some_and(|&high| message.offset() + 1 >= high)
        {
            remaining.remove(&message.partition());
        }
    }
    (events, messages)
}

// ---------------------------------------------------------------------------------------
// The load: members posting, editing and commenting, an admin adding categories
// ---------------------------------------------------------------------------------------

/// A command answered 2xx, and the event it reported (`ETag` is the new version).
#[derive(Clone)]
struct Accepted {
    command: &'static str,
    event: EventKey,
}

impl Accepted {
    fn is_in(&self, versions: &HashMap<(String, String), i64>) -> bool {
        let (kind, id, sequence) = &self.event;
        versions
            .get(&(kind.clone(), id.clone()))
            .is_some_and(|version| version >= sequence)
    }
}

/// Every client's accepted commands, in the order they were answered.
type AcceptedLog = Arc<Mutex<Vec<Accepted>>>;

/// What a client sent and why some of it was not accepted.
#[derive(Default)]
struct Tally {
    sent: usize,
    /// Why commands were not accepted: "HTTP 503", "connection refused", ...
    refused: BTreeMap<String, usize>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        for (reason, count) in other.refused {
            *self.refused.entry(reason).or_default() += count;
        }
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    /// While set, clients send nothing new.
    paused: Arc<AtomicBool>,
    /// Requests sent and not yet answered.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    accepted: AcceptedLog,
    clients: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// Makes the admin and the members (verified, logged in, through the in-process
    /// app on the same store), one category, then sets them all writing.
    async fn start(cluster: &Cluster) -> Self {
        let app = &cluster.pipeline.app;
        let admin = app.admin().await;
        let first_category = app.category(&admin, "Chaos").await;
        let categories = Arc::new(Mutex::new(vec![first_category]));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = AcceptedLog::default();
        let mut clients = Vec::new();
        let mut spawn = |token: String, role: Role| {
            let client = Client {
                addr: cluster.api_addr,
                token,
                role,
                categories: categories.clone(),
                posts: Vec::new(),
                comments: Vec::new(),
                tally: Tally::default(),
                accepted: accepted.clone(),
            };
            clients.push(tokio::spawn(client.run(
                stop.clone(),
                paused.clone(),
                in_flight.clone(),
            )));
        };
        spawn(admin.token.clone(), Role::Admin);
        for i in 0..MEMBERS {
            let member = app
                .member(&format!("member{i}@example.com"), &format!("member{i}"))
                .await;
            spawn(member.token, Role::Member);
        }
        Self {
            stop,
            paused,
            in_flight,
            accepted,
            clients,
        }
    }

    /// Pausing waits until every request sent before it has been answered (and, if
    /// accepted, recorded).
    async fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        while paused && self.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn accepted_count(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    fn accepted_so_far(&self) -> Vec<Accepted> {
        self.accepted.lock().unwrap().clone()
    }

    /// Stops every client; returns their tallies and every accepted command.
    async fn stop(self) -> (Tally, Vec<Accepted>) {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = Tally::default();
        for client in self.clients {
            total.merge(client.await.expect("a load client panicked"));
        }
        let accepted = std::mem::take(&mut *self.accepted.lock().unwrap());
        (total, accepted)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Member,
}

/// What a client does next.
enum Command {
    CreateCategory,
    CreatePost { category: String },
    EditPost { post: String },
    AddComment { post: String },
    DeleteComment { comment: String },
    DeletePost { post: String },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::CreateCategory => "create category",
            Command::CreatePost { .. } => "create post",
            Command::EditPost { .. } => "edit post",
            Command::AddComment { .. } => "add comment",
            Command::DeleteComment { .. } => "delete comment",
            Command::DeletePost { .. } => "delete post",
        }
    }

    /// Method, path and body.
    fn request(&self) -> (&'static str, String, Option<Value>) {
        match self {
            Command::CreateCategory => (
                "POST",
                "/board/categories".into(),
                Some(
                    json!({ "name": format!("Chaos {}", &Uuid::new_v4().simple().to_string()[..12]) }),
                ),
            ),
            Command::CreatePost { category } => (
                "POST",
                format!("/board/categories/{category}/posts"),
                Some(json!({ "title": "Under fire", "content": "load" })),
            ),
            Command::EditPost { post } => (
                "PATCH",
                format!("/board/posts/{post}"),
                Some(json!({ "content": "edited under fire" })),
            ),
            Command::AddComment { post } => (
                "POST",
                format!("/board/posts/{post}/comments"),
                Some(json!({ "content": "still here" })),
            ),
            Command::DeleteComment { comment } => {
                ("DELETE", format!("/board/comments/{comment}"), None)
            }
            Command::DeletePost { post } => ("DELETE", format!("/board/posts/{post}"), None),
        }
    }

    /// The aggregate the command's event belongs to: its type and id (for a creation,
    /// the id is in the answer).
    fn aggregate(&self, reply: &Reply) -> (&'static str, String) {
        let created = |field: &str| {
            reply
                .json()
                .and_then(|body| body[field].as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    panic!("{} answered {} without {field}", self.name(), reply.status)
                })
        };
        match self {
            Command::CreateCategory => ("category", created("categoryId")),
            Command::CreatePost { .. } => ("post", created("postId")),
            Command::AddComment { .. } => ("comment", created("commentId")),
            Command::EditPost { post } | Command::DeletePost { post } => ("post", post.clone()),
            Command::DeleteComment { comment } => ("comment", comment.clone()),
        }
    }
}

struct Client {
    addr: SocketAddr,
    token: String,
    role: Role,
    categories: Arc<Mutex<Vec<String>>>,
    /// This member's live posts and comments, oldest first.
    posts: Vec<String>,
    comments: Vec<String>,
    tally: Tally,
    accepted: AcceptedLog,
}

impl Client {
    async fn run(
        mut self,
        stop: Arc<AtomicBool>,
        paused: Arc<AtomicBool>,
        in_flight: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Tally {
        let pace = match self.role {
            Role::Admin => ADMIN_PACE,
            Role::Member => MEMBER_PACE,
        };
        let mut turn = 0;
        while !stop.load(Ordering::SeqCst) {
            if paused.load(Ordering::SeqCst) {
                tokio::time::sleep(pace).await;
                continue;
            }
            turn += 1;
            let command = self.next_command(turn);
            // Counted before the pause flag is read again: a pause that begins now waits
            // for this request.
            in_flight.fetch_add(1, Ordering::SeqCst);
            if paused.load(Ordering::SeqCst) {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            self.send(command).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            tokio::time::sleep(pace).await;
        }
        self.tally
    }

    /// A member's cycle of six turns: post, edit, two comments, delete a comment, and
    /// delete an old post once there are a few.
    fn next_command(&self, turn: usize) -> Command {
        if self.role == Role::Admin {
            return Command::CreateCategory;
        }
        let newest_post = self.posts.last().cloned();
        match (turn % 6, newest_post) {
            (1, Some(post)) => Command::EditPost { post },
            (2 | 3, Some(post)) => Command::AddComment { post },
            (4, Some(post)) => match self.comments.first() {
                Some(comment) => Command::DeleteComment {
                    comment: comment.clone(),
                },
                None => Command::AddComment { post },
            },
            (5, Some(_)) if self.posts.len() > 3 => Command::DeletePost {
                post: self.posts[0].clone(),
            },
            _ => {
                let categories = self.categories.lock().unwrap();
                Command::CreatePost {
                    category: categories[turn % categories.len()].clone(),
                }
            }
        }
    }

    async fn send(&mut self, command: Command) {
        let (method, path, body) = command.request();
        self.tally.sent += 1;
        let reply =
            match http_client::send(self.addr, method, &path, Some(&self.token), body.as_ref())
                .await
            {
                Ok(reply) if reply.is_success() => reply,
                Ok(reply) => {
                    // Gone already: an earlier delete went through but its answer was
                    // lost with a killed server. Forget it, or it is asked for forever.
                    let deleting = matches!(
                        command,
                        Command::DeleteComment { .. } | Command::DeletePost { .. }
                    );
                    if deleting && reply.status == 404 {
                        self.remember(&command, "");
                    }
                    return self.refused(format!("HTTP {}", reply.status));
                }
                Err(error) => return self.refused(error.kind().to_string()),
            };
        let (kind, id) = command.aggregate(&reply);
        let sequence = version(&reply).unwrap_or_else(|| {
            panic!(
                "{} answered {} without an ETag",
                command.name(),
                reply.status
            )
        });
        self.remember(&command, &id);
        self.accepted.lock().unwrap().push(Accepted {
            command: command.name(),
            event: (kind.to_string(), id, sequence),
        });
    }

    fn refused(&mut self, reason: String) {
        *self.tally.refused.entry(reason).or_default() += 1;
    }

    /// Keeps the client's picture of its own posts and comments current.
    fn remember(&mut self, command: &Command, id: &str) {
        match command {
            Command::CreateCategory => self.categories.lock().unwrap().push(id.to_string()),
            Command::CreatePost { .. } => self.posts.push(id.to_string()),
            Command::AddComment { .. } => self.comments.push(id.to_string()),
            Command::DeleteComment { comment } => self.comments.retain(|c| c != comment),
            Command::DeletePost { post } => self.posts.retain(|p| p != post),
            Command::EditPost { .. } => {}
        }
    }
}

/// The version an `ETag: "3"` names.
fn version(reply: &Reply) -> Option<i64> {
    reply.header("etag")?.trim_matches('"').parse().ok()
}

// ---------------------------------------------------------------------------------------
// Checks and the summary
// ---------------------------------------------------------------------------------------

/// Accepted commands whose event is missing somewhere.
struct Losses<'a> {
    from_store: Vec<&'a Accepted>,
    from_kafka: Vec<&'a Accepted>,
    from_read_model: Vec<&'a Accepted>,
}

impl<'a> Losses<'a> {
    fn find(
        accepted: &'a [Accepted],
        stored: &HashSet<EventKey>,
        in_kafka: &HashSet<EventKey>,
        versions: &HashMap<(String, String), i64>,
    ) -> Self {
        let missing = |place: &dyn Fn(&Accepted) -> bool| -> Vec<&'a Accepted> {
            accepted.iter().filter(|a| !place(a)).collect()
        };
        Self {
            from_store: missing(&|a| stored.contains(&a.event)),
            from_kafka: missing(&|a| in_kafka.contains(&a.event)),
            from_read_model: missing(&|a| a.is_in(versions)),
        }
    }

    /// Accepted commands missing anywhere (each counted once).
    fn count(&self) -> usize {
        let mut events: HashSet<&EventKey> = HashSet::new();
        for lost in [&self.from_store, &self.from_kafka, &self.from_read_model] {
            events.extend(lost.iter().map(|a| &a.event));
        }
        events.len()
    }

    fn assert_none(&self) {
        let describe = |place: &str, lost: &[&Accepted]| {
            let examples: Vec<String> = lost
                .iter()
                .take(10)
                .map(|a| format!("{} -> {:?}", a.command, a.event))
                .collect();
            format!("missing from {place}: {} {examples:?}", lost.len())
        };
        assert_eq!(
            self.count(),
            0,
            "accepted commands lost their event:\n{}\n{}\n{}",
            describe("the event store", &self.from_store),
            describe("Kafka", &self.from_kafka),
            describe("the read model", &self.from_read_model),
        );
    }
}

struct Summary<'a> {
    plan: &'a Plan,
    elapsed: Duration,
    outcomes: &'a [Outcome],
    tally: &'a Tally,
    accepted: usize,
    stored: usize,
    in_kafka: usize,
    messages: usize,
    lost: &'a Losses<'a>,
    verify: &'a str,
}

fn print_summary(s: &Summary) {
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in s.outcomes {
        for fault in &outcome.faults {
            *faults.entry(fault.label()).or_default() += 1;
        }
    }
    let counted = |map: &BTreeMap<String, usize>| {
        map.iter()
            .map(|(what, n)| format!("{what} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("---- chaos summary ----");
    println!(
        "{}, clients: {MEMBERS} members + 1 admin, {:.1}s in all",
        s.plan.describe(),
        s.elapsed.as_secs_f64()
    );
    println!("faults injected: {}", counted(&faults));
    for o in s.outcomes {
        let down: usize = o.accepted_while_down.iter().map(|(_, n)| n).sum();
        println!(
            "  {}: {down} commands accepted while a part was down, read model caught up {:.1}s after the last restart",
            o.round,
            o.recovery.as_secs_f64()
        );
    }
    if let Some(longest) = s.outcomes.iter().max_by_key(|o| o.recovery) {
        println!(
            "longest recovery: {:.1}s ({})",
            longest.recovery.as_secs_f64(),
            longest.round
        );
    }
    println!("commands sent: {}", s.tally.sent);
    println!("commands accepted: {}", s.accepted);
    println!("not accepted: {}", counted(&s.tally.refused));
    println!(
        "events: {} in the store, {} distinct in Kafka ({} messages)",
        s.stored, s.in_kafka, s.messages
    );
    println!(
        "events lost: {} (missing from the store {}, from Kafka {}, from the read model {})",
        s.lost.count(),
        s.lost.from_store.len(),
        s.lost.from_kafka.len(),
        s.lost.from_read_model.len()
    );
    println!("projections verify: {}", s.verify);
    println!("-----------------------");
}
