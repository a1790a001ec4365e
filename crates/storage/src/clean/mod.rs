//! Log compaction: keeping, per key, only the record with the highest offset.
//!
//! A pass has three steps, so the partition's lock is held only to look and to swap:
//! 1. [`Log::clean_plan`] (under the read lock) picks the sealed segments that may be cleaned:
//!    below `end_limit` (the high watermark, which in a cluster is Raft's commit, and the last
//!    stable offset) and older than `min.compaction.lag.ms`. The part after the stored clean
//!    point is dirty; the pass runs when it is at least `min.cleanable.dirty.ratio` of the
//!    cleanable bytes, or when its oldest data is older than `max.compaction.lag.ms`.
//! 2. [`CleanPlan::execute`] (no lock; sealed segments do not change) maps every key of the
//!    dirty part to its latest offset, up to the [`KeyMap`]'s memory budget (a dirty part with
//!    more keys is cleaned in several passes: the pass ends where the map did), then rewrites
//!    each segment from the log start that loses a record into `<base>.log.tmp`, fsynced. Each
//!    batch keeps its place ([`filter`]); a record goes when a later one of its key is mapped,
//!    when it belongs to an aborted transaction, or when it is a tombstone in a segment that
//!    was already clean and untouched for `delete.retention.ms`. Control batches (transaction
//!    markers, Raft entries) stay. All its I/O is paid to a [`Throttle`].
//! 3. [`Log::install_cleaned`] (under the write lock) swaps one segment: the old index files
//!    go, `<base>.log.tmp` is renamed over `<base>.log`; then [`CleanedSegment::finish`]
//!    fsyncs the directory and writes the new indexes, before the next segment is swapped.
//!    A crash leaves each segment old or new (rename is atomic; a leftover `.log.tmp` is
//!    removed on open, missing indexes are rebuilt), and segments are swapped oldest first
//!    with the rename durable in between, so a dropped tombstone never lands before the older
//!    records it deleted are gone. Last, the clean point is stored (`cleaner-checkpoint`); a
//!    crash before that only makes the next pass redo work.
//!
//! A swap that finds its segment changed (retention removed it, a Raft snapshot reset the log)
//! is dropped.

mod filter;
mod keymap;
mod throttle;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use keymap::KeyMap;
pub use throttle::Throttle;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::StorageError;
use crate::fsutil::{sync_dir, temp_path};
use crate::index::{self, SegmentIndexes};
use crate::log::Log;
use crate::reader::ChunkReader;
use crate::records::walk_records;
use crate::segment::{open_rw, Segment};
use filter::{filter_batch, RecordView};

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
    /// Whether consecutive emptied batches may become one. Not in a Raft log, where a batch is
    /// an entry and keeps its place: there an emptied batch stays as its 61-byte header.
    pub merge_empty: bool,
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
    /// The dirty part's share of the cleanable bytes.
    pub dirty_ratio: f64,
}

/// One rewritten segment waiting to be swapped in.
pub struct CleanedSegment {
    base: u64,
    next: u64,
    tmp: PathBuf,
    size: u64,
    indexes: SegmentIndexes,
    /// The file it replaces, to recognise that the log still holds it.
    source: Arc<File>,
    source_size: u64,
    dir: PathBuf,
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
    /// Where the log is clean up to once every segment is swapped in.
    pub clean_point: u64,
    pub stats: CleanStats,
}

