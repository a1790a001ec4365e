use std::path::Path;

use bytes::Bytes;
use raft::eraftpb::{Entry, EntryType};
use strom_storage::records::{self, KeyValue};
use strom_storage::{Log, LogConfig};

use super::*;

/// A client batch of `records` records, tagged so its bytes are unique.
fn data_batch(tag: u64, records: usize) -> Bytes {
    let recs: Vec<KeyValue> = (0..records)
        .map(|i| KeyValue {
            key: Bytes::from(format!("k{tag}-{i}")),
            value: Some(Bytes::from(tag.to_be_bytes().to_vec())),
        })
        .collect();
    records::encode_batch(&recs, 1_000 + tag as i64)
}

fn data(index: u64, term: u64, records: usize) -> Entry {
    Entry {
        index,
        term,
        data: data_batch(index * 1_000 + term, records),
        ..Entry::default()
    }
}

fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Entry::default()
    }
}

fn conf(index: u64, term: u64, bytes: &'static [u8]) -> Entry {
    let mut e = noop(index, term);
    e.set_entry_type(EntryType::EntryConfChangeV2);
    e.data = Bytes::from_static(bytes);
    e
}

fn open(dir: &Path) -> Log {
    Log::open(dir, LogConfig::default()).unwrap()
}

fn small_segments(dir: &Path) -> Log {
    let config = LogConfig {
        segment_bytes: 512,
        ..LogConfig::default()
    };
    Log::open(dir, config).unwrap()
}

/// The stored batch differs from the proposed one only in the prefix the log rewrites
/// (base offset, length, leader epoch, magic), which the CRC does not cover.
fn same_entry(stored: &Entry, proposed: &Entry) -> bool {
    let body = |e: &Entry| -> Bytes {
        if e.get_entry_type() == EntryType::EntryNormal && e.data.len() > 17 {
            e.data.slice(17..)
        } else {
            e.data.clone()
        }
    };
    stored.index == proposed.index
        && stored.term == proposed.term
        && stored.get_entry_type() == proposed.get_entry_type()
        && body(stored) == body(proposed)
}

fn assert_entries(got: &[Entry], want: &[Entry]) {
    assert_eq!(got.len(), want.len(), "entry count");
    for (g, w) in got.iter().zip(want) {
        assert!(
            same_entry(g, w),
            "entry {} differs: {g:?} vs {w:?}",
            w.index
        );
    }
}

/// Terms 1,1,2,2,2,4 with 1..3 records each and a no-op and a configuration change mixed in.
fn sample() -> Vec<Entry> {
    vec![
        noop(1, 1),
        data(2, 1, 3),
        data(3, 2, 1),
        conf(4, 2, b"conf change bytes"),
        data(5, 2, 2),
        data(6, 4, 1),
    ]
}

fn filled(dir: &Path) -> (Log, EntryIndex, Vec<Entry>) {
    let mut log = open(dir);
    let mut index = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    let entries = sample();
    let headers = index.append(&mut log, &entries, 0, 7).unwrap();
    assert_eq!(headers.len(), entries.len());
    (log, index, entries)
}

#[test]
fn an_empty_log_has_no_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let index = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    assert_eq!(index.first_index(), 1);
    assert_eq!(index.last_index(), 0);
    assert_eq!(index.last_term(), 0);
    assert_eq!(index.term(0).unwrap(), 0);
    assert!(matches!(
        index.term(1),
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    ));
    assert_eq!(index.entries(&log, 1, 1, None).unwrap(), Vec::new());
    assert_eq!(index.end_offset(0, &log), Some(0));
    assert_eq!(index.epoch_end(5, &log), None);
}

#[test]
fn append_maps_entries_to_offsets_and_terms() {
    let dir = tempfile::tempdir().unwrap();
    let (log, index, entries) = filled(dir.path());
    assert_eq!(index.last_index(), 6);
    assert_eq!(index.last_term(), 4);
    for e in &entries {
        assert_eq!(index.term(e.index).unwrap(), e.term, "term of {}", e.index);
    }
    // Record counts 1 (no-op), 3, 1, 1 (conf), 2, 1: offsets count records, not entries.
    let starts: Vec<u64> = (1..=7)
        .map(|i| index.start_offset(i, &log).unwrap())
        .collect();
    assert_eq!(starts, vec![0, 1, 4, 5, 6, 8, 9]);
    assert_eq!(log.next_offset(), 9);
    assert_eq!(index.start_offset(8, &log), None);
    let holders: Vec<Option<u64>> = (0..10).map(|o| index.index_of_offset(o, &log)).collect();
    let want = [1, 2, 2, 2, 3, 4, 5, 5, 6].map(Some);
    assert_eq!(holders[..9], want, "the entry holding each offset");
    assert_eq!(holders[9], None, "past the log end");
    assert_eq!(index.end_offset(2, &log), Some(4));
    assert_eq!(index.end_offset(6, &log), Some(9));
    let mut scanned = Vec::new();
    log.scan_headers(0, |h| {
        scanned.push((h.base_offset, h.partition_leader_epoch, h.is_control()))
    })
    .unwrap();
    assert_eq!(
        scanned,
        vec![
            (0, 1, true),
            (1, 1, false),
            (4, 2, false),
            (5, 2, true),
            (6, 2, false),
            (8, 4, false),
        ]
    );
}

