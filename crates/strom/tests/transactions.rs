//! Kafka transactions end to end with librdkafka (rdkafka crate): a transactional producer's
//! committed records are read by read_committed and read_uncommitted consumers alike, its aborted
//! records only by read_uncommitted ones; an open transaction holds read_committed consumers at
//! the last stable offset (LSO), which ListOffsets(READ_COMMITTED) reports; consumed offsets sent
//! to a transaction are committed with it and only with it; a second producer with the same
//! transactional.id fences the first; committed, aborted and open transactions survive a SIGKILL,
//! and the coordinator aborts a transaction that outlives its timeout; a 3-node cluster does the
//! same across replicated partitions.
//!
//! The coordinator answers EndTxn once the prepare record is durable and writes the markers
//! after, so what a read_committed consumer sees after `commit_transaction` returns is polled
//! for with a deadline, then watched for a quiet second in which nothing more may arrive.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{create, TestCluster};
use common::txn::{
    committed, consumer, eventually, expect_exactly, got, group_member, offsets_of, produce,
    records, txn_producer, values, Got, Isolation, Reader, Record, Sent, QUIET, READ_DEADLINE,
    TXN_TIMEOUT,
};
use common::{rdk, Strom};
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

/// The outcome of a send, if librdkafka reports it within `timeout`.
fn delivery_within(mut f: DeliveryFuture, timeout: Duration) -> Option<OwnedDeliveryResult> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = (&mut f).now_or_never() {
            return Some(r.expect("delivery canceled"));
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The end offset ListOffsets(latest) reports for `topic`/`partition`, asked by `c` with its
/// isolation level: the high watermark for read_uncommitted, the LSO for read_committed.
fn end_offset(c: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("ListOffsets {topic}/{partition}: {e}"))
        .1
}

/// The error codes librdkafka reports for a producer fenced by a newer one with its
/// transactional.id (it normalises PRODUCER_FENCED and INVALID_PRODUCER_EPOCH to `Fenced`).
fn is_fenced(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_read_and_aborted_ones_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    rdk::create_topic(&addr, "orders", 3).await;
    rdk::create_topic(&addr, "audit", 1).await;
    tokio::task::block_in_place(|| {
        let topics = [("orders", 3), ("audit", 1)];
        let mut sent = Sent::new();
        let p = txn_producer(&addr, "tx-basic", &[]);

        let first = [
            records("first", "orders", 3, 10),
            records("first", "audit", 1, 5),
        ]
        .concat();
        p.begin_transaction().expect("begin");
        produce(&p, &first, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");
        let committed = values(&[&first]);
        for isolation in [Isolation::Committed, Isolation::Uncommitted] {
            expect_exactly(&addr, isolation, &topics, &committed, &sent, "first commit");
        }

        // Aborted after its records were acknowledged: they are in the log.
        let aborted = [
            records("aborted", "orders", 3, 10),
            records("aborted", "audit", 1, 5),
        ]
        .concat();
        p.begin_transaction().expect("begin");
        produce(&p, &aborted, &mut sent);
        p.abort_transaction(TXN_TIMEOUT).expect("abort");

        let after = [
            records("after", "orders", 3, 10),
            records("after", "audit", 1, 5),
        ]
        .concat();
        p.begin_transaction().expect("begin");
        produce(&p, &after, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");

        expect_exactly(
            &addr,
            Isolation::Committed,
            &topics,
            &values(&[&first, &after]),
            &sent,
            "commit, abort, commit",
        );
        expect_exactly(
            &addr,
            Isolation::Uncommitted,
            &topics,
            &values(&[&first, &aborted, &after]),
            &sent,
            "commit, abort, commit",
        );
    });
}

/// An open transaction's first offset is the partition's LSO: read_committed consumers stop
/// there, also for non-transactional records written after it, and ListOffsets(READ_COMMITTED)
/// answers it while ListOffsets(READ_UNCOMMITTED) answers the high watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_read_committed_consumers_at_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "held";
    rdk::create_topic(&addr, topic, 1).await;
    tokio::task::block_in_place(|| {
        let topics = [(topic, 1)];
        let mut sent = Sent::new();
        let p = txn_producer(&addr, "tx-held", &[]);
        let plain = rdk::producer(&addr, &[("enable.idempotence", "true")]);

        let before = records("before", topic, 1, 3);
        p.begin_transaction().expect("begin");
        produce(&p, &before, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");
        expect_exactly(
            &addr,
            Isolation::Committed,
            &topics,
            &values(&[&before]),
            &sent,
            "before",
        );

        let open = records("open", topic, 1, 4);
        p.begin_transaction().expect("begin");
        produce(&p, &open, &mut sent);
        let after_open = records("plain", topic, 1, 3);
        produce(&plain, &after_open, &mut sent);
        let first_open = sent[&open[0].value].2;
        let last_plain = sent[&after_open[2].value].2;
        assert!(
            first_open > sent[&before[2].value].2 && last_plain > first_open,
            "{sent:?}"
        );

        let mut rc = Reader::new(&addr, Isolation::Committed, &topics);
        let mut ru = Reader::new(&addr, Isolation::Uncommitted, &topics);
        ru.poll_until(10, READ_DEADLINE);
        ru.poll_for(QUIET);
        ru.check(&values(&[&before, &open, &after_open]), &sent, "open");
        rc.poll_until(3, READ_DEADLINE);
        rc.poll_for(Duration::from_secs(2));
        rc.check(
            &values(&[&before]),
            &sent,
            "held back by the open transaction",
        );

        assert_eq!(
            end_offset(&rc.consumer, topic, 0),
            first_open,
            "ListOffsets(READ_COMMITTED) is the open transaction's first offset"
        );
        assert_eq!(
            end_offset(&ru.consumer, topic, 0),
            last_plain + 1,
            "ListOffsets(READ_UNCOMMITTED) is the high watermark"
        );

        p.commit_transaction(TXN_TIMEOUT).expect("commit");
        rc.poll_until(10, READ_DEADLINE);
        rc.poll_for(QUIET);
        rc.check(
            &values(&[&before, &open, &after_open]),
            &sent,
            "after the commit",
        );
        // The commit marker takes one offset; then nothing is open and the LSO is the high
        // watermark again.
        eventually("LSO back at the high watermark", READ_DEADLINE, || {
            let (lso, hw) = (
                end_offset(&rc.consumer, topic, 0),
                end_offset(&ru.consumer, topic, 0),
            );
            (lso == hw && hw == last_plain + 2, (lso, hw))
        });
    });
}

fn wait_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    want: &BTreeMap<i32, i64>,
) {
    for isolation in [Isolation::Uncommitted, Isolation::Committed] {
        eventually(
            &format!("{group} committed {want:?} ({isolation:?} OffsetFetch)"),
            READ_DEADLINE,
            || {
                let now = committed(bootstrap, group, topic, partitions, isolation);
                (now.as_ref().ok() == Some(want), now)
            },
        );
    }
}

/// A group member reading `n` records (not committing).
fn consume_n(c: &BaseConsumer, n: usize, what: &str) -> Vec<Got> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: read {} of {n} records",
            out.len()
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(got(&m)),
            Some(Err(e)) => panic!("{what}: {e}"),
            None => {}
        }
    }
    out
}

