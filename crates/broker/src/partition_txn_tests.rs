//! Transactions through `Partition`: the coordinator's permission, markers, the last stable
//! offset and the aborted list, across a crash and a clean close.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strom_storage::markers::Marker;
use strom_storage::{batch, FirstBatch};

use crate::flusher::Flusher;
use crate::partition::Isolation;
use crate::{BrokerError, FlushPolicy, Partition, TopicConfig};

/// A transactional batch of `records` records from `pid`/`epoch` at sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, records: i32) -> Bytes {
    let rec = strom_storage::records::KeyValue {
        key: Bytes::from_static(b"k"),
        value: Some(Bytes::from_static(b"v")),
    };
    let recs: Vec<_> = (0..records).map(|_| rec.clone()).collect();
    strom_storage::records::encode_batch_as(
        strom_storage::records::ATTR_TRANSACTIONAL,
        strom_storage::records::ProducerFields {
            id: pid,
            epoch,
            base_sequence: seq,
        },
        &recs,
        1_000,
    )
}

/// A partition whose high watermark follows appends at once (no flusher runs; a dropped
/// partition is a crash).
fn open(dir: &Path) -> Arc<Partition> {
    open_with(dir, &TopicConfig::default())
}

fn open_with(dir: &Path, config: &TopicConfig) -> Arc<Partition> {
    let (flusher, threads) = Flusher::start(FlushPolicy::Always).unwrap();
    flusher.stop();
    for t in threads {
        t.join().unwrap();
    }
    Partition::open(
        "t",
        0,
        dir.to_path_buf(),
        config,
        flusher,
        FlushPolicy::IntervalMs(1000),
    )
    .unwrap()
}

fn marker(pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Marker {
    Marker {
        producer_id: pid,
        producer_epoch: epoch,
        commit,
        coordinator_epoch,
    }
}

/// Where read_committed fetches from 0 stop (a fetch returns one segment at most, so it reads
/// on), and the aborted transactions they list.
fn committed_view(p: &Partition) -> (u64, Vec<(i64, u64)>) {
    let (mut end, mut aborted) = (0, Vec::new());
    loop {
        let d = p
            .read_isolated(end, 1 << 20, FirstBatch::Whole, Isolation::ReadCommitted)
            .unwrap();
        let Some(last) = batch::split(&d.records).unwrap().last().cloned() else {
            return (end, aborted);
        };
        for a in d.aborted {
            if !aborted.contains(&(a.producer_id, a.first_offset)) {
                aborted.push((a.producer_id, a.first_offset));
            }
        }
        end = batch::BatchHeader::parse(&last).unwrap().last_offset() as u64 + 1;
    }
}

#[test]
fn a_transaction_needs_the_coordinators_permission_and_ends_with_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    assert!(matches!(
        p.append(&[txn_batch(7, 0, 0, 2)]),
        Err(BrokerError::InvalidTxnState(_))
    ));
    assert!(matches!(
        p.append(&[txn_batch(7, 0, -1, 2)]),
        Err(BrokerError::InvalidRecord(_))
    ));
    p.allow_transaction(7, 0).unwrap();
    assert!(
        matches!(
            p.append(&[txn_batch(7, 1, 0, 2)]),
            Err(BrokerError::InvalidTxnState(_))
        ),
        "another epoch than the one allowed"
    );
    assert_eq!(p.append(&[txn_batch(7, 0, 0, 2)]).unwrap().base_offset, 0);
    assert_eq!(p.append(&[txn_batch(7, 0, 2, 1)]).unwrap().base_offset, 2);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (3, 0));
    assert_eq!(p.open_transactions(), vec![(7, 0)]);
    // Abort: the marker takes offset 3, the LSO moves past it, the range is listed.
    p.write_marker(&marker(7, 0, false, 4)).unwrap();
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (4, 4));
    assert_eq!(committed_view(&p), (4, vec![(7, 0)]));
    assert!(
        matches!(
            p.append(&[txn_batch(7, 0, 3, 1)]),
            Err(BrokerError::InvalidTxnState(_))
        ),
        "a late batch of the ended transaction cannot start another"
    );
    // A marker from a deposed coordinator is refused; the current one's is taken.
    assert!(matches!(
        p.write_marker(&marker(7, 0, true, 3)),
        Err(BrokerError::CoordinatorFenced(_))
    ));
    p.allow_transaction(7, 0).unwrap();
    assert_eq!(p.append(&[txn_batch(7, 0, 3, 1)]).unwrap().base_offset, 4);
    p.write_marker(&marker(7, 0, true, 4)).unwrap();
    assert_eq!(p.last_stable_offset(), 6);
    assert_eq!(committed_view(&p), (6, vec![(7, 0)]));
    // A fencing abort carries the next epoch: the old one is refused from then on.
    p.allow_transaction(7, 0).unwrap();
    assert_eq!(p.append(&[txn_batch(7, 0, 4, 1)]).unwrap().base_offset, 6);
    p.write_marker(&marker(7, 1, false, 4)).unwrap();
    assert!(matches!(
        p.append(&[txn_batch(7, 0, 5, 1)]),
        Err(BrokerError::InvalidProducerEpoch(_))
    ));
    assert!(matches!(
        p.write_marker(&marker(7, 0, true, 4)),
        Err(BrokerError::InvalidProducerEpoch(_))
    ));
    assert_eq!(committed_view(&p).1, vec![(7, 0), (7, 6)]);
}

