//! Tiered storage with real processes and real stores: a local-directory store and a moto S3
//! server. Sealed segments move to the store, local disk keeps only `local.retention.bytes`,
//! consumers read the whole log from offset 0, ListOffsets by time finds records in the store,
//! retention and topic deletion remove remote data, and a store that hangs or a node killed
//! mid-upload loses nothing.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{admin, check_acked, cluster_cli, create_with, produce_padded, TestCluster};
use common::rdk::{self, Rec};
use common::tier::{file_url, local_segments, stored_segments, Moto};
use common::wire::Conn;
use common::{wait_until, Strom};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

/// 64 KiB segments, 128 KiB of them kept locally: a few thousand 400-byte records make twenty
/// segments, most of which must end up in the store only.
const TIERED: &[(&str, &str)] = &[
    ("remote.storage.enable", "true"),
    ("segment.bytes", "65536"),
    ("local.retention.bytes", "131072"),
];
/// Batches of at most 8 KiB, so the 64 KiB segments roll (a batch never spans two).
const SMALL_BATCHES: &[(&str, &str)] = &[("batch.size", "8192")];
const FLAGS: &[&str] = &[
    "--tier-interval-ms",
    "100",
    "--retention-check-interval-ms",
    "100",
];
/// Local segments left once the store has the rest: the active one plus what fits the local
/// retention, and one more while a roll and a deletion race.
const LOCAL_AT_MOST: usize = 4;

fn watermarks(addr: &str, topic: &str) -> (i64, i64) {
    rdk::watermarks(addr, topic, Duration::from_secs(10))
}

/// Every acknowledged record, read back from offset 0 by librdkafka.
fn read_back(addr: &str, topic: &str, acked: &BTreeMap<String, (i32, i64)>) -> Vec<Rec> {
    let recs = rdk::consume_all(addr, topic, 1, acked.len(), Duration::from_secs(90));
    assert_eq!(recs.len(), acked.len(), "records read back");
    check_acked(&recs, acked);
    recs
}

/// ListOffsets by time: the offset librdkafka is told for `ts`.
fn offset_for_time(addr: &str, topic: &str, ts: i64) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "strom-tier-test")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(ts))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(30))
        .expect("offsets_for_times");
    match found.elements()[0].offset() {
        rdkafka::Offset::Offset(o) => o,
        other => panic!("no offset for time {ts}: {other:?}"),
    }
}

/// Raw Fetch of partition 0 from `offset`: (error code, record bytes).
fn fetch_raw(addr: &str, topic: &str, offset: i64) -> (i16, usize) {
    let mut conn = Conn::connect(addr);
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(resp) = conn.request(ApiKey::Fetch, 12, &req) else {
        panic!("not a fetch response")
    };
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
}