/// Consume-transform-produce: offsets sent to a transaction are the group's committed offsets
/// once it commits, and are discarded when it aborts; a member that takes over resumes from the
/// committed ones, so every input record is processed into the output exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_commit_with_it_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let addr = strom.addr();
    let (input, output, group) = ("ctp-in", "ctp-out", "ctp-group");
    rdk::create_topic(&addr, input, 2).await;
    rdk::create_topic(&addr, output, 2).await;
    tokio::task::block_in_place(|| {
        let mut sent = Sent::new();
        let inputs = records("in", input, 2, 20);
        produce(&rdk::producer(&addr, &[]), &inputs, &mut sent);
        let p = txn_producer(&addr, "tx-ctp", &[]);
        let member = group_member(&addr, group, input);

        // One step: read `n` input records, write each transformed to the same output partition
        // in a transaction that also carries the member's positions; the transaction is left
        // open for the caller to end. Returns the inputs read, the outputs and the positions.
        let step = |n: usize, tag: &str, sent: &mut Sent| {
            let read = consume_n(&member, n, tag);
            let out: Vec<Record> = read
                .iter()
                .map(|g| Record {
                    topic: output.to_string(),
                    partition: g.partition,
                    value: format!("{tag}:{}", g.value),
                })
                .collect();
            p.begin_transaction().expect("begin");
            produce(&p, &out, sent);
            let positions = member.position().expect("position");
            let mut read_to: BTreeMap<i32, i64> = BTreeMap::new();
            for g in &read {
                let e = read_to.entry(g.partition).or_default();
                *e = (*e).max(g.offset + 1);
            }
            // A position is just past the last record poll() returned (librdkafka's
            // application position), not where the fetcher got to.
            let positions_map = offsets_of(&positions, input);
            for (part, o) in &read_to {
                assert_eq!(
                    positions_map.get(part),
                    Some(o),
                    "{tag}: positions {positions_map:?}, read up to {read_to:?}"
                );
            }
            let metadata = member.group_metadata().expect("group metadata");
            p.send_offsets_to_transaction(&positions, &metadata, TXN_TIMEOUT)
                .expect("send_offsets_to_transaction");
            // `positions` holds librdkafka partition references: it must not outlive `member`,
            // whose drop would wait for them forever.
            drop(positions);
            (read, out, positions_map)
        };

        let (read1, out1, offsets1) = step(15, "committed", &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");
        assert!(!offsets1.is_empty());
        wait_committed(&addr, group, input, 2, &offsets1);
        expect_exactly(
            &addr,
            Isolation::Committed,
            &[(output, 2)],
            &values(&[&out1]),
            &sent,
            "first step's output",
        );

        let (_read2, out2, offsets2) = step(15, "aborted", &mut sent);
        assert_ne!(offsets2, offsets1, "the second step read further");
        p.abort_transaction(TXN_TIMEOUT).expect("abort");

        // A transaction of the same producer cannot start before the aborted one is complete
        // (markers written everywhere, the group's pending offsets included); once this one's
        // records are visible, the abort has been applied.
        let fence = records("fence", output, 2, 1);
        p.begin_transaction().expect("begin");
        produce(&p, &fence, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");
        expect_exactly(
            &addr,
            Isolation::Committed,
            &[(output, 2)],
            &values(&[&out1, &fence]),
            &sent,
            "the aborted step's output is not read",
        );
        expect_exactly(
            &addr,
            Isolation::Uncommitted,
            &[(output, 2)],
            &values(&[&out1, &out2, &fence]),
            &sent,
            "every output",
        );
        for isolation in [Isolation::Uncommitted, Isolation::Committed] {
            let now = committed(&addr, group, input, 2, isolation);
            assert_eq!(
                now.as_ref().ok(),
                Some(&offsets1),
                "aborted offsets must not be committed ({isolation:?}): {now:?}"
            );
        }

        // The member leaves; a new one resumes from the committed offsets: it reads exactly the
        // inputs the committed step did not process, the aborted step's included.
        drop(member);
        let next = group_member(&addr, group, input);
        let done: BTreeSet<&str> = read1.iter().map(|g| g.value.as_str()).collect();
        let rest: Vec<String> = inputs
            .iter()
            .map(|r| r.value.clone())
            .filter(|v| !done.contains(v.as_str()))
            .collect();
        let mut resumed = Reader {
            consumer: next,
            isolation: Isolation::Committed,
            got: Vec::new(),
        };
        resumed.poll_until(rest.len(), READ_DEADLINE);
        resumed.poll_for(QUIET);
        resumed.check(&rest, &sent, "resumed from the committed offsets");
    });
}

/// A second producer with the same transactional.id aborts the first one's open transaction and
/// fences it: the first one's commit (EndTxn) and its sends (Produce) fail with a fatal "fenced"
/// error, nothing of it is read committed, and the second one goes on with transactions of its
/// own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "fenced";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let topics = [(topic, 2)];
        let mut sent = Sent::new();

        // librdkafka's own account of the zombie's transaction states, printed if this fails.
        let _dump = librdkafka_log::capture();
        // The coordinator fences the old epoch: EndTxn.
        let zombie = txn_producer(&addr, "tx-zombie", &[("debug", "eos")]);
        zombie.begin_transaction().expect("begin");
        let zombie_records = records("zombie", topic, 2, 5);
        produce(&zombie, &zombie_records, &mut sent);
        let successor = txn_producer(&addr, "tx-zombie", &[]);
        let err = zombie
            .commit_transaction(Duration::from_secs(10))
            .expect_err("a fenced producer cannot commit");
        let KafkaError::Transaction(e) = &err else {
            panic!("not a transaction error: {err:?}")
        };
        assert!(
            e.is_fatal() && is_fenced(e.code()),
            "commit of a fenced producer: {err:?}"
        );
        assert_fenced(&zombie);
        assert!(zombie.begin_transaction().is_err(), "fatal means for good");
        assert!(!sends(&zombie, topic), "a fenced producer's send succeeded");

        // The partition leaders fence the old epoch: Produce, to a partition already in the
        // transaction, after the coordinator's abort markers carried the new epoch there.
        let zombie2 = txn_producer(&addr, "tx-zombie-2", &[]);
        zombie2.begin_transaction().expect("begin");
        let zombie2_records = records("zombie2", topic, 2, 5);
        produce(&zombie2, &zombie2_records, &mut sent);
        let successor2 = txn_producer(&addr, "tx-zombie-2", &[]);
        assert!(
            !sends(&zombie2, topic),
            "a fenced producer's record was acknowledged"
        );
        assert_fenced(&zombie2);
        assert!(
            zombie2.commit_transaction(Duration::from_secs(10)).is_err(),
            "a fenced producer cannot commit"
        );

        let successor_records = records("successor", topic, 2, 5);
        successor.begin_transaction().expect("begin");
        produce(&successor, &successor_records, &mut sent);
        successor.commit_transaction(TXN_TIMEOUT).expect("commit");
        let successor2_records = records("successor2", topic, 2, 5);
        successor2.begin_transaction().expect("begin");
        produce(&successor2, &successor2_records, &mut sent);
        successor2.commit_transaction(TXN_TIMEOUT).expect("commit");

        expect_exactly(
            &addr,
            Isolation::Committed,
            &topics,
            &values(&[&successor_records, &successor2_records]),
            &sent,
            "after fencing",
        );
        expect_exactly(
            &addr,
            Isolation::Uncommitted,
            &topics,
            &values(&[
                &zombie_records,
                &zombie2_records,
                &successor_records,
                &successor2_records,
            ]),
            &sent,
            "after fencing",
        );
    });
}

