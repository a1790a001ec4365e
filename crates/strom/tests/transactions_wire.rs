//! Transactions on the wire, request by request: zombie fencing (a produce of a fenced
//! producer, held back until after the producer that fenced it began its own transaction on the
//! same partition, is refused, and so is the zombie's EndTxn; read_committed sees the new
//! producer's records and none of the zombie's); a transactional produce to a partition outside
//! the producer's transaction is refused and appends nothing; a restarted leader verifies a
//! transactional batch with the coordinator.

mod common;

use common::txn::{eventually, expect_exactly, Isolation, Sent, READ_DEADLINE};
use common::txn_wire::*;
use common::wire::{producer_batch, Conn};
use common::{rdk, Strom};
use kafka_protocol::ResponseError;

/// Producer A (transactional id "z") writes a batch in its transaction and holds a second one;
/// producer B with the same id initialises (fencing A and aborting its transaction), adds the
/// same partition and writes. Then A's held produce is refused with a fencing error and appends
/// nothing, A's EndTxn(commit) and AddPartitionsToTxn are refused, B commits, and read_committed
/// sees B's records and none of A's (A's transaction is listed as aborted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombies_delayed_produce_and_commit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "zombie";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "z";
        let mut sent = Sent::new();
        let mut a_conn = Conn::connect(&addr);
        let mut b_conn = Conn::connect(&addr);
        let mut admin = Conn::connect(&addr);
        find_coordinator(&mut admin, id);

        // A: a transaction on partition 0 with one batch written.
        let a = init_txn_producer(&mut a_conn, id);
        assert_eq!(add_partitions(&mut a_conn, id, a, topic, &[0]), vec![0]);
        let a_first = ["a-0", "a-1", "a-2"];
        let (err, a_base) = send_produce(
            &mut a_conn,
            &txn_produce_request(id, topic, 0, producer_batch(a.0, a.1, 0, &a_first, true)),
        );
        assert_eq!(err, 0, "A's first transactional batch");
        note(&mut sent, topic, 0, a_base, &a_first);
        // A's next batch (sequence 3), delayed: sent only after B took over.
        let a_late = ["a-3", "a-4"];
        let held = txn_produce_request(id, topic, 0, producer_batch(a.0, a.1, 3, &a_late, true));

        // B: the same transactional id. Its InitProducerId fences A (epoch bump) and aborts
        // A's open transaction; it is answered CONCURRENT_TRANSACTIONS until that is done.
        let b = init_txn_producer(&mut b_conn, id);
        assert_eq!(b.0, a.0, "the transactional id keeps its producer id");
        assert!(b.1 > a.1, "B's epoch {} is not newer than A's {}", b.1, a.1);
        assert_eq!(add_partitions(&mut b_conn, id, b, topic, &[0]), vec![0]);
        let b_values = ["b-0", "b-1", "b-2"];
        let (err, b_base) = send_produce(
            &mut b_conn,
            &txn_produce_request(id, topic, 0, producer_batch(b.0, b.1, 0, &b_values, true)),
        );
        assert_eq!(err, 0, "B's transactional batch");
        assert!(
            b_base > a_base + a_first.len() as i64,
            "B's batch at {b_base}: A's abort marker must lie between A's batch and it"
        );
        note(&mut sent, topic, 0, b_base, &b_values);

        // Now A's delayed produce: fenced, nothing appended.
        let end = log_end(&mut admin, topic, 0);
        let (err, base) = send_produce(&mut a_conn, &held);
        assert!(
            is_fenced_code(err),
            "A's delayed produce (epoch {}, sequence 3) after B (epoch {}) wrote: error {err} \
             base offset {base}; expected INVALID_PRODUCER_EPOCH (47) or PRODUCER_FENCED (90)",
            a.1,
            b.1
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            end,
            "a fenced batch was appended"
        );

        // A's commit and its attempt to add a partition: fenced too.
        let err = end_txn(&mut a_conn, id, a, true);
        assert!(
            is_fenced_code(err),
            "A's EndTxn(commit) after B initialised: error {err}; expected PRODUCER_FENCED (90) \
             or INVALID_PRODUCER_EPOCH (47)"
        );
        let errs = add_partitions(&mut a_conn, id, a, topic, &[1]);
        assert!(
            errs.len() == 1 && is_fenced_code(errs[0]),
            "A's AddPartitionsToTxn after B initialised: {errs:?}"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            end,
            "A's EndTxn wrote a marker"
        );

        // B commits.
        assert_eq!(end_txn(&mut b_conn, id, b, true), 0, "B's EndTxn(commit)");

        // A read_committed fetch: once B's marker is written nothing is open (LSO = high
        // watermark, just past B's marker), and A's transaction is listed as aborted.
        let b_marker = b_base + b_values.len() as i64;
        eventually(
            "B's commit marker written (LSO = high watermark)",
            READ_DEADLINE,
            || {
                let v = fetch_committed(&mut admin, topic, 0);
                (
                    v.high_watermark == b_marker + 1 && v.last_stable_offset == b_marker + 1,
                    v,
                )
            },
        );
        let view = fetch_committed(&mut admin, topic, 0);
        assert_eq!(
            view.aborted,
            vec![(a.0, a_base)],
            "the aborted transactions of a read_committed fetch"
        );

        // librdkafka applies that: B's records and none of A's.
        expect_exactly(
            &addr,
            Isolation::Committed,
            &[(topic, 2)],
            &b_values.map(String::from),
            &sent,
            "after B's commit",
        );
        let all: Vec<String> = a_first
            .iter()
            .chain(&b_values)
            .map(|v| v.to_string())
            .collect();
        expect_exactly(
            &addr,
            Isolation::Uncommitted,
            &[(topic, 2)],
            &all,
            &sent,
            "after B's commit",
        );
    });
}

