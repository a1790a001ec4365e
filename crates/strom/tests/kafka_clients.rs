//! Real librdkafka clients against a real `strom serve`: 100,000 records with keys, headers and
//! every compression round-trip byte-identical, each at the offset its acknowledgement named.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::rdk::{self, Rec};
use common::Strom;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

const COMPRESSIONS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PER_COMPRESSION: usize = 20_000;
const PARTITIONS: i32 = 4;

/// Deterministic payload of varying size and content, so a misplaced byte is caught.
fn payload(c: usize, i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919 + c * 31) % 1500;
    (0..len)
        .map(|j| ((i * 131 + j * 17 + c) % 251) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_round_trip_with_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let topic = "roundtrip";
    rdk::create_topic(&strom.addr(), topic, PARTITIONS).await;

    let mut acked: HashMap<(i32, i64), (usize, usize)> = HashMap::new();
    for (c, compression) in COMPRESSIONS.iter().enumerate() {
        let producer = rdk::producer(
            &strom.addr(),
            &[("compression.type", compression), ("batch.size", "65536")],
        );
        let mut pending = Vec::with_capacity(PER_COMPRESSION);
        for i in 0..PER_COMPRESSION {
            let key = format!("{compression}-{i}");
            let value = payload(c, i);
            let fut = loop {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "idx",
                        value: Some(&i.to_be_bytes()),
                    })
                    .insert(Header {
                        key: "codec",
                        value: Some(compression.as_bytes()),
                    });
                let record = FutureRecord::to(topic)
                    .partition((i % PARTITIONS as usize) as i32)
                    .key(&key)
                    .payload(&value)
                    .headers(headers);
                match producer.send_result(record) {
                    Ok(f) => break f,
                    // Local queue full: let deliveries drain.
                    Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            pending.push((i, fut));
        }
        for (i, fut) in pending {
            let delivery = fut
                .await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("{compression} #{i}: {e}"));
            assert!(
                acked
                    .insert((delivery.partition, delivery.offset), (c, i))
                    .is_none(),
                "offset acknowledged twice"
            );
        }
    }
    let total = COMPRESSIONS.len() * PER_COMPRESSION;
    assert_eq!(acked.len(), total);

    let addr = strom.addr();
    let recs = tokio::task::spawn_blocking(move || {
        rdk::consume_all(
            &addr,
            "roundtrip",
            PARTITIONS,
            total,
            Duration::from_secs(180),
        )
    })
    .await
    .unwrap();
    assert_eq!(recs.len(), total, "consumed {} of {total}", recs.len());
    let parts = rdk::by_partition(&recs);
    for (partition, recs) in &parts {
        let mut last_index_per_codec = HashMap::new();
        for Rec {
            offset,
            key,
            value,
            headers,
            ..
        } in recs
        {
            let (c, i) = acked[&(*partition, *offset)];
            assert_eq!(
                key.as_deref(),
                Some(format!("{}-{i}", COMPRESSIONS[c]).as_bytes()),
                "key at {partition}/{offset}"
            );
            assert_eq!(
                value.as_deref(),
                Some(payload(c, i).as_slice()),
                "value at {partition}/{offset}"
            );
            assert_eq!(headers.len(), 2);
            assert_eq!(
                headers[0],
                ("idx".to_string(), Some(i.to_be_bytes().to_vec()))
            );
            assert_eq!(
                headers[1],
                (
                    "codec".to_string(),
                    Some(COMPRESSIONS[c].as_bytes().to_vec())
                )
            );
            // Produce order is consume order within a partition.
            if let Some(prev) = last_index_per_codec.insert(c, i) {
                assert!(i > prev, "partition {partition}: record {i} after {prev}");
            }
        }
    }
}
