//! Removing data: whole-segment retention at the head of the log and suffix
//! truncation (Raft) at its tail.

use crate::checkpoint;
use crate::error::StorageError;
use crate::fsutil::sync_dir;
use crate::log::Log;
use crate::segment::Segment;

impl Log {
    /// Deletes sealed segments from the head of the log (never the active one):
    /// while the oldest one's newest batch is older than `now_ms - retention_ms`,
    /// or the partition is larger than `retention_bytes`. Deletion stops at the
    /// first segment that qualifies for neither, keeping offsets contiguous.
    /// Returns how many segments were removed.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        self.ensure_writable()?;
        let point = self.retention_point(now_ms, u64::MAX);
        self.remove_segments_below(point)
    }

    /// Where [`Log::apply_retention`] would start the log now: the base offset of
    /// the oldest segment it would keep (the log start when it would delete none).
    /// Segments holding offsets at or above `limit` are kept whatever their age.
    pub fn retention_point(&self, now_ms: i64, limit: u64) -> u64 {
        let cutoff_ms = self
            .config
            .retention_ms
            .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
        let mut size = self.size_bytes();
        for pair in self.segments.windows(2) {
            let (oldest, next) = (&pair[0], &pair[1]);
            if next.base_offset > limit {
                return oldest.base_offset;
            }
            let expired = cutoff_ms.is_some_and(|cutoff| {
                oldest
                    .indexes
                    .max_timestamp
                    .is_none_or(|(ts, _)| ts < cutoff)
            });
            let oversized = self
                .config
                .retention_bytes
                .is_some_and(|limit| size > limit);
            if !(expired || oversized) {
                return oldest.base_offset;
            }
            size -= oldest.size_bytes;
        }
        self.active().base_offset
    }

    /// Deletes the sealed segments that lie wholly below `offset` (oldest first,
    /// so a crash midway leaves a contiguous log). Returns how many were removed.
    pub fn remove_segments_below(&mut self, offset: u64) -> Result<usize, StorageError> {
        self.ensure_writable()?;
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].base_offset <= offset {
            let oldest = &self.segments[0];
            oldest.remove_files()?;
            tracing::info!(
                path = %oldest.path.display(),
                bytes = oldest.size_bytes,
                "deleted segment by retention"
            );
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            let synced = sync_dir(&self.dir);
            self.check_fatal(synced)?;
        }
        Ok(removed)
    }

    /// Throws the whole log away and starts it again, empty, at `offset` (a Raft
    /// replica installing a snapshot: what it had is older than the leader's log
    /// start, or diverged from it). Newest segment first, so a crash midway leaves
    /// a shorter log rather than a gap.
    pub fn reset(&mut self, offset: u64) -> Result<(), StorageError> {
        self.ensure_writable()?;
        tracing::warn!(dir = %self.dir.display(), offset, "discarding the whole log; it restarts empty");
        let result = self.replace_segments(offset);
        if result.is_err() {
            // Half reset: the files no longer match the segments in memory. Refuse all writes;
            // the next open repairs it (`EntryIndex::open`).
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        result
    }

    /// `reset`'s work. The oldest segment stays in memory (its file unlinked, still readable)
    /// until the new one exists, so the list is never empty, whatever fails.
    fn replace_segments(&mut self, offset: u64) -> Result<(), StorageError> {
        while self.segments.len() > 1 {
            if let Some(last) = self.segments.last() {
                last.remove_files()?;
            }
            self.segments.pop();
        }
        self.segments[0].remove_files()?;
        let written = checkpoint::write(&self.dir, offset);
        self.check_fatal(written)?;
        self.checkpoint = Some(offset);
        self.segments = vec![Segment::create(&self.dir, offset)?];
        let synced = sync_dir(&self.dir);
        self.check_fatal(synced)?;
        self.durable_offset = offset;
        self.generation += 1;
        Ok(())
    }

    /// Removes every batch with base offset >= `offset`, which must be a batch
    /// boundary or `next_offset()`. Deletes later segments, truncates the one
    /// holding `offset` and fsyncs; afterwards everything left is durable, so
    /// `durable_offset()` becomes `offset`.
    pub fn truncate_suffix(&mut self, offset: u64) -> Result<(), StorageError> {
        self.ensure_writable()?;
        let start = self.log_start_offset();
        let end = self.next_offset();
        if offset == end {
            return Ok(());
        }
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        let keep = self.segment_index_for(offset);
        let target = &self.segments[keep];
        if offset != target.base_offset {
            match target.locate(offset)? {
                Some((_, header)) if header.base_offset as u64 == offset => {}
                _ => return Err(StorageError::NotBatchBoundary(offset)),
            }
        }
        tracing::warn!(
            dir = %self.dir.display(),
            offset,
            bytes_dropped = self.bytes_from(offset),
            "truncating log suffix"
        );
        // New data will be written below the old checkpoint; lower it first so a
        // crash makes the next open verify that data.
        if self.checkpoint.is_none_or(|cp| cp > offset) {
            let written = checkpoint::write(&self.dir, offset);
            self.check_fatal(written)?;
            self.checkpoint = Some(offset);
        }
        // Newest first, so a crash midway never leaves a gap in the offsets.
        while self.segments.len() > keep + 1 {
            if let Some(last) = self.segments.last() {
                last.remove_files()?;
            }
            self.segments.pop();
        }
        let interval = self.config.index_interval_bytes;
        let segment = &mut self.segments[keep];
        segment.truncate_to(offset, interval)?;
        segment.restore_first_append_ms()?;
        let synced = segment.sync().and_then(|()| sync_dir(&self.dir));
        self.check_fatal(synced)?;
        self.durable_offset = offset;
        self.generation += 1;
        Ok(())
    }

    /// Bytes stored at or after `offset`, approximated to segment granularity where the
    /// position is unknown (all of them for an offset below the log start, none past its end).
    pub fn bytes_from(&self, offset: u64) -> u64 {
        if offset >= self.next_offset() {
            return 0;
        }
        let index = self.segment_index_for(offset);
        let segment = &self.segments[index];
        let within = match segment.locate(offset) {
            Ok(Some((position, _))) => segment.size_bytes - position,
            _ => segment.size_bytes,
        };
        within
            + self.segments[index + 1..]
                .iter()
                .map(|s| s.size_bytes)
                .sum::<u64>()
    }
}
