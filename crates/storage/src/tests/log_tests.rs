use super::builder::{
    batch_of_records, batch_with, encode, open, read_all, small_config, stored, BatchSpec,
};
use crate::batch::BatchHeader;
use crate::error::StorageError;
use crate::log::{Log, LogConfig};

/// Appends `count` batches of varying shape; returns the expected stored bytes
/// per batch as (base offset, bytes).
fn fill(log: &mut Log, count: usize, epoch: i32) -> Vec<(u64, Vec<u8>)> {
    let mut expected = Vec::new();
    for i in 0..count {
        let records = (i % 4) as i32 + 1;
        let raw = batch_with(records, 20 + (i * 37) % 180, 1_000 + i as i64);
        let info = log.append(&raw, epoch, 5_000).unwrap();
        assert_eq!(info.last_offset - info.base_offset, records as u64 - 1);
        expected.push((info.base_offset, stored(&raw, info.base_offset, epoch)));
    }
    expected
}

fn concat(batches: &[(u64, Vec<u8>)]) -> Vec<u8> {
    batches.iter().flat_map(|(_, b)| b.clone()).collect()
}

fn last_offset_of(bytes: &[u8]) -> u64 {
    BatchHeader::parse(bytes).unwrap().last_offset() as u64
}

#[test]
fn append_read_and_roll() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(1_000));
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    let batches = fill(&mut log, 60, 3);
    assert!(log.segment_count() > 5, "{}", log.segment_count());
    assert_eq!(read_all(&log, 0), concat(&batches));
    let next = log.next_offset();
    assert_eq!(next, last_offset_of(&batches[59].1) + 1);
    assert_eq!(log.size_bytes(), concat(&batches).len() as u64);

    // Every offset, including ones inside a batch, starts at its batch.
    for (base, bytes) in &batches {
        for offset in *base..=last_offset_of(bytes) {
            let result = log.read(offset, 1, u64::MAX).unwrap();
            assert_eq!(result.first_offset, *base);
            assert_eq!(&result.bytes[..], &bytes[..], "KIP-74: first batch whole");
        }
    }
    // max_bytes keeps whole batches only.
    let two = batches[1].1.len() + batches[2].1.len();
    let result = log.read(batches[1].0, two + 10, u64::MAX).unwrap();
    assert!(result.bytes.len() >= two && result.bytes.len() <= two + 10);
    assert_eq!(&result.bytes[..two], &concat(&batches[1..3])[..]);
    // upper_bound (the high watermark) excludes batches starting at or above it.
    let result = log.read(batches[1].0, 1 << 20, batches[3].0).unwrap();
    assert_eq!(&result.bytes[..], &concat(&batches[1..3])[..]);
    let result = log.read(batches[3].0, 1 << 20, batches[3].0).unwrap();
    assert!(result.bytes.is_empty());
    assert!(log.read(next, 100, u64::MAX).unwrap().bytes.is_empty());
    assert!(matches!(
        log.read(next + 1, 100, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn sparse_index_lookups_inside_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(1 << 20);
    config.index_interval_bytes = 300;
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 200, 0);
    assert_eq!(log.segment_count(), 1);
    let entries = log.active().indexes.offsets.entries().len();
    assert!(entries > 20, "only {entries} index entries");
    for (base, bytes) in batches.iter().step_by(7) {
        let result = log.read(*base + 1, 0, u64::MAX).unwrap();
        if last_offset_of(bytes) > *base {
            assert_eq!(result.first_offset, *base);
            assert_eq!(&result.bytes[..], &bytes[..]);
        }
    }
    // Reopen from index files (clean close) gives the same answers.
    log.close().unwrap();
    let log = open(dir.path(), &config);
    assert_eq!(read_all(&log, 0), concat(&batches));
}

#[test]
fn timestamps_lookup_matches_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(900);
    config.index_interval_bytes = 100;
    let mut log = open(dir.path(), &config);
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0, 0).unwrap(), None);
    let mut model = Vec::new();
    for i in 0..120i64 {
        // Mostly increasing, with dips and repeats.
        let ts = 10_000 + i * 10 - (i % 7) * 25;
        let info = log.append(&batch_with(2, 50, ts), 0, 0).unwrap();
        model.push((info.base_offset, ts));
    }
    let check = |log: &Log| {
        for query in (9_800..11_400).step_by(13) {
            let want = model.iter().find(|(_, ts)| *ts >= query).copied();
            assert_eq!(
                log.offset_for_timestamp(query, 0).unwrap(),
                want,
                "ts {query}"
            );
        }
        let max = model.iter().map(|(_, ts)| *ts).max().unwrap();
        let want = model.iter().find(|(_, ts)| *ts == max).unwrap();
        assert_eq!(log.max_timestamp().unwrap(), Some(*want));
    };
    check(&log);
    log.close().unwrap();
    let log = open(dir.path(), &config);
    check(&log);
    drop(log);
    let log = open(dir.path(), &config);
    check(&log);
}

