//! Swapping cleaned segments into the log, crash-safely, and the stored clean point.
//!
//! A cleaned group of segments `[b1, b2, .., bk]` is written as `<b1>.log.tmp` (fsynced), then,
//! under the log's write lock:
//! 1. renamed to `<b1>.swap`, directory fsynced: from here a crash completes the swap on open;
//! 2. the index files of `b1` and the files of `b2..bk` removed, `<b1>.swap` renamed over
//!    `<b1>.log` (atomic), and the segments replaced by one in memory.
//!
//! Then [`CleanedSegment::finish`] fsyncs the directory (before the next group is swapped, so
//! swaps become durable in offset order) and writes the new indexes.
//!
//! On open ([`complete_swaps`], before the segments are listed): a `<b>.swap` next to a
//! `<b>.log` is completed (every `.log` inside its offset range goes, then the rename); one
//! without its `.log` is stale (retention removed the segment it replaces) and is deleted. A
//! `.log.tmp` is removed with the other temp files. So each group is old or new, never half.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{info, warn};

use super::{CleanPoint, CleanedSegment, CLEAN_POINT_FILE};
use crate::error::StorageError;
use crate::fsutil::{sync_dir, temp_path};
use crate::index::{self, SegmentIndexes};
use crate::log::Log;
use crate::scan::{self, ScanParams, Verification};
use crate::segment::{self, open_rw, parse_base_offset, Segment};

const SWAP_SUFFIX: &str = ".swap";

pub(crate) fn swap_path(dir: &Path, base: u64) -> PathBuf {
    segment::log_path(dir, base).with_extension("swap")
}

impl Log {
    /// Swaps one cleaned group in, if the log still holds the sealed files it was made from.
    /// Call [`CleanedSegment::finish`] afterwards, outside the lock.
    pub fn install_cleaned(&mut self, cleaned: &CleanedSegment) -> Result<bool, StorageError> {
        self.ensure_writable()?;
        let last = self.segments.len() - 1;
        let first = self.segments[..last]
            .iter()
            .position(|s| s.base_offset == cleaned.base);
        let k = cleaned.sources.len();
        let unchanged = first.is_some_and(|i| {
            i + k <= last
                && cleaned.sources.iter().enumerate().all(|(j, source)| {
                    let s = &self.segments[i + j];
                    s.base_offset == source.base
                        && Arc::ptr_eq(&s.file, &source.file)
                        && s.size_bytes == source.size
                })
        });
        let (Some(i), true) = (first, unchanged) else {
            cleaned.discard();
            return Ok(false);
        };
        let swap = swap_path(&self.dir, cleaned.base);
        fs::rename(&cleaned.tmp, &swap).map_err(|e| StorageError::io(&swap, e))?;
        let synced = sync_dir(&self.dir);
        self.check_fatal(synced)?;
        let result = self.replace_with_swap(i, k, &swap, cleaned);
        if result.is_err() {
            // Half done: the files no longer match the segments in memory. Refuse writes; the
            // next open completes the swap.
            self.failed.store(true, Ordering::Release);
        }
        result.map(|()| true)
    }

    fn replace_with_swap(
        &mut self,
        i: usize,
        k: usize,
        swap: &Path,
        cleaned: &CleanedSegment,
    ) -> Result<(), StorageError> {
        for s in &self.segments[i + 1..i + k] {
            s.remove_files()?;
        }
        let path = self.segments[i].path.clone();
        // The index files describe the old file: never let them be loaded with the new one.
        index::remove(&path).map_err(|e| StorageError::io(&path, e))?;
        fs::rename(swap, &path).map_err(|e| StorageError::io(&path, e))?;
        let file = open_rw(&path, false)?;
        let merged = Segment::from_parts(
            cleaned.base,
            path,
            file,
            cleaned.size,
            cleaned.next,
            cleaned.indexes.clone(),
        );
        self.segments.splice(i..i + k, [merged]);
        Ok(())
    }
}

