//! Sparse per-segment indexes, kept in memory for every segment and persisted as
//! `.index` / `.timeindex` files when a segment is sealed and on clean close.
//!
//! The files are a cache: they are rebuilt from the `.log` whenever missing or
//! implausible, and are never trusted over the log itself.
//!
//! `.index` layout: a flat array of 8-byte entries, no header, big-endian:
//!
//! ```text
//! 0  relative_offset u32   base offset of a batch - segment base offset
//! 4  position        u32   byte position of that batch in the .log
//! ```
//!
//! `.timeindex` layout: a flat array of 12-byte entries, no header, big-endian:
//!
//! ```text
//! 0  timestamp       i64   a new running maximum of batch maxTimestamps
//! 8  relative_offset u32   base offset of the batch that set it - segment base
//! ```
//!
//! Both arrays strictly increase in every field. An entry pair is recorded each
//! time `index_interval_bytes` have been appended since the previous pair (before
//! the triggering batch is counted), so at every `.index` entry the time index
//! already describes the maximum over all earlier batches. Sealing adds a final
//! time entry for the segment's overall maximum, which is what lets a sealed
//! segment be loaded without scanning its whole log.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::batch::HEADER_LEN;
use crate::fsutil::temp_path;

pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
pub(crate) const TIME_ENTRY_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// In-memory form of a `.index` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Largest entry whose relative offset is <= `relative_offset`.
    pub fn floor(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// Ignores entries that would break strict monotonicity, which makes re-scans
    /// that start at an existing entry idempotent.
    fn push(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return;
            }
        }
        self.entries.push(entry);
    }

    /// Drops every entry at or after `relative_offset`.
    fn truncate_from(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Parses and sanity-checks file contents against the log's length.
    fn decode(bytes: &[u8], log_len: u64) -> Option<OffsetIndex> {
        if !bytes.chunks_exact(OFFSET_ENTRY_LEN).remainder().is_empty() {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if u64::from(entry.position) >= log_len {
                return None;
            }
            let before = index.entries.len();
            index.push(entry);
            if index.entries.len() == before {
                return None;
            }
        }
        Some(index)
    }
}

/// In-memory form of a `.timeindex` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Last entry whose timestamp is < `timestamp_ms`: every batch up to and
    /// including that entry's batch is too old, so a search may start there.
    pub fn last_below(&self, timestamp_ms: i64) -> Option<TimeEntry> {
        let after = self.entries.partition_point(|e| e.timestamp < timestamp_ms);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    fn push(&mut self, entry: TimeEntry) {
        if let Some(last) = self.entries.last() {
            if entry.timestamp <= last.timestamp || entry.relative_offset <= last.relative_offset {
                return;
            }
        }
        self.entries.push(entry);
    }

    fn truncate_from(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.chunks_exact(TIME_ENTRY_LEN).remainder().is_empty() {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_ENTRY_LEN) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            let before = index.entries.len();
            index.push(entry);
            if index.entries.len() == before {
                return None;
            }
        }
        Some(index)
    }
}

/// Both indexes of one segment plus the running state needed to extend them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentIndexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    /// Bytes appended since the last index entry pair was considered.
    pub bytes_since_entry: u64,
    /// Largest batch maxTimestamp so far and the base offset of the first batch
    /// that carried it.
    pub max_timestamp: Option<(i64, u64)>,
}

impl SegmentIndexes {
    /// Accounts for one batch appended (or re-scanned) at `position`.
    /// `relative_offset` is the batch's base offset minus the segment base.
    pub fn record_batch(
        &mut self,
        segment_base: u64,
        relative_offset: u32,
        position: u32,
        batch_len: u64,
        max_timestamp_ms: i64,
        index_interval_bytes: u32,
    ) {
        if self.bytes_since_entry >= u64::from(index_interval_bytes) {
            self.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
            self.push_running_max(segment_base);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry = self.bytes_since_entry.saturating_add(batch_len);
        let base_offset = segment_base + u64::from(relative_offset);
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| max_timestamp_ms > ts)
        {
            self.max_timestamp = Some((max_timestamp_ms, base_offset));
        }
    }