/// A transactional Produce is taken only for a partition in the producer's ongoing
/// transaction: before any AddPartitionsToTxn, to a partition never added, and late (same
/// epoch, after the transaction's commit marker) it is refused with INVALID_TXN_STATE and the
/// log does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_produce_outside_the_transaction_is_refused_and_not_appended() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "not-added";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "never-added";
        let invalid_txn_state = ResponseError::InvalidTxnState.code();
        let mut conn = Conn::connect(&addr);
        let mut admin = Conn::connect(&addr);
        find_coordinator(&mut admin, id);
        let c = init_txn_producer(&mut conn, id);

        // No transaction at all yet.
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 0, producer_batch(c.0, c.1, 0, &["x-0"], true)),
        );
        assert_eq!(
            (err, base),
            (invalid_txn_state, -1),
            "a transactional batch before AddPartitionsToTxn"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            0,
            "the refused batch was appended"
        );

        // A transaction on partition 0: partition 1 was never added.
        assert_eq!(add_partitions(&mut conn, id, c, topic, &[0]), vec![0]);
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 1, producer_batch(c.0, c.1, 0, &["y-0"], true)),
        );
        assert_eq!(
            (err, base),
            (invalid_txn_state, -1),
            "a transactional batch to a partition not in the transaction"
        );
        assert_eq!(
            log_end(&mut admin, topic, 1),
            0,
            "the refused batch was appended"
        );
        let in_txn = ["c-0", "c-1", "c-2"];
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 0, producer_batch(c.0, c.1, 0, &in_txn, true)),
        );
        assert_eq!(
            (err, base),
            (0, 0),
            "the partition in the transaction takes it"
        );

        // Commit; once the marker is written, a late batch of the same epoch cannot start a
        // transaction of its own.
        assert_eq!(end_txn(&mut conn, id, c, true), 0, "EndTxn(commit)");
        let marker = in_txn.len() as i64;
        eventually("the commit marker written", READ_DEADLINE, || {
            let v = fetch_committed(&mut admin, topic, 0);
            (
                v.high_watermark == marker + 1 && v.last_stable_offset == marker + 1,
                v,
            )
        });
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 0, producer_batch(c.0, c.1, 3, &["late"], true)),
        );
        assert_eq!(
            (err, base),
            (invalid_txn_state, -1),
            "a late transactional batch after the commit marker, without AddPartitionsToTxn"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            marker + 1,
            "the late batch was appended"
        );
        assert_eq!(log_end(&mut admin, topic, 1), 0);
    });
}

/// A partition added to a transaction and then restarted (its leader's permission is memory
/// only) still takes the transaction's batches: the leader asks the coordinator, which has the
/// partition in the ongoing transaction (KIP-890's verification). A partition the coordinator
/// does not have is still refused after the same restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_verifies_a_transactional_batch_with_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "verified";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "verify-after-restart";
        let mut conn = Conn::connect(&addr);
        find_coordinator(&mut conn, id);
        let c = init_txn_producer(&mut conn, id);
        assert_eq!(add_partitions(&mut conn, id, c, topic, &[0]), vec![0]);
        drop(conn);
        strom.kill9();
        strom.restart();
        let mut conn = Conn::connect(&addr);
        find_coordinator(&mut conn, id);
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(
                id,
                topic,
                0,
                producer_batch(c.0, c.1, 0, &["v-0", "v-1"], true),
            ),
        );
        assert_eq!(
            (err, base),
            (0, 0),
            "the restarted leader verified the partition with the coordinator"
        );
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 1, producer_batch(c.0, c.1, 0, &["w-0"], true)),
        );
        assert_eq!(
            (err, base),
            (ResponseError::InvalidTxnState.code(), -1),
            "a partition the coordinator does not have in the transaction"
        );
        assert_eq!(
            log_end(&mut conn, topic, 1),
            0,
            "the refused batch was appended"
        );
        assert_eq!(end_txn(&mut conn, id, c, true), 0, "EndTxn(commit)");
        eventually("the commit marker written", READ_DEADLINE, || {
            let v = fetch_committed(&mut conn, topic, 0);
            (v.high_watermark == 3 && v.last_stable_offset == 3, v)
        });
    });
}
