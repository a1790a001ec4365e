//! Fetch and ListOffsets semantics over the wire: long polls that return when data arrives,
//! size limits that still return a whole first batch, and offsets by timestamp.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::rdk;
use common::wire::{record_batch, record_batch_at, Conn};
use common::Strom;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, ListOffsetsRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

const TOPIC: &str = "fs-topic";

fn fetch(
    conn: &mut Conn,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max: i32,
    max_bytes: i32,
) -> (i64, Vec<(i64, Bytes)>) {
    fetch_topic(
        conn,
        TOPIC,
        offset,
        max_wait_ms,
        min_bytes,
        partition_max,
        max_bytes,
    )
    .0
}

/// The record count of every batch in partition 0 of `topic` (within 1 MiB), read from the batch
/// headers: compressed batches are not decoded.
fn batch_sizes(conn: &mut Conn, topic: &str) -> Vec<i32> {
    let mut bytes = fetch_topic(conn, topic, 0, 0, 0, 1 << 20, 1 << 20).1;
    let mut sizes = Vec::new();
    while bytes.len() >= 61 {
        let len = i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize + 12;
        sizes.push(i32::from_be_bytes(bytes[57..61].try_into().unwrap()));
        bytes = bytes.slice(len..);
    }
    sizes
}

/// A fetch of partition 0 of `topic`: (high watermark, records), and the raw record bytes.
fn fetch_topic(
    conn: &mut Conn,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max: i32,
    max_bytes: i32,
) -> ((i64, Vec<(i64, Bytes)>), Bytes) {
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(partition_max)]);
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(vec![topic]);
    let ResponseKind::Fetch(resp) = conn.request(ApiKey::Fetch, 12, &req) else {
        panic!("not a fetch response")
    };
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let raw = p.records.clone().unwrap_or_default();
    if raw.len() >= 22 && raw[22] & 0b111 != 0 {
        // Compressed: the caller reads headers only.
        return ((p.high_watermark, Vec::new()), raw);
    }
    let mut records = Vec::new();
    let mut bytes = raw.clone();
    while !bytes.is_empty() {
        let set =
            RecordBatchDecoder::decode(&mut bytes).expect("the broker serves whole, valid batches");
        for r in set.records {
            records.push((r.offset, r.value.unwrap_or_default()));
        }
    }
    ((p.high_watermark, records), raw)
}

fn list_offset(conn: &mut Conn, timestamp: i64) -> (i64, i64) {
    list_offset_of(conn, TOPIC, timestamp)
}

fn list_offset_of(conn: &mut Conn, topic: &str, timestamp: i64) -> (i64, i64) {
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(timestamp)])]);
    let ResponseKind::ListOffsets(resp) = conn.request(ApiKey::ListOffsets, 7, &req) else {
        panic!()
    };
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (p.offset, p.timestamp)
}