/// Transaction version 2: the next transaction (the next epoch) may send its first batch
/// before the last one's marker is written here; that batch waits for the coordinator instead
/// of joining the open transaction, whose marker would then end it too.
#[test]
fn a_batch_of_the_next_epoch_does_not_join_the_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    p.allow_transaction(7, 0).unwrap();
    assert_eq!(p.append(&[txn_batch(7, 0, 0, 2)]).unwrap().base_offset, 0);
    for seq in [0, 1] {
        assert!(
            matches!(
                p.append(&[txn_batch(7, 1, seq, 1)]),
                Err(BrokerError::InvalidTxnState(_))
            ),
            "epoch 1, sequence {seq}, while epoch 0's transaction is open"
        );
    }
    // The commit marker carries the bumped epoch; then the coordinator allows epoch 1.
    p.write_marker(&marker(7, 1, true, 0)).unwrap();
    p.allow_transaction(7, 1).unwrap();
    assert_eq!(p.append(&[txn_batch(7, 1, 0, 1)]).unwrap().base_offset, 3);
    p.write_marker(&marker(7, 2, false, 0)).unwrap();
    assert_eq!(committed_view(&p), (5, vec![(7, 3)]));
}

#[test]
fn the_last_stable_offset_and_aborted_list_survive_a_crash_and_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    p.allow_transaction(1, 0).unwrap();
    p.allow_transaction(2, 0).unwrap();
    p.append(&[txn_batch(1, 0, 0, 2)]).unwrap(); // 0-1, aborted below
    p.append(&[txn_batch(2, 0, 0, 1)]).unwrap(); // 2, left open
    p.write_marker(&marker(1, 0, false, 0)).unwrap(); // 3
    let before = (p.last_stable_offset(), committed_view(&p));
    assert_eq!(before, (2, (2, vec![(1, 0)])));
    drop(p);
    let p = open(dir.path());
    assert_eq!(
        (p.last_stable_offset(), committed_view(&p)),
        before,
        "rebuilt from the log"
    );
    // The open transaction goes on after the restart (it stays allowed: it is open here).
    p.append(&[txn_batch(2, 0, 1, 1)]).unwrap(); // 4
    p.write_marker(&marker(2, 0, true, 0)).unwrap(); // 5
    assert_eq!(p.last_stable_offset(), 6);
    p.close().unwrap();
    drop(p);
    let p = open(dir.path());
    assert_eq!(
        (p.last_stable_offset(), committed_view(&p)),
        (6, (6, vec![(1, 0)])),
        "restored from the snapshot"
    );
}

/// Compaction and transactions: an aborted transaction's records are removed (and never
/// shadow a committed record of the same key), its batches keep their place, markers stay.
#[test]
fn cleaning_removes_aborted_records_and_keeps_markers() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig::default()
        .with_overrides(
            &[
                ("cleanup.policy", "compact"),
                // One batch per segment, so everything but the last is sealed.
                ("segment.bytes", "14"),
                ("min.cleanable.dirty.ratio", "0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
        .unwrap();
    let p = open_with(dir.path(), &config);
    p.allow_transaction(7, 0).unwrap();
    p.append(&[txn_batch(7, 0, 0, 1)]).unwrap(); // offset 0, committed
    p.write_marker(&marker(7, 0, true, 1)).unwrap(); // 1
    p.allow_transaction(7, 0).unwrap();
    p.append(&[txn_batch(7, 0, 1, 2)]).unwrap(); // 2..=3, aborted
    p.write_marker(&marker(7, 0, false, 1)).unwrap(); // 4
    let other = strom_storage::records::encode_batch(
        &[strom_storage::records::KeyValue {
            key: Bytes::from_static(b"z"),
            value: Some(Bytes::from_static(b"z")),
        }],
        1_000,
    );
    p.append(&[other]).unwrap(); // 5, the active segment
    let stats = p
        .clean(&config, 1 << 20, &strom_storage::clean::Throttle::new(None))
        .unwrap()
        .expect("a pass ran");
    assert_eq!(stats.records_removed, 2, "the aborted records");
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < p.high_watermark() {
        let d = p
            .read_isolated(
                offset,
                1 << 20,
                FirstBatch::Whole,
                Isolation::ReadUncommitted,
            )
            .unwrap();
        for b in batch::split(&d.records).unwrap() {
            let h = batch::BatchHeader::parse(&b).unwrap();
            seen.push((h.base_offset, h.records_count, h.is_control()));
            offset = h.last_offset() as u64 + 1;
        }
    }
    assert_eq!(
        seen,
        vec![
            (0, 1, false),
            (1, 1, true),
            (2, 0, false),
            (4, 1, true),
            (5, 1, false)
        ]
    );
    assert_eq!(committed_view(&p), (6, vec![(7, 2)]));
}
