//! Batch-by-batch walk over a segment's `.log`, used by recovery, index rebuilds
//! and suffix truncation. It stops (rather than failing) at the first batch that is
//! not sound, reporting where and why, so each caller can decide between
//! truncating a torn tail and refusing to open.

use std::fs::File;
use std::path::Path;

use crate::batch::{self, BatchHeader, HEADER_LEN, MAGIC_V2};
use crate::error::StorageError;
use crate::index::SegmentIndexes;
use crate::reader::ChunkReader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Framing, magic and offset continuity only (cheap; used for trusted data).
    HeaderOnly,
    /// Additionally the CRC-32C of every batch (used for data that may be torn).
    Crc,
}

/// Where a scan stopped early.
#[derive(Debug, Clone)]
pub(crate) struct ScanStop {
    pub position: u64,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// Byte position just past the last sound batch.
    pub end_position: u64,
    /// Offset following the last sound batch.
    pub next_offset: u64,
    /// Set when unsound bytes follow `end_position`.
    pub stop: Option<ScanStop>,
}

pub(crate) struct ScanParams<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub file_len: u64,
    pub segment_base: u64,
    pub start_position: u64,
    pub start_offset: u64,
    pub verification: Verification,
    pub index_interval_bytes: u32,
}

/// Checks one header against the scan's expectations; `Err` is the stop reason.
pub(crate) fn check_header(
    header: &BatchHeader,
    position: u64,
    file_len: u64,
    expected_offset: u64,
    segment_base: u64,
) -> Result<(), String> {
    if header.magic != MAGIC_V2 {
        return Err(format!("bad magic {}", header.magic));
    }
    let total = header.total_len() as u64;
    if total < HEADER_LEN as u64 {
        return Err(format!("invalid batch length {}", header.batch_length));
    }
    if position.saturating_add(total) > file_len {
        return Err(format!(
            "batch of {total} bytes extends past end of file ({file_len} bytes)"
        ));
    }
    if u64::try_from(header.base_offset) != Ok(expected_offset) {
        return Err(format!(
            "base offset {} where {expected_offset} was expected",
            header.base_offset
        ));
    }
    if header.last_offset_delta < 0 {
        return Err(format!(
            "negative lastOffsetDelta {}",
            header.last_offset_delta
        ));
    }
    let last_relative = (expected_offset - segment_base) + header.last_offset_delta as u64;
    if last_relative > u64::from(u32::MAX) || position > u64::from(u32::MAX) {
        return Err("batch lies beyond the 32-bit range of a segment".to_string());
    }
    Ok(())
}

/// Walks batches from `start_position`, feeding each sound one into `indexes`.
/// `Err` only for I/O errors; unsound data ends the walk with `stop` set.
pub(crate) fn scan(
    params: &ScanParams<'_>,
    indexes: &mut SegmentIndexes,
) -> Result<ScanOutcome, StorageError> {
    let mut reader = ChunkReader::new(params.file, params.path, params.file_len);
    let mut position = params.start_position;
    let mut expected = params.start_offset;
    let stop = |position: u64, reason: String, expected: u64| ScanOutcome {
        end_position: position,
        next_offset: expected,
        stop: Some(ScanStop { position, reason }),
    };
    while position < params.file_len {
        if params.file_len - position < HEADER_LEN as u64 {
            return Ok(stop(position, "truncated batch header".into(), expected));
        }
        let header = match BatchHeader::parse(reader.get(position, HEADER_LEN)?) {
            Ok(h) => h,
            Err(e) => return Ok(stop(position, e.to_string(), expected)),
        };
        if let Err(reason) = check_header(
            &header,
            position,
            params.file_len,
            expected,
            params.segment_base,
        ) {
            return Ok(stop(position, reason, expected));
        }
        let total = header.total_len();
        if params.verification == Verification::Crc {
            if let Err(e) = batch::check_frame_and_crc(reader.get(position, total)?) {
                return Ok(stop(position, e.to_string(), expected));
            }
        }
        // check_header bounded both values to u32.
        indexes.record_batch(
            params.segment_base,
            (expected - params.segment_base) as u32,
            position as u32,
            total as u64,
            header.max_timestamp,
            params.index_interval_bytes,
        );
        position += total as u64;
        expected += header.last_offset_delta as u64 + 1;
    }
    Ok(ScanOutcome {
        end_position: position,
        next_offset: expected,
        stop: None,
    })
}