#[test]
fn entries_read_back_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (log, index, entries) = filled(dir.path());
    assert_entries(&index.entries(&log, 1, 7, None).unwrap(), &entries);
    assert_entries(&index.entries(&log, 3, 5, None).unwrap(), &entries[2..4]);
    let got = index.entries(&log, 1, 7, None).unwrap();
    assert_eq!(got[0].get_entry_type(), EntryType::EntryNormal);
    assert!(got[0].data.is_empty(), "a no-op reads back as empty data");
    assert_eq!(&got[3].data[..], b"conf change bytes");
    // Once applied, entries come from the log: the stored data batch carries the offset and
    // epoch the log assigned.
    index.release_applied(6);
    let stored = index.entries(&log, 1, 7, None).unwrap();
    assert_entries(&stored, &entries);
    assert!(
        stored[0].data.is_empty(),
        "a no-op reads back as empty data"
    );
    assert_eq!(&stored[3].data[..], b"conf change bytes");
    let h = BatchHeader::parse(&stored[4].data).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (6, 2));
    assert!(matches!(
        index.entries(&log, 0, 3, None),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    assert!(matches!(
        index.entries(&log, 5, 8, None),
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    ));
    assert!(matches!(
        index.entries(&log, 4, 3, None),
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    ));
}

#[test]
fn entries_respect_max_size_but_return_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let (log, index, entries) = filled(dir.path());
    // First from memory (not applied yet), then from the log.
    for _ in 0..2 {
        let one = index.entries(&log, 2, 7, Some(1)).unwrap();
        assert_entries(&one, &entries[1..2]);
        let first_two = (entries[1].data.len() + entries[2].data.len()) as u64;
        let two = index.entries(&log, 2, 7, Some(first_two)).unwrap();
        assert_entries(&two, &entries[1..3]);
        let still_two = index.entries(&log, 2, 7, Some(first_two + 1)).unwrap();
        assert_eq!(
            still_two.len(),
            2,
            "the next batch does not fit in one byte"
        );
        assert_eq!(index.entries(&log, 2, 7, Some(0)).unwrap().len(), 1);
        index.release_applied(6);
    }
}

/// The base offset a data entry reads back with: the log's for a stored batch, the proposer's
/// (0 here) for one still in memory.
fn read_base_offset(index: &EntryIndex, log: &Log, idx: u64) -> i64 {
    let got = index.entries(log, idx, idx + 1, None).unwrap();
    BatchHeader::parse(&got[0].data).unwrap().base_offset
}

#[test]
fn unapplied_entries_read_the_same_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, mut entries) = filled(dir.path());
    assert_eq!(read_base_offset(&index, &log, 5), 0, "from memory");
    // Losing leadership empties the memory; the log answers the same.
    index.release_all();
    assert_eq!(read_base_offset(&index, &log, 5), 6, "from the log");
    assert_entries(&index.entries(&log, 1, 7, None).unwrap(), &entries);
    index.append(&mut log, &entries[4..], 3, 0).unwrap();
    assert_eq!(read_base_offset(&index, &log, 5), 0, "from memory again");
    // A window that starts below the entries in memory reads the log.
    index.release_applied(3);
    assert_entries(&index.entries(&log, 1, 7, None).unwrap(), &entries);
    assert_eq!(read_base_offset(&index, &log, 2), 1, "from the log");
    assert_entries(&index.entries(&log, 4, 7, None).unwrap(), &entries[3..]);
    // A conflicting suffix replaces the entries in memory too.
    let replacement = vec![data(5, 5, 3), data(6, 5, 1)];
    index.append(&mut log, &replacement, 3, 0).unwrap();
    entries.truncate(4);
    entries.extend(replacement);
    assert_entries(&index.entries(&log, 4, 7, None).unwrap(), &entries[3..]);
    index.truncate_from(&mut log, 6).unwrap();
    assert!(matches!(
        index.entries(&log, 5, 7, None),
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    ));
    index.release_applied(5);
    assert_entries(&index.entries(&log, 1, 6, None).unwrap(), &entries[..5]);
    assert_eq!(read_base_offset(&index, &log, 5), 6, "from the log");
}

