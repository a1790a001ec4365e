//! Topics, configs and data survive a clean restart and a crash (SIGKILL) restart, with segments
//! rolled so recovery walks more than one file.

mod common;

use std::time::Duration;

use common::{rdk, Strom};
use rdkafka::producer::FutureRecord;

async fn produce(addr: &str, topic: &str, from: usize, n: usize) {
    let producer = rdk::producer(addr, &[]);
    for i in from..from + n {
        let v = format!("value-{i:08}-{}", "x".repeat(200));
        producer
            .send(
                FutureRecord::to(topic)
                    .partition((i % 3) as i32)
                    .key(&i.to_string())
                    .payload(&v),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
}

fn values(addr: &str, topic: &str, want: usize) -> Vec<String> {
    let mut recs = rdk::consume_all(addr, topic, 3, want, Duration::from_secs(30));
    rdk::by_partition(&recs);
    recs.sort_by_key(|r| {
        String::from_utf8(r.key.clone().unwrap())
            .unwrap()
            .parse::<usize>()
            .unwrap()
    });
    recs.into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_topics_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: each partition rolls many times.
    let mut strom = Strom::start(dir.path(), &["--segment-bytes", "16384"]);
    rdk::create_topic(&strom.addr(), "keep", 3).await;
    produce(&strom.addr(), "keep", 0, 600).await;

    strom.stop();
    strom.restart();
    let (ok, out, err) = common::cli(&["topic", "list", "-b", &strom.addr()], "");
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.trim() == "keep"),
        "topic list after restart: {out}"
    );
    produce(&strom.addr(), "keep", 600, 300).await;

    strom.kill9();
    strom.restart();
    produce(&strom.addr(), "keep", 900, 100).await;
    let addr = strom.addr();
    let got = tokio::task::spawn_blocking(move || values(&addr, "keep", 1000))
        .await
        .unwrap();
    let want: Vec<String> = (0..1000)
        .map(|i| format!("value-{i:08}-{}", "x".repeat(200)))
        .collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let segments = std::fs::read_dir(dir.path().join("keep-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        });
    assert!(segments.count() > 2, "expected rolled segments");
}
