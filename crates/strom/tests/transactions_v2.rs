//! Transaction version 2 (KIP-890 part 2) on the wire, as Java clients 4.x speak it: the
//! broker advertises the `transaction.version` feature at level 2; the client sends no
//! AddPartitionsToTxn or AddOffsetsToTxn (Produce v12 and TxnOffsetCommit v5 add the partition
//! at the partition leader and the group coordinator); every EndTxn v5 bumps the producer's
//! epoch and answers with it, so a delayed batch or a late EndTxn of an ended transaction is
//! refused instead of joining the next one.

mod common;

use std::time::Duration;

use common::cluster::{create, TestCluster};
use common::txn::{committed, eventually, expect_exactly, Isolation, Sent, READ_DEADLINE};
use common::txn_wire::*;
use common::wire::{producer_batch, Conn};
use common::{rdk, Strom};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, GroupId, ProducerId, ResponseKind, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const END_TXN_V2: i16 = 5;
const PRODUCE_V2: i16 = 12;
const TXN_OFFSET_COMMIT_V2: i16 = 5;

/// EndTxn v5, retried while the previous end is still being completed: (error, id, epoch).
fn end_v2(conn: &mut Conn, id: &str, producer: (i64, i16), commit: bool) -> (i16, i64, i16) {
    let mut last = (0, 0, 0);
    eventually("EndTxn v5 answered", RETRY_DEADLINE, || {
        last = end_txn_at(conn, END_TXN_V2, id, producer, commit);
        (last.0 != ResponseError::ConcurrentTransactions.code(), last)
    });
    last
}

/// A transactional Produce v12 of `values` (sequences from `seq`) to one partition.
fn produce_v2(
    conn: &mut Conn,
    id: &str,
    (pid, epoch): (i64, i16),
    (topic, partition): (&str, i32),
    seq: i32,
    values: &[&str],
) -> (i16, i64) {
    let batch = producer_batch(pid, epoch, seq, values, true);
    send_produce_at(
        conn,
        PRODUCE_V2,
        &txn_produce_request(id, topic, partition, batch),
    )
}

/// The id's state and epoch as DescribeTransactions reports them.
fn describe(conn: &mut Conn, id: &str) -> (String, i16) {
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    match conn.request(ApiKey::DescribeTransactions, 0, &req) {
        ResponseKind::DescribeTransactions(r) => {
            let s = &r.transaction_states[0];
            assert_eq!(s.error_code, 0, "DescribeTransactions({id})");
            (s.transaction_state.to_string(), s.producer_epoch)
        }
        other => panic!("{other:?}"),
    }
}

/// TxnOffsetCommit v5 of `offset` for `group` on one partition, with no AddOffsetsToTxn
/// before it: the partition's error code.
fn txn_offset_commit_v2(
    conn: &mut Conn,
    id: &str,
    (pid, epoch): (i64, i16),
    group: &str,
    (topic, partition): (&str, i32),
    offset: i64,
) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    match conn.request(ApiKey::TxnOffsetCommit, TXN_OFFSET_COMMIT_V2, &req) {
        ResponseKind::TxnOffsetCommit(r) => r.topics[0].partitions[0].error_code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn api_versions_advertise_transaction_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let mut conn = Conn::connect(&strom.addr());
    let r = match conn.request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()) {
        ResponseKind::ApiVersions(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.error_code, 0);
    // Java clients take the feature only with an epoch of 0 or more.
    assert!(r.finalized_features_epoch >= 0, "{r:?}");
    let tv = r
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .unwrap_or_else(|| panic!("no finalized transaction.version in {r:?}"));
    assert_eq!(tv.max_version_level, 2);
    let max = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| k.max_version)
    };
    assert_eq!(max(ApiKey::EndTxn), Some(END_TXN_V2));
    assert_eq!(max(ApiKey::Produce), Some(PRODUCE_V2));
    assert_eq!(max(ApiKey::TxnOffsetCommit), Some(TXN_OFFSET_COMMIT_V2));
}

