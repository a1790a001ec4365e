//! One segment of a partition: `<base offset, 20 digits>.log` plus its indexes.
//!
//! The `.log` is a plain concatenation of RecordBatch v2 batches (see
//! [`crate::batch`]) whose base offsets are contiguous, the first one being the
//! segment's base offset. Positions inside a segment fit in a `u32`.

use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_LEN, REWRITTEN_PREFIX_LEN};
use crate::error::StorageError;
use crate::index::{self, SegmentIndexes};
use crate::log::{FirstBatch, ReadResult};
use crate::reader::ChunkReader;
use crate::scan::{self, check_header, ScanParams, Verification};

const OFFSET_DIGITS: usize = 20;
pub(crate) const LOG_SUFFIX: &str = ".log";

pub(crate) fn log_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:0OFFSET_DIGITS$}{LOG_SUFFIX}"))
}

/// Parses `<20 digits>` (the stem of a segment file) into a base offset that is a
/// valid Kafka offset (<= i64::MAX).
pub(crate) fn parse_base_offset(stem: &str) -> Option<u64> {
    if stem.len() != OFFSET_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base: u64 = stem.parse().ok()?;
    (base <= i64::MAX as u64).then_some(base)
}

/// How an append failed, which decides whether the log can continue.
pub(crate) enum AppendFailure {
    /// Nothing of the batch remains on disk; the log is consistent.
    RolledBack(StorageError),
    /// Partial bytes could not be removed; the log must go to `Failed`.
    Inconsistent(StorageError),
}

pub(crate) struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub size_bytes: u64,
    /// Offset following the last batch (== base_offset when empty).
    pub next_offset: u64,
    pub indexes: SegmentIndexes,
    /// When the first batch was appended, for time-based rolling.
    pub first_append_ms: Option<i64>,
    /// Test hook: the next write stops after this many bytes with ENOSPC.
    #[cfg(test)]
    pub fail_next_write_after_bytes: Option<usize>,
}

pub(crate) fn open_rw(path: &Path, create_new: bool) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create_new)
        .open(path)
        .map_err(|e| StorageError::io(path, e))
}

impl Segment {
    /// A segment assembled by recovery from an existing file.
    pub fn from_parts(
        base_offset: u64,
        path: PathBuf,
        file: File,
        size_bytes: u64,
        next_offset: u64,
        indexes: SegmentIndexes,
    ) -> Segment {
        Segment {
            base_offset,
            path,
            file: Arc::new(file),
            size_bytes,
            next_offset,
            indexes,
            first_append_ms: None,
            #[cfg(test)]
            fail_next_write_after_bytes: None,
        }
    }

