//! The partition log: an ordered list of segments, the last one active.
//!
//! Appends go to the active segment without fsync; durability is tracked
//! separately (`durable_offset`) and advanced by whoever fsyncs, typically
//! through a [`SyncPoint`] taken under the partition lock and synced outside it
//! (group commit). Any fsync failure is fatal: the log enters the `Failed` state
//! and refuses further writes, because after a failed fsync the kernel may have
//! dropped dirty pages and the file contents are unknown.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::checkpoint;
use crate::error::{BatchError, StorageError};
use crate::fsutil::sync_dir;
use crate::recovery;
use crate::segment::{AppendFailure, Segment};

/// Positions inside a segment are u32; 2 GiB leaves room for one oversized batch
/// (<= i32::MAX bytes) appended to a full segment's successor.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;
/// Relative offsets are u32; roll well before they could overflow.
const MAX_RELATIVE_OFFSET: u64 = i32::MAX as u64;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll when the active segment's size plus the next batch would exceed this.
    /// 1..=2 GiB.
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch was appended longer ago than this.
    pub segment_ms: u64,
    /// Delete sealed segments whose newest batch is older than this. None = forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the partition is larger than this.
    pub retention_bytes: Option<u64>,
    /// Add a sparse index entry after this many bytes.
    pub index_interval_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            index_interval_bytes: 4096,
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), StorageError> {
        if self.segment_bytes == 0 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(StorageError::InvalidConfig(format!(
                "segment_bytes must be in 1..={MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    /// The batch's maxTimestamp as sent by the client.
    pub max_timestamp: i64,
    /// `now_ms` when the batch asked for LogAppendTime, else -1 (Kafka's convention).
    pub log_append_time_ms: i64,
}

/// Whether a read may return a first batch larger than its byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBatch {
    /// The first batch is returned whole even when it exceeds the limit (KIP-74), so a consumer
    /// always makes progress past a batch larger than its fetch size.
    Whole,
    /// Nothing beyond the limit, not even the first batch: a fetch response that already holds
    /// data must stay within its `max_bytes`, or a client that drops oversized responses retries
    /// the same fetch forever.
    WithinLimit,
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches only, each CRC-verified.
    pub bytes: Bytes,
    /// Base offset of the first batch returned (the requested offset when empty).
    pub first_offset: u64,
}

/// Taken under the partition lock, used outside it: fsyncs the file holding the
/// newest data. Earlier segments were fsynced when they were sealed.
pub struct SyncPoint {
    file: Arc<File>,
    path: PathBuf,
    end_offset: u64,
    failed: Arc<AtomicBool>,
    generation: u64,
}

impl SyncPoint {
    /// Everything below this offset is durable once `sync` succeeds.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// fdatasync. A failure is fatal and also puts the log in `Failed`.
    pub fn sync(&self) -> Result<(), StorageError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StorageError::Failed);
        }
        self.file.sync_data().map_err(|e| {
            self.failed.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), error = %e, "fsync failed; log is now failed");
            StorageError::fsync(&self.path, e)
        })
    }
}

pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Never empty; ordered by base offset; the last one is active.
    pub(crate) segments: Vec<Segment>,
    pub(crate) durable_offset: u64,
    /// Last recovery checkpoint written (or read); see [`crate::checkpoint`].
    pub(crate) checkpoint: Option<u64>,
    pub(crate) failed: Arc<AtomicBool>,
    /// Bumped whenever data below the log end is cut (suffix truncation, reset): a sync point
    /// taken before that says nothing about what has been written since.
    pub(crate) generation: u64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("next_offset", &self.next_offset())
            .field("durable_offset", &self.durable_offset)
            .field("segments", &self.segments.len())
            .field("failed", &self.is_failed())
            .finish()
    }
}