/// A transaction of Produce v12 requests only (no AddPartitionsToTxn) commits with EndTxn v5,
/// whose answer is the next epoch; a retried EndTxn gets the same answer, the other outcome is
/// refused. In the next transaction (the new epoch) on the same partition, the first
/// transaction's delayed batch is refused with INVALID_PRODUCER_EPOCH and appends nothing, and
/// its late EndTxn(commit) is fenced and commits nothing. read_committed sees exactly the first
/// transaction's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_bumps_the_epoch_so_the_last_transactions_stragglers_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "tv2";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "tv2-producer";
        let mut sent = Sent::new();
        let mut conn = Conn::connect(&addr);
        let mut admin = Conn::connect(&addr);
        find_coordinator(&mut admin, id);
        let (pid, e0) = init_txn_producer(&mut conn, id);

        // T1, on both partitions, the partitions added by their leader.
        let t1_p0 = ["t1-0", "t1-1"];
        let (err, base) = produce_v2(&mut conn, id, (pid, e0), (topic, 0), 0, &t1_p0);
        assert_eq!(err, 0, "T1's first batch on partition 0");
        note(&mut sent, topic, 0, base, &t1_p0);
        let t1_p1 = ["t1-2"];
        let (err, base) = produce_v2(&mut conn, id, (pid, e0), (topic, 1), 0, &t1_p1);
        assert_eq!(err, 0, "T1's batch on partition 1");
        note(&mut sent, topic, 1, base, &t1_p1);
        assert_eq!(describe(&mut admin, id), ("Ongoing".to_string(), e0));
        // T1's next batch on partition 0, delayed until T2 runs.
        let held =
            txn_produce_request(id, topic, 0, producer_batch(pid, e0, 2, &["t1-late"], true));

        let (err, next_pid, e1) = end_v2(&mut conn, id, (pid, e0), true);
        assert_eq!(err, 0, "EndTxn v5 (commit)");
        assert_eq!(
            (next_pid, e1),
            (pid, e0 + 1),
            "the answer carries the bumped epoch"
        );
        assert_eq!(
            end_v2(&mut conn, id, (pid, e0), true),
            (0, pid, e1),
            "a retried commit is told the outcome"
        );
        assert_eq!(
            end_v2(&mut conn, id, (pid, e0), false).0,
            ResponseError::InvalidTxnState.code(),
            "an abort of the committed transaction"
        );

        // T2 under the new epoch, sequences from 0, on the same partition.
        let t2 = ["t2-0"];
        let (err, t2_base) = produce_v2(&mut conn, id, (pid, e1), (topic, 0), 0, &t2);
        assert_eq!(err, 0, "T2's first batch");
        note(&mut sent, topic, 0, t2_base, &t2);
        assert_eq!(describe(&mut admin, id), ("Ongoing".to_string(), e1));

        let end = log_end(&mut admin, topic, 0);
        let (err, base) = send_produce_at(&mut conn, PRODUCE_V2, &held);
        assert_eq!(
            err,
            ResponseError::InvalidProducerEpoch.code(),
            "T1's delayed batch during T2: base offset {base}"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            end,
            "a stale batch was appended"
        );

        let (err, ..) = end_txn_at(&mut conn, END_TXN_V2, id, (pid, e0), true);
        assert_eq!(
            err,
            ResponseError::ProducerFenced.code(),
            "T1's late EndTxn(commit) during T2"
        );
        assert_eq!(
            describe(&mut admin, id),
            ("Ongoing".to_string(), e1),
            "the late EndTxn ended T2"
        );
        let view = fetch_committed(&mut admin, topic, 0);
        assert!(
            view.last_stable_offset <= t2_base,
            "T2 is open, yet the last stable offset passed it: {view:?}"
        );

        // T2 aborts; its answer is the epoch after.
        let (err, _, e2) = end_v2(&mut conn, id, (pid, e1), false);
        assert_eq!((err, e2), (0, e1 + 1), "EndTxn v5 (abort)");
        // A client may abort a transaction none of whose requests arrived.
        let (err, _, e3) = end_v2(&mut conn, id, (pid, e2), false);
        assert_eq!((err, e3), (0, e2 + 1), "an empty abort");
        assert_eq!(
            end_v2(&mut conn, id, (pid, e3), true).0,
            ResponseError::InvalidTxnState.code(),
            "a commit with no transaction"
        );

        eventually("T2's abort marker written", READ_DEADLINE, || {
            let v = fetch_committed(&mut admin, topic, 0);
            (v.last_stable_offset == v.high_watermark, v)
        });
        let expected: Vec<String> = ["t1-0", "t1-1", "t1-2"].map(String::from).to_vec();
        expect_exactly(
            &addr,
            Isolation::Committed,
            &[(topic, 2)],
            &expected,
            &sent,
            "read_committed after T1 committed and T2 aborted",
        );
    });
}

/// TxnOffsetCommit v5 without AddOffsetsToTxn: the group coordinator adds the group's offsets
/// partition to the transaction, and the offsets become the group's when it commits (and not
/// when it aborts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_join_the_transaction_at_the_group_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let (input, output, group) = ("tv2-in", "tv2-out", "tv2-group");
    rdk::create_topic(&addr, input, 1).await;
    rdk::create_topic(&addr, output, 1).await;
    tokio::task::block_in_place(|| {
        let id = "tv2-offsets";
        let mut conn = Conn::connect(&addr);
        find_coordinator(&mut conn, id);
        let mut producer = init_txn_producer(&mut conn, id);
        for (offset, commit) in [(7, true), (9, false)] {
            // Each transaction has an epoch of its own, so its sequences start at 0.
            let (err, _) = produce_v2(&mut conn, id, producer, (output, 0), 0, &["out"]);
            assert_eq!(err, 0, "the transaction's record");
            let code = txn_offset_commit_v2(&mut conn, id, producer, group, (input, 0), offset);
            assert_eq!(code, 0, "TxnOffsetCommit v5 without AddOffsetsToTxn");
            let (err, next_pid, next_epoch) = end_v2(&mut conn, id, producer, commit);
            assert_eq!(err, 0, "EndTxn v5 (commit: {commit})");
            producer = (next_pid, next_epoch);
            let stable =
                committed(&addr, group, input, 1, Isolation::Committed).expect("OffsetFetch");
            assert_eq!(
                stable.get(&0),
                Some(&7),
                "the group's offset after the transaction (commit: {commit})"
            );
        }
    });
}

