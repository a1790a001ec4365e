//! Idempotent appends through `Partition` and the producer state across close, crash and damaged
//! snapshots.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::producer_snapshot;
use crate::TopicConfig;
use strom_storage::batch;

/// A valid v2 batch of `records` opaque records from `pid`/`epoch` at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, records: i32) -> Bytes {
    let payload = 50usize;
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((batch::HEADER_LEN + payload - 12) as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(records - 1).to_be_bytes());
    out.extend_from_slice(&1_000i64.to_be_bytes());
    out.extend_from_slice(&1_000i64.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&records.to_be_bytes());
    out.extend((0..payload).map(|i| (i as u8).wrapping_mul(seq as u8)));
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// A flusher that never runs, so nothing but `close` writes a snapshot and a dropped partition
/// is a crash.
fn idle_flusher() -> Arc<Flusher> {
    let (flusher, threads) = Flusher::start(FlushPolicy::Always).unwrap();
    flusher.stop();
    for t in threads {
        t.join().unwrap();
    }
    flusher
}

fn open_with(dir: &Path, config: &TopicConfig) -> Arc<Partition> {
    Partition::open(
        "t",
        0,
        dir.to_path_buf(),
        config,
        idle_flusher(),
        FlushPolicy::Always,
    )
    .unwrap()
}

fn open(dir: &Path) -> Arc<Partition> {
    open_with(dir, &TopicConfig::default())
}

fn append(
    p: &Arc<Partition>,
    pid: i64,
    epoch: i16,
    seq: i32,
    records: i32,
) -> Result<u64, BrokerError> {
    p.append(&[batch(pid, epoch, seq, records)])
        .map(|r| r.base_offset)
}

/// Producer 1 writes three batches (offsets 0-1, 2-4, 5), producer 2 one (offset 6).
fn fill(p: &Arc<Partition>) {
    assert_eq!(append(p, 1, 0, 0, 2).unwrap(), 0);
    assert_eq!(append(p, 1, 0, 2, 3).unwrap(), 2);
    assert_eq!(append(p, 1, 0, 5, 1).unwrap(), 5);
    assert_eq!(append(p, 2, 4, 0, 1).unwrap(), 6);
    assert_eq!(p.log_end_offset(), 7);
}

/// What `fill` built is all there: retries are duplicates and sequences continue.
fn check_filled(p: &Arc<Partition>) {
    assert_eq!(
        append(p, 1, 0, 2, 3).unwrap(),
        2,
        "retry answers the original offset"
    );
    assert_eq!(append(p, 2, 4, 0, 1).unwrap(), 6);
    assert_eq!(p.log_end_offset(), 7, "duplicates append nothing");
    assert!(matches!(
        append(p, 1, 0, 7, 1),
        Err(BrokerError::OutOfOrderSequence(_))
    ));
    assert_eq!(append(p, 1, 0, 6, 1).unwrap(), 7);
}

#[test]
fn duplicates_are_answered_once_and_errors_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    fill(&p);
    check_filled(&p);
    assert!(matches!(
        append(&p, 2, 3, 1, 1),
        Err(BrokerError::InvalidProducerEpoch(_))
    ));
    assert!(matches!(
        append(&p, 2, 5, 3, 1),
        Err(BrokerError::OutOfOrderSequence(_))
    ));
    assert_eq!(p.log_end_offset(), 8);
    // A request with a bad second batch appends neither.
    let r = p.append(&[batch(1, 0, 7, 1), batch(1, 0, 9, 1)]);
    assert!(matches!(r, Err(BrokerError::OutOfOrderSequence(_))));
    assert_eq!(p.log_end_offset(), 8);
    assert_eq!(
        p.producer_entry(1)
            .unwrap()
            .batches
            .back()
            .unwrap()
            .last_seq,
        6
    );
    // Plain batches are never checked.
    assert_eq!(append(&p, -1, -1, -1, 1).unwrap(), 8);
    assert_eq!(append(&p, -1, -1, -1, 1).unwrap(), 9);
}