/// The producer is in librdkafka's fatal state, for being fenced.
fn assert_fenced(p: &FutureProducer) {
    let (code, reason) = p
        .client()
        .fatal_error()
        .expect("the fenced producer is in a fatal state");
    assert!(is_fenced(code), "{code:?}: {reason}");
}

/// Whether one more record sent to partition 0 of `topic` is acknowledged (within 15 s).
fn sends(p: &FutureProducer, topic: &str) -> bool {
    let Ok(f) = p.send_result(
        FutureRecord::to(topic)
            .partition(0)
            .key("late")
            .payload("late"),
    ) else {
        return false;
    };
    let _ = p.flush(Duration::from_secs(10));
    delivery_within(f, Duration::from_secs(15)).is_some_and(|r| r.is_ok())
}

/// Committed, aborted and open transactions through a SIGKILL: after the restart
/// read_committed consumers see exactly the committed records; the open transaction still holds
/// them back until its timeout, when the coordinator aborts it; a later transaction of another
/// producer on the same partitions is then read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_survive_a_crash_and_an_open_one_is_aborted_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "durable";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let topics = [(topic, 2)];
        let mut sent = Sent::new();
        let p = txn_producer(&addr, "tx-durable", &[("transaction.timeout.ms", "5000")]);

        let c1 = records("c1", topic, 2, 5);
        p.begin_transaction().expect("begin");
        produce(&p, &c1, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");

        let a2 = records("a2", topic, 2, 5);
        p.begin_transaction().expect("begin");
        produce(&p, &a2, &mut sent);
        p.abort_transaction(TXN_TIMEOUT).expect("abort");

        let t3_began = Instant::now();
        let o3 = records("o3", topic, 2, 5);
        p.begin_transaction().expect("begin");
        produce(&p, &o3, &mut sent);
        // Non-transactional records after the open ones, on both partitions.
        let plain = records("plain", topic, 2, 3);
        produce(
            &rdk::producer(&addr, &[("enable.idempotence", "true")]),
            &plain,
            &mut sent,
        );
        let first_open: Vec<i64> = (0..2).map(|part| sent[&o3[part].value].2).collect();

        strom.kill9();
        strom.restart();

        // Right after the restart (if the timeout cannot have passed yet) the open transaction
        // is still open: its state came back from the log.
        let rc = consumer(&addr, Isolation::Committed, "strom-txn-lso");
        let lso: Vec<i64> = (0..2).map(|part| end_offset(&rc, topic, part)).collect();
        if t3_began.elapsed() < Duration::from_millis(4500) {
            assert_eq!(lso, first_open, "the open transaction still holds the LSO");
        } else {
            eprintln!("restart took too long to check the LSO before the timeout");
        }

        expect_exactly(
            &addr,
            Isolation::Uncommitted,
            &topics,
            &values(&[&c1, &a2, &o3, &plain]),
            &sent,
            "after the crash",
        );
        // The coordinator aborts the open transaction once it outlives its 5 s timeout (after
        // a check interval): then the plain records after it are read committed, o3 never.
        let mut r = Reader::new(&addr, Isolation::Committed, &topics);
        let want = values(&[&c1, &plain]);
        r.poll_until(want.len(), Duration::from_secs(40));
        r.poll_for(QUIET);
        r.check(&want, &sent, "after the crash and the timeout");

        // Another producer's transaction on the same partitions is read committed too.
        let other = txn_producer(&addr, "tx-durable-2", &[]);
        let c4 = records("c4", topic, 2, 5);
        other.begin_transaction().expect("begin");
        produce(&other, &c4, &mut sent);
        other.commit_transaction(TXN_TIMEOUT).expect("commit");
        r.poll_until(want.len() + c4.len(), READ_DEADLINE);
        r.poll_for(QUIET);
        r.check(&values(&[&c1, &plain, &c4]), &sent, "a later transaction");

        // The timed-out producer's transaction is over (aborted, its epoch fenced): it cannot
        // commit it, and trying changes nothing.
        p.commit_transaction(Duration::from_secs(10))
            .expect_err("a transaction aborted by its timeout cannot commit");
        drop(p);
        expect_exactly(
            &addr,
            Isolation::Committed,
            &topics,
            &values(&[&c1, &plain, &c4]),
            &sent,
            "in the end",
        );
    });
}