fn wait_tiered(
    what: &str,
    local: impl Fn() -> usize,
    remote: impl Fn() -> usize,
    remote_min: usize,
) {
    wait_until(what, Duration::from_secs(60), || {
        let (l, r) = (local(), remote());
        (
            l <= LOCAL_AT_MOST && r >= remote_min,
            format!("{l} local segments, {r} in the store"),
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_topic_on_a_local_directory_store() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let url = file_url(&store);
    let data = root.path().join("data");
    let mut flags = vec!["--tier-url", url.as_str()];
    flags.extend_from_slice(FLAGS);
    let mut s = Strom::start(&data, &flags);
    let addr = s.addr();
    create_with(&addr, "t", 1, 1, TIERED).await;
    let producer = rdk::producer(&addr, SMALL_BATCHES);
    let acked = produce_padded(&producer, "t", "a", 3000, 200).await;
    assert_eq!(acked.len(), 3000);
    wait_tiered(
        "segments to move to the store",
        || local_segments(&data, "t", 0),
        || stored_segments(&store),
        10,
    );
    assert_eq!(
        watermarks(&addr, "t"),
        (0, 3000),
        "the log still starts at 0"
    );
    let recs = read_back(&addr, "t", &acked);

    // ListOffsets by time lands on the exact record, in the store as locally.
    for i in [5, 700, 2990] {
        let ts = recs[i].timestamp_ms.expect("timestamp");
        let expected = recs
            .iter()
            .filter(|r| r.timestamp_ms.is_some_and(|t| t >= ts))
            .map(|r| r.offset)
            .min()
            .unwrap();
        assert_eq!(offset_for_time(&addr, "t", ts), expected, "by time {ts}");
    }

    // The manifest survives a restart: the store's part is still served.
    s.stop();
    s.restart();
    read_back(&addr, "t", &acked);

    // retention.bytes over the whole log deletes remote segments, oldest first.
    let before = stored_segments(&store);
    let topic = ResourceSpecifier::Topic("t");
    let mut alter = AlterConfig::new(topic);
    for (k, v) in TIERED {
        alter = alter.set(k, v);
    }
    alter = alter.set("retention.bytes", "400000");
    let altered = admin(&addr)
        .alter_configs([&alter], &AdminOptions::new())
        .await
        .expect("alter configs");
    assert!(altered[0].is_ok(), "retention.bytes altered: {altered:?}");
    wait_until("remote retention", Duration::from_secs(30), || {
        let (low, high) = watermarks(&addr, "t");
        let stored = stored_segments(&store);
        (
            low > 0 && stored < before,
            format!("log {low}..{high}, {stored} stored"),
        )
    });
    let (low, high) = watermarks(&addr, "t");
    let rest = rdk::consume_all(
        &addr,
        "t",
        1,
        (high - low) as usize,
        Duration::from_secs(60),
    );
    assert_eq!(rest.len() as i64, high - low);
    assert_eq!(
        rest[0].offset, low,
        "reading from the beginning starts at the new log start"
    );

    // Deleting the topic deletes its remote data.
    admin(&addr)
        .delete_topics(&["t"], &AdminOptions::new())
        .await
        .expect("delete topics")[0]
        .clone()
        .expect("topic deleted");
    wait_until("remote data deleted", Duration::from_secs(30), || {
        let n = stored_segments(&store);
        (n == 0, format!("{n} objects left"))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_topic_on_s3_through_a_hung_store_and_a_crash() {
    let moto = Moto::start();
    moto.create_bucket("strom");
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // No read cache: every remote read goes to the store.
    let mut flags = vec!["--tier-url", "s3://strom/site-a", "--tier-cache-bytes", "0"];
    flags.extend_from_slice(FLAGS);
    let mut s = Strom::start_with_env(&data, &flags, moto.env());
    let addr = s.addr();
    create_with(&addr, "t", 1, 1, TIERED).await;
    let stored = || {
        let keys = moto.keys("strom", "site-a/");
        keys.iter().filter(|k| k.ends_with(".log")).count()
    };
    let producer = rdk::producer(&addr, SMALL_BATCHES);
    let mut acked = produce_padded(&producer, "t", "a", 1500, 200).await;
    assert_eq!(acked.len(), 1500);
    wait_tiered("uploads to S3", || local_segments(&data, "t", 0), stored, 5);
    read_back(&addr, "t", &acked);

    // The store hangs: a read of remote data fails with a retriable error instead of hanging,
    // writes go on, and local disk keeps what cannot be uploaded.
    moto.pause();
    let started = Instant::now();
    let (code, _) = fetch_raw(&addr, "t", 0);
    assert_eq!(code, 56, "KAFKA_STORAGE_ERROR while the store hangs");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the read gave up in time"
    );
    let more = produce_padded(&producer, "t", "b", 1500, 200).await;
    assert_eq!(more.len(), 1500);
    acked.extend(more);
    std::thread::sleep(Duration::from_secs(2));
    let kept = local_segments(&data, "t", 0);
    assert!(
        kept > LOCAL_AT_MOST + 5,
        "local disk keeps what is not uploaded: {kept} segments"
    );

    // The store is back: uploads resume and everything reads back.
    moto.resume();
    wait_tiered(
        "uploads after the store came back",
        || local_segments(&data, "t", 0),
        stored,
        10,
    );
    read_back(&addr, "t", &acked);

    // The node is killed while it uploads: after a restart it finishes, nothing lost or doubled.
    let more = produce_padded(&producer, "t", "c", 1500, 200).await;
    assert_eq!(more.len(), 1500);
    acked.extend(more);
    std::thread::sleep(Duration::from_millis(150));
    s.kill9();
    s.restart();
    wait_tiered(
        "uploads after a crash",
        || local_segments(&data, "t", 0),
        stored,
        15,
    );
    assert_eq!(watermarks(&addr, "t"), (0, 4500));
    read_back(&addr, "t", &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_partition_in_a_cluster_through_leader_loss_and_a_move() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let url = file_url(&store);
    let mut flags = vec!["--tier-url", url.as_str()];
    flags.extend_from_slice(FLAGS);
    let mut cluster = TestCluster::start(root.path(), 3, &flags);
    cluster.join(root.path(), &flags);
    let bootstrap = cluster.bootstrap();
    cluster.wait_for_brokers(&bootstrap, 4, Duration::from_secs(30));
    create_with(&bootstrap, "t", 1, 3, TIERED).await;
    let replicas =
        cluster.wait_for_replicas(&bootstrap, "t", 3, &[], Duration::from_secs(30))[0].clone();
    let leader = cluster.wait_for_leaders(&bootstrap, "t", 4, 3, &[], Duration::from_secs(30))[0];
    let dirs: Vec<_> = cluster.nodes.iter().map(|n| n.data_dir.clone()).collect();
    let dir_of = |id: i32| dirs[id as usize - 1].clone();
    let producer = rdk::producer(&bootstrap, SMALL_BATCHES);
    let mut acked = produce_padded(&producer, "t", "a", 1500, 200).await;
    assert_eq!(acked.len(), 1500);
    // Every replica drops the segments the leader uploaded, once the manifest is committed.
    for &id in &replicas {
        let dir = dir_of(id);
        wait_tiered(
            "replicas to drop uploaded segments",
            || local_segments(&dir, "t", 0),
            || stored_segments(&store),
            5,
        );
    }

    // The leader dies; the new one goes on from the replicated manifest.
    cluster.node(leader).kill9();
    let survivors: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .collect();
    let via = cluster.node(survivors[0]).addr();
    cluster.wait_for_leaders(&via, "t", 4, 2, &[leader], Duration::from_secs(30));
    let more = produce_padded(&producer, "t", "b", 1500, 200).await;
    assert_eq!(more.len(), 1500);
    acked.extend(more);
    for &id in &survivors {
        let dir = dir_of(id);
        wait_tiered(
            "the new leader's uploads",
            || local_segments(&dir, "t", 0),
            || stored_segments(&store),
            10,
        );
    }
    assert_eq!(watermarks(&via, "t").0, 0, "the log still starts at 0");
    read_back(&via, "t", &acked);
    // No range is uploaded twice: the remote segments' base offsets are distinct.
    let mut bases = Vec::new();
    collect_bases(&store, &mut bases);
    let distinct: std::collections::BTreeSet<_> = bases.iter().collect();
    assert_eq!(
        distinct.len(),
        bases.len(),
        "a range uploaded twice: {bases:?}"
    );

    // The old leader comes back and catches up without keeping the tiered part.
    cluster.node(leader).restart();
    let dir = dir_of(leader);
    wait_tiered(
        "the restarted replica to drop uploaded segments",
        || local_segments(&dir, "t", 0),
        || stored_segments(&store),
        10,
    );

    // A replica moved to the fourth node starts from the leader's local log: the store's part
    // is never copied between nodes.
    let current = cluster.wait_for_leaders(&via, "t", 4, 3, &[], Duration::from_secs(30))[0];
    let target = replicas.iter().copied().find(|&id| id != current).unwrap();
    let newcomer = (1..=4).find(|id| !replicas.contains(id)).unwrap();
    cluster_cli(cluster.raft_ports[0], &["remove-node", &target.to_string()]);
    let moved = cluster.wait_for_replicas(&bootstrap, "t", 3, &[target], Duration::from_secs(60))
        [0]
    .clone();
    assert!(moved.contains(&newcomer), "{replicas:?} -> {moved:?}");
    let dir = dir_of(newcomer).join("t-0");
    wait_until("the newcomer's local log", Duration::from_secs(60), || {
        let bases = segment_bases(&dir);
        let first = bases.first().copied();
        let done = first.is_some_and(|b| b > 0) && bases.len() <= LOCAL_AT_MOST;
        (done, format!("local segments at {bases:?}"))
    });
    read_back(&via, "t", &acked);
}

/// Base offsets of the segment files in a partition directory, in order.
fn segment_bases(dir: &std::path::Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn collect_bases(dir: &std::path::Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            collect_bases(&path, out);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if name.ends_with(".log") {
                out.push(name.split('-').next().unwrap_or_default().to_string());
            }
        }
    }
}