#[test]
fn long_poll_limits_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let mut conn = Conn::connect(&strom.addr());
    let value = |n: usize| Bytes::from(vec![b'x'; n]);
    assert_eq!(
        conn.produce(TOPIC, 0, record_batch_at(None, value(100), 1_000))
            .0,
        0
    );

    // An empty long poll ends at max_wait with nothing; a long poll that data arrives during
    // returns that data (it would come back empty if it only woke at the deadline).
    let (hw, recs) = fetch(&mut conn, 1, 300, 1, 1 << 20, 1 << 20);
    assert_eq!((hw, recs.len()), (1, 0));
    let addr = strom.addr();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut c = Conn::connect(&addr);
        assert_eq!(
            c.produce(
                TOPIC,
                0,
                record_batch_at(None, Bytes::from(vec![b'y'; 5000]), 2_000)
            )
            .0,
            0
        );
    });
    let (_, recs) = fetch(&mut conn, 1, 20_000, 1, 1 << 20, 1 << 20);
    producer.join().unwrap();
    assert_eq!(
        recs.len(),
        1,
        "long poll did not return the record produced during it"
    );
    assert_eq!(recs[0].0, 1);
    assert_eq!(
        conn.produce(TOPIC, 0, record_batch_at(None, value(100), 3_000))
            .0,
        0
    );

    // Limits smaller than the first batch still return that batch whole (KIP-74), and no more.
    let (_, recs) = fetch(&mut conn, 1, 0, 0, 10, 1 << 20);
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1]);
    let (_, recs) = fetch(&mut conn, 0, 0, 0, 1 << 20, 10);
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0]);
    let (hw, recs) = fetch(&mut conn, 0, 0, 0, 1 << 20, 1 << 20);
    assert_eq!(hw, 3);
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(recs[1].1.len(), 5000);

    // Offsets by time: earliest, latest, max timestamp, first batch at or after a timestamp.
    assert_eq!(list_offset(&mut conn, -2).0, 0);
    assert_eq!(list_offset(&mut conn, -1).0, 3);
    assert_eq!(list_offset(&mut conn, -3), (2, 3_000));
    assert_eq!(list_offset(&mut conn, 1_500), (1, 2_000));
    assert_eq!(list_offset(&mut conn, 2_000), (1, 2_000));
    assert_eq!(list_offset(&mut conn, 3_001).0, -1);
}

/// KIP-74: only a response's first batch may exceed `max_bytes`. Three partitions each hold one
/// 900 KiB batch. A fetch of all three with `max_bytes` 1,000,000 returns just the first; before
/// the fix it returned two (1.8 MB), which librdkafka drops as larger than
/// `receive.message.max.bytes` and then asks for again, forever (its test 0082).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_response_exceeds_max_bytes_only_by_its_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let topic = "big-batches";
    rdk::create_topic(&strom.addr(), topic, 3).await;
    let mut conn = Conn::connect(&strom.addr());
    for p in 0..3 {
        let value = Bytes::from(vec![b'a' + p as u8; 900 * 1024]);
        assert_eq!(conn.produce(topic, p, record_batch(None, value)).0, 0);
    }

    let partitions = (0..3)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1_000_000)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(topic)))
            .with_partitions(partitions)]);
    let ResponseKind::Fetch(resp) = conn.request(ApiKey::Fetch, 12, &req) else {
        panic!("not a fetch response")
    };
    let sizes: Vec<usize> = resp.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .collect();
    assert!(
        sizes[0] > 900 * 1024,
        "the first batch comes whole: {sizes:?}"
    );
    assert_eq!(&sizes[1..], &[0, 0], "nothing past max_bytes after it");

    let recs = tokio::task::spawn_blocking(move || {
        rdk::consume_all_with(
            &strom.addr(),
            topic,
            3,
            3,
            Duration::from_secs(30),
            &[
                ("fetch.max.bytes", "1000000"),
                ("receive.message.max.bytes", "1000512"),
            ],
        )
    })
    .await
    .unwrap();
    let mut parts: Vec<i32> = recs.iter().map(|r| r.partition).collect();
    parts.sort();
    assert_eq!(parts, vec![0, 1, 2], "librdkafka read every partition");
}