    fn push_running_max(&mut self, segment_base: u64) {
        if let Some((ts, offset)) = self.max_timestamp {
            if let Ok(relative_offset) = u32::try_from(offset - segment_base) {
                self.times.push(TimeEntry {
                    timestamp: ts,
                    relative_offset,
                });
            }
        }
    }

    /// Records the segment-wide maximum so that loading the sealed segment later
    /// does not need a full scan to learn it.
    pub fn seal(&mut self, segment_base: u64) {
        self.push_running_max(segment_base);
    }

    /// Drops everything at or after `end_relative_offset` (when given) and returns
    /// the `(position, relative_offset)` from which a header scan must resume to
    /// restore the running state: the last remaining `.index` entry, or the start.
    pub fn rewind(&mut self, segment_base: u64, end_relative_offset: Option<u32>) -> (u64, u32) {
        if let Some(end) = end_relative_offset {
            self.offsets.truncate_from(end);
        }
        let start = self.offsets.last().unwrap_or(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
        if start.position == 0 {
            self.offsets = OffsetIndex::default();
            self.times = TimeIndex::default();
        } else {
            self.times.truncate_from(start.relative_offset);
        }
        self.max_timestamp = self
            .times
            .last()
            .map(|e| (e.timestamp, segment_base + u64::from(e.relative_offset)));
        self.bytes_since_entry = 0;
        (u64::from(start.position), start.relative_offset)
    }
}

pub(crate) fn index_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("index")
}

pub(crate) fn time_index_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("timeindex")
}

/// Reads both index files of a segment. `None` when either is missing, too large
/// to be plausible for a log of `log_len` bytes, or fails validation.
pub(crate) fn load(log_path: &Path, log_len: u64) -> Option<SegmentIndexes> {
    // Every batch is at least HEADER_LEN bytes, which bounds the entry count and
    // keeps a garbage file from causing a huge allocation.
    let max_entries = log_len / HEADER_LEN as u64 + 1;
    let offsets_bytes = read_bounded(&index_path(log_path), max_entries * OFFSET_ENTRY_LEN as u64)?;
    let times_bytes = read_bounded(
        &time_index_path(log_path),
        max_entries * TIME_ENTRY_LEN as u64,
    )?;
    let offsets = OffsetIndex::decode(&offsets_bytes, log_len)?;
    let times = TimeIndex::decode(&times_bytes)?;
    // Sealing always writes a final time entry, so a non-empty segment without
    // one was not written by a completed seal.
    if log_len > 0 && times.entries.is_empty() {
        return None;
    }
    Some(SegmentIndexes {
        offsets,
        times,
        bytes_since_entry: 0,
        max_timestamp: None,
    })
}

fn read_bounded(path: &Path, max_len: u64) -> Option<Vec<u8>> {
    let len = fs::metadata(path).ok()?.len();
    if len > max_len {
        return None;
    }
    fs::read(path).ok()
}

/// Writes both index files (temp file, fdatasync, rename). Failures only cost a
/// rebuild on the next open, so they are logged and otherwise ignored; a failed
/// fsync here never touches log data.
pub(crate) fn store(log_path: &Path, indexes: &SegmentIndexes) {
    write_atomically(&index_path(log_path), &indexes.offsets.encode());
    write_atomically(&time_index_path(log_path), &indexes.times.encode());
}

/// Removes both index files; missing files are fine.
pub(crate) fn remove(log_path: &Path) -> std::io::Result<()> {
    for path in [index_path(log_path), time_index_path(log_path)] {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, contents: &[u8]) {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        warn!(path = %path.display(), error = %e, "could not write index file; it will be rebuilt on open");
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(path);
    }
}