/// Transactions across a replicated (RF 3) topic of a 3-node cluster: read_committed
/// consumers see exactly the committed records, also from the survivors once a partition
/// leader is killed, and the producer commits again through the new leaders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_commits_and_aborts_across_replicated_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    let topic = "txn-replicated";
    create(&bootstrap, topic, 4, 3).await;
    let leaders = cluster.wait_for_leaders(&bootstrap, topic, 3, 3, &[], Duration::from_secs(30));
    tokio::task::block_in_place(|| {
        let topics = [(topic, 4)];
        let mut sent = Sent::new();
        let p = txn_producer(&bootstrap, "tx-cluster", &[]);

        let c1 = records("c1", topic, 4, 10);
        p.begin_transaction().expect("begin");
        produce(&p, &c1, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");

        let a2 = records("a2", topic, 4, 10);
        p.begin_transaction().expect("begin");
        produce(&p, &a2, &mut sent);
        p.abort_transaction(TXN_TIMEOUT).expect("abort");

        let c3 = records("c3", topic, 4, 10);
        p.begin_transaction().expect("begin");
        produce(&p, &c3, &mut sent);
        p.commit_transaction(TXN_TIMEOUT).expect("commit");

        let committed = values(&[&c1, &c3]);
        expect_exactly(
            &bootstrap,
            Isolation::Committed,
            &topics,
            &committed,
            &sent,
            "cluster",
        );
        expect_exactly(
            &bootstrap,
            Isolation::Uncommitted,
            &topics,
            &values(&[&c1, &a2, &c3]),
            &sent,
            "cluster",
        );

        // The markers are replicated like the records: kill partition 0's leader and read
        // from the survivors.
        let dead = leaders[0];
        cluster.node(dead).kill9();
        let survivors: Vec<i32> = (1..=3).filter(|id| *id != dead).collect();
        cluster.wait_converged(&survivors, topic, 2, &[dead], Duration::from_secs(30));
        let survivor_bootstrap = survivors
            .iter()
            .map(|id| cluster.nodes[(*id - 1) as usize].addr())
            .collect::<Vec<_>>()
            .join(",");
        expect_exactly(
            &survivor_bootstrap,
            Isolation::Committed,
            &topics,
            &committed,
            &sent,
            "survivors",
        );

        // And transactions go on through the new leaders (and coordinator, if it moved).
        let c4 = records("c4", topic, 4, 5);
        p.begin_transaction().expect("begin");
        produce(&p, &c4, &mut sent);
        p.commit_transaction(TXN_TIMEOUT)
            .expect("commit after a node died");
        expect_exactly(
            &survivor_bootstrap,
            Isolation::Committed,
            &topics,
            &values(&[&c1, &c3, &c4]),
            &sent,
            "survivors, after one more commit",
        );
    });
}

/// librdkafka's log lines (rust-rdkafka passes them to the `log` crate), kept in memory and
/// printed on the test's thread if it panics, so a failure shows what the client did.
mod librdkafka_log {
    use std::sync::{Mutex, Once};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.target().starts_with("librdkafka")
        }

        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                let mut lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
                if lines.len() < 10_000 {
                    lines.push(format!("{} {}", r.level(), r.args()));
                }
            }
        }

        fn flush(&self) {}
    }

    /// Prints the captured lines when dropped during a panic.
    pub struct DumpOnPanic;

    impl Drop for DumpOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                for line in LINES.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    eprintln!("{line}");
                }
            }
        }
    }

    pub fn capture() -> DumpOnPanic {
        INSTALL.call_once(|| {
            if log::set_logger(&Capture).is_ok() {
                log::set_max_level(log::LevelFilter::Debug);
            }
        });
        DumpOnPanic
    }
}
