//! Retention across real `strom` processes: a follower behind the leader's log start and a
//! replica moved after retention catch up from a snapshot, and a retry of a batch retention
//! removed still gets its original offset.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{check_acked, cluster_cli, create_with, produce_padded, TestCluster};
use common::rdk;
use common::wire::{idempotent_batch, init_producer_id, Conn};
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;

/// Two 3-node clusters at once on two cores starve each other's Raft ticks; these tests are
/// about correctness, so they run one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// (log start, high watermark) of partition 0 of `topic`; -1 each if not answered.
fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .unwrap_or((-1, -1))
}

fn low_watermark(bootstrap: &str, topic: &str) -> i64 {
    watermarks(bootstrap, topic).0
}

/// Three nodes checking retention every 200 ms, and `topic` (one partition, RF 3, 16 KiB
/// segments, `retention.bytes` as given) with a leader: (cluster, bootstrap, leader).
async fn retention_cluster(
    root: &std::path::Path,
    topic: &str,
    retention_bytes: &str,
) -> (TestCluster, String, i32) {
    let cluster = TestCluster::start(root, 3, &["--retention-check-interval-ms", "200"]);
    let bootstrap = cluster.bootstrap();
    create_with(
        &bootstrap,
        topic,
        1,
        3,
        &[
            ("segment.bytes", "16384"),
            ("retention.bytes", retention_bytes),
        ],
    )
    .await;
    let leader = cluster.wait_for_leaders(&bootstrap, topic, 3, 3, &[], Duration::from_secs(30))[0];
    (cluster, bootstrap, leader)
}

/// Idempotent, with small batches, so retention removes some records of a phase and keeps
/// others.
fn small_batch_producer(bootstrap: &str) -> FutureProducer {
    rdk::producer(
        bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("batch.size", "8192"),
        ],
    )
}

