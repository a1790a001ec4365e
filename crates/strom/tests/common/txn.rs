//! Transactions with librdkafka: transactional producers, read_committed and read_uncommitted
//! readers that check exactly what they read, and consume-transform-produce group members.
//! Shared by `transactions.rs` and `transactions_faults.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// For every blocking transactional call (init, commit, abort, send offsets).
pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a consumer may take to see what it must see.
pub const READ_DEADLINE: Duration = Duration::from_secs(20);
/// After a consumer saw what it must, how long it keeps polling for anything extra.
pub const QUIET: Duration = Duration::from_secs(1);

/// One record to produce; its value is unique in the test and is also its key.
#[derive(Clone, Debug)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub value: String,
}

/// `per_partition` records for each of `partitions` partitions of `topic`, tagged `tag`.
pub fn records(tag: &str, topic: &str, partitions: i32, per_partition: usize) -> Vec<Record> {
    (0..per_partition)
        .flat_map(|i| {
            (0..partitions).map(move |p| Record {
                topic: topic.to_string(),
                partition: p,
                value: format!("{tag}-{topic}-{p}-{i}"),
            })
        })
        .collect()
}

pub fn values(sets: &[&[Record]]) -> Vec<String> {
    sets.iter()
        .flat_map(|s| s.iter().map(|r| r.value.clone()))
        .collect()
}

/// Where each acknowledged record was stored: value -> (topic, partition, offset).
pub type Sent = BTreeMap<String, (String, i32, i64)>;

/// A transactional producer, not initialised yet (see [`txn_producer`]).
pub fn new_txn_producer(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "2");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("transactional producer")
}

/// A transactional producer, initialised (InitProducerId through the coordinator).
pub fn txn_producer(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let p = new_txn_producer(bootstrap, id, extra);
    p.init_transactions(TXN_TIMEOUT)
        .unwrap_or_else(|e| panic!("init_transactions({id}): {e}"));
    p
}

/// Sends `records` (each to its explicit partition), flushes, and requires every one of them
/// acknowledged; notes where each landed in `sent`.
pub fn produce(p: &FutureProducer, records: &[Record], sent: &mut Sent) {
    let futures: Vec<_> = records
        .iter()
        .map(|r| {
            p.send_result(
                FutureRecord::to(&r.topic)
                    .partition(r.partition)
                    .key(&r.value)
                    .payload(&r.value),
            )
            .unwrap_or_else(|(e, _)| panic!("send {}: {e}", r.value))
        })
        .collect();
    p.flush(TXN_TIMEOUT).expect("flush");
    for (r, f) in records.iter().zip(futures) {
        let d = block_on(f)
            .expect("delivery canceled")
            .unwrap_or_else(|(e, _)| panic!("{} not acknowledged: {e}", r.value));
        assert_eq!(d.partition, r.partition, "{}", r.value);
        sent.insert(r.value.clone(), (r.topic.clone(), d.partition, d.offset));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    Committed,
    Uncommitted,
}

impl Isolation {
    pub fn config(self) -> &'static str {
        match self {
            Isolation::Committed => "read_committed",
            Isolation::Uncommitted => "read_uncommitted",
        }
    }
}

/// A consumer that never commits, with `isolation` (librdkafka's default is read_committed, so
/// it is always set explicitly).
pub fn consumer(bootstrap: &str, isolation: Isolation, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation.config())
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// One consumed record.
#[derive(Clone, Debug)]
pub struct Got {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

pub fn got(m: &rdkafka::message::BorrowedMessage<'_>) -> Got {
    Got {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
    }
}

/// A consumer assigned to whole topics from their beginning, and what it has read so far.
pub struct Reader {
    pub consumer: BaseConsumer,
    pub isolation: Isolation,
    pub got: Vec<Got>,
}

impl Reader {
    pub fn new(bootstrap: &str, isolation: Isolation, topics: &[(&str, i32)]) -> Reader {
        let consumer = consumer(bootstrap, isolation, "strom-txn-reader");
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in topics {
            for p in 0..*partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&tpl).expect("assign");
        Reader {
            consumer,
            isolation,
            got: Vec::new(),
        }
    }

