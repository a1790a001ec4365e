//! Replication across real `strom` processes: a 3-node cluster on loopback, driven by librdkafka.
//! Leaders are killed under load; every acknowledged (acks=all) record must survive exactly once
//! at its acknowledged offset, a new leader must take over, and a restarted node must catch up.

mod common;
#[path = "groups/wire_members.rs"]
#[allow(dead_code)] // the group scenarios themselves run in groups.rs
mod wire_members;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{check_acked, cluster_cli, create, produce, TestCluster, SECRET};
use common::rdk;
use common::wire::{control_batch, record_batch, Conn};
use rdkafka::config::ClientConfig;

/// Two 3-node clusters at once on two cores starve each other's Raft ticks; these tests are
/// about correctness, so they run one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_leader_kill_and_the_node_rejoins() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A short dead-node timeout fences a silent node soon (there is no spare node to move its
    // replicas to, so fencing is all it does).
    let mut cluster = TestCluster::start(dir.path(), 3, &["--dead-node-timeout-ms", "2000"]);
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
    // A client's control batch is refused before it reaches the replicated log (which would
    // refuse it at its own append and stop the partition's group on the leader).
    let mut wire = Conn::connect(&cluster.nodes[leaders[0] as usize - 1].addr());
    let (code, _) = wire.produce("orders", 0, control_batch());
    assert_eq!(code, kafka_protocol::ResponseError::InvalidRecord.code());
    let (code, offset) = wire.produce("orders", 0, record_batch(None, "after a marker".into()));
    assert_eq!(code, 0, "the partition still takes writes");
    acked.insert("after a marker".into(), (0, offset));

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
    // Silent for longer than its session, it is fenced: Metadata stops naming it.
    cluster.wait_for_brokers(&survivor, 2, Duration::from_secs(20));

    // The killed node restarts with its data and catches up: all three replicas in sync again,
    // and it is named again.
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
            SECRET,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node-id 4 is not among --peers"), "{err}");
}

