//! The whole pipeline for one test: its own PostgreSQL and MySQL databases, its own Kafka
//! topic and projector group, and the relay and projector running in-process (as tasks) or
//! as real `board` processes.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use sqlx::MySqlPool;
use uuid::Uuid;

use projections::snapshot;
use projections::Envelope;

use testkit::Stack;

use crate::common::TestApp;

pub use testkit::{brokers, Running};

/// A new, empty, migrated MySQL database for one test.
pub async fn fresh_read_database() -> String {
    fresh_read_database_on(&testkit::mysql_server()).await
}

/// A new, empty, migrated MySQL database on the server of `server_url`.
pub async fn fresh_read_database_on(server_url: &str) -> String {
    testkit::scratch::migrated_mysql(server_url, "board_test")
        .await
        .expect("create a test read database (is `make services` up?)")
}

pub struct Pipeline {
    pub app: TestApp,
    pub database_url: String,
    pub read_url: String,
    /// The Kafka bootstrap servers of this pipeline (the shared broker unless chosen).
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub read_pool: MySqlPool,
}

/// `board` on the event store at `database_url` and the read models at `read_url`, then
/// `args`; it logs warnings only.
pub fn board_on(database_url: &str, read_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_board"));
    command
        .args(["--database-url", database_url])
        .args(["--read-database-url", read_url])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// A `board` process; killed (SIGKILL) when dropped.
pub struct Process(pub Child);

impl Process {
    /// Starts `command` in the background, its warnings on the test's output.
    pub fn spawn(mut command: Command) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the board binary");
        Self(child)
    }

    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Sends `signal` ("INT", "TERM"), as an operator would, and waits for the exit.
    pub async fn signal(mut self, signal: &str) -> std::process::ExitStatus {
        send_signal(self.0.id(), signal);
        tokio::task::spawn_blocking(move || self.0.wait().unwrap())
            .await
            .unwrap()
    }
}

