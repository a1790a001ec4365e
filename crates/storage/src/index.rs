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

/// One fixed-size entry of a sparse index file.
pub trait IndexEntry: Copy {
    /// Bytes per entry in the file.
    const LEN: usize;
    fn relative_offset(&self) -> u32;
    /// True if `self` may come after `prev`: every field strictly increases.
    fn follows(&self, prev: &Self) -> bool;
    fn write(&self, out: &mut Vec<u8>);
    /// `chunk` holds exactly `LEN` bytes (callers use `chunks_exact`).
    fn read(chunk: &[u8]) -> Option<Self>;
}

impl IndexEntry for OffsetEntry {
    const LEN: usize = 8;
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
    fn follows(&self, prev: &Self) -> bool {
        self.relative_offset > prev.relative_offset && self.position > prev.position
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn read(chunk: &[u8]) -> Option<Self> {
        Some(OffsetEntry {
            relative_offset: u32::from_be_bytes(chunk.get(0..4)?.try_into().ok()?),
            position: u32::from_be_bytes(chunk.get(4..8)?.try_into().ok()?),
        })
    }
}

impl IndexEntry for TimeEntry {
    const LEN: usize = 12;
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.relative_offset > prev.relative_offset
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn read(chunk: &[u8]) -> Option<Self> {
        Some(TimeEntry {
            timestamp: i64::from_be_bytes(chunk.get(0..8)?.try_into().ok()?),
            relative_offset: u32::from_be_bytes(chunk.get(8..12)?.try_into().ok()?),
        })
    }
}

/// A sparse index in memory: entries strictly increasing in every field. Its file form is the
/// entries' concatenation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseIndex<E> {
    entries: Vec<E>,
}

impl<E> Default for SparseIndex<E> {
    fn default() -> Self {
        SparseIndex {
            entries: Vec::new(),
        }
    }
}

/// In-memory form of a `.index` file.
pub type OffsetIndex = SparseIndex<OffsetEntry>;
/// In-memory form of a `.timeindex` file.
pub type TimeIndex = SparseIndex<TimeEntry>;

impl<E: IndexEntry> SparseIndex<E> {
    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Ignores entries that would break strict monotonicity, which makes re-scans
    /// that start at an existing entry idempotent.
    fn push(&mut self, entry: E) {
        if self.entries.last().is_none_or(|last| entry.follows(last)) {
            self.entries.push(entry);
        }
    }

    /// Drops every entry at or after `relative_offset`.
    fn truncate_from(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset() < relative_offset);
        self.entries.truncate(keep);
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * E::LEN);
        for e in &self.entries {
            e.write(&mut out);
        }
        out
    }

    /// Parses file contents: `None` unless they are whole entries, each accepted by `plausible`,
    /// strictly increasing.
    fn decode(bytes: &[u8], plausible: impl Fn(&E) -> bool) -> Option<Self> {
        let chunks = bytes.chunks_exact(E::LEN);
        if !chunks.remainder().is_empty() {
            return None;
        }
        let mut index = SparseIndex::default();
        for chunk in chunks {
            let entry = E::read(chunk)?;
            if !plausible(&entry)
                || index
                    .entries
                    .last()
                    .is_some_and(|last| !entry.follows(last))
            {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

impl OffsetIndex {
    /// Largest entry whose relative offset is <= `relative_offset`.
    pub fn floor(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|i| self.entries[i])
    }
}

impl TimeIndex {
    /// Last entry whose timestamp is < `timestamp_ms`: every batch up to and
    /// including that entry's batch is too old, so a search may start there.
    pub fn last_below(&self, timestamp_ms: i64) -> Option<TimeEntry> {
        let after = self.entries.partition_point(|e| e.timestamp < timestamp_ms);
        after.checked_sub(1).map(|i| self.entries[i])
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
    let offsets_bytes = read_bounded(&index_path(log_path), max_entries * OffsetEntry::LEN as u64)?;
    let times_bytes = read_bounded(
        &time_index_path(log_path),
        max_entries * TimeEntry::LEN as u64,
    )?;
    let offsets = OffsetIndex::decode(&offsets_bytes, |e| u64::from(e.position) < log_len)?;
    let times = TimeIndex::decode(&times_bytes, |_| true)?;
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
