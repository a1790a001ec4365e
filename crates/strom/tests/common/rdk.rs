//! librdkafka (via the rdkafka crate) as the real client in tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

pub fn producer(addr: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

pub async fn create_topic(addr: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

/// A consumer in `group` subscribed to `topics`, starting from the earliest offset and
/// committing only when told to.
pub fn group_consumer(addr: &str, group: &str, topics: &[&str]) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(topics).expect("subscribe");
    consumer
}

/// Polls `consumer` until `n` records arrived or `timeout` passed; how many arrived.
pub fn poll_records(consumer: &BaseConsumer, n: usize, timeout: Duration) -> usize {
    let mut read = 0;
    let deadline = Instant::now() + timeout;
    while read < n && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    read
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: Option<i64>,
}

/// Reads every partition of `topic` from the beginning until `want` records arrived or `timeout`.
pub fn consume_all(
    addr: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
) -> Vec<Rec> {
    consume_all_with(addr, topic, partitions, want, timeout, &[])
}

/// [`consume_all`] with extra consumer settings.
pub fn consume_all_with(
    addr: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    timeout: Duration,
    extra: &[(&str, &str)],
) -> Vec<Rec> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        // assign() needs a group handle; the consumer never joins or commits.
        .set("group.id", "strom-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(want.min(1 << 20));
    while out.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Rec {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| k.to_vec()),
                value: m.payload().map(|v| v.to_vec()),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp_ms: m.timestamp().to_millis(),
            }),
            // A node that is down is reported, but the consumer goes on with the others.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
            ))) => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

/// Asserts offsets strictly increase within each partition; returns records grouped per partition.
pub fn by_partition(recs: &[Rec]) -> BTreeMap<i32, Vec<Rec>> {
    let mut m: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in recs {
        let v = m.entry(r.partition).or_default();
        if let Some(last) = v.last() {
            assert!(
                r.offset > last.offset,
                "offsets not increasing in partition {}: {} after {}",
                r.partition,
                r.offset,
                last.offset
            );
        }
        v.push(r.clone());
    }
    m
}

/// (log start, high watermark) of partition 0 of `topic`, as librdkafka's ListOffsets sees
/// them; -1 each if not answered within `timeout`.
pub fn watermarks(addr: &str, topic: &str, timeout: Duration) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, 0, timeout)
        .unwrap_or((-1, -1))
}