#[test]
fn retention_by_time_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(500);
    config.retention_ms = Some(1_000);
    let mut log = open(dir.path(), &config);
    for i in 0..30i64 {
        log.append(&batch_with(1, 150, i * 100), 0, 0).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 10);
    // Each segment holds two batches; at now=1_500 the cutoff is 500, which
    // expires the segments whose newest batch is < 500.
    let removed = log.apply_retention(1_500).unwrap();
    assert!(removed > 0);
    assert_eq!(log.segment_count(), segments - removed);
    let start = log.log_start_offset();
    assert!(start > 0);
    let first = log.read(start, 1, u64::MAX).unwrap();
    let ts = BatchHeader::parse(&first.bytes).unwrap().max_timestamp;
    assert!((400..=500).contains(&ts), "first kept batch has ts {ts}");
    assert!(matches!(
        log.read(start - 1, 100, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Far in the future everything sealed goes; the active segment stays.
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.segment_count(), 1);

    let mut by_size = config.clone();
    by_size.retention_ms = None;
    by_size.retention_bytes = Some(1_000);
    log.set_config(by_size.clone());
    for i in 0..20 {
        log.append(&batch_with(1, 150, i), 0, 0).unwrap();
    }
    log.apply_retention(0).unwrap();
    assert!(log.size_bytes() <= 1_000, "{}", log.size_bytes());
    assert!(
        log.segment_count() > 1,
        "stopped as soon as the limit was met"
    );
    drop(log);
    let log = open(dir.path(), &by_size);
    assert!(log.log_start_offset() > 30);
}

#[test]
fn truncate_suffix_at_boundaries_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(700);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 40, 1);
    log.sync().unwrap();
    assert_eq!(log.durable_offset(), log.next_offset());
    let cut = batches[13].0;
    let inside = cut + 1;
    assert!(
        last_offset_of(&batches[13].1) > cut,
        "batch 13 has several records"
    );
    assert!(matches!(
        log.truncate_suffix(inside),
        Err(StorageError::NotBatchBoundary(o)) if o == inside
    ));
    log.truncate_suffix(cut).unwrap();
    assert_eq!(log.next_offset(), cut);
    assert_eq!(log.durable_offset(), cut);
    assert_eq!(read_all(&log, 0), concat(&batches[..13]));
    // The log continues at the cut, and survives a crash and a clean reopen.
    let raw = batch_with(3, 99, 7);
    let info = log.append(&raw, 2, 0).unwrap();
    assert_eq!(info.base_offset, cut);
    let mut expected = concat(&batches[..13]);
    expected.extend(stored(&raw, cut, 2));
    drop(log);
    let mut log = open(dir.path(), &config);
    assert_eq!(read_all(&log, 0), expected);
    // Truncating to a segment base and to the very start both work.
    let base_of_second = log.segments[1].base_offset;
    log.truncate_suffix(base_of_second).unwrap();
    assert_eq!(log.next_offset(), base_of_second);
    log.truncate_suffix(0).unwrap();
    assert_eq!((log.next_offset(), log.size_bytes()), (0, 0));
    log.close().unwrap();
    let log = open(dir.path(), &config);
    assert_eq!((log.next_offset(), log.segment_count()), (0, 1));
}

#[test]
fn a_sync_point_taken_before_a_cut_marks_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(100_000);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 10, 1);
    let stale = log.sync_point();
    let cut = batches[5].0;
    log.truncate_suffix(cut).unwrap();
    fill(&mut log, 10, 2);
    stale.sync().unwrap();
    assert!(
        !log.mark_synced(&stale),
        "written after the cut: not covered"
    );
    assert_eq!(log.durable_offset(), cut);
    let fresh = log.sync_point();
    fresh.sync().unwrap();
    assert!(log.mark_synced(&fresh));
    assert_eq!(log.durable_offset(), log.next_offset());
    // A reset voids older points the same way.
    let stale = log.sync_point();
    log.reset(500).unwrap();
    fill(&mut log, 3, 3);
    stale.sync().unwrap();
    assert!(!log.mark_synced(&stale));
    assert_eq!(log.durable_offset(), 500);
}