impl Log {
    /// Opens or creates the log in `dir` and recovers it: sealed segments below
    /// the recovery checkpoint are loaded from their index files; the segment
    /// holding the checkpoint and all later ones are CRC-verified and cut at the
    /// first torn or corrupt batch. Damage below the checkpoint is `Corrupt`.
    /// Everything left is fsynced, so `durable_offset() == next_offset()`.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, StorageError> {
        config.validate()?;
        let recovered = recovery::recover(dir, config.index_interval_bytes)?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments: recovered.segments,
            durable_offset: 0,
            checkpoint: recovered.checkpoint,
            failed: Arc::new(AtomicBool::new(false)),
            generation: 0,
        };
        log.durable_offset = log.next_offset();
        // Sealed segments are now verified; record that so the next open does not
        // re-verify them, unless the stored point already covers them.
        let active_base = log.active().base_offset;
        let next = log.next_offset();
        if log
            .checkpoint
            .is_none_or(|cp| cp < active_base || cp > next)
        {
            checkpoint::write(&log.dir, active_base)?;
            sync_dir(&log.dir)?;
            log.checkpoint = Some(active_base);
        }
        Ok(log)
    }

    pub(crate) fn active(&self) -> &Segment {
        // `segments` is never empty (see the field invariant).
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Refuses writes once the log has failed.
    pub(crate) fn ensure_writable(&self) -> Result<(), StorageError> {
        if self.failed.load(Ordering::Acquire) {
            Err(StorageError::Failed)
        } else {
            Ok(())
        }
    }

    /// Passes `result` through, entering `Failed` if it is an fsync error.
    pub(crate) fn check_fatal<T>(
        &self,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if let Err(StorageError::Fsync { path, source }) = &result {
            tracing::error!(path = %path.display(), error = %source, "fsync failed; log is now failed");
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    /// Appends one batch that the caller already ran through `batch::validate`.
    pub fn append(
        &mut self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.ensure_writable()?;
        let header = BatchHeader::parse(batch)?;
        if batch.len() < HEADER_LEN || header.total_len() != batch.len() {
            return Err(BatchError::BadLength {
                declared: i64::from(header.batch_length) + 12,
                actual: batch.len(),
            }
            .into());
        }
        // Zero records is a batch compaction emptied, arriving at a Raft follower; a client's
        // batch was refused that by `batch::validate`.
        if header.records_count < 0 {
            return Err(BatchError::BadRecordCount.into());
        }
        if header.last_offset_delta < 0 {
            return Err(BatchError::BadOffsetDelta {
                last_offset_delta: header.last_offset_delta,
                records_count: header.records_count,
            }
            .into());
        }
        let base_offset = self.next_offset();
        let last_offset = base_offset + header.last_offset_delta as u64;
        if last_offset > i64::MAX as u64 {
            return Err(StorageError::OffsetOverflow {
                next_offset: base_offset,
            });
        }
        if self.should_roll(batch.len() as u64, last_offset, now_ms) {
            self.roll(base_offset)?;
        }
        let interval = self.config.index_interval_bytes;
        let result =
            self.active_mut()
                .append(batch, &header, base_offset, leader_epoch, now_ms, interval);
        match result {
            Ok(()) => Ok(AppendInfo {
                base_offset,
                last_offset,
                max_timestamp: header.max_timestamp,
                log_append_time_ms: if header.is_log_append_time() {
                    now_ms
                } else {
                    -1
                },
            }),
            Err(AppendFailure::RolledBack(e)) => Err(e),
            Err(AppendFailure::Inconsistent(e)) => {
                self.failed.store(true, Ordering::Release);
                Err(e)
            }
        }
    }

    fn should_roll(&self, batch_bytes: u64, last_offset: u64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let too_big = active.size_bytes + batch_bytes > self.config.segment_bytes;
        let too_old = active.first_append_ms.is_some_and(|first| {
            now_ms.saturating_sub(first) > i64::try_from(self.config.segment_ms).unwrap_or(i64::MAX)
        });
        let offsets_exhausted = last_offset - active.base_offset > MAX_RELATIVE_OFFSET;
        too_big || too_old || offsets_exhausted
    }

    /// Seals the active segment and starts a new one at `new_base`. Order matters:
    /// the old data is fsynced before the checkpoint claims it, and the directory
    /// is fsynced before anything is written to the new file.
    fn roll(&mut self, new_base: u64) -> Result<(), StorageError> {
        let synced = self.active().sync();
        self.check_fatal(synced)?;
        self.mark_durable(new_base);
        self.active_mut().seal();
        let written = checkpoint::write(&self.dir, new_base);
        self.check_fatal(written)?;
        self.checkpoint = Some(new_base);
        let segment = Segment::create(&self.dir, new_base)?;
        self.segments.push(segment);
        let synced = sync_dir(&self.dir);
        self.check_fatal(synced)
    }

    pub fn log_start_offset(&self) -> u64 {
        self.segments[0].base_offset
    }

    /// Log end offset: the offset the next appended batch will get.
    pub fn next_offset(&self) -> u64 {
        self.active().next_offset
    }

    /// Highest end offset known to be fsynced.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }

    pub fn sync_point(&self) -> SyncPoint {
        let active = self.active();
        SyncPoint {
            file: Arc::clone(&active.file),
            path: active.path.clone(),
            end_offset: active.next_offset,
            failed: Arc::clone(&self.failed),
            generation: self.generation,
        }
    }

    /// Marks what a synced `point` covered as durable, unless the log was cut since the point
    /// was taken (then the offsets below its end may hold newer, unsynced data). Returns whether
    /// it did.
    pub fn mark_synced(&mut self, point: &SyncPoint) -> bool {
        if point.generation != self.generation {
            return false;
        }
        self.mark_durable(point.end_offset);
        true
    }

    /// Monotonic; clamped to `next_offset()`. Only for an end offset known to be on disk;
    /// a [`SyncPoint`] goes through [`Log::mark_synced`], which refuses one a cut made stale.
    pub fn mark_durable(&mut self, end_offset: u64) {
        let clamped = end_offset.min(self.next_offset());
        self.durable_offset = self.durable_offset.max(clamped);
    }

    /// Fsyncs the active segment now and marks everything durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.ensure_writable()?;
        let point = self.sync_point();
        point.sync()?;
        self.mark_durable(point.end_offset());
        Ok(())
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Clean shutdown: fsync, persist the active segment's indexes and a
    /// checkpoint covering the whole log.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.checkpoint()
    }

    /// What `close` does, in place, for an owner that cannot give the log up (the broker holds it
    /// behind a lock): fsync, write the active segment's indexes and the recovery checkpoint, so
    /// the next open verifies nothing below it. Appends may follow; the next open re-checks them.
    pub fn checkpoint(&mut self) -> Result<(), StorageError> {
        self.ensure_writable()?;
        let synced = self.active().sync();
        self.check_fatal(synced)?;
        self.active_mut().seal();
        let next = self.next_offset();
        let written = checkpoint::write(&self.dir, next).and_then(|()| sync_dir(&self.dir));
        self.check_fatal(written)
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Out-of-range values are clamped (with a warning) rather than rejected.
    pub fn set_config(&mut self, mut config: LogConfig) {
        if config.validate().is_err() {
            let clamped = config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
            tracing::warn!(
                requested = config.segment_bytes,
                clamped,
                "segment_bytes out of range; clamping"
            );
            config.segment_bytes = clamped;
        }
        self.config = config;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a fatal error has made the log refuse writes.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}