#[test]
fn memory_holds_a_bounded_suffix_of_unapplied_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut index = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    let big = |index: u64| Entry {
        index,
        term: 1,
        data: records::encode_batch(
            &[KeyValue {
                key: Bytes::from(format!("k{index}")),
                value: Some(Bytes::from(vec![index as u8; 1 << 20])),
            }],
            0,
        ),
        ..Entry::default()
    };
    let entries: Vec<Entry> = (1..=10).map(big).collect();
    index.append(&mut log, &entries, 0, 0).unwrap();
    assert_entries(&index.entries(&log, 1, 11, None).unwrap(), &entries);
    assert_ne!(
        read_base_offset(&index, &log, 2),
        0,
        "evicted: from the log"
    );
    assert_eq!(
        read_base_offset(&index, &log, 10),
        0,
        "the newest stay in memory"
    );
}

#[test]
fn term_errors_outside_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, index, _) = filled(dir.path());
    assert_eq!(index.term(0).unwrap(), 0);
    assert!(matches!(
        index.term(7),
        Err(raft::Error::Store(raft::StorageError::Unavailable))
    ));
}

#[test]
fn a_conflicting_append_cuts_the_suffix_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, mut entries) = filled(dir.path());
    let replacement = vec![data(4, 3, 2), data(5, 3, 1)];
    index.append(&mut log, &replacement, 3, 9).unwrap();
    entries.truncate(3);
    entries.extend(replacement);
    assert_eq!(index.last_index(), 5);
    assert_eq!(index.last_term(), 3);
    assert_eq!(index.term(4).unwrap(), 3);
    assert_eq!(log.next_offset(), 8);
    assert_eq!(
        log.durable_offset(),
        5,
        "the cut is fsynced, the new entries are not"
    );
    assert_entries(&index.entries(&log, 1, 6, None).unwrap(), &entries);
    assert_eq!(index.terms, vec![(1, 1), (3, 2), (4, 3)]);
}

#[test]
fn append_refuses_gaps_and_the_committed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, entries) = filled(dir.path());
    assert!(matches!(
        index.append(&mut log, &[data(8, 4, 1)], 0, 0),
        Err(ConsensusError::NotContiguous {
            index: 8,
            first: 1,
            last: 6
        })
    ));
    assert!(matches!(
        index.append(&mut log, &[data(3, 5, 1)], 3, 0),
        Err(ConsensusError::RewritesCommitted {
            index: 3,
            applied: 3
        })
    ));
    let mut bad = data(7, 4, 1);
    bad.data = Bytes::from_static(b"not a record batch");
    assert!(matches!(
        index.append(&mut log, &[bad], 0, 0),
        Err(ConsensusError::BadEntry { index: 7, .. })
    ));
    let mut control_as_data = data(7, 4, 1);
    control_as_data.data = control::encode(EntryType::EntryNormal, b"", 0);
    assert!(matches!(
        index.append(&mut log, &[control_as_data], 0, 0),
        Err(ConsensusError::BadEntry { index: 7, .. })
    ));
    // Nothing half-written by the refusals.
    assert_eq!(index.last_index(), 6);
    assert_eq!(log.next_offset(), 9);
    assert_entries(&index.entries(&log, 1, 7, None).unwrap(), &entries);
}

#[test]
fn a_transaction_marker_is_a_data_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, _) = filled(dir.path());
    let marker = strom_storage::markers::Marker {
        producer_id: 9,
        producer_epoch: 1,
        commit: true,
        coordinator_epoch: 2,
    };
    let entry = Entry {
        index: 7,
        term: 4,
        data: strom_storage::markers::encode(&marker, 5_000),
        ..Entry::default()
    };
    index
        .append(&mut log, std::slice::from_ref(&entry), 0, 0)
        .unwrap();
    index.release_applied(7);
    let back = index.entries(&log, 7, 8, None).unwrap();
    assert_entries(&back, &[entry]);
    assert_eq!(back[0].get_entry_type(), EntryType::EntryNormal);
    assert_eq!(strom_storage::markers::decode(&back[0].data), Some(marker));
    // And after a reopen, rebuilt from the batch headers.
    drop((index, log));
    let mut log = open(dir.path());
    let reopened = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    assert_eq!(reopened.last_index(), 7);
    let again = reopened.entries(&log, 7, 8, None).unwrap();
    assert_eq!(strom_storage::markers::decode(&again[0].data), Some(marker));
}