/// ListOffsets by time answers the first *record* at or after the target, inside a compressed
/// multi-record batch, and MAX_TIMESTAMP names the record carrying the largest timestamp (KIP-734),
/// as librdkafka's `offsets_for_times` and its tests 0054/0081 expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_land_on_the_record_inside_a_batch() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let topic = "by-time";
    rdk::create_topic(&strom.addr(), topic, 1).await;
    // One lz4 batch of ten records, timestamps out of order, the largest in the middle.
    let timestamps: Vec<i64> = vec![
        1_000, 3_000, 2_000, 12_000, 4_000, 7_000, 6_000, 9_000, 8_000, 10_000,
    ];
    let producer = rdk::producer(
        &strom.addr(),
        &[("linger.ms", "200"), ("compression.type", "lz4")],
    );
    let mut sends = Vec::new();
    for ts in &timestamps {
        let record = FutureRecord::<(), _>::to(topic)
            .partition(0)
            .payload("v")
            .timestamp(*ts);
        match producer.send_result(record) {
            Ok(delivery) => sends.push(delivery),
            Err((e, _)) => panic!("enqueue: {e}"),
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    for delivery in sends {
        delivery.await.unwrap().unwrap();
    }
    let mut conn = Conn::connect(&strom.addr());
    assert_eq!(
        batch_sizes(&mut conn, topic),
        vec![10],
        "the records share one batch"
    );

    let addr = strom.addr();
    let answers = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .create()
            .unwrap();
        [
            500, 1_000, 1_001, 2_500, 3_000, 3_001, 10_000, 10_001, 20_000,
        ]
        .into_iter()
        .map(|target| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Offset(target))
                .unwrap();
            let found = consumer
                .offsets_for_times(tpl, Duration::from_secs(10))
                .unwrap();
            (target, found.elements()[0].offset())
        })
        .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (target, offset) in answers {
        let want = timestamps.iter().position(|ts| *ts >= target);
        let want = want.map_or(Offset::End, |o| Offset::Offset(o as i64));
        assert_eq!(offset, want, "offsets_for_times({target}): {timestamps:?}");
    }
    let max = *timestamps.iter().max().unwrap();
    let at = timestamps.iter().position(|ts| *ts == max).unwrap() as i64;
    assert_eq!(list_offset_of(&mut conn, topic, -3), (at, max));
}

/// DeleteRecords (librdkafka's `delete_records`, Kafka's `kafka-delete-records.sh`) moves the log
/// start: the earliest offset, fetches below it and consumers from the beginning all see the new
/// start, it survives a restart, and a point past the high watermark is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_for_good() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::{Offset, TopicPartitionList};

    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &["--segment-bytes", "1024"]);
    let addr = strom.addr();
    let mut conn = Conn::connect(&addr);
    for i in 0..20 {
        let value = Bytes::from(vec![b'a' + i as u8; 300]);
        assert_eq!(conn.produce(TOPIC, 0, record_batch(None, value)).0, 0);
    }
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let delete = |offset: Offset| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, offset).unwrap();
        let admin = &admin;
        async move {
            let done = admin
                .delete_records(&tpl, &AdminOptions::new())
                .await
                .unwrap();
            let e = &done.elements()[0];
            (e.offset(), e.error())
        }
    };
    assert_eq!(delete(Offset::Offset(7)).await, (Offset::Offset(7), Ok(())));
    let bases: Vec<u64> = std::fs::read_dir(dir.path().join(format!("{TOPIC}-0")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    let oldest = bases.iter().min().copied().unwrap();
    assert!(
        oldest > 0 && oldest <= 7,
        "the segments wholly below 7 are deleted, the one holding 7 is kept: {bases:?}"
    );
    // Past the high watermark: refused, nothing changes.
    let (_, err) = delete(Offset::Offset(21)).await;
    assert!(err.is_err(), "{err:?}");

    let check = |conn: &mut Conn| {
        assert_eq!(list_offset(conn, -2).0, 7);
        assert_eq!(list_offset(conn, 0), (7, 1_700_000_000_000));
        let req = FetchRequest::default()
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(3)
                    .with_partition_max_bytes(1 << 20)])]);
        let ResponseKind::Fetch(resp) = conn.request(ApiKey::Fetch, 12, &req) else {
            panic!("not a fetch response")
        };
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE below the log start");
        assert_eq!(p.log_start_offset, 7);
        let (_, recs) = fetch(conn, 7, 0, 0, 1 << 20, 1 << 20);
        assert_eq!(recs.first().map(|r| r.0), Some(7));
    };
    check(&mut conn);
    strom.stop();
    strom.restart();
    let mut conn = Conn::connect(&addr);
    check(&mut conn);
    // The end (-1 on the wire): everything up to the high watermark.
    assert_eq!(delete(Offset::End).await, (Offset::Offset(20), Ok(())));
    assert_eq!(list_offset(&mut conn, -2).0, 20);
}