impl CleanedSegment {
    /// After [`Log::install_cleaned`]: makes the swap durable and writes the new indexes.
    pub fn finish(&self) -> Result<(), StorageError> {
        sync_dir(&self.dir)?;
        index::store(&segment::log_path(&self.dir, self.base), &self.indexes);
        Ok(())
    }

    /// Removes the rewritten file of a group that is not swapped in.
    pub fn discard(&self) {
        if let Err(e) = fs::remove_file(&self.tmp) {
            warn!(path = %self.tmp.display(), error = %e, "could not remove a cleaned segment that was not used");
        }
    }
}

/// Completes or drops the swaps a crash interrupted (see the module docs).
pub(crate) fn complete_swaps(dir: &Path, index_interval_bytes: u32) -> Result<(), StorageError> {
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(SWAP_SUFFIX).and_then(parse_base_offset) {
            swaps.push(base);
        } else if let Some(base) = name.strip_suffix(".log").and_then(parse_base_offset) {
            logs.push(base);
        }
    }
    if swaps.is_empty() {
        return Ok(());
    }
    for base in swaps {
        let swap = swap_path(dir, base);
        let log = segment::log_path(dir, base);
        let end = if logs.contains(&base) {
            swap_end(&swap, base, index_interval_bytes)?
        } else {
            None
        };
        let Some(end) = end else {
            warn!(path = %swap.display(), "dropping a cleaned segment whose segment is gone");
            fs::remove_file(&swap).map_err(|e| StorageError::io(&swap, e))?;
            continue;
        };
        for &other in logs.iter().filter(|b| **b > base && **b < end) {
            let path = segment::log_path(dir, other);
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
            index::remove(&path).map_err(|e| StorageError::io(&path, e))?;
        }
        index::remove(&log).map_err(|e| StorageError::io(&log, e))?;
        fs::rename(&swap, &log).map_err(|e| StorageError::io(&log, e))?;
        info!(path = %log.display(), end, "completed a cleaning swap a crash interrupted");
    }
    sync_dir(dir)
}

/// The offset after the last batch of a swap file; `None` if it is not sound (it was fsynced
/// before its rename, so that would be damage: the old segments stay).
fn swap_end(
    swap: &Path,
    base: u64,
    index_interval_bytes: u32,
) -> Result<Option<u64>, StorageError> {
    let file = File::open(swap).map_err(|e| StorageError::io(swap, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(swap, e))?
        .len();
    let outcome = scan::scan(
        &ScanParams {
            file: &file,
            path: swap,
            file_len: len,
            segment_base: base,
            start_position: 0,
            start_offset: base,
            verification: Verification::Crc,
            index_interval_bytes,
        },
        &mut SegmentIndexes::default(),
    )?;
    Ok(outcome.stop.is_none().then_some(outcome.next_offset))
}

/// The stored clean point of the log in `dir` (`<offset> [<tombstones since, ms>]`); an
/// unreadable one is none (the next pass starts from the log start).
pub fn read_clean_point(dir: &Path) -> Option<CleanPoint> {
    let text = fs::read_to_string(dir.join(CLEAN_POINT_FILE)).ok()?;
    let mut fields = text.split_whitespace();
    let offset = fields.next()?.parse().ok()?;
    let tombstones_since_ms = match fields.next() {
        Some(t) => Some(t.parse().ok()?),
        None => None,
    };
    Some(CleanPoint {
        offset,
        tombstones_since_ms,
    })
}

/// Stores the clean point atomically.
pub fn write_clean_point(dir: &Path, point: CleanPoint) -> Result<(), StorageError> {
    let path = dir.join(CLEAN_POINT_FILE);
    let tmp = temp_path(&path);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        let line = match point.tombstones_since_ms {
            Some(t) => format!("{} {t}\n", point.offset),
            None => format!("{}\n", point.offset),
        };
        f.write_all(line.as_bytes())?;
        f.sync_data()
    };
    write().map_err(|e| StorageError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
    sync_dir(dir)
}