/// The CONTROLLER column of `strom cluster status` for `node`.
fn controller_role(status: &str, node: i32) -> Option<String> {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&node.to_string()))
        .and_then(|l| l.split_whitespace().last().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_under_load_without_loss() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--dead-node-timeout-ms", "3000"];
    let mut cluster = TestCluster::start(dir.path(), 3, &extra);
    let spare = cluster.join(dir.path(), &extra);
    assert_eq!(spare, 4);
    let bootstrap = cluster.bootstrap();
    cluster.wait_for_brokers(&bootstrap, 4, Duration::from_secs(30));
    create(&bootstrap, "moving", 4, 3).await;
    let before = cluster.wait_for_replicas(&bootstrap, "moving", 3, &[], Duration::from_secs(30));
    // Placement spreads 12 replicas over 4 nodes: the node that joined holds some too.
    assert!(before.iter().flatten().any(|&n| n == spare), "{before:?}");

    let producer = rdk::producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "60000"),
        ],
    );
    let mut acked = produce(&producer, "moving", "before", 2000).await;
    assert_eq!(acked.len(), 2000);

    // Node 3 dies for good while records keep coming: once it has been silent for the
    // timeout, its replicas are rebuilt on the other nodes.
    let dead = 3;
    cluster.node(dead).kill9();
    let load = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            for round in 0..12 {
                acked.extend(produce(&producer, "moving", &format!("during{round}"), 500).await);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            acked
        })
    };
    let survivor = cluster.node(1).addr();
    let healed = tokio::task::block_in_place(|| {
        cluster.wait_for_replicas(&survivor, "moving", 3, &[dead], Duration::from_secs(60))
    });
    let during = load.await.unwrap();
    assert_eq!(during.len(), 6000, "every record acknowledged while moving");
    acked.extend(during);
    eprintln!("replicas {before:?} -> {healed:?}");
    let raft = cluster.raft_ports[0];
    let status = cluster_cli(raft, &["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("3 ") && l.contains(" fenced ")),
        "the dead node is fenced: {status}"
    );
    cluster.wait_for_brokers(&survivor, 3, Duration::from_secs(20));

    // The joined node becomes a controller voter and the dead one leaves the controller.
    cluster_cli(raft, &["add-node", "4"]);
    // Its replicas moved already (healing); `--wait` confirms none is left on it.
    let out = cluster_cli(
        raft,
        &["remove-node", "3", "--wait", "--timeout-secs", "60"],
    );
    assert!(out.contains("replicas moved to other nodes"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = cluster_cli(raft, &["status"]);
        if controller_role(&status, 4).as_deref() == Some("voter")
            && controller_role(&status, 3).as_deref() == Some("-")
        {
            break;
        }
        assert!(Instant::now() < deadline, "controller membership: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let after = produce(&producer, "moving", "after", 1000).await;
    assert_eq!(after.len(), 1000);
    acked.extend(after);
    let records = rdk::consume_all(&survivor, "moving", 4, acked.len(), Duration::from_secs(60));
    check_acked(&records, &acked);
    assert_eq!(
        records.len(),
        acked.len(),
        "nothing beyond the acknowledged records"
    );
}

/// The node `strom cluster status` names as the controller's leader.
fn controller_leader(status: &str) -> Option<i32> {
    let (_, rest) = status.lines().next()?.split_once("controller leader: ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The REPLICAS and MOVING TO columns of `topic`'s partition `index` in `strom cluster status`.
fn partition_status(status: &str, topic: &str, index: u32) -> (Vec<i32>, Option<Vec<i32>>) {
    let ids = |s: &str| {
        s.split(',')
            .filter_map(|n| n.parse().ok())
            .collect::<Vec<i32>>()
    };
    let line = status.lines().find(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some(topic) && words.next() == Some(&index.to_string())
    });
    let words: Vec<&str> = line.map_or(Vec::new(), |l| l.split_whitespace().collect());
    // TOPIC PARTITION LEADER EPOCH REPLICAS [ISR] MOVING-TO: the ISR may be empty.
    let replicas = words.get(4).map_or(Vec::new(), |w| ids(w));
    let moving = words.last().filter(|w| words.len() > 5 && **w != "-");
    (replicas, moving.map(|w| ids(w)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_newcomer_dies_is_taken_over_by_another_node() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let timeout_ms = 5000;
    let extra = ["--dead-node-timeout-ms", "5000"];
    let mut cluster = TestCluster::start(dir.path(), 3, &extra);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "rebuilt", 1, 3).await;
    cluster.wait_for_replicas(&bootstrap, "rebuilt", 3, &[], Duration::from_secs(30));
    // Joins after the topic exists, so it holds nothing and is the only place to move to.
    let newcomer = cluster.join(dir.path(), &extra);
    cluster.wait_for_brokers(&bootstrap, 4, Duration::from_secs(30));
    let producer = rdk::producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
        ],
    );
    let mut acked = produce(&producer, "rebuilt", "before", 2000).await;
    assert_eq!(acked.len(), 2000);

    // A replica's node dies; the newcomer dies too, but late enough that the controller still
    // counts it as live when it plans the move (the newcomer is silent for less than the
    // timeout when the first node's timeout runs out). Not the controller's leader, so the
    // timeout counts from the kill.
    let raft = cluster.raft_ports[0];
    let leader = controller_leader(&cluster_cli(raft, &["status"])).expect("a controller leader");
    let dead = (1..=3).find(|&n| n != leader).unwrap();
    let survivor = (1..=3).find(|&n| n != dead).unwrap();
    let survivor_raft = cluster.raft_ports[survivor as usize - 1];
    let survivor_addr = cluster.node(survivor).addr();
    cluster.node(dead).kill9();
    std::thread::sleep(Duration::from_millis(timeout_ms * 2 / 5));
    cluster.node(newcomer).kill9();

    // The move starts toward the dead newcomer, and cannot finish: a learner that never
    // answered is not caught up, so it is never promoted.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = cluster_cli(survivor_raft, &["status"]);
        if partition_status(&status, "rebuilt", 0)
            .1
            .is_some_and(|t| t.contains(&newcomer))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no move toward node {newcomer}: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    acked.extend(produce(&producer, "rebuilt", "stuck", 500).await);
    assert_eq!(acked.len(), 2500, "the two survivors keep acknowledging");

    // Another node arrives; once the newcomer has been silent for the timeout, the move goes
    // there instead and completes. The dead newcomer never becomes a replica on the way.
    let replacement = cluster.join(dir.path(), &extra);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster_cli(survivor_raft, &["status"]);
        let (replicas, moving) = partition_status(&status, "rebuilt", 0);
        assert!(
            !replicas.contains(&newcomer),
            "promoted while dead: {status}"
        );
        if moving.is_none() && replicas.contains(&replacement) {
            break;
        }
        assert!(Instant::now() < deadline, "move not redirected: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    tokio::task::block_in_place(|| {
        cluster.wait_for_replicas(
            &survivor_addr,
            "rebuilt",
            3,
            &[dead, newcomer],
            Duration::from_secs(60),
        );
        // The offsets topic's partitions were stuck on the newcomer as well.
        cluster.wait_for_replicas(
            &survivor_addr,
            "__consumer_offsets",
            3,
            &[dead, newcomer],
            Duration::from_secs(60),
        )
    });
    let after = produce(&producer, "rebuilt", "after", 200).await;
    assert_eq!(after.len(), 200);
    acked.extend(after);
    let records = rdk::consume_all(
        &survivor_addr,
        "rebuilt",
        1,
        acked.len(),
        Duration::from_secs(60),
    );
    check_acked(&records, &acked);
    assert_eq!(records.len(), acked.len());
}

/// The `__consumer_offsets` partition of `group`: FNV-1a (32-bit) of the id modulo its 8
/// partitions, the broker's documented mapping.
fn offsets_partition(group: &str) -> i32 {
    let h = group.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (h % 8) as i32
}

/// A group member reading `topic` from its committed offsets until it has `want` records (or
/// `timeout`), committing synchronously after every record; returns the values read.
fn consume_in_group(bootstrap: &str, group: &str, topic: &str, want: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while values.len() < want && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        // Retried through coordinator moves: the commit must land for the test to mean much.
        let mut tries = 0;
        while let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
            tries += 1;
            assert!(tries < 100, "commit keeps failing: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_coordinator_dying() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "events", 2, 3).await;
    cluster.wait_for_leaders(&bootstrap, "events", 3, 3, &[], Duration::from_secs(30));
    let producer = rdk::producer(&bootstrap, &[("enable.idempotence", "true")]);
    let first = produce(&producer, "events", "first", 300).await;
    assert_eq!(first.len(), 300);

    let group = "billing";
    let read = tokio::task::block_in_place(|| consume_in_group(&bootstrap, group, "events", 300));
    assert_eq!(read.len(), 300, "the group read the first records");

    // The coordinator is the leader of the group's offsets partition: kill it.
    let offsets = cluster.wait_for_leaders(
        &bootstrap,
        "__consumer_offsets",
        3,
        3,
        &[],
        Duration::from_secs(30),
    );
    let coordinator = offsets[offsets_partition(group) as usize];
    cluster.node(coordinator).kill9();
    let survivor = cluster
        .nodes
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != coordinator)
        .map(|(_, n)| n.addr())
        .unwrap();
    let second = produce(&producer, "events", "second", 200).await;
    assert_eq!(second.len(), 200);

    // A new member resumes from the committed offsets on the new coordinator: it reads exactly
    // the new records, none of the committed ones again.
    let again = tokio::task::block_in_place(|| consume_in_group(&survivor, group, "events", 200));
    let mut expected: Vec<&String> = second.keys().collect();
    let mut got: Vec<&String> = again.iter().collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "resumed exactly after the committed offsets");
}

/// The node coordinating `group` now, asked of each live node in turn: its Kafka address.
fn find_coordinator(nodes: &[String], group: &str) -> Option<String> {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, ResponseKind};
    use kafka_protocol::protocol::StrBytes;
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into()));
    nodes.iter().find_map(|addr| {
        let mut conn = Conn::try_connect(addr, Duration::from_secs(2))?;
        match conn.try_request(ApiKey::FindCoordinator, 2, &req)? {
            ResponseKind::FindCoordinator(r) if r.error_code == 0 => {
                Some(format!("{}:{}", r.host.as_str(), r.port))
            }
            _ => None,
        }
    })
}