#[test]
fn reopen_after_close_and_after_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(800);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 30, 0);
    let segments = log.segment_count();
    log.close().unwrap();
    assert!(super::builder::files_with_ext(dir.path(), "index").len() == segments);
    let mut log = open(dir.path(), &config);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_all(&log, 0), concat(&batches));
    assert_eq!(log.durable_offset(), log.next_offset());
    let more = fill(&mut log, 10, 0);
    drop(log); // crash: no close
    let log = open(dir.path(), &config);
    let mut all = concat(&batches);
    all.extend(concat(&more));
    assert_eq!(read_all(&log, 0), all);
    assert_eq!(log.durable_offset(), log.next_offset());
}

#[test]
fn failed_write_is_rolled_back_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(1 << 20);
    let mut log = open(dir.path(), &config);
    let first = fill(&mut log, 3, 0);
    let size = log.size_bytes();
    let raw = batch_with(2, 100, 5);
    for partial in [0, 10, 17, 60, 150] {
        log.active_mut_for_test().fail_next_write_after_bytes = Some(partial);
        let err = log.append(&raw, 0, 0).unwrap_err();
        assert!(err.is_no_space(), "{err}");
        assert!(!log.is_failed());
        assert_eq!(log.size_bytes(), size);
        let on_disk = std::fs::metadata(&log.active().path).unwrap().len();
        assert_eq!(on_disk, size);
    }
    let info = log.append(&raw, 0, 0).unwrap();
    assert_eq!(
        info.base_offset,
        first.last().map(|(_, b)| last_offset_of(b) + 1).unwrap()
    );
    let mut expected = concat(&first);
    expected.extend(stored(&raw, info.base_offset, 0));
    assert_eq!(read_all(&log, 0), expected);
    drop(log);
    assert_eq!(read_all(&open(dir.path(), &config), 0), expected);
}

#[test]
fn failed_log_refuses_writes_but_serves_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(1 << 20));
    let batches = fill(&mut log, 2, 0);
    log.failed.store(true, std::sync::atomic::Ordering::Release);
    let raw = batch_with(1, 10, 0);
    assert!(matches!(log.append(&raw, 0, 0), Err(StorageError::Failed)));
    assert!(matches!(log.truncate_suffix(0), Err(StorageError::Failed)));
    assert!(matches!(log.sync(), Err(StorageError::Failed)));
    assert!(matches!(log.sync_point().sync(), Err(StorageError::Failed)));
    assert_eq!(read_all(&log, 0), concat(&batches));
    assert!(matches!(log.close(), Err(StorageError::Failed)));
}

#[test]
fn fsync_errors_are_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(1 << 20));
    fill(&mut log, 1, 0);
    let io = std::io::Error::from_raw_os_error(libc::EIO);
    let passed = log.check_fatal::<()>(Err(StorageError::io(dir.path(), io)));
    assert!(
        passed.is_err() && !log.is_failed(),
        "plain I/O errors are not fatal"
    );
    let io = std::io::Error::from_raw_os_error(libc::EIO);
    let passed = log.check_fatal::<()>(Err(StorageError::fsync(dir.path(), io)));
    assert!(matches!(passed, Err(StorageError::Fsync { .. })));
    assert!(log.is_failed());
    let raw = batch_with(1, 10, 0);
    assert!(matches!(log.append(&raw, 0, 0), Err(StorageError::Failed)));
    assert!(matches!(log.apply_retention(0), Err(StorageError::Failed)));
    assert!(format!("{log:?}").contains("failed: true"));
}

#[test]
fn durability_tracking_and_sync_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(1 << 20));
    fill(&mut log, 5, 0);
    assert_eq!(log.durable_offset(), 0);
    let point = log.sync_point();
    assert_eq!(point.end_offset(), log.next_offset());
    fill(&mut log, 2, 0);
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    assert_eq!(log.durable_offset(), point.end_offset());
    log.mark_durable(1); // never goes backwards
    assert_eq!(log.durable_offset(), point.end_offset());
    log.mark_durable(u64::MAX); // clamped
    assert_eq!(log.durable_offset(), log.next_offset());
}

