//! Removing data: whole-segment retention at the head of the log and suffix
//! truncation (Raft) at its tail.

use crate::checkpoint;
use crate::error::StorageError;
use crate::fsutil::sync_dir;
use crate::log::Log;

impl Log {
    /// Deletes sealed segments from the head of the log (never the active one):
    /// while the oldest one's newest batch is older than `now_ms - retention_ms`,
    /// or the partition is larger than `retention_bytes`. Deletion stops at the
    /// first segment that qualifies for neither, keeping offsets contiguous.
    /// Returns how many segments were removed.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        self.ensure_writable()?;
        let cutoff_ms = self
            .config
            .retention_ms
            .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
        let mut removed = 0;
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let expired = cutoff_ms.is_some_and(|cutoff| {
                oldest
                    .indexes
                    .max_timestamp
                    .is_none_or(|(ts, _)| ts < cutoff)
            });
            let oversized = self
                .config
                .retention_bytes
                .is_some_and(|limit| self.size_bytes() > limit);
            if !(expired || oversized) {
                break;
            }
            oldest.remove_files()?;
            tracing::info!(
                path = %oldest.path.display(),
                bytes = oldest.size_bytes,
                expired,
                oversized,
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
        Ok(())
    }

    /// Bytes stored at or after `offset` (for logging), approximated to segment
    /// granularity where the position is unknown.
    fn bytes_from(&self, offset: u64) -> u64 {
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
