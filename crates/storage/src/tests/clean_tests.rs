//! Compaction (`clean`) against a model: random keyed appends and tombstones, cleaning passes
//! with small key maps, crashes between the steps of a pass.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;

use super::builder::{files_with_ext, open, read_all, small_config};
use crate::batch::{self, BatchHeader};
use crate::clean::{self, CleanParams, PassContext, PassOutput, Throttle};
use crate::log::Log;
use crate::records::{encode_batch, records_section, walk_records, KeyValue};

type Record = (u64, Bytes, Option<Bytes>);

fn params(end_limit: u64, key_map_bytes: usize) -> CleanParams {
    CleanParams {
        now_ms: now_ms(),
        end_limit,
        min_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        delete_retention_ms: 86_400_000,
        key_map_bytes,
    }
}

/// No transactions, no producer state.
fn context() -> PassContext<'static> {
    static NONE: std::sync::OnceLock<HashSet<u64>> = std::sync::OnceLock::new();
    PassContext {
        is_aborted: &|_, _| false,
        producer_batches: NONE.get_or_init(HashSet::new),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn append(log: &mut Log, records: &[(u8, Option<u8>)]) {
    let kvs: Vec<KeyValue> = records
        .iter()
        .map(|(k, v)| KeyValue {
            key: Bytes::from(vec![b'k', *k]),
            value: v.map(|v| Bytes::from(vec![v; 20])),
        })
        .collect();
    log.append(&encode_batch(&kvs, 1_000), 1, 1_000).unwrap();
}

/// Every record in the log, in offset order, and the number of batches.
fn contents(log: &Log) -> (Vec<Record>, usize) {
    let (records, batches, _) = contents_and_entries(log);
    (records, batches)
}

/// [`contents`], and the Raft entries the batches stand for (`batch::entry_count`).
fn contents_and_entries(log: &Log) -> (Vec<Record>, usize, u64) {
    let bytes = read_all(log, log.log_start_offset());
    let (mut out, mut batches, mut entries, mut pos) = (Vec::new(), 0, 0, 0);
    while pos < bytes.len() {
        let header = BatchHeader::parse(&bytes[pos..]).unwrap();
        let one = &bytes[pos..pos + header.total_len()];
        batch::check_frame_and_crc(one).unwrap();
        let (header, records) = records_section(one).unwrap();
        for span in walk_records(&header, &records).unwrap() {
            let key = Bytes::copy_from_slice(&records[span.key.unwrap()]);
            let value = (!span.tombstone).then(|| {
                // The value follows the key: re-read it through the record's own bytes.
                let rec = &records[span.bytes.clone()];
                Bytes::copy_from_slice(&rec[rec.len() - 21..rec.len() - 1])
            });
            out.push((
                header.base_offset as u64 + span.offset_delta as u64,
                key,
                value,
            ));
        }
        batches += 1;
        entries += batch::entry_count(&header);
        pos += header.total_len();
    }
    (out, batches, entries)
}

/// One pass: plan, execute, swap in, store the clean point. `None` when there is nothing to do.
fn pass(log: &mut Log, params: &CleanParams) -> Option<PassOutput> {
    let point = clean::read_clean_point(log.dir());
    let plan = log.clean_plan(params, point)?;
    let output = plan.execute(&context(), &Throttle::new(None)).unwrap();
    for segment in &output.segments {
        if log.install_cleaned(segment).unwrap() {
            segment.finish().unwrap();
        }
    }
    clean::write_clean_point(log.dir(), output.clean_point).unwrap();
    Some(output)
}

fn clean_fully(log: &mut Log, params: &CleanParams) {
    for _ in 0..1_000 {
        if pass(log, params).is_none() {
            return;
        }
    }
    panic!("cleaning never finished");
}

/// The latest record of every key among `appended` below `end`, plus everything from `end` on.
fn compacted_view(appended: &[Record], end: u64) -> Vec<Record> {
    let mut latest: BTreeMap<&Bytes, u64> = BTreeMap::new();
    for (offset, key, _) in appended.iter().filter(|r| r.0 < end) {
        latest.insert(key, *offset);
    }
    appended
        .iter()
        .filter(|(offset, key, _)| *offset >= end || latest.get(key).is_none_or(|l| l <= offset))
        .cloned()
        .collect()
}

#[test]
fn cleaning_keeps_the_latest_record_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(400));
    for round in 0..20u8 {
        append(
            &mut log,
            &[(round % 3, Some(round)), (round % 5, Some(round))],
        );
    }
    let (before, batches_before, entries_before) = contents_and_entries(&log);
    let end_offset = log.next_offset();
    // The active segment is never cleaned.
    let sealed_end = log.segments[log.segments.len() - 1].base_offset;
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    let (after, batches_after, entries_after) = contents_and_entries(&log);
    assert_eq!(after, compacted_view(&before, sealed_end));
    assert!(after.len() < before.len());
    // Emptied batches merge, but every Raft entry keeps its place: the merged runs count
    // them, the offsets and the log end stay.
    assert!(batches_after < batches_before);
    assert_eq!(entries_after, entries_before);
    assert_eq!(log.next_offset(), end_offset);
    // Reopened (indexes rebuilt or loaded), the log holds the same.
    drop(log);
    let log = open(dir.path(), &small_config(400));
    assert_eq!(contents(&log).0, after);
    assert!(files_with_ext(dir.path(), "tmp").is_empty());
}