fn millis(t: SystemTime) -> i64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl Log {
    /// The pass to run now, if any (see the module docs). `clean_point` is the stored one.
    pub fn clean_plan(&self, params: &CleanParams, clean_point: Option<u64>) -> Option<CleanPlan> {
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
        let first_dirty = clean_point.unwrap_or(0).max(self.log_start_offset());
        if first_dirty >= end {
            return None;
        }
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
        if dirty_ratio < params.min_dirty_ratio && !overdue {
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
            dirty_ratio,
        })
    }

    /// Swaps one cleaned segment in, if the log still holds the file it was made from (and
    /// that file is sealed). Call [`CleanedSegment::finish`] afterwards, outside the lock.
    pub fn install_cleaned(&mut self, cleaned: &CleanedSegment) -> Result<bool, StorageError> {
        self.ensure_writable()?;
        let last = self.segments.len() - 1;
        let Some(i) = self.segments[..last].iter().position(|s| {
            s.base_offset == cleaned.base
                && Arc::ptr_eq(&s.file, &cleaned.source)
                && s.size_bytes == cleaned.source_size
        }) else {
            cleaned.discard();
            return Ok(false);
        };
        let path = self.segments[i].path.clone();
        // The index files describe the old file: never let them be loaded with the new one.
        index::remove(&path).map_err(|e| StorageError::io(&path, e))?;
        fs::rename(&cleaned.tmp, &path).map_err(|e| StorageError::io(&path, e))?;
        let file = open_rw(&path, false)?;
        self.segments[i] = Segment::from_parts(
            cleaned.base,
            path,
            file,
            cleaned.size,
            cleaned.next,
            cleaned.indexes.clone(),
        );
        Ok(true)
    }
}

impl CleanedSegment {
    /// After [`Log::install_cleaned`]: makes the rename durable and writes the new indexes.
    pub fn finish(&self) -> Result<(), StorageError> {
        sync_dir(&self.dir)?;
        index::store(
            &crate::segment::log_path(&self.dir, self.base),
            &self.indexes,
        );
        Ok(())
    }

    /// Removes the rewritten file of a segment that is not swapped in.
    pub fn discard(&self) {
        if let Err(e) = fs::remove_file(&self.tmp) {
            tracing::warn!(path = %self.tmp.display(), error = %e, "could not remove a cleaned segment that was not used");
        }
    }
}

/// The stored clean point of the log in `dir`.
pub fn read_clean_point(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join(CLEAN_POINT_FILE)).ok()?;
    text.trim().parse().ok()
}

/// Stores the clean point atomically.
pub fn write_clean_point(dir: &Path, offset: u64) -> Result<(), StorageError> {
    let path = dir.join(CLEAN_POINT_FILE);
    let tmp = temp_path(&path);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{offset}\n").as_bytes())?;
        f.sync_data()
    };
    write().map_err(|e| StorageError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
    sync_dir(dir)
}

/// Batches of a sealed segment, CRC-checked, each paid to the throttle.
struct Batches<'a> {
    reader: ChunkReader<'a>,
    view: &'a SegmentView,
    position: u64,
    throttle: &'a Throttle,
}

impl<'a> Batches<'a> {
    fn new(view: &'a SegmentView, throttle: &'a Throttle) -> Batches<'a> {
        Batches {
            reader: ChunkReader::new(&view.file, &view.path, view.size),
            view,
            position: 0,
            throttle,
        }
    }

    fn next_batch(&mut self) -> Result<Option<(BatchHeader, Vec<u8>)>, StorageError> {
        if self.position >= self.view.size {
            return Ok(None);
        }
        let corrupt =
            |position, reason: String| StorageError::corrupt(&self.view.path, position, reason);
        if self.view.size - self.position < HEADER_LEN as u64 {
            return Err(corrupt(self.position, "truncated batch header".into()));
        }
        let header = BatchHeader::parse(self.reader.get(self.position, HEADER_LEN)?)
            .map_err(|e| corrupt(self.position, e.to_string()))?;
        let len = header.total_len();
        if len < HEADER_LEN || self.position + len as u64 > self.view.size {
            return Err(corrupt(
                self.position,
                "batch extends past the segment".into(),
            ));
        }
        let bytes = self.reader.get(self.position, len)?.to_vec();
        batch::check_frame_and_crc(&bytes).map_err(|e| corrupt(self.position, e.to_string()))?;
        self.throttle.pay(len as u64);
        self.position += len as u64;
        Ok(Some((header, bytes)))
    }
}