#[test]
fn truncate_from_removes_entries_terms_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, entries) = filled(dir.path());
    index.truncate_from(&mut log, 8).unwrap();
    assert_eq!(index.last_index(), 6, "past the end is a no-op");
    index.truncate_from(&mut log, 3).unwrap();
    assert_eq!(index.last_index(), 2);
    assert_eq!(index.last_term(), 1);
    assert_eq!(index.terms, vec![(1, 1)]);
    assert_eq!(log.next_offset(), 4);
    assert_entries(&index.entries(&log, 1, 3, None).unwrap(), &entries[..2]);
    index.truncate_from(&mut log, 1).unwrap();
    assert_eq!(index.last_index(), 0);
    assert_eq!(index.last_term(), 0);
    assert_eq!(log.next_offset(), 0);
    index.append(&mut log, &[data(1, 6, 2)], 0, 0).unwrap();
    assert_eq!(index.term(1).unwrap(), 6);
    assert_eq!(index.end_offset(1, &log), Some(2));
}

#[test]
fn epoch_end_answers_offset_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (log, index, _) = filled(dir.path());
    // Term runs: 1 from offset 0, 2 from offset 4, 4 from offset 8; log end 9.
    assert_eq!(index.epoch_end(0, &log), None);
    assert_eq!(index.epoch_end(1, &log), Some((1, 4)));
    assert_eq!(index.epoch_end(2, &log), Some((2, 8)));
    assert_eq!(
        index.epoch_end(3, &log),
        Some((2, 8)),
        "an epoch without entries answers the largest below it"
    );
    assert_eq!(index.epoch_end(4, &log), Some((4, 9)));
    assert_eq!(index.epoch_end(99, &log), Some((4, 9)));
}

#[test]
fn reopen_rebuilds_the_index_from_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (log, index, entries) = filled(dir.path());
    drop(log);
    let mut log = open(dir.path());
    let reopened = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    assert_eq!(reopened.starts, index.starts);
    assert_eq!(reopened.terms, index.terms);
    assert_eq!(reopened.last_index(), 6);
    assert_entries(&reopened.entries(&log, 1, 7, None).unwrap(), &entries);
}

#[test]
fn reopen_after_truncation_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, entries) = compactable(dir.path());
    index.truncate_from(&mut log, 13).unwrap();
    let replacement: Vec<Entry> = (13..=20).map(|i| data(i, 9, 2)).collect();
    index.append(&mut log, &replacement, 12, 0).unwrap();
    let before = (index.starts.clone(), index.terms.clone());
    drop(log);
    let mut log = small_segments(dir.path());
    let reopened = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    assert_eq!((reopened.starts.clone(), reopened.terms.clone()), before);
    let mut want = entries[..12].to_vec();
    want.extend(replacement);
    assert_entries(&reopened.entries(&log, 1, 21, None).unwrap(), &want);
    // A read spanning segment boundaries still yields every entry once, in order.
    assert_entries(
        &reopened.entries(&log, 5, 19, Some(u64::MAX)).unwrap(),
        &want[4..18],
    );
}