#[test]
fn nothing_at_or_above_the_end_limit_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(200));
    for round in 0..10u8 {
        append(&mut log, &[(0, Some(round))]);
    }
    let (before, _) = contents(&log);
    // Only the first sealed segments lie below offset 4.
    let limit = 4;
    clean_fully(&mut log, &params(limit, 1 << 20));
    let (after, _) = contents(&log);
    let cleaned_end = log
        .segments
        .iter()
        .map(|s| s.next_offset)
        .filter(|n| *n <= limit)
        .max()
        .unwrap();
    assert_eq!(after, compacted_view(&before, cleaned_end));
    assert!(after.iter().any(|r| r.0 >= limit));
}

/// Key 1 written, then deleted, then other writes; cleaned.
fn cleaned_log_with_a_tombstone(dir: &Path) -> Log {
    let mut log = open(dir, &small_config(200));
    append(&mut log, &[(1, Some(1)), (2, Some(2))]);
    append(&mut log, &[(1, None)]);
    for round in 0..6u8 {
        append(&mut log, &[(3, Some(round))]);
    }
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    log
}

#[test]
fn tombstones_stay_until_delete_retention_passed_on_a_clean_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = cleaned_log_with_a_tombstone(dir.path());
    let (after, _) = contents(&log);
    // Key 1's value is gone, its tombstone stays.
    assert!(after.iter().any(|r| r.1[1] == 1 && r.2.is_none()));
    assert!(!after.iter().any(|r| r.1[1] == 1 && r.2.is_some()));
    // A day later (the segment files' age) the tombstone goes in the next pass that runs.
    clean::age_segment_files(dir.path(), std::time::Duration::from_secs(2 * 86_400)).unwrap();
    append(&mut log, &[(3, Some(9))]);
    for round in 0..6u8 {
        append(&mut log, &[(4, Some(round))]);
    }
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    let (after, _) = contents(&log);
    assert!(!after.iter().any(|r| r.1[1] == 1), "{after:?}");
    assert!(after.iter().any(|r| r.1[1] == 2));
}

/// Due tombstones get a pass of their own, with nothing dirty (Kafka 3.1+ does the same).
#[test]
fn due_tombstones_are_dropped_without_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = cleaned_log_with_a_tombstone(dir.path());
    assert!(contents(&log)
        .0
        .iter()
        .any(|r| r.1[1] == 1 && r.2.is_none()));
    let point = clean::read_clean_point(log.dir()).unwrap();
    assert!(point.tombstones_since_ms.is_some(), "{point:?}");
    let two_days_later = CleanParams {
        now_ms: now_ms() + 2 * 86_400_000,
        ..params(u64::MAX, 1 << 20)
    };
    assert!(
        pass(&mut log, &two_days_later).is_some(),
        "a pass for the tombstone"
    );
    assert!(!contents(&log).0.iter().any(|r| r.1[1] == 1));
    assert_eq!(
        clean::read_clean_point(log.dir())
            .unwrap()
            .tombstones_since_ms,
        None
    );
    assert!(
        pass(&mut log, &two_days_later).is_none(),
        "then nothing to do"
    );
}