/// A member's heartbeat at whichever node coordinates its group, retried while the
/// coordinator is being found or is loading (codes 14, 15, 16); the first other answer.
fn heartbeat_at_coordinator(nodes: &[String], group: &str, member: &str, generation: i32) -> i16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = find_coordinator(nodes, group)
            .and_then(|addr| Conn::try_connect(&addr, Duration::from_secs(2)))
            .map(|mut conn| wire_members::heartbeat(&mut conn, group, member, generation));
        match answer {
            Some(code) if ![14, 15, 16].contains(&code) => return code,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "no coordinator answered: {answer:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_goes_on_in_its_generation_when_its_coordinator_dies() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{ApiKey, GroupId, OffsetCommitRequest, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "events", 1, 3).await;
    let offsets = cluster.wait_for_leaders(
        &bootstrap,
        "__consumer_offsets",
        3,
        3,
        &[],
        Duration::from_secs(30),
    );
    let group = "steady";
    let coordinator = offsets[offsets_partition(group) as usize];
    let addr = cluster.node(coordinator).addr();
    let (mut a, mut b) = (Conn::connect(&addr), Conn::connect(&addr));
    let (ida, idb) = wire_members::form_stable_pair(group, &mut a, &mut b);
    assert_eq!(wire_members::heartbeat(&mut a, group, &ida, 1), 0);

    cluster.node(coordinator).kill9();
    let survivors: Vec<String> = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| cluster.node(id).addr())
        .collect();
    // The new coordinator knows both members in generation 1: no UNKNOWN_MEMBER_ID (25), no
    // REBALANCE_IN_PROGRESS (27), nobody has to rejoin.
    assert_eq!(heartbeat_at_coordinator(&survivors, group, &ida, 1), 0);
    assert_eq!(heartbeat_at_coordinator(&survivors, group, &idb, 1), 0);
    assert_eq!(
        heartbeat_at_coordinator(&survivors, group, &idb, 0),
        22,
        "ILLEGAL_GENERATION for a generation the group has left"
    );
    let new_addr = find_coordinator(&survivors, group).expect("a coordinator");
    assert_ne!(new_addr, addr);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(StrBytes::from_string(idb.clone()))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("events")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    match Conn::connect(&new_addr).request(ApiKey::OffsetCommit, 7, &commit) {
        ResponseKind::OffsetCommit(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "{r:?}");
        }
        r => panic!("{r:?}"),
    }
}
