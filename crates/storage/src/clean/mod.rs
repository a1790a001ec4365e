//! Log compaction: keeping, per key, only the record with the highest offset.
//!
//! A pass has three steps, so the partition's lock is held only to look and to swap:
//! 1. [`Log::clean_plan`] (under the read lock) picks the sealed segments that may be cleaned:
//!    below `end_limit` (the high watermark, which in a cluster is Raft's commit, and the last
//!    stable offset) and older than `min.compaction.lag.ms`. The part after the stored clean
//!    point is dirty; the pass runs when it is at least `min.cleanable.dirty.ratio` of the
//!    cleanable bytes, or when its oldest data is older than `max.compaction.lag.ms`.
//! 2. [`CleanPlan::execute`] (no lock; sealed segments do not change; `pass`) maps every key
//!    of the dirty part to its latest offset, up to the [`KeyMap`]'s memory budget (a dirty
//!    part with more keys is cleaned in several passes: the pass ends where the map did), then
//!    rewrites the segments from the log start, consecutive ones whose sizes add up to at most
//!    `segment.bytes` into one (Kafka's grouping, so shrunk segments do not pile up), into
//!    `<first base>.log.tmp`, fsynced. Each batch keeps its place ([`filter`]); a record goes
//!    when a later one of its key is mapped, when it belongs to an aborted transaction, or when
//!    it is a tombstone in a segment that was already clean and untouched for
//!    `delete.retention.ms`. Control batches (transaction markers, Raft entries) stay. All its
//!    I/O is paid to a [`Throttle`].
//! 3. [`Log::install_cleaned`] (under the write lock) swaps one group in (`swap`: crash-safe
//!    through a `.swap` file that open completes), then [`CleanedSegment::finish`] fsyncs the
//!    directory and writes the new indexes, before the next group is swapped: groups become
//!    durable oldest first, so a dropped tombstone never lands before the older records it
//!    deleted are gone. Last, the clean point is stored (`cleaner-checkpoint`); a crash before
//!    that only makes the next pass redo work.
//!
//! A swap that finds its segments changed (retention removed one, a Raft snapshot reset the
//! log) is dropped.

mod filter;
mod keymap;
mod pass;
pub(crate) mod swap;
mod throttle;

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use keymap::KeyMap;
pub(crate) use swap::complete_swaps;
pub use swap::{read_clean_point, write_clean_point};

pub use throttle::Throttle;

use crate::batch::BatchHeader;
use crate::index::SegmentIndexes;
use crate::log::Log;

const CLEAN_POINT_FILE: &str = "cleaner-checkpoint";

/// What a pass may do, from the topic's config and the partition's state.
#[derive(Debug, Clone)]
pub struct CleanParams {
    pub now_ms: i64,
    /// Nothing at or above this offset is cleaned.
    pub end_limit: u64,
    pub min_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    /// The key map's memory budget.
    pub key_map_bytes: usize,
}

/// What the partition above the log knows that a pass needs.
pub struct PassContext<'a> {
    /// Whether the transactional batch of this producer id at this offset was aborted.
    pub is_aborted: &'a dyn Fn(i64, u64) -> bool,
    /// Base offsets of batches that keep their own header even when emptied: each producer's
    /// recent batches, whose sequence numbers its state is rebuilt from (Kafka keeps them too).
    pub producer_batches: &'a HashSet<u64>,
}

impl PassContext<'_> {
    fn aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && (self.is_aborted)(h.producer_id, h.base_offset as u64)
    }
}

/// A sealed segment as the pass saw it: its file stays readable (and unchanged) whatever
/// happens to the log meanwhile.
struct SegmentView {
    base: u64,
    next: u64,
    path: PathBuf,
    file: Arc<File>,
    size: u64,
    modified: SystemTime,
}

/// The segments one pass covers; see the module docs.
pub struct CleanPlan {
    dir: PathBuf,
    segments: Vec<SegmentView>,
    first_dirty: u64,
    end: u64,
    params: CleanParams,
    index_interval_bytes: u32,
    /// Cleaned segments are grouped up to this size.
    segment_bytes: u64,
    /// The dirty part's share of the cleanable bytes.
    pub dirty_ratio: f64,
}