/// In a 3-node cluster (RF 3) the partition's leader, the transaction coordinator and the
/// group coordinator are three different nodes: the leader adds the partition and the group
/// coordinator the offsets partition through the transaction coordinator on another node, the
/// commit's markers reach both, and read_committed readers and the group see the outcome.
/// `find`'s answer once two calls a second apart agree (leadership may still be moving).
fn settled(mut find: impl FnMut() -> i32) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = find();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the coordinator keeps moving"
        );
        std::thread::sleep(Duration::from_secs(1));
        let now = find();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_the_leader_and_the_group_coordinator_add_to_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    let (topic, input) = ("tv2-cluster", "tv2-cluster-in");
    create(&bootstrap, topic, 3, 3).await;
    create(&bootstrap, input, 1, 3).await;
    let leaders = cluster.wait_for_leaders(&bootstrap, topic, 3, 3, &[], Duration::from_secs(30));
    tokio::task::block_in_place(|| {
        let addr_of = |node: i32| cluster.nodes[(node - 1) as usize].addr();
        let id = "tv2-cluster-producer";
        let mut any = Conn::connect(&addr_of(1));
        // Elections may leave every partition led by the coordinator's node; the preferred
        // leaders (first replicas) are spread, so hand leadership back to them until one is not.
        // That moves the coordinators too (they are leaders of internal partitions), so they are
        // looked up after it, once two answers a second apart agree.
        let mut leaders = leaders;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let txn_node = loop {
            let txn_node = settled(|| find_coordinator(&mut any, id));
            if leaders.iter().any(|l| *l != txn_node) {
                break txn_node;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a partition led elsewhere"
            );
            // The command asks every node to hand over what it leads.
            common::cluster::cluster_cli(cluster.raft_ports[0], &["rebalance-leaders"]);
            std::thread::sleep(Duration::from_millis(500));
            leaders =
                cluster.wait_for_leaders(&bootstrap, topic, 3, 3, &[], Duration::from_secs(30));
        };
        // A group served by a node other than the coordinator's.
        let (group, group_node) = (0..100)
            .map(|i| format!("tv2-cluster-group-{i}"))
            .map(|g| {
                let node = settled(|| find_coordinator_of(&mut any, &g, 0));
                (g, node)
            })
            .find(|(_, node)| *node != txn_node)
            .expect("a group coordinated elsewhere");
        let partition = leaders
            .iter()
            .position(|l| *l != txn_node)
            .expect("a partition led elsewhere") as i32;
        let leader = leaders[partition as usize];

        let mut coordinator = Conn::connect(&addr_of(txn_node));
        let mut on_leader = Conn::connect(&addr_of(leader));
        let mut on_group = Conn::connect(&addr_of(group_node));
        let mut sent = Sent::new();
        let mut producer = init_txn_producer(&mut coordinator, id);
        let mut aborted_base = -1;
        for (round, commit) in [(0, true), (1, false)] {
            let values = [format!("r{round}-a"), format!("r{round}-b")];
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let (err, base) =
                produce_v2(&mut on_leader, id, producer, (topic, partition), 0, &values);
            assert_eq!(err, 0, "round {round}: Produce v12 at the leader (node {leader}), coordinator node {txn_node}");
            if commit {
                note(&mut sent, topic, partition, base, &values);
            } else {
                aborted_base = base;
            }
            let offset = 10 + round;
            let code =
                txn_offset_commit_v2(&mut on_group, id, producer, &group, (input, 0), offset);
            assert_eq!(
                code, 0,
                "round {round}: TxnOffsetCommit v5 at the group coordinator (node {group_node})"
            );
            let (err, next_pid, next_epoch) = end_v2(&mut coordinator, id, producer, commit);
            assert_eq!(
                (err, next_epoch),
                (0, producer.1 + 1),
                "round {round}: EndTxn v5"
            );
            producer = (next_pid, next_epoch);
        }
        // The aborted round is its own transaction on the partition, not part of the
        // committed one before it (whose marker may still have been on its way).
        let pid = producer.0;
        eventually("the abort listed", READ_DEADLINE, || {
            let v = fetch_committed(&mut on_leader, topic, partition);
            (
                v.aborted == [(pid, aborted_base)] && v.last_stable_offset == v.high_watermark,
                v,
            )
        });
        let expected = vec!["r0-a".to_string(), "r0-b".to_string()];
        expect_exactly(
            &bootstrap,
            Isolation::Committed,
            &[(topic, 3)],
            &expected,
            &sent,
            "read_committed in the cluster",
        );
        let stable =
            committed(&bootstrap, &group, input, 1, Isolation::Committed).expect("OffsetFetch");
        assert_eq!(stable.get(&0), Some(&10), "the committed round's offset");
    });
}