/// `kill -<signal> <pid>`.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
    assert!(
        sent.is_ok_and(|status| status.success()),
        "kill -{signal} {pid} failed"
    );
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Pipeline {
    pub async fn new(partitions: u32) -> Self {
        Self::with_read_url(partitions, None).await
    }

    /// A pipeline whose application reaches the read database `read_url` through
    /// `app_read_url` (a proxy, say); checks use `read_url` directly.
    pub async fn with_read_url_override(
        partitions: u32,
        read_url: &str,
        app_read_url: &str,
    ) -> Self {
        let read_url = read_url.to_string();
        Self::build(partitions, read_url, Some(app_read_url), brokers(), &[]).await
    }

    /// A pipeline on servers of the caller's choosing: the read database `read_url` and
    /// the broker `brokers` (private ones a test may stop), with `app_args` added to the
    /// in-process application's flags.
    pub async fn on_servers(
        partitions: u32,
        read_url: &str,
        brokers: &str,
        app_args: &[&str],
    ) -> Self {
        Self::build(
            partitions,
            read_url.to_string(),
            None,
            brokers.to_string(),
            app_args,
        )
        .await
    }

    async fn with_read_url(partitions: u32, read_url_for_app: Option<&str>) -> Self {
        let read_url = fresh_read_database().await;
        Self::build(partitions, read_url, read_url_for_app, brokers(), &[]).await
    }

    async fn build(
        partitions: u32,
        read_url: String,
        read_url_for_app: Option<&str>,
        brokers: String,
        app_args: &[&str],
    ) -> Self {
        let app = TestApp::built(
            Stack::for_tests()
                .read_models_at(&read_url, read_url_for_app)
                .scratch_topic(&brokers, partitions)
                .args(&["--read-wait-timeout", "60s"])
                .args(app_args),
        )
        .await;
        let read_pool = MySqlPool::connect(&read_url).await.unwrap();
        Self {
            database_url: app.stack.database_url.clone(),
            topic: app.stack.topic.clone(),
            group: app.stack.group.clone(),
            app,
            read_url,
            brokers,
            read_pool,
        }
    }

    pub fn start_relay(&self) -> Running {
        self.app.stack.start_relay()
    }

    pub fn start_projector(&self) -> Running {
        self.start_projector_in_group(&self.group)
    }

    pub fn start_projector_in_group(&self, group: &str) -> Running {
        self.app
            .stack
            .start_projector_in_group(group)
            .expect("a projector")
    }

    /// `board` with this pipeline's stores, topic and group, then `args`.
    pub fn board(&self, args: &[&str]) -> Command {
        let mut command = board_on(&self.database_url, &self.read_url, &[]);
        command
            .args([
                "--kafka-brokers",
                &self.brokers,
                "--kafka-topic",
                &self.topic,
                "--projector-group",
                &self.group,
                "--admin-emails",
                crate::common::ADMIN_EMAIL,
            ])
            .args(args);
        command
    }

    /// Runs `board <args>` to completion; returns its exit code and stdout.
    pub async fn run_board(&self, args: &[&str]) -> (i32, String) {
        let mut command = self.board(args);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.is_empty() {
            eprintln!("board {args:?}: {stderr}");
        }
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// Runs `board serve --components <components>` against this pipeline's stores.
    pub fn spawn_process(&self, components: &str) -> Process {
        let child = self
            .board(&["serve", "--components", components])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the board binary");
        Process(child)
    }

    pub async fn stored_events(&self) -> i64 {
        self.app.event_count().await
    }

    /// Waits until the relay's checkpoint has passed `count` events of the store.
    pub async fn relayed(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM events e, relay_checkpoints c
              WHERE c.relay = $1
                AND (e.transaction_id, e.global_position) <= (c.transaction_id, c.global_position)",
        )
        .bind(format!("relay:{}", self.topic))
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    pub async fn wait_until_relayed(&self, count: i64) {
        for _ in 0..1_200 {
            if self.relayed().await >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the relay did not publish {count} events");
    }

    /// Runs the relay and projector just long enough to project an admin and a category
    /// named Rust, then stops them.
    pub async fn seed_and_project(&self) {
        let _relay = self.start_relay();
        let _projector = self.start_projector();
        let admin = self.app.admin().await;
        self.app.category(&admin, "Rust").await;
        self.converged().await;
    }

    /// Waits until the live read model equals one rebuilt from the event store, and
    /// returns its snapshot. The reference keeps replaying too: events become readable
    /// only once every older transaction on the server has ended.
    ///
    /// It first waits for everything committed before the call to be readable: another
    /// test's transaction on the same server holds the readable horizon back for every
    /// database, and while it does, a live model and a reference that both lack the
    /// test's last command would match.
    pub async fn converged(&self) -> snapshot::Snapshot {
        board::store::reader::settle(&self.app.pool, Duration::from_secs(60))
            .await
            .unwrap();
        let reference_url = fresh_read_database().await;
        let reference = MySqlPool::connect(&reference_url).await.unwrap();
        let mut bulk = projections::fold::Bulk::on_empty_tables(reference.clone());
        let mut checkpoint = board::store::reader::Checkpoint::default();
        let mut differences = Vec::new();
        for _ in 0..600 {
            let replayed =
                board::rebuild::replay(&self.app.pool, &mut bulk, checkpoint, &|_| {}, None);
            let (_, reached) = replayed.await.unwrap().expect("no cancel signal");
            checkpoint = reached;
            let expected = snapshot::take(&reference).await.unwrap();
            let live = snapshot::take(&self.read_pool).await.unwrap();
            differences = snapshot::differences(&live, &expected);
            if differences.is_empty() {
                return live;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the live read model never matched the rebuilt one:\n{}",
            differences.join("\n")
        );
    }

    /// Reads the topic from the start with a plain consumer of its own (every partition
    /// assigned, so no group is joined or left behind), until it has seen `distinct`
    /// different events (re-published duplicates come along and are kept).
    pub async fn read_topic(&self, distinct: usize) -> Vec<Envelope> {
        self.read_topic_named(&self.topic, distinct).await
    }

    /// As [`Self::read_topic`], for another topic on the same broker.
    pub async fn read_topic_named(&self, topic: &str, distinct: usize) -> Vec<Envelope> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("reader-{}", Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        // As many partitions as the topic has: a relay process may have made it with its
        // own default rather than this pipeline's count.
        let mut settings = self.app.state.config.kafka();
        settings.topic = topic.to_string();
        let count = board::kafka::partition_count(&settings).await.unwrap();
        let mut partitions = rdkafka::TopicPartitionList::new();
        for partition in 0..count {
            partitions
                .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&partitions).unwrap();
        let mut envelopes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while seen.len() < distinct {
            let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {distinct} events arrived", seen.len()))
                .unwrap();
            let envelope: Envelope = serde_json::from_slice(message.payload().unwrap()).unwrap();
            // A message is its key and its envelope: nothing rides beside them.
            assert_eq!(message.key(), Some(envelope.aggregate_id.as_bytes()));
            assert!(
                message.headers().is_none(),
                "a message carries Kafka headers"
            );
            seen.insert(envelope.event_id);
            envelopes.push(envelope);
        }
        envelopes
    }
}
