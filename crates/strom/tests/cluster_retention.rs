//! Retention and compaction across real `strom` processes: a follower behind the leader's log
//! start and a replica moved after retention catch up from a snapshot, a retry of a batch
//! retention removed still gets its original offset, and every replica of a compacted
//! partition cleans its own log to the same latest-per-key view, through failovers.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{check_acked, cluster_cli, create_with, produce_padded, TestCluster};
use common::rdk;
use common::wire::{idempotent_batch, init_producer_id, Conn};
use rdkafka::producer::FutureProducer;

/// Two 3-node clusters at once on two cores starve each other's Raft ticks; these tests are
/// about correctness, so they run one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// (log start, high watermark) of partition 0 of `topic`; -1 each if not answered.
fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    rdk::watermarks(bootstrap, topic, Duration::from_secs(5))
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
    // Segments rolled on every replica: each wrote its producer state while running, so a
    // restart after a crash re-reads the log from there, not from the start.
    for id in 1..=3 {
        let snapshot = dir
            .path()
            .join(format!("node{id}/retained-0/producer-state.snapshot"));
        common::wait_until("a producer-state snapshot", Duration::from_secs(10), || {
            (snapshot.exists(), snapshot.display().to_string())
        });
    }
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

    // The node is live and leads partitions of the internal topics: `--wait` returns only
    // once it has handed them over and nothing is left on it.
    cluster_cli(
        cluster.raft_ports[0],
        &[
            "remove-node",
            &target.to_string(),
            "--wait",
            "--timeout-secs",
            "120",
        ],
    );
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

/// Writes `versions` of every key in `keys` (padded, so 16 KiB segments roll), then `fillers`
/// records with keys of their own, enough to seal the segment holding the last versions.
/// Records every acknowledged (key → latest offset) in `latest`.
async fn write_versions(
    producer: &FutureProducer,
    topic: &str,
    keys: usize,
    versions: std::ops::Range<usize>,
    filler_tag: &str,
    latest: &mut BTreeMap<String, i64>,
) {
    use rdkafka::producer::FutureRecord;
    let pad = "x".repeat(500);
    for version in versions {
        for k in 0..keys {
            let key = format!("key-{k}");
            let value = format!("{key}-v{version}{pad}");
            let sent = producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&value),
                    Duration::from_secs(30),
                )
                .await;
            let delivery = sent.expect("acknowledged");
            latest.insert(key, delivery.offset);
        }
    }
    for (key, (_, offset)) in produce_padded(producer, topic, filler_tag, 40, 500).await {
        latest.insert(key, offset);
    }
}

/// Reads `topic` (one partition) from the beginning until it holds exactly one record per key,
/// each at the key's latest offset, and nothing else: the leader cleaned its log.
fn wait_for_compacted_view(bootstrap: &str, topic: &str, latest: &BTreeMap<String, i64>) {
    let want: BTreeMap<i64, String> = latest.iter().map(|(k, o)| (*o, k.clone())).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = rdk::consume_all(bootstrap, topic, 1, want.len() + 1, Duration::from_secs(5));
        let got: BTreeMap<i64, String> = records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into(),
                )
            })
            .collect();
        if got == want && records.len() == want.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} records read, {} wanted; extra {:?}",
            records.len(),
            want.len(),
            got.iter()
                .filter(|(o, _)| !want.contains_key(o))
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Compaction on a replicated partition: each replica cleans its own log (only committed
/// entries), so after the leader dies the new one serves the same latest-per-key view at the
/// same offsets; a replica that was down catches up from a cleaned leader log (batches that
/// lost records keep their place, so Raft's entries line up) and serves that view in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_cleans_to_the_same_view_through_failovers() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &["--log-cleaner-backoff-ms", "200"]);
    let bootstrap = cluster.bootstrap();
    let topic = "keyed";
    create_with(
        &bootstrap,
        topic,
        1,
        3,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "16384"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let first = cluster.wait_for_leaders(&bootstrap, topic, 3, 3, &[], Duration::from_secs(30))[0];
    let producer = rdk::producer(&bootstrap, &[]);
    let mut latest = BTreeMap::new();
    write_versions(&producer, topic, 20, 0..8, "fill-a", &mut latest).await;
    wait_for_compacted_view(&bootstrap, topic, &latest);

    // The first leader dies; the next one cleaned its own copy, and cleans what comes next.
    cluster.node(first).kill9();
    let second =
        cluster.wait_for_leaders(&bootstrap, topic, 3, 2, &[first], Duration::from_secs(30))[0];
    write_versions(&producer, topic, 20, 8..14, "fill-b", &mut latest).await;
    wait_for_compacted_view(&bootstrap, topic, &latest);

    // The first comes back behind, catches up from the cleaned log, and leads or follows the
    // third once the second is gone: whoever leads serves the same view.
    cluster.node(first).restart();
    cluster.wait_for_leaders(&bootstrap, topic, 3, 3, &[], Duration::from_secs(30));
    cluster.node(second).kill9();
    cluster.wait_for_leaders(&bootstrap, topic, 3, 2, &[second], Duration::from_secs(30));
    write_versions(&producer, topic, 20, 14..16, "fill-c", &mut latest).await;
    wait_for_compacted_view(&bootstrap, topic, &latest);
}
