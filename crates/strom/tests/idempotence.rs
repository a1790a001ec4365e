//! The idempotent producer end to end: InitProducerId, duplicate retries answered with their
//! original offset, sequence and epoch errors over the raw wire, state surviving restarts; and
//! librdkafka with `enable.idempotence=true` writing through two SIGKILLs without a duplicate,
//! a gap or a reordering.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::wire::{idempotent_batch, init_producer_id, Conn};
use common::{rdk, Strom};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_REQUEST: i16 = 42;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn log_end(conn: &mut Conn, topic: &str) -> i64 {
    partition_end(conn, topic, 0)
}

fn partition_end(conn: &mut Conn, topic: &str, partition: i32) -> i64 {
    let topics = vec![ListOffsetsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(partition)
            .with_timestamp(-1)])];
    match conn.request(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default().with_topics(topics),
    ) {
        ResponseKind::ListOffsets(r) => r.topics[0].partitions[0].offset,
        r => panic!("{r:?}"),
    }
}

#[test]
fn raw_wire_sequences_epochs_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &["--default-partitions", "1"]);
    let mut conn = Conn::connect(&strom.addr());
    let t = "idem";

    let (err, pid, epoch) = init_producer_id(&mut conn, 4, None);
    assert_eq!((err, epoch), (0, 0));
    assert!(pid >= 0);
    let (_, other, _) = init_producer_id(&mut conn, 0, None);
    assert_ne!(other, pid, "ids are unique");

    let first = idempotent_batch(pid, 0, 0, 3);
    assert_eq!(conn.produce(t, 0, first.clone()), (0, 0));
    // The retry of an acknowledged batch: success, same offset, nothing appended.
    assert_eq!(conn.produce(t, 0, first.clone()), (0, 0));
    assert_eq!(log_end(&mut conn, t), 3, "the batch is in the log once");
    let second = idempotent_batch(pid, 0, 3, 2);
    assert_eq!(conn.produce(t, 0, second.clone()), (0, 3));
    assert_eq!(
        conn.produce(t, 0, first.clone()),
        (0, 0),
        "still in the window"
    );

    // A gap in the sequence.
    let (err, _) = conn.produce(t, 0, idempotent_batch(pid, 0, 9, 1));
    assert_eq!(err, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(log_end(&mut conn, t), 5);

    // State survives a crash (rebuilt from the log) and a clean stop (snapshot).
    strom.kill9();
    strom.restart();
    let mut conn = Conn::connect(&strom.addr());
    assert_eq!(conn.produce(t, 0, second.clone()), (0, 3));
    strom.stop();
    assert!(dir.path().join("idem-0/producer-state.snapshot").exists());
    strom.restart();
    let mut conn = Conn::connect(&strom.addr());
    assert_eq!(conn.produce(t, 0, second.clone()), (0, 3));
    assert_eq!(log_end(&mut conn, t), 5);

    // KIP-360 epoch bump: same id, next epoch, sequences from 0; the old epoch is fenced.
    assert_eq!(init_producer_id(&mut conn, 3, Some((pid, 0))), (0, pid, 1));
    let (err, _) = conn.produce(t, 0, idempotent_batch(pid, 1, 4, 1));
    assert_eq!(err, OUT_OF_ORDER_SEQUENCE_NUMBER, "a new epoch starts at 0");
    assert_eq!(conn.produce(t, 0, idempotent_batch(pid, 1, 0, 1)), (0, 5));
    let (err, _) = conn.produce(t, 0, idempotent_batch(pid, 0, 5, 1));
    assert_eq!(err, INVALID_PRODUCER_EPOCH);
    let (err, _) = conn.produce(t, 0, second);
    assert_eq!(
        err, INVALID_PRODUCER_EPOCH,
        "old-epoch retries are fenced too"
    );
    assert_eq!(log_end(&mut conn, t), 6);

    // A transactional id gets its producer id from the transaction coordinator, epoch 0 the
    // first time and the next epoch after; a timeout beyond transaction.max.timeout.ms (15
    // minutes) is refused. A half-given id/epoch pair is malformed.
    let txn_init = |conn: &mut Conn, timeout_ms: i32| {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
            .with_transaction_timeout_ms(timeout_ms);
        match conn.request(ApiKey::InitProducerId, 4, &req) {
            ResponseKind::InitProducerId(r) => (r.error_code, r.producer_id.0, r.producer_epoch),
            r => panic!("{r:?}"),
        }
    };
    let (err, txn_pid, epoch) = txn_init(&mut conn, 60_000);
    assert_eq!((err, epoch), (0, 0));
    assert!(txn_pid > other, "{txn_pid} after {other}");
    assert_eq!(txn_init(&mut conn, 60_000), (0, txn_pid, 1));
    assert_eq!(
        txn_init(&mut conn, 15 * 60 * 1000 + 1).0,
        INVALID_TRANSACTION_TIMEOUT
    );
    let (err, _, _) = init_producer_id(&mut conn, 4, Some((pid, -1)));
    assert_eq!(err, INVALID_REQUEST);
    // Ids stay unique across restarts.
    let (_, after, _) = init_producer_id(&mut conn, 4, None);
    assert!(after > txn_pid, "{after} after {txn_pid}");
}

