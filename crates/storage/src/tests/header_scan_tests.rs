//! `Log::scan_headers`: every stored batch header from an offset, across segments, restarts and
//! retention, in order and exactly once.

use super::builder::{batch_with, open, small_config};
use crate::batch::BatchHeader;
use crate::error::StorageError;
use crate::log::Log;

/// A batch with producer fields set (bytes 43..61 of the header) and its CRC recomputed.
fn producer_batch(records: i32, producer_id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut raw = batch_with(records, 60, 1_000);
    raw[43..51].copy_from_slice(&producer_id.to_be_bytes());
    raw[51..53].copy_from_slice(&epoch.to_be_bytes());
    raw[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    raw
}

fn scanned(log: &Log, from: u64) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    log.scan_headers(from, |h| out.push(*h)).unwrap();
    out
}

/// Appends 40 batches of 1..=3 records over several segments; returns (base, last, sequence).
fn fill(log: &mut Log) -> Vec<(u64, u64, i32)> {
    let mut out = Vec::new();
    let mut sequence = 0;
    for i in 0..40 {
        let records = i % 3 + 1;
        let info = log
            .append(&producer_batch(records, 7, 2, sequence), 0, 0)
            .unwrap();
        out.push((info.base_offset, info.last_offset, sequence));
        sequence += records;
    }
    out
}

#[test]
fn scans_every_header_from_an_offset_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &small_config(600));
    let batches = fill(&mut log);
    assert!(log.segment_count() > 3, "{}", log.segment_count());

    let all = scanned(&log, 0);
    assert_eq!(all.len(), batches.len());
    for (h, (base, last, sequence)) in all.iter().zip(&batches) {
        assert_eq!(
            h.base_offset as u64, *base,
            "stored (rewritten) base offset"
        );
        assert_eq!(h.last_offset() as u64, *last);
        assert_eq!((h.producer_id, h.producer_epoch), (7, 2));
        assert_eq!(h.base_sequence, *sequence);
    }
    // From a batch boundary and from inside a batch: that batch first.
    for (i, (base, last, _)) in batches.iter().enumerate() {
        for from in *base..=*last {
            let got = scanned(&log, from);
            assert_eq!(got.len(), batches.len() - i, "from {from}");
            assert_eq!(got[0].base_offset as u64, *base);
        }
    }
    assert!(scanned(&log, log.next_offset()).is_empty());
    assert!(matches!(
        log.scan_headers(log.next_offset() + 1, |_| {}),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    // The same after a crash-style reopen (no close) and after a clean close.
    let end = log.next_offset();
    drop(log);
    let log = open(dir.path(), &small_config(600));
    assert_eq!(log.next_offset(), end);
    assert_eq!(scanned(&log, 0), all);
    log.close().unwrap();
    let log = open(dir.path(), &small_config(600));
    assert_eq!(scanned(&log, 0), all);
}

#[test]
fn scan_starts_at_the_log_start_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(600);
    config.retention_bytes = Some(1_500);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log);
    assert!(log.apply_retention(0).unwrap() > 0);
    let start = log.log_start_offset();
    let got = scanned(&log, 0);
    let kept: Vec<_> = batches.iter().filter(|(b, _, _)| *b >= start).collect();
    assert_eq!(got.len(), kept.len());
    assert_eq!(got[0].base_offset as u64, start);
}

#[test]
fn scan_survives_a_lying_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(1_500);
    config.index_interval_bytes = 100;
    let mut log = open(dir.path(), &config);
    fill(&mut log);
    let all = scanned(&log, 0);
    log.close().unwrap();
    // A sealed segment's index entry pointing into a batch: the walk from it fails and restarts
    // at the segment start, and each batch is still visited once.
    let index_path = super::builder::files_with_ext(dir.path(), "index")[0].clone();
    let mut lying = std::fs::read(&index_path).unwrap();
    assert!(lying.len() >= 3 * 8, "need several entries");
    let relative = u32::from_be_bytes(lying[8..12].try_into().unwrap());
    let position = u32::from_be_bytes(lying[12..16].try_into().unwrap());
    lying[12..16].copy_from_slice(&(position + 5).to_be_bytes());
    std::fs::write(&index_path, &lying).unwrap();
    let log = open(dir.path(), &config);
    let from = u64::from(relative);
    let expected: Vec<_> = all
        .iter()
        .filter(|h| h.last_offset() as u64 >= from)
        .copied()
        .collect();
    assert_eq!(scanned(&log, from), expected);
    assert_eq!(scanned(&log, 0), all);
}
