//! A partition: one log, one writer at a time, and a high watermark that only moves to durable offsets.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use strom_storage::{batch, Log, StorageError};
use tokio::sync::watch;

use crate::fatal::fail_stop;
use crate::flusher::Flusher;
use crate::{BrokerError, FlushPolicy};

/// The Kafka leader epoch a single node writes with. Replication makes this the Raft term.
pub const SINGLE_NODE_LEADER_EPOCH: i32 = 0;

/// Where a produce landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    /// One past the last offset written: the high watermark that makes this append visible.
    pub end_offset: u64,
    pub log_start_offset: u64,
}

/// Bytes for a fetch, plus the offsets a consumer needs to know where it stands.
#[derive(Debug, Clone)]
pub struct FetchData {
    pub records: Bytes,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    dir: PathBuf,
    log: RwLock<Log>,
    /// Consumers read below this; produce waiters and fetch long-polls watch it move.
    high_watermark: watch::Sender<u64>,
    flusher: Arc<Flusher>,
    /// True while this partition sits in the flusher's queue, so a burst of appends queues it once.
    pub(crate) flush_queued: AtomicBool,
    policy: FlushPolicy,
    max_message_bytes: u32,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

impl Partition {
    pub(crate) fn open(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: &crate::TopicConfig,
        flusher: Arc<Flusher>,
        policy: FlushPolicy,
    ) -> Result<Arc<Partition>, BrokerError> {
        let log = Log::open(&dir, config.log_config())?;
        // Recovery leaves only verified, fsynced data behind, so all of it is visible.
        let (high_watermark, _) = watch::channel(log.next_offset());
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index,
            dir,
            log: RwLock::new(log),
            high_watermark,
            flusher,
            flush_queued: AtomicBool::new(false),
            policy,
            max_message_bytes: config.max_message_bytes,
        }))
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Validates every batch, then appends all of them or none. Durability is *not* awaited here:
    /// call [`Partition::wait_durable`] with the returned end offset before acknowledging.
    pub fn append(self: &Arc<Self>, batches: &[Bytes]) -> Result<AppendResult, BrokerError> {
        for b in batches {
            if b.len() > self.max_message_bytes as usize {
                return Err(BrokerError::MessageTooLarge {
                    size: b.len(),
                    max: self.max_message_bytes,
                });
            }
            batch::validate(b)?;
        }
        let now = crate::now_ms();
        let mut log = self.log_mut();
        let base_offset = log.next_offset();
        for b in batches {
            if let Err(err) = log.append(b, SINGLE_NODE_LEADER_EPOCH, now) {
                // All or nothing: a retry must not find half of its batches already in the log.
                if let Err(undo) = log.truncate_suffix(base_offset) {
                    fail_on_fatal(&undo);
                    tracing::error!(partition = ?self, "could not undo a partial append: {undo}");
                }
                fail_on_fatal(&err);
                return Err(err.into());
            }
        }
        let result = AppendResult {
            base_offset,
            end_offset: log.next_offset(),
            log_start_offset: log.log_start_offset(),
        };
        drop(log);
        match self.policy {
            FlushPolicy::Always => self.queue_flush(),
            FlushPolicy::IntervalMs(_) => {
                self.raise_high_watermark(result.end_offset);
                self.queue_flush();
            }
        }
        Ok(result)
    }

    fn queue_flush(self: &Arc<Self>) {
        if !self.flush_queued.swap(true, Ordering::SeqCst) {
            self.flusher.enqueue(Arc::clone(self));
        }
    }

    /// Called by the flusher: fsync everything appended so far and publish it.
    pub(crate) fn flush(&self) {
        let point = self.log_ref().sync_point();
        if let Err(err) = point.sync() {
            fail_stop(format!("{self:?}: {err}"));
        }
        self.log_mut().mark_durable(point.end_offset());
        if self.policy == FlushPolicy::Always {
            self.raise_high_watermark(point.end_offset());
        }
    }

    fn raise_high_watermark(&self, end: u64) {
        self.high_watermark.send_if_modified(|hw| {
            let raised = end > *hw;
            if raised {
                *hw = end;
            }
            raised
        });
    }

    /// Resolves once `end_offset` is durable (and so visible), under the flush policy in force.
    pub async fn wait_durable(&self, end_offset: u64) {
        let mut rx = self.high_watermark.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we hold `&self`.
        let _ = rx.wait_for(|hw| *hw >= end_offset).await;
    }

    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that wakes when the high watermark moves (fetch long-polls).
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log_ref().log_start_offset()
    }

    pub fn log_end_offset(&self) -> u64 {
        self.log_ref().next_offset()
    }

    /// Whole batches from `offset`, never past the high watermark.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<FetchData, BrokerError> {
        let log = self.log_ref();
        let high_watermark = self.high_watermark();
        let read = log.read(offset, max_bytes, high_watermark).map_err(|e| {
            if let StorageError::Corrupt { .. } = e {
                tracing::error!(partition = ?self, "refusing to serve corrupt data: {e}");
            }
            BrokerError::from(e)
        })?;
        Ok(FetchData {
            records: read.bytes,
            high_watermark,
            log_start_offset: log.log_start_offset(),
        })
    }

    /// ListOffsets by timestamp: the first batch whose max timestamp is >= `ts_ms`, if visible.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<(u64, i64)>, BrokerError> {
        let found = self.log_ref().offset_for_timestamp(ts_ms)?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    /// ListOffsets MAX_TIMESTAMP.
    pub fn max_timestamp(&self) -> Option<(u64, i64)> {
        self.log_ref()
            .max_timestamp()
            .filter(|(offset, _)| *offset < self.high_watermark())
    }

    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, BrokerError> {
        let removed = self.log_mut().apply_retention(now_ms)?;
        Ok(removed)
    }

    pub fn size_bytes(&self) -> u64 {
        self.log_ref().size_bytes()
    }

    /// Clean shutdown: fsync and write the recovery checkpoint so the next start skips re-scanning.
    pub(crate) fn close(&self) -> Result<(), BrokerError> {
        self.log_mut().checkpoint()?;
        Ok(())
    }

    // A poisoned lock means a thread panicked mid-operation; the log itself is still consistent
    // because every mutation is a single method call that either completes or returns an error.
    fn log_ref(&self) -> RwLockReadGuard<'_, Log> {
        self.log.read().unwrap_or_else(|p| p.into_inner())
    }

    fn log_mut(&self) -> RwLockWriteGuard<'_, Log> {
        self.log.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn fail_on_fatal(err: &StorageError) {
    if matches!(err, StorageError::Fsync { .. } | StorageError::Failed) {
        fail_stop(err);
    }
}