impl CleanPlan {
    /// Builds the key map and writes the cleaned segments (see the module docs).
    pub fn execute(
        self,
        context: &PassContext<'_>,
        throttle: &Throttle,
    ) -> Result<PassOutput, StorageError> {
        let mut stats = CleanStats::default();
        let (map, map_end) = self.build_map(context, throttle, &mut stats)?;
        let drop_tombstones_before = self
            .params
            .now_ms
            .saturating_sub(self.params.delete_retention_ms);
        let mut segments = Vec::new();
        for view in self.segments.iter().filter(|v| v.base < map_end) {
            let drop_tombstones =
                view.next <= self.first_dirty && millis(view.modified) <= drop_tombstones_before;
            let keep = |r: &RecordView<'_>| match r.key {
                None => true,
                Some(key) => {
                    let superseded = map.latest(key).is_some_and(|latest| r.offset < latest);
                    !(superseded || (r.tombstone && drop_tombstones))
                }
            };
            if let Some(cleaned) =
                self.rewrite(view, map_end, context, &keep, throttle, &mut stats)?
            {
                segments.push(cleaned);
            }
        }
        Ok(PassOutput {
            segments,
            clean_point: map_end,
            stats,
        })
    }

    /// The latest offset of every key from the first dirty offset on, until the map is full:
    /// returns it and where it ends (a batch boundary; the pass cleans below it).
    fn build_map(
        &self,
        context: &PassContext<'_>,
        throttle: &Throttle,
        stats: &mut CleanStats,
    ) -> Result<(KeyMap, u64), StorageError> {
        let mut map = KeyMap::with_budget(self.params.key_map_bytes);
        for view in self.segments.iter().filter(|v| v.next > self.first_dirty) {
            let mut batches = Batches::new(view, throttle);
            while let Some((header, bytes)) = batches.next_batch()? {
                stats.bytes_read += bytes.len() as u64;
                if (header.last_offset() as u64) < self.first_dirty
                    || header.is_control()
                    || context.aborted(&header)
                {
                    continue;
                }
                let (header, records) = crate::records::records_section(&bytes)
                    .map_err(|e| StorageError::corrupt(&view.path, 0, e.to_string()))?;
                let spans = walk_records(&header, &records)
                    .map_err(|e| StorageError::corrupt(&view.path, 0, e.to_string()))?;
                // A batch is mapped whole or not at all; the first one always fits.
                if !map.is_empty() && !map.has_room_for(spans.len()) {
                    return Ok((map, header.base_offset as u64));
                }
                for span in &spans {
                    if let Some(key) = &span.key {
                        map.insert(
                            &records[key.clone()],
                            header.base_offset as u64 + span.offset_delta as u64,
                        );
                    }
                }
            }
        }
        Ok((map, self.end))
    }

    /// Writes `view` cleaned into `<base>.log.tmp`; `None` (and no file) when nothing in it
    /// changes.
    fn rewrite(
        &self,
        view: &SegmentView,
        map_end: u64,
        context: &PassContext<'_>,
        keep: &dyn Fn(&RecordView<'_>) -> bool,
        throttle: &Throttle,
        stats: &mut CleanStats,
    ) -> Result<Option<CleanedSegment>, StorageError> {
        let tmp = temp_path(&view.path);
        let _ = fs::remove_file(&tmp);
        let file = open_rw(&tmp, true)?;
        let mut out = SegmentWriter {
            out: BufWriter::with_capacity(1 << 20, &file),
            path: &tmp,
            base: view.base,
            indexes: SegmentIndexes::default(),
            size: 0,
            index_interval_bytes: self.index_interval_bytes,
        };
        let mut removed = 0u64;
        let mut merged = 0u64;
        let mut run: Option<EmptyRun> = None;
        let mut batches = Batches::new(view, throttle);
        while let Some((header, bytes)) = batches.next_batch()? {
            stats.bytes_read += bytes.len() as u64;
            let base = header.base_offset as u64;
            let cleaned = if base >= map_end || header.is_control() {
                None
            } else {
                let whole_batch_aborted = context.aborted(&header);
                filter_batch(&bytes, |r| !whole_batch_aborted && keep(r))
                    .map_err(|e| StorageError::corrupt(&view.path, out.size, e.to_string()))?
            };
            let batch: &[u8] = cleaned.as_deref().unwrap_or(&bytes);
            let after = BatchHeader::parse(batch)
                .map_err(|e| StorageError::corrupt(&tmp, out.size, e.to_string()))?;
            removed += u64::try_from(header.records_count - after.records_count).unwrap_or(0);
            let mergeable = context.merge_empty
                && base < map_end
                && after.records_count == 0
                && !after.is_control()
                && !after.is_transactional()
                && !context.producer_batches.contains(&base);
            if mergeable {
                match &mut run {
                    Some(r) => {
                        r.last_offset = after.last_offset() as u64;
                        r.max_timestamp = r.max_timestamp.max(after.max_timestamp);
                        r.batches += 1;
                        merged += 1;
                    }
                    None => {
                        run = Some(EmptyRun {
                            first: Bytes::copy_from_slice(batch),
                            last_offset: after.last_offset() as u64,
                            max_timestamp: after.max_timestamp,
                            batches: 1,
                        })
                    }
                }
                continue;
            }
            if let Some(r) = run.take() {
                out.write_run(r, throttle)?;
            }
            out.write(batch, &after, throttle)?;
        }
        if let Some(r) = run.take() {
            out.write_run(r, throttle)?;
        }
        let size = out.size;
        let mut indexes = out.finish()?;
        if removed == 0 && merged == 0 {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Ok(None);
        }
        file.sync_data().map_err(|e| StorageError::fsync(&tmp, e))?;
        // Kafka's cleaner keeps a segment's modification time: tombstones stay
        // `delete.retention.ms` from the segment's last append, not from its last cleaning.
        if let Err(e) = file.set_modified(view.modified) {
            tracing::debug!(path = %tmp.display(), error = %e, "could not keep the modification time");
        }
        indexes.seal(view.base);
        stats.bytes_before += view.size;
        stats.bytes_after += size;
        stats.records_removed += removed;
        Ok(Some(CleanedSegment {
            base: view.base,
            next: view.next,
            tmp,
            size,
            indexes,
            source: Arc::clone(&view.file),
            source_size: view.size,
            dir: self.dir.clone(),
        }))
    }
}

