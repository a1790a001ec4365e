//! Fetch and ListOffsets semantics over the wire: long polls that return when data arrives,
//! size limits that still return a whole first batch, and offsets by timestamp.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::wire::{record_batch_at, Conn};
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
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
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
    let mut records = Vec::new();
    let mut bytes = p.records.clone().unwrap_or_default();
    while !bytes.is_empty() {
        let set =
            RecordBatchDecoder::decode(&mut bytes).expect("the broker serves whole, valid batches");
        for r in set.records {
            records.push((r.offset, r.value.unwrap_or_default()));
        }
    }
    (p.high_watermark, records)
}

fn list_offset(conn: &mut Conn, timestamp: i64) -> (i64, i64) {
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
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