#[test]
fn state_survives_a_clean_close_through_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    fill(&p);
    p.close().unwrap();
    let expected = (p.producer_entry(1), p.producer_entry(2));
    drop(p);
    let (offset, _, _) = producer_snapshot::read(dir.path()).unwrap().unwrap();
    assert_eq!(offset, 7);

    let log = Log::open(dir.path(), TopicConfig::default().log_config()).unwrap();
    let restored = producer_snapshot::restore(dir.path(), &log, crate::now_ms()).unwrap();
    assert_eq!(
        (restored.snapshot_offset, restored.scanned_from),
        (Some(7), 7)
    );
    drop(log);

    let p = open(dir.path());
    assert_eq!((p.producer_entry(1), p.producer_entry(2)), expected);
    check_filled(&p);
}

#[test]
fn state_is_rebuilt_from_the_log_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    fill(&p);
    drop(p); // no close: no snapshot
    assert!(!producer_snapshot::path(dir.path()).exists());
    let p = open(dir.path());
    check_filled(&p);
}

#[test]
fn snapshot_plus_the_batches_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    assert_eq!(append(&p, 1, 0, 0, 2).unwrap(), 0);
    assert_eq!(append(&p, 1, 0, 2, 3).unwrap(), 2);
    p.close().unwrap();
    drop(p);
    let p = open(dir.path());
    assert_eq!(append(&p, 1, 0, 5, 1).unwrap(), 5);
    assert_eq!(append(&p, 2, 4, 0, 1).unwrap(), 6);
    drop(p); // crash: the snapshot covers offsets below 5 only
    let log = Log::open(dir.path(), TopicConfig::default().log_config()).unwrap();
    let restored = producer_snapshot::restore(dir.path(), &log, crate::now_ms()).unwrap();
    assert_eq!(
        (restored.snapshot_offset, restored.scanned_from),
        (Some(5), 5)
    );
    drop(log);
    let p = open(dir.path());
    check_filled(&p);
}

#[test]
fn a_corrupt_snapshot_means_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    fill(&p);
    p.close().unwrap();
    drop(p);
    let path = producer_snapshot::path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let p = open(dir.path());
    assert!(!path.exists(), "an unusable snapshot is deleted");
    check_filled(&p);
}

#[test]
fn a_snapshot_beyond_the_log_end_is_discarded_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    fill(&p);
    drop(p);
    // As if the snapshot covered batches a crash then took back: it claims producer 1 is at
    // sequence 99 and producer 3 exists.
    let mut ghost = crate::producer_state::ProducerStateMap::default();
    for (pid, seq, offset) in [(1, 99, 20), (3, 0, 21)] {
        let mut h = batch::BatchHeader::parse(&batch(pid, 0, seq, 1)).unwrap();
        h.base_offset = offset;
        ghost.replay(&h, crate::now_ms());
    }
    producer_snapshot::write(
        dir.path(),
        &producer_snapshot::encode(30, &ghost, &crate::txn_index::TxnIndex::default()),
    )
    .unwrap();
    let p = open(dir.path());
    assert!(!producer_snapshot::path(dir.path()).exists());
    assert!(p.producer_entry(3).is_none());
    check_filled(&p);
}

#[test]
fn a_segment_roll_makes_the_flusher_write_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig {
        segment_bytes: 300,
        ..TopicConfig::default()
    };
    let p = open_with(dir.path(), &config);
    let mut seq = 0;
    while p.log_end_offset() < 20 {
        append(&p, 1, 0, seq, 1).unwrap();
        seq += 1;
    }
    p.flush();
    let (offset, state, _) = producer_snapshot::read(dir.path()).unwrap().unwrap();
    assert_eq!(offset, 20);
    assert_eq!(state.get(1), p.producer_entry(1).as_ref());
    // A crash now replays nothing before offset 20.
    drop(p);
    let p = open_with(dir.path(), &config);
    assert_eq!(append(&p, 1, 0, 19, 1).unwrap(), 19);
    assert_eq!(append(&p, 1, 0, 20, 1).unwrap(), 20);
}

#[test]
fn retention_forgets_producers_whose_batches_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig {
        segment_bytes: 300,
        retention_bytes: 400,
        ..TopicConfig::default()
    };
    let p = open_with(dir.path(), &config);
    append(&p, 7, 0, 0, 1).unwrap();
    for seq in 0..10 {
        append(&p, 1, 0, seq, 1).unwrap();
    }
    assert!(p.apply_retention(crate::now_ms()).unwrap() > 0);
    assert!(p.producer_entry(7).is_none());
    assert!(p.producer_entry(1).is_some());
    // Forgotten means unknown: any sequence is accepted again.
    assert!(append(&p, 7, 0, 42, 1).is_ok());
}
