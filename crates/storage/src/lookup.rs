//! Read-side queries of the log: fetch by offset and the timestamp lookups used
//! by ListOffsets.

use bytes::Bytes;

use crate::batch::BatchHeader;

use crate::error::StorageError;
use crate::log::{FirstBatch, Log, ReadResult};
use crate::segment::Segment;

impl Log {
    /// Index of the segment whose offset range includes `offset`
    /// (requires `offset >= log_start_offset()`).
    pub(crate) fn segment_index_for(&self, offset: u64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Base offset of the segment holding `offset` (the log start below it): where retention
    /// may cut the log so that `offset` stays readable.
    pub fn segment_start_for(&self, offset: u64) -> u64 {
        if offset < self.log_start_offset() {
            return self.log_start_offset();
        }
        self.segments[self.segment_index_for(offset)].base_offset
    }

    /// Whole batches starting with the one containing `offset`, stopping before
    /// `max_bytes` would be exceeded (the first batch is returned whole regardless,
    /// as in KIP-74) and before any batch whose base offset is >= `upper_bound`.
    /// Data comes from one segment per call. Every batch returned is CRC-checked;
    /// a mismatch is `Corrupt`, never served.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
    ) -> Result<ReadResult, StorageError> {
        self.read_with(offset, max_bytes, upper_bound, FirstBatch::Whole)
    }

    /// [`Log::read`], with the choice of whether the first batch may exceed `max_bytes`.
    pub fn read_with(
        &self,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
        first: FirstBatch,
    ) -> Result<ReadResult, StorageError> {
        let start = self.log_start_offset();
        let end = self.next_offset();
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        let upper_bound = upper_bound.min(end);
        if offset >= upper_bound {
            return Ok(ReadResult {
                bytes: Bytes::new(),
                first_offset: offset,
            });
        }
        self.segments[self.segment_index_for(offset)].read(offset, max_bytes, upper_bound, first)
    }

    /// Feeds `visit` the header of every stored batch whose last offset is >= `from_offset` (from
    /// the log start when `from_offset` is below it), in offset order. Only headers are parsed;
    /// record bytes are never copied out or CRC-checked (recovery already verified them). Used to
    /// rebuild state derived from the log, such as the broker's producer state.
    pub fn scan_headers(
        &self,
        from_offset: u64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let end = self.next_offset();
        if from_offset > end {
            return Err(StorageError::OffsetOutOfRange {
                offset: from_offset,
                start: self.log_start_offset(),
                end,
            });
        }
        let from = from_offset.max(self.log_start_offset());
        for segment in &self.segments[self.segment_index_for(from)..] {
            segment.visit_headers(from, &mut visit)?;
        }
        Ok(())
    }

    /// The first record at or after offset `from` whose timestamp is >= `ts_ms`, as (offset,
    /// timestamp), as Kafka answers ListOffsets by time. Compressed batches are decompressed to
    /// find it.
    pub fn offset_for_timestamp(
        &self,
        ts_ms: i64,
        from: u64,
    ) -> Result<Option<(u64, i64)>, StorageError> {
        let first = self.segment_index_for(from.max(self.log_start_offset()));
        for segment in &self.segments[first..] {
            if let Some(found) = segment.find_timestamp(ts_ms, from)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of the first record carrying it
    /// (ListOffsets MAX_TIMESTAMP, KIP-734). None when the log is empty.
    pub fn max_timestamp(&self) -> Result<Option<(u64, i64)>, StorageError> {
        let Some((batch_offset, max)) = self
            .segments
            .iter()
            .filter_map(|s: &Segment| s.indexes.max_timestamp)
            .fold(None, |best: Option<(i64, u64)>, (ts, offset)| match best {
                Some((best_ts, _)) if best_ts >= ts => best,
                _ => Some((ts, offset)),
            })
            .map(|(ts, offset)| (offset, ts))
        else {
            return Ok(None);
        };
        let segment = &self.segments[self.segment_index_for(batch_offset)];
        let Some((_, header)) = segment.locate(batch_offset)? else {
            return Ok(None);
        };
        Ok(segment
            .record_in_batch(&header, 0, |ts| ts == max)?
            .or(Some((batch_offset, max))))
    }
}
