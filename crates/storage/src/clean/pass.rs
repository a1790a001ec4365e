//! One pass's work outside the lock: the key map, then the rewritten segments (see the
//! module docs of [`super`]).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::filter::{filter_batch, RecordView};
use super::{
    millis, CleanPlan, CleanPoint, CleanStats, CleanedSegment, KeyMap, PassContext, PassOutput,
    SegmentView, Source, Throttle,
};
use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::StorageError;
use crate::fsutil::temp_path;
use crate::index::SegmentIndexes;
use crate::reader::ChunkReader;
use crate::records::walk_records;
use crate::segment::open_rw;

/// A group's offsets must stay within a segment's relative offsets (see `log`).
const MAX_GROUP_OFFSETS: u64 = i32::MAX as u64;

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
        // Kafka's grouping: consecutive segments whose sizes add up to at most segment.bytes
        // become one, so segments that shrank do not pile up as small files.
        let mut groups: Vec<Vec<&SegmentView>> = Vec::new();
        for view in self.segments.iter().filter(|v| v.base < map_end) {
            match groups.last_mut() {
                Some(group)
                    if group.iter().map(|s| s.size).sum::<u64>() + view.size
                        <= self.segment_bytes
                        && view.next - group[0].base <= MAX_GROUP_OFFSETS =>
                {
                    group.push(view)
                }
                _ => groups.push(vec![view]),
            }
        }
        let keep = |r: &RecordView<'_>, drop_tombstones: bool| match r.key {
            None => true,
            Some(key) => {
                let superseded = map.latest(key).is_some_and(|latest| r.offset < latest);
                !(superseded || (r.tombstone && drop_tombstones))
            }
        };
        let mut segments = Vec::new();
        let mut tombstones_since_ms: Option<i64> = None;
        for group in &groups {
            let (cleaned, tombstones) = self.rewrite(
                group,
                map_end,
                drop_tombstones_before,
                context,
                &keep,
                throttle,
                &mut stats,
            )?;
            segments.extend(cleaned);
            if let Some(since) = tombstones {
                tombstones_since_ms = Some(tombstones_since_ms.map_or(since, |t| t.min(since)));
            }
        }
        Ok(PassOutput {
            segments,
            clean_point: CleanPoint {
                offset: map_end,
                tombstones_since_ms,
            },
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

    /// Writes the segments of `group` cleaned into one file, `<first base>.log.tmp`; `None`
    /// (and no file) when nothing changes. Also returns the group's modification time if it
    /// keeps a tombstone.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &self,
        group: &[&SegmentView],
        map_end: u64,
        drop_tombstones_before: i64,
        context: &PassContext<'_>,
        keep: &dyn Fn(&RecordView<'_>, bool) -> bool,
        throttle: &Throttle,
        stats: &mut CleanStats,
    ) -> Result<(Option<CleanedSegment>, Option<i64>), StorageError> {
        let first = group[0];
        // Kafka's cleaner keeps a segment's modification time: tombstones stay
        // `delete.retention.ms` from the segment's last append, not from its last cleaning.
        let modified = group
            .iter()
            .map(|v| v.modified)
            .max()
            .unwrap_or(first.modified);
        let mut kept_tombstone = false;
        let tmp = temp_path(&first.path);
        let _ = fs::remove_file(&tmp);
        let file = open_rw(&tmp, true)?;
        let mut out = SegmentWriter {
            out: BufWriter::with_capacity(1 << 20, &file),
            path: &tmp,
            base: first.base,
            indexes: SegmentIndexes::default(),
            size: 0,
            index_interval_bytes: self.index_interval_bytes,
        };
        let mut removed = 0u64;
        let mut merged = 0u64;
        let mut run: Option<EmptyRun> = None;
        for view in group {
            // Tombstones go from segments that were clean before this pass and were last
            // written `delete.retention.ms` ago.
            let drop_tombstones =
                view.next <= self.first_dirty && millis(view.modified) <= drop_tombstones_before;
            let mut batches = Batches::new(view, throttle);
            while let Some((header, bytes)) = batches.next_batch()? {
                stats.bytes_read += bytes.len() as u64;
                let base = header.base_offset as u64;
                let cleaned = if base >= map_end || header.is_control() {
                    None
                } else {
                    let whole_batch_aborted = context.aborted(&header);
                    filter_batch(&bytes, |r| {
                        let kept = !whole_batch_aborted && keep(r, drop_tombstones);
                        kept_tombstone |= kept && r.tombstone;
                        kept
                    })
                    .map_err(|e| StorageError::corrupt(&view.path, out.size, e.to_string()))?
                };
                let batch: &[u8] = cleaned.as_deref().unwrap_or(&bytes);
                let after = BatchHeader::parse(batch)
                    .map_err(|e| StorageError::corrupt(&tmp, out.size, e.to_string()))?;
                removed += u64::try_from(header.records_count - after.records_count).unwrap_or(0);
                let mergeable = base < map_end
                    && after.records_count == 0
                    && !after.is_control()
                    && !after.is_transactional()
                    && !context.producer_batches.contains(&base);
                if mergeable {
                    // A run stays within one leader epoch: its entries share the Raft term.
                    if run
                        .as_ref()
                        .is_some_and(|r| r.epoch != after.partition_leader_epoch)
                    {
                        if let Some(r) = run.take() {
                            out.write_run(r, throttle)?;
                        }
                    }
                    match &mut run {
                        Some(r) => {
                            r.last_offset = after.last_offset() as u64;
                            r.max_timestamp = r.max_timestamp.max(after.max_timestamp);
                            r.batches += 1;
                            r.entries += batch::entry_count(&after);
                            merged += 1;
                        }
                        None => {
                            run = Some(EmptyRun {
                                first: Bytes::copy_from_slice(batch),
                                base,
                                last_offset: after.last_offset() as u64,
                                max_timestamp: after.max_timestamp,
                                epoch: after.partition_leader_epoch,
                                batches: 1,
                                entries: batch::entry_count(&after),
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
        }
        if let Some(r) = run.take() {
            out.write_run(r, throttle)?;
        }
        let size = out.size;
        let mut indexes = out.finish()?;
        let tombstones = kept_tombstone.then(|| millis(modified));
        if removed == 0 && merged == 0 && group.len() == 1 {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Ok((None, tombstones));
        }
        file.sync_data().map_err(|e| StorageError::fsync(&tmp, e))?;
        if let Err(e) = file.set_modified(modified) {
            tracing::debug!(path = %tmp.display(), error = %e, "could not keep the modification time");
        }
        indexes.seal(first.base);
        stats.bytes_before += group.iter().map(|v| v.size).sum::<u64>();
        stats.bytes_after += size;
        stats.records_removed += removed;
        let cleaned = CleanedSegment {
            base: first.base,
            next: group[group.len() - 1].next,
            tmp,
            size,
            indexes,
            sources: group
                .iter()
                .map(|v| Source {
                    base: v.base,
                    file: Arc::clone(&v.file),
                    size: v.size,
                })
                .collect(),
            dir: self.dir.clone(),
        };
        Ok((Some(cleaned), tombstones))
    }
}

/// Consecutive batches that lost every record, to be stored as one.
struct EmptyRun {
    /// Its first batch, written as it is when the run has no other.
    first: Bytes,
    base: u64,
    last_offset: u64,
    max_timestamp: i64,
    epoch: i32,
    batches: u64,
    /// The Raft entries the run stands for.
    entries: u64,
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
            batch::empty_batch_at(
                run.base,
                run.last_offset,
                run.epoch,
                run.max_timestamp,
                run.entries,
            )
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