#[test]
fn compressed_batches_are_recompressed_with_their_codec() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(300));
    for round in 0..12u8 {
        let kvs: Vec<KeyValue> = (0..4u8)
            .map(|k| KeyValue {
                key: Bytes::from(vec![b'k', k]),
                value: Some(Bytes::from(vec![round; 20])),
            })
            .collect();
        let gzip = batch::rewrite(&encode_batch(&kvs, 1_000), None, Some(1)).unwrap();
        log.append(&gzip, 1, 1_000).unwrap();
    }
    let (before, _) = contents(&log);
    let sealed_end = log.segments[log.segments.len() - 1].base_offset;
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    assert_eq!(contents(&log).0, compacted_view(&before, sealed_end));
    let bytes = read_all(&log, 0);
    let first = BatchHeader::parse(&bytes).unwrap();
    // Emptied batches drop their codec (Kafka's empty batch); kept ones keep it.
    assert!(first.records_count == 0 && first.compression() == 0);
}

/// A log whose next pass groups shrunk segments: one full cleaning, then more appends.
fn log_with_groups(dir: &Path) -> (Log, Vec<Record>) {
    let mut log = open(dir, &small_config(300));
    let mut appended = Vec::new();
    let mut record = |log: &mut Log, round: u8| {
        let base = log.next_offset();
        let records = [
            (round % 4, Some(round)),
            (7, round.is_multiple_of(2).then_some(round)),
        ];
        append(log, &records);
        for (i, (k, v)) in records.iter().enumerate() {
            appended.push((
                base + i as u64,
                Bytes::from(vec![b'k', *k]),
                v.map(|v| Bytes::from(vec![v; 20])),
            ));
        }
    };
    for round in 0..30u8 {
        record(&mut log, round);
    }
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    for round in 30..50u8 {
        record(&mut log, round);
    }
    (log, appended)
}

#[test]
fn a_crash_at_any_step_of_a_pass_leaves_old_or_new_segments() {
    for crash_after in 0..=6 {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, appended) = log_with_groups(dir.path());
        let (before, _) = contents(&log);
        let sealed_end = log.segments[log.segments.len() - 1].base_offset;
        let plan = log.clean_plan(&params(u64::MAX, 1 << 20), None).unwrap();
        let output = plan.execute(&context(), &Throttle::new(None)).unwrap();
        assert!(output.segments.len() > 2);
        let grouped = output
            .segments
            .iter()
            .position(|c| c.parts().1.len() > 1)
            .expect("a group of segments");
        match crash_after {
            0 => {
                // Cleaned files written, a half-written one among them, none swapped.
                let (tmp, _) = output.segments[0].parts();
                let len = std::fs::metadata(tmp).unwrap().len();
                std::fs::File::options()
                    .write(true)
                    .open(tmp)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            1..=4 => {
                let swapped = match crash_after {
                    1 => 1,
                    2 => output.segments.len() / 2,
                    _ => output.segments.len(),
                };
                for (i, segment) in output.segments.iter().enumerate().take(swapped) {
                    assert!(log.install_cleaned(segment).unwrap());
                    // The last swap "crashes" before its directory fsync and index files.
                    if i + 1 < swapped || crash_after == 4 {
                        segment.finish().unwrap();
                    }
                }
                if crash_after == 4 {
                    clean::write_clean_point(log.dir(), output.clean_point).unwrap();
                }
            }
            _ => {
                // Inside a group's swap: its file renamed to `.swap` (step 1), then (6) one of
                // the segments it replaces already removed (step 2).
                let (tmp, bases) = output.segments[grouped].parts();
                let swap = crate::clean::swap::swap_path(dir.path(), bases[0]);
                std::fs::rename(tmp, &swap).unwrap();
                if crash_after == 6 {
                    std::fs::remove_file(crate::segment::log_path(dir.path(), bases[1])).unwrap();
                }
            }
        }
        // A crash: no close, no checkpoint.
        drop(log);
        let mut log = open(dir.path(), &small_config(300));
        assert!(
            files_with_ext(dir.path(), "tmp").is_empty(),
            "step {crash_after}"
        );
        assert!(
            files_with_ext(dir.path(), "swap").is_empty(),
            "step {crash_after}"
        );
        let (reopened, _) = contents(&log);
        // Whatever was swapped, the latest record of every key is there and nothing
        // appended is duplicated or moved.
        let full = compacted_view(&appended, sealed_end);
        assert!(
            full.iter().all(|r| reopened.contains(r)),
            "step {crash_after}"
        );
        assert!(
            reopened.iter().all(|r| before.contains(r)),
            "step {crash_after}"
        );
        // The next passes finish the job.
        clean_fully(&mut log, &params(u64::MAX, 1 << 20));
        assert_eq!(contents(&log).0, full, "step {crash_after}");
    }
}