#[test]
fn rolls_by_time_and_reports_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(1 << 20);
    config.segment_ms = 1_000;
    let mut log = open(dir.path(), &config);
    let create_time = batch_with(1, 10, 42);
    let info = log.append(&create_time, 0, 10_000).unwrap();
    assert_eq!((info.max_timestamp, info.log_append_time_ms), (42, -1));
    log.append(&create_time, 0, 11_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&create_time, 0, 11_001).unwrap();
    assert_eq!(log.segment_count(), 2);
    let append_time = encode(&BatchSpec {
        attributes: 1 << 3,
        ..BatchSpec::default()
    });
    let info = log.append(&append_time, 0, 12_000).unwrap();
    assert_eq!(info.log_append_time_ms, 12_000);
    // After a restart the first batch's timestamp (42) stands in for its append
    // time, so the next append rolls.
    drop(log);
    let mut log = open(dir.path(), &config);
    log.append(&create_time, 0, 12_001).unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn rejects_invalid_config_and_malformed_appends() {
    let dir = tempfile::tempdir().unwrap();
    let bad = LogConfig {
        segment_bytes: (1 << 31) + 1,
        ..LogConfig::default()
    };
    assert!(matches!(
        Log::open(dir.path(), bad),
        Err(StorageError::InvalidConfig(_))
    ));
    let mut log = open(dir.path(), &LogConfig::default());
    assert!(matches!(
        log.append(&[1, 2, 3], 0, 0),
        Err(StorageError::Batch(_))
    ));
    let mut raw = batch_with(1, 10, 0);
    raw.push(0);
    assert!(matches!(
        log.append(&raw, 0, 0),
        Err(StorageError::Batch(_))
    ));
    assert_eq!(log.next_offset(), 0);
}

/// ListOffsets by time lands on the exact record, as in Kafka: the first record (in offset
/// order) whose timestamp is >= the target, inside multi-record batches, compressed or not; in a
/// LogAppendTime batch every record has the batch's maxTimestamp. MAX_TIMESTAMP names the first
/// record carrying the largest timestamp.
#[test]
fn timestamp_lookups_land_on_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(2_000);
    config.index_interval_bytes = 100;
    let mut log = open(dir.path(), &config);
    const LOG_APPEND_TIME: i16 = 1 << 3;
    let mut model: Vec<(u64, i64)> = Vec::new();
    for i in 0..60i64 {
        let codec = (i % 4) as u8;
        // Out of order inside a batch, with repeats, and batches whose ranges overlap.
        let timestamps: Vec<i64> = (0..5)
            .map(|j| 10_000 + i * 40 + [30, 0, 10, 30, 20][j as usize] - (i % 3) * 15)
            .collect();
        let append_time = i % 7 == 6;
        let raw = batch_of_records(
            &timestamps,
            codec,
            if append_time { LOG_APPEND_TIME } else { 0 },
        );
        let info = log.append(&raw, 0, 0).unwrap();
        let max = *timestamps.iter().max().unwrap();
        for (j, ts) in timestamps.iter().enumerate() {
            let ts = if append_time { max } else { *ts };
            model.push((info.base_offset + j as u64, ts));
        }
    }
    let check = |log: &Log| {
        for query in (9_900..12_500).step_by(7) {
            let want = model.iter().find(|(_, ts)| *ts >= query).copied();
            assert_eq!(
                log.offset_for_timestamp(query, 0).unwrap(),
                want,
                "ts {query}"
            );
            // From an offset inside the log (a DeleteRecords point), earlier records are skipped.
            for from in [3, 77, 151] {
                let want = model.iter().find(|(o, ts)| *o >= from && *ts >= query);
                let got = log.offset_for_timestamp(query, from).unwrap();
                assert_eq!(got, want.copied(), "ts {query} from {from}");
            }
        }
        let max = model.iter().map(|(_, ts)| *ts).max().unwrap();
        let want = model.iter().find(|(_, ts)| *ts == max).copied();
        assert_eq!(log.max_timestamp().unwrap(), want);
    };
    check(&log);
    log.close().unwrap();
    check(&open(dir.path(), &config));
}