    pub fn poll_once(&mut self, wait: Duration) {
        match self.consumer.poll(wait) {
            Some(Ok(m)) => self.got.push(got(&m)),
            // A killed broker's connection failing is news, not an error of the read.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
            ))) => {}
            Some(Err(e)) => panic!("{:?} consumer: {e}", self.isolation),
            None => {}
        }
    }

    /// Polls until it has read `want` records in all, or `timeout` passed.
    pub fn poll_until(&mut self, want: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.got.len() < want && Instant::now() < deadline {
            self.poll_once(Duration::from_millis(100));
        }
    }

    /// Polls for `d`, whatever arrives.
    pub fn poll_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.poll_once(Duration::from_millis(50));
        }
    }

    /// Asserts it read exactly `expected` (each once), every record at the offset its
    /// acknowledgement named, in offset order per partition.
    pub fn check(&self, expected: &[String], sent: &Sent, what: &str) {
        let mut read: Vec<&str> = self.got.iter().map(|g| g.value.as_str()).collect();
        read.sort_unstable();
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        want.sort_unstable();
        if read != want {
            let (r, w): (BTreeSet<&str>, BTreeSet<&str>) = (
                read.iter().copied().collect(),
                want.iter().copied().collect(),
            );
            let missing: Vec<_> = w.difference(&r).take(5).collect();
            let extra: Vec<_> = r.difference(&w).take(5).collect();
            panic!(
                "{what} ({:?}): read {} records, expected {}; missing e.g. {missing:?}, \
                 unexpected e.g. {extra:?}, duplicates: {}",
                self.isolation,
                read.len(),
                want.len(),
                read.len() - r.len()
            );
        }
        let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for g in &self.got {
            let at = (g.topic.clone(), g.partition, g.offset);
            assert_eq!(
                sent.get(&g.value),
                Some(&at),
                "{what}: {} read at {at:?}, acknowledged elsewhere",
                g.value
            );
            if let Some(prev) = last.insert((g.topic.as_str(), g.partition), g.offset) {
                assert!(
                    g.offset > prev,
                    "{what}: {}/{} offset {} after {prev}",
                    g.topic,
                    g.partition,
                    g.offset
                );
            }
        }
    }
}

/// A fresh consumer with `isolation` reads `topics` from the beginning and must see exactly
/// `expected`: all of it within [`READ_DEADLINE`], nothing more in the [`QUIET`] second after.
pub fn expect_exactly(
    bootstrap: &str,
    isolation: Isolation,
    topics: &[(&str, i32)],
    expected: &[String],
    sent: &Sent,
    what: &str,
) {
    let mut r = Reader::new(bootstrap, isolation, topics);
    r.poll_until(expected.len(), READ_DEADLINE);
    r.poll_for(QUIET);
    r.check(expected, sent, what);
}

/// Calls `f` every 100 ms until it returns `(true, _)`; panics with `what` and the last value
/// after `timeout`.
pub fn eventually<T: Debug>(what: &str, timeout: Duration, mut f: impl FnMut() -> (bool, T)) {
    super::wait_until(what, timeout, || {
        let (done, last) = f();
        (done, format!("{last:?}"))
    });
}

/// Highest consumed offset + 1 per partition of `topic` in `tpl` (partitions with no valid
/// offset left out).
pub fn offsets_of(tpl: &TopicPartitionList, topic: &str) -> BTreeMap<i32, i64> {
    tpl.elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// `group`'s committed offsets on `topic`, asked by a consumer that does not join the group
/// (read_committed asks OffsetFetch for stable offsets only, KIP-447).
pub fn committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    isolation: Isolation,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let c = consumer(bootstrap, isolation, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .map(|t| offsets_of(&t, topic))
}

/// A read_committed group member subscribed to `topic`, committing nothing by itself.
pub fn group_member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    group_member_with(bootstrap, group, topic, &[])
}

/// [`group_member`] with extra consumer settings.
pub fn group_member_with(
    bootstrap: &str,
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let c: BaseConsumer = c.create().expect("group member");
    c.subscribe(&[topic]).expect("subscribe");
    c
}