/// Waits until retention has moved the log start of `topic` (one partition) past `floor`.
fn wait_for_log_start_above(bootstrap: &str, topic: &str, floor: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while low_watermark(bootstrap, topic) <= floor {
        assert!(
            Instant::now() < deadline,
            "{topic}: retention never moved the log start past {floor}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads `topic` (one partition) from the beginning and checks that every acknowledged record
/// at or above the log start `low` is there exactly once at its offset, and nothing else;
/// returns those retained records.
fn check_retained(
    bootstrap: &str,
    topic: &str,
    acked: BTreeMap<String, (i32, i64)>,
    low: i64,
) -> BTreeMap<String, (i32, i64)> {
    let retained: BTreeMap<String, (i32, i64)> = acked
        .into_iter()
        .filter(|(_, (_, offset))| *offset >= low)
        .collect();
    let records = rdk::consume_all(bootstrap, topic, 1, retained.len(), Duration::from_secs(30));
    rdk::by_partition(&records);
    check_acked(&records, &retained);
    assert_eq!(
        records.len(),
        retained.len(),
        "nothing but the retained records"
    );
    retained
}

/// The log start once retention has nothing left to do (every replica checks every 200 ms and
/// no records are coming in): the same value a second apart.
fn settled_low_watermark(bootstrap: &str, topic: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = low_watermark(bootstrap, topic);
    loop {
        assert!(
            Instant::now() < deadline,
            "{topic}: the log start keeps moving"
        );
        std::thread::sleep(Duration::from_secs(1));
        let now = low_watermark(bootstrap, topic);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Retention on a replicated partition, and a follower that comes back behind the leader's log
/// start: it gets a snapshot (its log restarts empty at the leader's log start), takes the
/// retained entries as ordinary appends, counts towards the quorum, and can lead with every
/// retained record in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leaders_log_start_catches_up_by_snapshot() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, bootstrap, leader) =
        retention_cluster(dir.path(), "retained", "204800").await;
    let (lagging, other) = match leader {
        1 => (2, 3),
        2 => (3, 1),
        _ => (1, 2),
    };
    let producer = small_batch_producer(&bootstrap);
    let mut acked = produce_padded(&producer, "retained", "before", 200, 500).await;
    assert_eq!(acked.len(), 200);
    let lagging_end = acked.values().map(|(_, o)| *o).max().unwrap_or(0);

    // The lagging node misses 1 MB; retention (200 KiB) on the others removes what it had.
    cluster.node(lagging).kill9();
    acked.extend(produce_padded(&producer, "retained", "during", 1000, 500).await);
    assert_eq!(
        acked.len(),
        1200,
        "a majority is up: every write acknowledged"
    );
    wait_for_log_start_above(&bootstrap, "retained", lagging_end + 1);

    // Back, it needs entries the leader no longer has. With the other follower gone, every
    // acknowledgement below needs it: it must have installed the snapshot and be appending.
    cluster.node(lagging).restart();
    cluster.node(other).kill9();
    let after = produce_padded(&producer, "retained", "after", 50, 500).await;
    assert_eq!(
        after.len(),
        50,
        "the snapshotted follower completes the quorum"
    );
    acked.extend(after);

    // Now only it has the newest entries besides the leader: with the leader gone and the
    // other node back, it is the only one that can win an election.
    cluster.node(leader).kill9();
    cluster.node(other).restart();
    let leaders = cluster.wait_for_leaders(
        &cluster.nodes[(lagging - 1) as usize].addr(),
        "retained",
        3,
        2,
        &[leader],
        Duration::from_secs(30),
    );
    assert_eq!(leaders, vec![lagging], "the most up-to-date survivor leads");

    // Every node back (a dead one in Metadata would fail the consumer), the leader unchanged.
    cluster.node(leader).restart();
    let leaders =
        cluster.wait_for_leaders(&bootstrap, "retained", 3, 3, &[], Duration::from_secs(30));
    assert_eq!(leaders, vec![lagging], "leadership stays put");
    let low = settled_low_watermark(&bootstrap, "retained");
    assert!(
        low > lagging_end + 1,
        "its log starts where the leader's did"
    );
    let retained = check_retained(&bootstrap, "retained", acked, low);
    let leaders =
        cluster.wait_for_leaders(&bootstrap, "retained", 3, 3, &[], Duration::from_secs(30));
    assert_eq!(
        leaders,
        vec![lagging],
        "the snapshotted node served the reads"
    );
    assert!(retained.keys().filter(|v| v.starts_with("after-")).count() == 50);
    assert!(
        retained.keys().any(|v| v.starts_with("during-")),
        "records appended to it after the snapshot are among those it served"
    );
}

/// A replica rebuilt on another node after retention removed the start of the log: the new
/// replica joins as a learner, gets a snapshot whose configuration already names it, skips the
/// configuration entries that snapshot covers, and becomes a voter that holds every retained
/// record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_moved_after_retention_starts_from_a_snapshot() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--retention-check-interval-ms", "200"];
    let mut cluster = TestCluster::start(dir.path(), 3, &extra);
    let spare = cluster.join(dir.path(), &extra);
    let bootstrap = cluster.bootstrap();
    cluster.wait_for_brokers(&bootstrap, 4, Duration::from_secs(30));
    create_with(
        &bootstrap,
        "compacted",
        1,
        3,
        &[("segment.bytes", "16384"), ("retention.bytes", "102400")],
    )
    .await;
    let replicas =
        cluster.wait_for_replicas(&bootstrap, "compacted", 3, &[], Duration::from_secs(30))[0]
            .clone();
    let leader =
        cluster.wait_for_leaders(&bootstrap, "compacted", 4, 3, &[], Duration::from_secs(30))[0];
    // Move a follower away to the one node without a replica.
    let target = if replicas.contains(&spare) {
        replicas
            .iter()
            .copied()
            .find(|&n| n != spare && n != leader)
    } else {
        replicas.iter().copied().find(|&n| n != leader)
    }
    .unwrap();
    let empty = (1..=4).find(|n| !replicas.contains(n)).unwrap();

    let producer = small_batch_producer(&bootstrap);
    let mut acked = produce_padded(&producer, "compacted", "before", 600, 500).await;
    assert_eq!(acked.len(), 600);
    wait_for_log_start_above(&bootstrap, "compacted", 0);

    cluster_cli(cluster.raft_ports[0], &["remove-node", &target.to_string()]);
    let moved = cluster.wait_for_replicas(
        &bootstrap,
        "compacted",
        3,
        &[target],
        Duration::from_secs(60),
    )[0]
    .clone();
    assert!(moved.contains(&empty), "{replicas:?} -> {moved:?}");

    // With the one other original follower gone, acknowledgements need the new replica.
    let other = moved
        .iter()
        .copied()
        .find(|&n| n != leader && n != empty)
        .unwrap();
    cluster.node(other).kill9();
    let after = produce_padded(&producer, "compacted", "after", 50, 500).await;
    assert_eq!(after.len(), 50, "the new replica completes the quorum");
    acked.extend(after);
    cluster.node(other).restart();
    cluster.wait_for_replicas(
        &bootstrap,
        "compacted",
        3,
        &[target],
        Duration::from_secs(60),
    );

    let low = settled_low_watermark(&bootstrap, "compacted");
    check_retained(&bootstrap, "compacted", acked, low);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_batch_retention_removed_gets_its_original_offset() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, bootstrap, leader) = retention_cluster(dir.path(), "retried", "102400").await;
    let mut conn = Conn::connect(&cluster.node(leader).addr());
    let (err, pid, epoch) = init_producer_id(&mut conn, 4, None);
    assert_eq!(err, 0);
    let first = idempotent_batch(pid, epoch, 0, 3);
    // Not 0: the group's configuration and no-op entries come first, as control batches.
    let (err, first_at) = conn.produce("retried", 0, first.clone());
    assert_eq!(err, 0);

    // About 57 KiB from others (key and value carry the padding), the producer's next batch,
    // 57 KiB more: retention (100 KiB)
    // removes the segment of the first batch but keeps the second, so the producer and both
    // of its batches stay in its deduplication window.
    let others = small_batch_producer(&bootstrap);
    assert_eq!(
        produce_padded(&others, "retried", "a", 55, 500).await.len(),
        55
    );
    let (err, second_at) = conn.produce("retried", 0, idempotent_batch(pid, epoch, 3, 3));
    assert_eq!(err, 0);
    assert_eq!(
        produce_padded(&others, "retried", "b", 55, 500).await.len(),
        55
    );
    wait_for_log_start_above(&bootstrap, "retried", first_at + 2);
    let (start, end) = watermarks(&bootstrap, "retried");
    assert!(
        start <= second_at,
        "the second batch is kept: {start} > {second_at}"
    );

    // A retry of the first batch (say its answer was lost) is answered with its original
    // offset, like any duplicate, and writes nothing.
    assert_eq!(conn.produce("retried", 0, first), (0, first_at));
    assert_eq!(watermarks(&bootstrap, "retried").1, end);
}