const PARTITIONS: i32 = 3;
const RECORDS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_idempotent_producer_through_two_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &[]);
    let topic = "idem-crash";
    rdk::create_topic(&strom.addr(), topic, PARTITIONS).await;

    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let producer = rdk::producer(
        &strom.addr(),
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
            ("reconnect.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "200"),
        ],
    );
    let writer = {
        let (acked, failed, producer) = (Arc::clone(&acked), Arc::clone(&failed), producer.clone());
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(RECORDS as usize);
            for i in 0..RECORDS {
                let value = i.to_string();
                let fut = loop {
                    let record = FutureRecord::to(topic)
                        .partition((i % PARTITIONS as u64) as i32)
                        .key(&value)
                        .payload(&value);
                    match producer.send_result(record) {
                        Ok(f) => break f,
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                };
                let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
                tasks.push(tokio::spawn(async move {
                    match fut.await {
                        Ok(Ok(_)) => {
                            acked.lock().unwrap().insert(i);
                        }
                        Ok(Err((e, _))) => failed.lock().unwrap().push(format!("{i}: {e}")),
                        Err(e) => failed.lock().unwrap().push(format!("{i}: canceled {e}")),
                    }
                }));
                sent.store(i + 1, Ordering::Release);
                // About 5,000 records a second, so the run spans both kills with produce
                // requests in flight (appended, not yet answered) at each: those are what the
                // client's retries after a kill repeat.
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    // Kill twice mid-stream, each time once the broker (restarted) is acknowledging again.
    for kill_at in [6_000, 13_000] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent.load(Ordering::Acquire) < kill_at
            || acked.lock().unwrap().len() as u64 + 3_000 < kill_at
        {
            assert!(
                Instant::now() < deadline,
                "stuck before the kill at {kill_at}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Freeze the broker while the client fills its in-flight requests, let it read and
        // append them (microseconds), and kill it before the fsync that would answer them: the
        // client must retry batches that are already in the log.
        strom.signal(libc::SIGSTOP);
        tokio::time::sleep(Duration::from_millis(100)).await;
        strom.signal(libc::SIGCONT);
        std::thread::sleep(Duration::from_micros(500));
        strom.kill9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        strom.restart();
    }
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("producer finished")
        .unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, RECORDS);

    // Everything in the log, read back: each number once, in order per partition.
    let addr = strom.addr();
    let (in_log, recs) = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::connect(&addr);
        let in_log: i64 = (0..PARTITIONS)
            .map(|p| partition_end(&mut conn, topic, p))
            .sum();
        let want = usize::try_from(in_log).unwrap();
        let recs = rdk::consume_all(&addr, topic, PARTITIONS, want, Duration::from_secs(30));
        (want, recs)
    })
    .await
    .unwrap();
    assert_eq!(recs.len(), in_log, "consumed everything in the log");
    assert_eq!(in_log as u64, RECORDS, "the log holds each record once");
    let mut seen = HashSet::new();
    let mut last_per_partition: BTreeMap<i32, u64> = BTreeMap::new();
    for r in &recs {
        let n: u64 = String::from_utf8(r.value.clone().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            seen.insert(n),
            "{n} appears twice (partition {}, offset {})",
            r.partition,
            r.offset
        );
        assert_eq!(n % PARTITIONS as u64, r.partition as u64);
        if let Some(prev) = last_per_partition.insert(r.partition, n) {
            assert!(n > prev, "partition {}: {n} after {prev}", r.partition);
        }
    }
    let missing: Vec<_> = acked.iter().filter(|n| !seen.contains(n)).take(5).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    rdk::by_partition(&recs);
}
