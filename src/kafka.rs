//! Kafka clients, configured in one place: the relay's idempotent producer, the
//! projectors' consumer, and topic creation.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
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

fn base(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("socket.keepalive.enable", "true");
    config
}

/// Acknowledged by all in-sync replicas, never duplicated by a producer retry, in order
/// per partition. lz4, because the local broker cannot serve snappy batches back.
pub fn producer(settings: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    base(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        // Never give up on a message: a producer that times messages out leaves gaps in a
        // partition ("1, 4, 5"). Outages are waited out; the relay's checkpoint waits too.
        .set("message.timeout.ms", "0")
        .create()
        .context("creating the Kafka producer")
}

/// A member of consumer group `group`. Offsets are committed by hand, after the read
/// models are committed.
///
/// `fetch.wait.max.ms` is short because some brokers (Tansu among them) hold a fetch for
/// the whole wait even when data arrives: with librdkafka's default of 500 ms, every event
/// reached the read model half a second late. Apache Kafka answers as soon as data is
/// there, so this costs it nothing but a few more idle fetches.
pub fn consumer(settings: &KafkaSettings, group: &str) -> anyhow::Result<StreamConsumer> {
    base(settings)
        .set("fetch.wait.max.ms", "10")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the Kafka consumer")
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