/// Consecutive batches that lost every record, to be stored as one.
struct EmptyRun {
    first: Bytes,
    last_offset: u64,
    max_timestamp: i64,
    batches: u64,
}

/// A cleaned segment being written, with its indexes.
struct SegmentWriter<'a> {
    out: BufWriter<&'a File>,
    path: &'a Path,
    base: u64,
    indexes: SegmentIndexes,
    size: u64,
    index_interval_bytes: u32,
}

impl SegmentWriter<'_> {
    fn write(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        throttle: &Throttle,
    ) -> Result<(), StorageError> {
        self.out
            .write_all(batch)
            .map_err(|e| StorageError::io(self.path, e))?;
        throttle.pay(batch.len() as u64);
        // Segments are below 2^32 bytes and relative offsets, so the casts are lossless.
        self.indexes.record_batch(
            self.base,
            (header.base_offset as u64 - self.base) as u32,
            self.size as u32,
            batch.len() as u64,
            header.max_timestamp,
            self.index_interval_bytes,
        );
        self.size += batch.len() as u64;
        Ok(())
    }

    fn write_run(&mut self, run: EmptyRun, throttle: &Throttle) -> Result<(), StorageError> {
        let batch = if run.batches == 1 {
            run.first
        } else {
            filter::merged_empty(&run.first, run.last_offset, run.max_timestamp)
        };
        let header = BatchHeader::parse(&batch)
            .map_err(|e| StorageError::corrupt(self.path, self.size, e.to_string()))?;
        self.write(&batch, &header, throttle)
    }

    fn finish(mut self) -> Result<SegmentIndexes, StorageError> {
        self.out
            .flush()
            .map_err(|e| StorageError::io(self.path, e))?;
        Ok(self.indexes)
    }
}

/// Makes every segment file of `dir` look `by` older (tests of tombstone retention).
#[cfg(test)]
pub(crate) fn age_segment_files(dir: &Path, by: std::time::Duration) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let f = File::options().write(true).open(&path)?;
            let modified = f.metadata()?.modified()?;
            f.set_modified(modified - by)?;
        }
    }
    Ok(())
}
