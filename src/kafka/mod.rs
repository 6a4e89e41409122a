//! Kafka clients, configured in one place: the relay's idempotent producer, the
//! projectors' consumer, and topic creation; [`publish`] sends stored events as their
//! [`envelope`]s.

mod envelope;
mod publish;

pub use envelope::{envelope, into_envelope};
pub use publish::publish;

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

/// Where the events go and how their topic is made.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
    pub replication: i32,
}

/// A broker that went away is tried again at most a second apart: librdkafka's default
/// backoff grows to 10 s, and the read model waited that long after the broker was back.
fn base(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// Acknowledged by all in-sync replicas, never duplicated by a producer retry, in order
/// per partition. lz4, because the local broker cannot serve snappy batches back.
pub fn producer(settings: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    base(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        // No waiting for more: the relay hands over whole batches, which librdkafka packs
        // while a request is in flight anyway; a linger of 2 ms added 4 ms to the p50
        // of command-to-read-model latency at 100 commands/s (`make bench`).
        .set("linger.ms", "0")
        // Never give up on a message: a producer that times messages out leaves gaps in a
        // partition ("1, 4, 5"). Outages are waited out; the relay's checkpoint waits too.
        .set("message.timeout.ms", "0")
        .create()
        .context("creating the Kafka producer")
}

/// A consumer of partitions assigned by hand (`assign()`): it never joins a consumer
/// group and commits nothing. The projectors share partitions by leases of their own
/// (`crate::projector::leases`) and keep their positions in the read database.
/// librdkafka wants a `group.id` for `assign()` all the same; it names `group` but
/// creates nothing at the broker.
///
/// `fetch.wait.max.ms` is short because some brokers (Tansu 0.6.0 among them) hold every
/// fetch for the wait, data or not: with librdkafka's default of 500 ms, every event
/// reached the read model half a second late. Apache Kafka answers as soon as data is
/// there. Measured at 100 commands/s on Tansu: 5 ms gave a command-to-read-model p50 of
/// 15.6 ms and the broker 49 % of a core, 2 ms gave 13.5 ms and 58 %. An idle projector
/// takes its partitions off the consumer, so the short wait costs nothing at rest.
///
/// A busy projector fetches only what it is ready for. librdkafka's default keeps
/// fetching until 100,000 messages wait in its queue, so while the projector folds a
/// batch into MySQL it sends fetch after fetch, each a round of store queries at the
/// broker and each bringing a few messages. With `queued.min.messages` at 1 it sends
/// the next fetch once the projector has taken what came, and looks again every
/// `fetch.queue.backoff.ms` until then: one fetch per batch under load, the same
/// fetching as before when the projector keeps up. Measured with `bench 40000` (the
/// burst with the relay and projector beside it): the broker's CPU fell from 0.61 of a
/// core to 0.48 (docs/PERFORMANCE.md). The queue also holds the consumer's error reports,
/// so a reader of this consumer takes those promptly too, or they hold fetching back.
pub fn consumer(settings: &KafkaSettings, group: &str) -> anyhow::Result<StreamConsumer> {
    base(settings)
        .set("group.id", group)
        .set("fetch.wait.max.ms", "2")
        .set("queued.min.messages", "1")
        .set("fetch.queue.backoff.ms", "1")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the Kafka consumer")
}

/// How many partitions the events topic has, as the broker says (a one-off question).
pub async fn partition_count(settings: &KafkaSettings) -> anyhow::Result<i32> {
    BrokerProbe::new(settings).partition_count().await
}

/// Creates `topic` with the configured partitions unless it exists.
pub async fn ensure_topic(settings: &KafkaSettings, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base(settings)
        .create()
        .context("creating the Kafka admin client")?;
    let new_topic = NewTopic::new(
        topic,
        settings.partitions,
        TopicReplication::Fixed(settings.replication),
    );
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&[new_topic], &options)
        .await
        .context("creating the events topic")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// A long-lived client for what servers ask the broker often (readiness, status,
/// `/metrics`): the end of each partition of the events topic. One connection, kept, so
/// that a probe costs the broker one metadata request and one offsets request per
/// partition, not a new session each time.
pub struct BrokerProbe {
    settings: KafkaSettings,
    /// Made at the first question: a command-line run that never asks has no client.
    consumer: std::sync::OnceLock<std::sync::Arc<BaseConsumer>>,
}

/// What the broker answered, and how long it took.
pub struct TopicEnds {
    pub ends: Vec<i64>,
    pub took: Duration,
}

impl BrokerProbe {
    pub fn new(settings: &KafkaSettings) -> Self {
        Self {
            settings: settings.clone(),
            consumer: std::sync::OnceLock::new(),
        }
    }

    fn consumer(&self) -> anyhow::Result<std::sync::Arc<BaseConsumer>> {
        if let Some(consumer) = self.consumer.get() {
            return Ok(consumer.clone());
        }
        let consumer: BaseConsumer = base(&self.settings)
            .set("socket.connection.setup.timeout.ms", "1000")
            .create()
            .context("creating the broker probe")?;
        Ok(self
            .consumer
            .get_or_init(|| std::sync::Arc::new(consumer))
            .clone())
    }

    /// The end offset of each partition of the events topic (none before the topic
    /// exists), all asked within `limit`.
    pub async fn topic_ends(&self, limit: Duration) -> anyhow::Result<TopicEnds> {
        let consumer = self.consumer()?;
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            // The client's own events (logs, errors) wait in its queue until served; a
            // client that is only asked, never polled, would keep them all.
            for _ in 0..1_000 {
                if consumer.poll(Duration::ZERO).is_none() {
                    break;
                }
            }
            let start = std::time::Instant::now();
            let left = || limit.saturating_sub(start.elapsed());
            let metadata = consumer
                .fetch_metadata(Some(&topic), left())
                .context("asking the broker for the topic")?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            // No partitions: the topic does not exist yet (the relay creates it).
            let mut ends = Vec::with_capacity(partitions);
            for partition in 0..partitions as i32 {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition, left())
                    .with_context(|| format!("asking the end of partition {partition}"))?;
                ends.push(high);
            }
            Ok(TopicEnds {
                ends,
                took: start.elapsed(),
            })
        })
        .await?
    }

    /// The events topic this probe asks about.
    pub fn topic(&self) -> &str {
        &self.settings.topic
    }

    /// How many partitions the events topic has; an error before it exists.
    pub async fn partition_count(&self) -> anyhow::Result<i32> {
        let ends = self.topic_ends(Duration::from_secs(10)).await?.ends;
        anyhow::ensure!(
            !ends.is_empty(),
            "the broker lists no partitions of {}",
            self.settings.topic
        );
        Ok(ends.len() as i32)
    }
}
