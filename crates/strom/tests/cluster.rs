//! Replication across real `strom` processes: a 3-node cluster on loopback, driven by librdkafka.
//! Leaders are killed under load; every acknowledged (acks=all) record must survive exactly once
//! at its acknowledged offset, a new leader must take over, and a restarted node must catch up.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::rdk;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Two 3-node clusters at once on two cores starve each other's Raft ticks; these tests are
/// about correctness, so they run one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

async fn create(bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    // The controller may still be electing right after start: retry until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = admin(bootstrap);
    loop {
        let res = client.create_topics([&t], &opts).await;
        match res.as_ref().map(|r| r[0].clone()) {
            Ok(Ok(_)) => return,
            other if Instant::now() > deadline => panic!("create {topic}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Sends `count` records, keyed `{tag}-{i}`, and returns the acknowledged ones:
/// value -> (partition, offset).
async fn produce(
    p: &FutureProducer,
    topic: &str,
    tag: &str,
    count: usize,
) -> BTreeMap<String, (i32, i64)> {
    let futures: Vec<_> = (0..count)
        .map(|i| {
            let value = format!("{tag}-{i}");
            let fut = p
                .send_result(FutureRecord::to(topic).key(&value).payload(&value))
                .map_err(|(e, _)| e);
            (value, fut)
        })
        .collect();
    let mut acked = BTreeMap::new();
    for (value, fut) in futures {
        let Ok(fut) = fut else { continue };
        if let Ok(Ok(d)) = fut.await {
            acked.insert(value, (d.partition, d.offset));
        }
    }
    acked
}

/// Every acknowledged record is stored exactly once, at its acknowledged offset.
fn check_acked(records: &[rdk::Rec], acked: &BTreeMap<String, (i32, i64)>) {
    let mut seen = HashSet::new();
    let mut at: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for r in records {
        let v = String::from_utf8(r.value.clone().unwrap_or_default()).unwrap();
        assert!(seen.insert(v.clone()), "duplicate record {v}");
        assert!(
            at.insert((r.partition, r.offset), v.clone()).is_none(),
            "two records at {}/{}",
            r.partition,
            r.offset
        );
    }
    for (v, (p, o)) in acked {
        assert_eq!(
            at.get(&(*p, *o)),
            Some(v),
            "acknowledged {v} at {p}/{o} is not there"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_leader_kill_and_the_node_rejoins() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "orders", 3, 3).await;
    let leaders =
        cluster.wait_for_leaders(&bootstrap, "orders", 3, 3, &[], Duration::from_secs(30));

    let producer = rdk::producer(
        &bootstrap,
        &[("enable.idempotence", "true"), ("linger.ms", "2")],
    );
    let mut acked = produce(&producer, "orders", "before", 3000).await;
    assert_eq!(
        acked.len(),
        3000,
        "every record acknowledged before any fault"
    );

    // Kill the leader of partition 0 and keep producing: a new leader must take over.
    let victim = leaders[0];
    cluster.node(victim).kill9();
    let survivor = cluster
        .nodes
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != victim)
        .map(|(_, n)| n.addr())
        .unwrap();
    let killed_at = Instant::now();
    let new_leaders = cluster.wait_for_leaders(
        &survivor,
        "orders",
        3,
        2,
        &[victim],
        Duration::from_secs(15),
    );
    assert!(
        new_leaders.iter().all(|l| *l != victim),
        "a dead node still leads: {new_leaders:?}"
    );
    eprintln!("new leaders after {:?}", killed_at.elapsed());
    let after = produce(&producer, "orders", "after", 3000).await;
    assert_eq!(
        after.len(),
        3000,
        "every record acknowledged after failover"
    );
    acked.extend(after);

    // The killed node restarts with its data and catches up: all three replicas in sync again.
    cluster.node(victim).restart();
    cluster.wait_for_leaders(&bootstrap, "orders", 3, 3, &[], Duration::from_secs(60));

    let records = rdk::consume_all(
        &bootstrap,
        "orders",
        3,
        acked.len(),
        Duration::from_secs(60),
    );
    rdk::by_partition(&records);
    check_acked(&records, &acked);
    assert_eq!(
        records.len(),
        acked.len(),
        "no record beyond the acknowledged ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_produce_fails_and_never_succeeds() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "quorum", 1, 3).await;
    let leaders =
        cluster.wait_for_leaders(&bootstrap, "quorum", 3, 3, &[], Duration::from_secs(30));
    // Stop the two followers: the leader keeps its role briefly, then steps down (check-quorum).
    let leader = leaders[0];
    for id in 1..=3 {
        if id != leader {
            cluster.node(id).kill9();
        }
    }
    let producer = rdk::producer(
        &cluster.node(leader).addr(),
        &[
            ("message.timeout.ms", "4000"),
            ("request.timeout.ms", "2000"),
        ],
    );
    let acked = produce(&producer, "quorum", "lonely", 20).await;
    assert!(acked.is_empty(), "acknowledged without a quorum: {acked:?}");
}

#[test]
fn a_node_missing_from_its_peers_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--kafka-addr",
            "127.0.0.1:0",
            "--node-id",
            "4",
            "--raft-addr",
            "127.0.0.1:1",
            "--peers",
            "1@127.0.0.1:2,2@127.0.0.1:3",
            "--cluster-secret",
            common::cluster::SECRET,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node-id 4 is not among --peers"), "{err}");
}