/// One rewritten group of segments waiting to be swapped in.
pub struct CleanedSegment {
    base: u64,
    next: u64,
    tmp: PathBuf,
    size: u64,
    indexes: SegmentIndexes,
    /// The segments it replaces, to recognise that the log still holds them.
    sources: Vec<Source>,
    dir: PathBuf,
}

/// A segment file a cleaned group was made from.
struct Source {
    base: u64,
    file: Arc<File>,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    /// Size of the rewritten segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// The outcome of [`CleanPlan::execute`].
pub struct PassOutput {
    pub segments: Vec<CleanedSegment>,
    /// What to store once every group is swapped in.
    pub clean_point: CleanPoint,
    pub stats: CleanStats,
}

/// Where the log is clean up to, and when the oldest segment still holding a tombstone below
/// it was last written: once that is `delete.retention.ms` ago a pass runs to drop it, dirty
/// or not (as Kafka 3.1+ schedules cleaning for due tombstones).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanPoint {
    pub offset: u64,
    pub tombstones_since_ms: Option<i64>,
}

fn millis(t: SystemTime) -> i64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl Log {
    /// The pass to run now, if any (see the module docs). `clean_point` is the stored one.
    pub fn clean_plan(
        &self,
        params: &CleanParams,
        clean_point: Option<CleanPoint>,
    ) -> Option<CleanPlan> {
        let sealed = &self.segments[..self.segments.len() - 1];
        let lag_cutoff = params.now_ms.saturating_sub(params.min_compaction_lag_ms);
        let count = sealed
            .iter()
            .take_while(|s| {
                s.next_offset <= params.end_limit
                    && s.indexes
                        .max_timestamp
                        .is_none_or(|(ts, _)| ts <= lag_cutoff)
            })
            .count();
        let cleanable = &sealed[..count];
        let end = cleanable.last()?.next_offset;
        let point = clean_point.unwrap_or_default();
        let tombstones_due = point
            .tombstones_since_ms
            .is_some_and(|t| t.saturating_add(params.delete_retention_ms) <= params.now_ms);
        let first_dirty = point.offset.max(self.log_start_offset());
        if first_dirty >= end && !tombstones_due {
            return None;
        }
        let first_dirty = first_dirty.min(end);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        for s in cleanable {
            if s.next_offset <= first_dirty {
                clean_bytes += s.size_bytes;
            } else {
                dirty_bytes += s.size_bytes;
            }
        }
        let dirty_ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes).max(1) as f64;
        let overdue = params.max_compaction_lag_ms < i64::MAX && {
            let cutoff = params.now_ms.saturating_sub(params.max_compaction_lag_ms);
            cleanable
                .iter()
                .find(|s| s.next_offset > first_dirty)
                .and_then(|s| s.indexes.max_timestamp)
                .is_some_and(|(ts, _)| ts <= cutoff)
        };
        if dirty_ratio < params.min_dirty_ratio && !overdue && !tombstones_due {
            return None;
        }
        let segments = cleanable
            .iter()
            .map(|s| SegmentView {
                base: s.base_offset,
                next: s.next_offset,
                path: s.path.clone(),
                file: Arc::clone(&s.file),
                size: s.size_bytes,
                modified: s
                    .file
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now()),
            })
            .collect();
        Some(CleanPlan {
            dir: self.dir.clone(),
            segments,
            first_dirty,
            end,
            params: params.clone(),
            index_interval_bytes: self.config.index_interval_bytes,
            segment_bytes: self.config.segment_bytes,
            dirty_ratio,
        })
    }
}

/// Makes every segment file of `dir` look `by` older (tests of tombstone retention).
#[cfg(test)]
pub(crate) fn age_segment_files(
    dir: &std::path::Path,
    by: std::time::Duration,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let f = File::options().write(true).open(&path)?;
            let modified = f.metadata()?.modified()?;
            f.set_modified(modified - by)?;
        }
    }
    Ok(())
}

#[cfg(test)]
impl CleanedSegment {
    /// The rewritten file and the base offsets of the segments it replaces.
    pub(crate) fn parts(&self) -> (&std::path::Path, Vec<u64>) {
        (&self.tmp, self.sources.iter().map(|s| s.base).collect())
    }
}
