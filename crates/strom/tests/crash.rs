//! Durability under SIGKILL: while a producer with acks=all writes continuously, the broker is
//! killed. After a restart every acknowledged record is present at its acknowledged offset.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{rdk, Strom};
use rdkafka::producer::FutureRecord;

const PARTITIONS: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &[]);
    rdk::create_topic(&strom.addr(), "durable", PARTITIONS).await;

    let acked: Arc<Mutex<HashMap<(i32, i64), String>>> = Arc::default();
    let producer = rdk::producer(
        &strom.addr(),
        &[("message.timeout.ms", "5000"), ("linger.ms", "1")],
    );
    let writer = {
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for i in 0..1_000_000u64 {
                let value = format!("record-{i}");
                let record = FutureRecord::to("durable")
                    .partition((i % PARTITIONS as u64) as i32)
                    .key("k")
                    .payload(&value);
                let Ok(fut) = producer.send_result(record) else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                };
                let acked = Arc::clone(&acked);
                tasks.push(tokio::spawn(async move {
                    if let Ok(Ok(d)) = fut.await {
                        acked.lock().unwrap().insert((d.partition, d.offset), value);
                    }
                }));
                if i % 200 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if tasks.len() > 50_000 {
                    break;
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    // Let a good number of writes be acknowledged, then pull the plug mid-stream.
    while acked.lock().unwrap().len() < 3_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    strom.kill9();
    let acked_at_kill = acked.lock().unwrap().len();
    writer.abort();
    let _ = writer.await;
    // Acknowledgements can only have been sent before the kill.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= acked_at_kill);

    strom.restart();
    let addr = strom.addr();
    let recs = tokio::task::spawn_blocking(move || {
        rdk::consume_all(
            &addr,
            "durable",
            PARTITIONS,
            usize::MAX,
            Duration::from_secs(15),
        )
    })
    .await
    .unwrap();
    let found: HashMap<(i32, i64), String> = recs
        .iter()
        .map(|r| {
            (
                (r.partition, r.offset),
                String::from_utf8(r.value.clone().unwrap()).unwrap(),
            )
        })
        .collect();
    rdk::by_partition(&recs);
    let mut lost = 0;
    for (at, value) in &acked {
        match found.get(at) {
            Some(v) if v == value => {}
            other => {
                lost += 1;
                if lost < 5 {
                    eprintln!("acked {value} at {at:?}, found {other:?}");
                }
            }
        }
    }
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged records lost or changed",
        acked.len()
    );
}