#[test]
fn a_log_start_past_one_keeps_the_previous_term() {
    let dir = tempfile::tempdir().unwrap();
    let start = LogStart {
        first_index: 10,
        prev_term: 3,
        start_offset: 0,
    };
    let mut log = open(dir.path());
    let mut index = EntryIndex::open(&mut log, start).unwrap();
    assert_eq!(index.last_index(), 9);
    assert_eq!(index.last_term(), 3);
    assert_eq!(index.term(9).unwrap(), 3);
    assert!(matches!(
        index.term(8),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    assert!(matches!(
        index.append(&mut log, &[data(11, 3, 1)], 0, 0),
        Err(ConsensusError::NotContiguous { index: 11, .. })
    ));
    index
        .append(&mut log, &[data(10, 3, 2), data(11, 4, 1)], 9, 0)
        .unwrap();
    assert_eq!(index.end_offset(9, &log), Some(0));
    assert_eq!(index.end_offset(10, &log), Some(2));
    assert_eq!(index.log_start(&log), start);
    drop(log);
    let mut log = open(dir.path());
    let reopened = EntryIndex::open(&mut log, start).unwrap();
    assert_eq!(reopened.term(11).unwrap(), 4);
    assert_eq!(reopened.start_offset(11, &log), Some(2));
    assert_eq!(reopened.epoch_end(3, &log), Some((3, 2)));
}

/// Forty entries over several small segments, terms changing every seven.
fn compactable(dir: &Path) -> (Log, EntryIndex, Vec<Entry>) {
    let mut log = small_segments(dir);
    let mut index = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    let entries: Vec<Entry> = (1..=40)
        .map(|i| data(i, 1 + i / 7, 1 + (i % 3) as usize))
        .collect();
    index.append(&mut log, &entries, 0, 0).unwrap();
    assert!(log.segment_count() > 3, "the test needs several segments");
    (log, index, entries)
}

/// The base offset of the segment holding the middle of the log: a place retention can cut.
fn middle_segment_base(log: &Log) -> u64 {
    let base = log.retention_point(i64::MAX, log.next_offset() / 2);
    assert!(base > 0 && base < log.next_offset());
    base
}

#[test]
fn compaction_keeps_terms_and_offsets_of_what_remains() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, entries) = compactable(dir.path());
    let base = middle_segment_base(&log);
    log.remove_segments_below(base).unwrap();
    assert_eq!(log.log_start_offset(), base);
    let start = index.start_at(base, &log).unwrap();
    assert!(start.first_index > 1);
    assert_eq!(
        start.prev_term,
        entries[start.first_index as usize - 2].term
    );
    index.compact(start);
    assert_eq!(index.first_index(), start.first_index);
    assert_eq!(index.log_start(&log), start);
    assert_eq!(index.term(start.first_index - 1).unwrap(), start.prev_term);
    assert!(matches!(
        index.term(start.first_index - 2),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    assert!(matches!(
        index.entries(&log, start.first_index - 1, 41, None),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    let first = start.first_index as usize - 1;
    assert_entries(
        &index.entries(&log, start.first_index, 41, None).unwrap(),
        &entries[first..],
    );
    // The rebuilt index agrees.
    let rebuilt = EntryIndex::scan(&log, start).unwrap();
    assert_eq!(
        (rebuilt.starts.clone(), rebuilt.terms.clone()),
        (index.starts.clone(), index.terms.clone())
    );
}

#[test]
fn compaction_can_cut_at_an_empty_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut index, entries) = compactable(dir.path());
    // A suffix cut at a segment's base leaves that segment empty and active: retention with
    // everything applied points at the log end, which is a valid cut (an empty log after it).
    let base = middle_segment_base(&log);
    let idx = index.index_of_offset(base, &log).unwrap();
    index.truncate_from(&mut log, idx).unwrap();
    assert_eq!(log.next_offset(), base);
    let point = log.retention_point(i64::MAX, log.next_offset());
    assert_eq!(point, base);
    let start = index.start_at(point, &log).unwrap();
    assert_eq!(
        start,
        LogStart {
            first_index: idx,
            prev_term: entries[idx as usize - 2].term,
            start_offset: base,
        }
    );
    log.remove_segments_below(start.start_offset).unwrap();
    index.compact(start);
    assert_eq!(index.log_start(&log), start);
    assert_eq!(index.last_index(), idx - 1);
    assert_eq!(index.term(idx - 1).unwrap(), start.prev_term);
    // Reopened from the state, and appended to, it goes on where it stopped.
    drop(log);
    let mut log = small_segments(dir.path());
    let mut index = EntryIndex::open(&mut log, start).unwrap();
    assert_eq!(index.log_start(&log), start);
    index
        .append(&mut log, &[data(idx, 9, 1)], idx - 1, 0)
        .unwrap();
    assert_eq!(index.start_offset(idx, &log), Some(base));
    // Beyond the log end, or inside a batch, there is no cut.
    assert_eq!(index.start_at(log.next_offset() + 1, &log), None);
}

#[test]
fn open_finishes_an_interrupted_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (log, index, entries) = compactable(dir.path());
    // The state file names the new start, the crash came before any segment was deleted.
    let base = middle_segment_base(&log);
    let start = index.start_at(base, &log).unwrap();
    drop(log);
    let mut log = small_segments(dir.path());
    let reopened = EntryIndex::open(&mut log, start).unwrap();
    assert_eq!(log.log_start_offset(), base);
    assert_entries(
        &reopened.entries(&log, start.first_index, 41, None).unwrap(),
        &entries[start.first_index as usize - 1..],
    );
    // A start that is no segment base cannot be made true: an error, not a guess.
    drop(log);
    let mut log = small_segments(dir.path());
    let bad = LogStart {
        first_index: start.first_index + 1,
        prev_term: 1,
        start_offset: index.start_offset(start.first_index + 1, &log).unwrap(),
    };
    assert!(EntryIndex::open(&mut log, bad).is_err());
}

#[test]
fn open_repairs_an_interrupted_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _index, _) = compactable(dir.path());
    // The log was reset for a snapshot at offset 500, the state file not yet written: it still
    // says the log starts at 0. The empty log goes back there; the leader resends the snapshot.
    log.reset(500).unwrap();
    drop(log);
    let mut log = small_segments(dir.path());
    assert_eq!((log.log_start_offset(), log.next_offset()), (500, 500));
    let index = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    assert_eq!(index.last_index(), 0);
    // And with the state written: an empty log at the snapshot's start, entries follow it.
    let start = LogStart {
        first_index: 31,
        prev_term: 5,
        start_offset: 500,
    };
    log.reset(500).unwrap();
    drop(log);
    let mut log = small_segments(dir.path());
    let mut index = EntryIndex::open(&mut log, start).unwrap();
    assert_eq!(index.last_index(), 30);
    assert_eq!(index.term(30).unwrap(), 5);
    index.append(&mut log, &[data(31, 6, 2)], 30, 0).unwrap();
    assert_eq!(index.start_offset(31, &log), Some(500));
    assert_eq!(index.end_offset(31, &log), Some(502));
}