#[test]
fn shrunk_segments_are_grouped_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, appended) = log_with_groups(dir.path());
    let segments_before = log.segments.len();
    let sealed_end = log.segments[log.segments.len() - 1].base_offset;
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    assert!(
        log.segments.len() < segments_before,
        "{} of {segments_before} segments",
        log.segments.len()
    );
    assert_eq!(contents(&log).0, compacted_view(&appended, sealed_end));
    drop(log);
    let log = open(dir.path(), &small_config(300));
    assert_eq!(contents(&log).0, compacted_view(&appended, sealed_end));
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u8, Option<u8>)>),
    Clean { key_map_entries: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0..12u8, prop::option::weighted(0.8, any::<u8>())), 1..6)
            .prop_map(Op::Append),
        2 => (1..20usize).prop_map(|key_map_entries| Op::Clean { key_map_entries }),
        1 => Just(Op::Reopen),
    ]
}

fn reopen(dir: &Path, log: Log) -> Log {
    drop(log);
    open(dir, &small_config(250))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// After any history of appends and passes with small key maps, every key's latest record
    /// is in the log at its offset, nothing is duplicated or moved, and a final cleaning
    /// leaves exactly the latest-per-key view of the sealed part.
    #[test]
    fn cleaning_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), &small_config(250));
        let mut appended: Vec<Record> = Vec::new();
        for op in ops {
            match op {
                Op::Append(records) => {
                    let base = log.next_offset();
                    append(&mut log, &records);
                    for (i, (k, v)) in records.iter().enumerate() {
                        appended.push((
                            base + i as u64,
                            Bytes::from(vec![b'k', *k]),
                            v.map(|v| Bytes::from(vec![v; 20])),
                        ));
                    }
                }
                Op::Clean { key_map_entries } => {
                    pass(&mut log, &params(u64::MAX, key_map_entries * 48));
                }
                Op::Reopen => log = reopen(dir.path(), log),
            }
            let (now, _) = contents(&log);
            for r in &compacted_view(&appended, u64::MAX) {
                prop_assert!(now.contains(r), "latest record {:?} lost", r);
            }
            prop_assert!(now.iter().all(|r| appended.contains(r)));
        }
        let sealed_end = log.segments[log.segments.len() - 1].base_offset;
        clean_fully(&mut log, &params(u64::MAX, 5 * 48));
        prop_assert_eq!(contents(&log).0, compacted_view(&appended, sealed_end));
    }
}

#[test]
fn emptied_batches_become_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(2_000));
    for round in 0..60u8 {
        append(&mut log, &[(round % 2, Some(round))]);
    }
    let (before, batches_before) = contents(&log);
    let end_offset = log.next_offset();
    let sealed_end = log.segments[log.segments.len() - 1].base_offset;
    clean_fully(&mut log, &params(u64::MAX, 1 << 20));
    let (after, batches_after) = contents(&log);
    assert_eq!(after, compacted_view(&before, sealed_end));
    // In each sealed segment at most a merged empty batch before each of the two kept
    // records; the active segment is as it was (one batch per record).
    let sealed = log.segments.len() - 1;
    assert!(sealed >= 2);
    assert!(
        batches_after <= 4 * sealed + (end_offset - sealed_end) as usize,
        "{batches_after} of {batches_before} batches left"
    );
    assert_eq!(log.next_offset(), end_offset);
    drop(log);
    let log = open(dir.path(), &small_config(2_000));
    assert_eq!(contents(&log).0, after);
}