    /// Creates an empty segment file. The caller fsyncs the directory.
    pub fn create(dir: &Path, base_offset: u64) -> Result<Segment, StorageError> {
        let path = log_path(dir, base_offset);
        let file = open_rw(&path, true)?;
        Ok(Segment::from_parts(
            base_offset,
            path,
            file,
            0,
            base_offset,
            SegmentIndexes::default(),
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// fdatasync of the `.log`.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::fsync(&self.path, e))
    }

    /// Writes one batch at the end of the file with its offset and epoch rewritten,
    /// in one vectored write, and rolls the file back if the write fails.
    pub fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        base_offset: u64,
        leader_epoch: i32,
        now_ms: i64,
        index_interval_bytes: u32,
    ) -> Result<(), AppendFailure> {
        let prefix = batch::rewritten_prefix(batch, base_offset as i64, leader_epoch);
        let rest = batch.get(REWRITTEN_PREFIX_LEN..).unwrap_or(&[]);
        let position = self.size_bytes;
        if let Err(write_error) = self.write_at(position, &prefix, rest) {
            let error = StorageError::io(&self.path, write_error);
            return match self.file.set_len(position) {
                Ok(()) => Err(AppendFailure::RolledBack(error)),
                Err(truncate_error) => {
                    tracing::error!(
                        path = %self.path.display(),
                        position,
                        error = %truncate_error,
                        "could not roll back a failed append"
                    );
                    Err(AppendFailure::Inconsistent(error))
                }
            };
        }
        let len = batch.len() as u64;
        // Rolling keeps positions and relative offsets within u32.
        self.indexes.record_batch(
            self.base_offset,
            (base_offset - self.base_offset) as u32,
            position as u32,
            len,
            header.max_timestamp,
            index_interval_bytes,
        );
        self.size_bytes += len;
        self.next_offset = base_offset + header.last_offset_delta as u64 + 1;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    fn write_at(&mut self, position: u64, prefix: &[u8], rest: &[u8]) -> std::io::Result<()> {
        let mut file: &File = &self.file;
        file.seek(SeekFrom::Start(position))?;
        #[cfg(test)]
        if let Some(limit) = self.fail_next_write_after_bytes.take() {
            let all = [prefix, rest].concat();
            file.write_all(&all[..limit.min(all.len())])?;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut bufs = [IoSlice::new(prefix), IoSlice::new(rest)];
        let mut slices: &mut [IoSlice<'_>] = &mut bufs;
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Visits batch headers from an index-derived starting point, checking each
    /// one, until `visit` breaks. `Ok(None)` when the segment ends first.
    fn walk_headers<T>(
        &self,
        start_position: u64,
        start_offset: u64,
        mut visit: impl FnMut(u64, &BatchHeader) -> ControlFlow<T>,
    ) -> Result<Option<T>, StorageError> {
        let mut reader = ChunkReader::new(&self.file, &self.path, self.size_bytes);
        let mut position = start_position;
        let mut expected = start_offset;
        while position < self.size_bytes {
            if self.size_bytes - position < HEADER_LEN as u64 {
                return Err(StorageError::corrupt(
                    &self.path,
                    position,
                    "truncated batch header",
                ));
            }
            let header = BatchHeader::parse(reader.get(position, HEADER_LEN)?)
                .map_err(|e| StorageError::corrupt(&self.path, position, e.to_string()))?;
            check_header(
                &header,
                position,
                self.size_bytes,
                expected,
                self.base_offset,
            )
            .map_err(|reason| StorageError::corrupt(&self.path, position, reason))?;
            if let ControlFlow::Break(found) = visit(position, &header) {
                return Ok(Some(found));
            }
            position += header.total_len() as u64;
            expected += header.last_offset_delta as u64 + 1;
        }
        Ok(None)
    }

    /// Index floor for `offset`: a known batch start at or before it.
    fn index_start(&self, offset: u64) -> (u64, u64) {
        let relative = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        match self.indexes.offsets.floor(relative) {
            Some(e) => (
                u64::from(e.position),
                self.base_offset + u64::from(e.relative_offset),
            ),
            None => (0, self.base_offset),
        }
    }

    /// Walks from the index entry at or before `offset`. Index entries are a
    /// cache that is never trusted over the log: if the walk from one fails, the
    /// walk is redone from the segment start, and only a failure there is
    /// reported as corruption.
    fn walk_from_index<T>(
        &self,
        offset: u64,
        mut visit: impl FnMut(u64, &BatchHeader) -> ControlFlow<T>,
    ) -> Result<Option<T>, StorageError> {
        let (position, start_offset) = self.index_start(offset);
        match self.walk_headers(position, start_offset, &mut visit) {
            Err(StorageError::Corrupt { reason, .. }) if position != 0 => {
                tracing::warn!(
                    path = %self.path.display(),
                    position,
                    reason = %reason,
                    "index entry disagrees with the log; scanning from the segment start"
                );
                self.walk_headers(0, self.base_offset, visit)
            }
            other => other,
        }
    }

    /// Position and header of the batch containing `offset`, if in this segment.
    pub fn locate(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        self.walk_from_index(offset, |position, header| {
            if header.last_offset() as u64 >= offset {
                ControlFlow::Break((position, *header))
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    /// Feeds `visit` the header of every batch whose last offset is >= `from_offset`, in order.
    /// `walk_from_index` may restart from the segment start when an index entry is stale, so
    /// batches already visited are skipped by offset rather than visited twice.
    pub fn visit_headers(
        &self,
        from_offset: u64,
        visit: &mut impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let mut next_unvisited = from_offset;
        self.walk_from_index(from_offset, |_, header| {
            let last = header.last_offset() as u64;
            if last >= next_unvisited {
                visit(header);
                next_unvisited = last + 1;
            }
            ControlFlow::<()>::Continue(())
        })?;
        Ok(())
    }

    /// Whole batches from the one containing `offset`; see `Log::read`.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
        first: FirstBatch,
    ) -> Result<ReadResult, StorageError> {
        let empty = ReadResult {
            bytes: Bytes::new(),
            first_offset: offset,
        };
        let Some((position, first_header)) = self.locate(offset)? else {
            return Ok(empty);
        };
        let first_offset = first_header.base_offset as u64;
        if first_offset >= upper_bound {
            return Ok(empty);
        }
        let first_len = first_header.total_len();
        let remaining = usize::try_from(self.size_bytes - position).unwrap_or(usize::MAX);
        if first_len > max_bytes && first == FirstBatch::WithinLimit {
            return Ok(empty);
        }
        // KIP-74: otherwise the first batch is returned whole even when it exceeds max_bytes.
        let want = if first_len >= max_bytes {
            first_len
        } else {
            max_bytes.min(remaining)
        };
        let mut buf = crate::fsutil::read_new_at(&self.file, want, position)
            .map_err(|e| StorageError::io(&self.path, e))?;
        let mut end = 0usize;
        let mut expected = first_offset;
        while buf.len() - end >= HEADER_LEN {
            let at = position + end as u64;
            match self.verify_buffered(&buf[end..], at, expected, upper_bound) {
                Ok(Some(header)) => {
                    end += header.total_len();
                    expected += header.last_offset_delta as u64 + 1;
                }
                Ok(None) => break,
                // Serve the sound batches before the damage; a read starting at
                // the damaged batch reports it.
                Err(e) if end > 0 => {
                    tracing::warn!(error = %e, "read stops before a corrupt batch");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        buf.truncate(end);
        Ok(ReadResult {
            bytes: Bytes::from(buf),
            first_offset,
        })
    }

    /// Checks the batch at the start of `bytes` (read from position `at`).
    /// `Ok(None)` when it is not to be returned: cut off by the read buffer, or at
    /// or above `upper_bound`.
    fn verify_buffered(
        &self,
        bytes: &[u8],
        at: u64,
        expected_offset: u64,
        upper_bound: u64,
    ) -> Result<Option<BatchHeader>, StorageError> {
        let corrupt = |reason: String| StorageError::corrupt(&self.path, at, reason);
        let header = BatchHeader::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
        check_header(
            &header,
            at,
            self.size_bytes,
            expected_offset,
            self.base_offset,
        )
        .map_err(corrupt)?;
        let total = header.total_len();
        if total > bytes.len() || expected_offset >= upper_bound {
            return Ok(None);
        }
        batch::check_frame_and_crc(&bytes[..total]).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(header))
    }

    /// The first record in this segment whose timestamp is >= `timestamp_ms`, as (offset,
    /// timestamp); control batches are not records and are skipped. The time index leads to the
    /// first batch whose maxTimestamp qualifies, and that batch holds the answer (its record with
    /// that timestamp does): every batch before it has only older records.
    /// Records below offset `from` are passed over.
    pub fn find_timestamp(
        &self,
        timestamp_ms: i64,
        from: u64,
    ) -> Result<Option<(u64, i64)>, StorageError> {
        match self.indexes.max_timestamp {
            Some((max, _)) if max >= timestamp_ms => {}
            _ => return Ok(None),
        }
        let start_offset = match self.indexes.times.last_below(timestamp_ms) {
            Some(entry) => self.base_offset + u64::from(entry.relative_offset),
            None => self.base_offset,
        };
        let found = self.walk_from_index(start_offset.max(from), |_, header| {
            let below = (header.last_offset() as u64) < from;
            if below || header.is_control() || header.max_timestamp < timestamp_ms {
                return ControlFlow::Continue(());
            }
            match self.record_in_batch(header, from, |ts| ts >= timestamp_ms) {
                Ok(None) => ControlFlow::Continue(()),
                Ok(Some(found)) => ControlFlow::Break(Ok(found)),
                Err(e) => ControlFlow::Break(Err(e)),
            }
        })?;
        found.transpose()
    }

    /// The first record of the batch `header` describes, at or after offset `from`, whose
    /// timestamp satisfies `wanted`.
    /// A batch whose records cannot be decoded (its CRC holds, so the client compressed garbage)
    /// answers with its base offset and maxTimestamp: the batch granularity, not an error that
    /// would fail every later lookup in the partition.
    pub(crate) fn record_in_batch(
        &self,
        header: &BatchHeader,
        from: u64,
        wanted: impl Fn(i64) -> bool,
    ) -> Result<Option<(u64, i64)>, StorageError> {
        let base_offset = header.base_offset as u64;
        let batch = self.read(base_offset, 1, u64::MAX, FirstBatch::Whole)?;
        match crate::records::record_times(&batch.bytes) {
            Ok(times) => Ok(times
                .into_iter()
                .find(|(offset, ts)| *offset as u64 >= from && wanted(*ts))
                .map(|(offset, ts)| (offset as u64, ts))),
            Err(e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    base_offset,
                    error = %e,
                    "records of a batch cannot be decoded; answering at batch granularity"
                );
                let offset = base_offset.max(from);
                Ok(wanted(header.max_timestamp).then_some((offset, header.max_timestamp)))
            }
        }
    }

    /// Records the final time-index entry and persists both index files.
    pub fn seal(&mut self) {
        self.indexes.seal(self.base_offset);
        index::store(&self.path, &self.indexes);
    }

    /// Cuts the segment so that `offset` (a batch boundary in it, or its base)
    /// becomes its end. The caller fsyncs afterwards.
    pub fn truncate_to(
        &mut self,
        offset: u64,
        index_interval_bytes: u32,
    ) -> Result<(), StorageError> {
        let position = if offset == self.base_offset {
            0
        } else {
            match self.locate(offset)? {
                Some((position, header)) if header.base_offset as u64 == offset => position,
                _ => return Err(StorageError::NotBatchBoundary(offset)),
            }
        };
        // The files on disk describe the old contents; never let them be loaded.
        index::remove(&self.path).map_err(|e| StorageError::io(&self.path, e))?;
        self.file
            .set_len(position)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.size_bytes = position;
        self.next_offset = offset;
        let (start_position, start_relative) = self
            .indexes
            .rewind(self.base_offset, Some((offset - self.base_offset) as u32));
        let outcome = scan::scan(
            &ScanParams {
                file: &self.file,
                path: &self.path,
                file_len: position,
                segment_base: self.base_offset,
                start_position,
                start_offset: self.base_offset + u64::from(start_relative),
                verification: Verification::HeaderOnly,
                index_interval_bytes,
            },
            &mut self.indexes,
        )?;
        if let Some(stop) = outcome.stop {
            return Err(StorageError::corrupt(
                &self.path,
                stop.position,
                stop.reason,
            ));
        }
        if position == 0 {
            self.first_append_ms = None;
        }
        Ok(())
    }

    /// Deletes the segment's files. Only a failure to remove the `.log` is an
    /// error: index files left behind are orphans that `open` removes.
    pub fn remove_files(&self) -> Result<(), StorageError> {
        fs::remove_file(&self.path).map_err(|e| StorageError::io(&self.path, e))?;
        if let Err(e) = index::remove(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove index files of a deleted segment");
        }
        Ok(())
    }

    /// Time-based rolling after a restart: the first batch's maxTimestamp, or the
    /// file's mtime when that is not a usable time.
    pub fn restore_first_append_ms(&mut self) -> Result<(), StorageError> {
        if self.is_empty() || self.first_append_ms.is_some() {
            return Ok(());
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        let from_batch = match self.file.read_exact_at(&mut header_bytes, 0) {
            Ok(()) => BatchHeader::parse(&header_bytes)
                .ok()
                .map(|h| h.max_timestamp)
                .filter(|ts| *ts >= 0),
            Err(_) => None,
        };
        let from_mtime = || -> Result<i64, StorageError> {
            let modified = self
                .file
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| StorageError::io(&self.path, e))?;
            let since_epoch = modified
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
        };
        self.first_append_ms = Some(match from_batch {
            Some(ts) => ts,
            None => from_mtime()?,
        });
        Ok(())
    }
}