/// A key's record in its own batch, so later batches empty earlier ones when cleaned.
fn keyed(index: u64, term: u64, key: &str) -> Entry {
    let rec = KeyValue {
        key: Bytes::from(key.to_string()),
        value: Some(Bytes::from(index.to_be_bytes().to_vec())),
    };
    Entry {
        index,
        term,
        data: records::encode_batch(&[rec], 1_000),
        ..Entry::default()
    }
}

/// Compaction merges runs of emptied entries into one batch that counts them: the index keeps
/// every entry (before and after a reopen), and a follower reading them from the leader gets
/// one empty entry each, ending at the same offset.
#[test]
fn merged_runs_of_emptied_entries_keep_every_entry() {
    use strom_storage::clean::{CleanParams, PassContext, Throttle};
    let dir = tempfile::tempdir().unwrap();
    let mut log = small_segments(dir.path());
    let mut index = EntryIndex::open(&mut log, LogStart::default()).unwrap();
    let entries: Vec<Entry> = (1..=40)
        .map(|i| keyed(i, 1 + i / 20, if i % 5 == 0 { "b" } else { "a" }))
        .collect();
    index.append(&mut log, &entries, 0, 1_000).unwrap();
    let last = index.last_index();
    let end = log.next_offset();
    let none = std::collections::HashSet::new();
    let context = PassContext {
        is_aborted: &|_, _| false,
        producer_batches: &none,
    };
    let params = CleanParams {
        now_ms: 2_000,
        end_limit: u64::MAX,
        min_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        delete_retention_ms: 0,
        key_map_bytes: 1 << 20,
    };
    let plan = log.clean_plan(&params, None).unwrap();
    let output = plan.execute(&context, &Throttle::new(None)).unwrap();
    for segment in &output.segments {
        assert!(log.install_cleaned(segment).unwrap());
        segment.finish().unwrap();
    }
    let mut merged = 0;
    log.scan_headers(0, |h| merged += usize::from(batch::entry_count(h) > 1))
        .unwrap();
    assert!(merged > 0, "the cleaning merged some runs");
    for index in [
        index,
        EntryIndex::open(&mut log, LogStart::default()).unwrap(),
    ] {
        assert_eq!(index.last_index(), last);
        assert_eq!(index.term(last).unwrap(), 3);
        let sent = index.entries(&log, 1, last + 1, None).unwrap();
        assert_eq!(sent.len() as u64, last);
        let follower_dir = tempfile::tempdir().unwrap();
        let mut follower_log = small_segments(follower_dir.path());
        let mut follower = EntryIndex::open(&mut follower_log, LogStart::default()).unwrap();
        for (i, e) in sent.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1);
            assert_eq!(e.term, index.term(e.index).unwrap());
        }
        follower.append(&mut follower_log, &sent, 0, 1_000).unwrap();
        assert_eq!(follower.last_index(), last);
        assert_eq!(follower_log.next_offset(), end);
    }
}
