//! A partition: one log, one writer at a time, and a high watermark that only moves to durable offsets.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use strom_storage::batch::BatchHeader;
use strom_storage::{FirstBatch, Log, StorageError};
use tokio::sync::watch;

use crate::batch_rules::BatchRules;
use crate::fatal::fail_stop;
use crate::flusher::Flusher;
use crate::producer_snapshot;
use crate::producer_state::{ProducerEntry, Verdict, PRODUCER_EXPIRATION_MS};
use crate::{BrokerError, FlushPolicy};

/// The Kafka leader epoch a single node writes with. Replication makes this the Raft term.
pub const SINGLE_NODE_LEADER_EPOCH: i32 = 0;

/// A producer-state snapshot is written after this many appended bytes (and on every segment
/// roll), bounding how much of the log a restart after a crash must re-read.
pub const SNAPSHOT_INTERVAL_BYTES: u64 = 64 << 20;

/// Where a produce landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    /// One past the last offset written: the high watermark that makes this append visible.
    pub end_offset: u64,
    pub log_start_offset: u64,
    /// Replicated partitions: what must commit for the write to count.
    pub raft: Option<RaftAck>,
}

/// The write counts once entry `index` commits with `term` still there; the waiter gives up if
/// this node stops leading in `leader_term` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftAck {
    pub index: u64,
    pub term: u64,
    pub leader_term: u64,
}

/// The DeleteRecords point of a partition, as text, replaced atomically.
const DELETED_BELOW_FILE: &str = "log-start-offset";

/// The persisted DeleteRecords point; 0 when there is none. A damaged file is logged and read as
/// 0: the records it hid become visible again, which loses nothing.
fn read_deleted_below(dir: &std::path::Path) -> u64 {
    let path = dir.join(DELETED_BELOW_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(path = %path.display(), "ignoring an unreadable log-start-offset file");
            0
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read log-start-offset: {e}");
            0
        }
    }
}

/// Bytes for a fetch, plus the offsets a consumer needs to know where it stands.
#[derive(Debug, Clone)]
pub struct FetchData {
    pub records: Bytes,
    pub high_watermark: u64,
    pub last_stable_offset: u64,
    pub log_start_offset: u64,
    /// read_committed: the aborted transactions with records in what was read.
    pub aborted: Vec<crate::txn_index::AbortedTxn>,
}

/// What a fetch may see: everything below the high watermark, or only below the last
/// stable offset (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// The offset a read stops before.
    pub fn bound(self, high_watermark: u64, last_stable_offset: u64) -> u64 {
        match self {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        }
    }
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    dir: PathBuf,
    pub(crate) log: RwLock<LogState>,
    /// Consumers read below this; produce waiters and fetch long-polls watch it move.
    high_watermark: watch::Sender<u64>,
    flusher: Arc<Flusher>,
    /// True while this partition sits in the flusher's queue, so a burst of appends queues it once.
    pub(crate) flush_queued: AtomicBool,
    policy: FlushPolicy,
    /// What the topic's config demands of a produced batch; replaced by AlterConfigs.
    rules: RwLock<BatchRules>,
    /// DeleteRecords: nothing below this offset is served, whatever segments remain
    /// (persisted in `log-start-offset`; in a cluster it comes from the controller).
    deleted_below: AtomicU64,
    /// Serialises writers of `deleted_below` and its file, so a lower value never lands last.
    deleted_below_writer: Mutex<()>,
    /// Idempotent-producer state. Changed only while the log's write lock is held (lock order:
    /// log, then this), so it always describes exactly the batches in the log.
    producers: Mutex<ProducerTracking>,
    /// Set by an append when a snapshot is due; the flusher writes it, off the produce path.
    snapshot_due: AtomicBool,
    /// Serialises snapshot writers; the log offset of the newest snapshot on disk.
    snapshot_written: Mutex<Option<u64>>,
    /// Cluster mode: the partition's Raft group. `None` on a single node.
    pub(crate) replica: Option<crate::replica::Replica>,
    /// Tiered storage: the part of the log in the object store (`crate::tiering`).
    pub(crate) remote: RwLock<Option<Arc<crate::tiering::RemotePart>>>,
    /// The topic has `remote.storage.enable=true`: without a remote part (no store configured)
    /// nothing local may be deleted, since nothing is known to be uploaded.
    pub(crate) tiered: AtomicBool,
    /// The topic's bytes and records in and out (`strom_topic_*` metrics).
    traffic: strom_metrics::TopicCounters,
}

/// The log, and in cluster mode the Raft entry index kept in step with it under the same lock.
pub(crate) struct LogState {
    pub(crate) log: Log,
    pub(crate) entries: Option<strom_consensus::entry_log::EntryIndex>,
}

impl Deref for LogState {
    type Target = Log;
    fn deref(&self) -> &Log {
        &self.log
    }
}

impl DerefMut for LogState {
    fn deref_mut(&mut self) -> &mut Log {
        &mut self.log
    }
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
        Partition::open_with(topic, index, dir, config, flusher, policy, None)
    }

    /// Opens the log and, in cluster mode, its Raft entry index. `replica` is `(group state,
    /// replica)` for a replicated partition; the caller starts its driver afterwards.
    pub(crate) fn open_with(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: &crate::TopicConfig,
        flusher: Arc<Flusher>,
        policy: FlushPolicy,
        replica: Option<(
            strom_consensus::raft_state::LogStart,
            crate::replica::Replica,
        )>,
    ) -> Result<Arc<Partition>, BrokerError> {
        let mut log = Log::open(&dir, config.log_config())?;
        let (entries, replica) = match replica {
            Some((start, r)) => (
                Some(
                    strom_consensus::entry_log::EntryIndex::open(&mut log, start)
                        .map_err(crate::replica::consensus_error)?,
                ),
                Some(r),
            ),
            None => (None, None),
        };
        let restored = producer_snapshot::restore(&dir, &log, crate::now_ms())?;
        tracing::debug!(
            topic,
            partition = index,
            producers = restored.state.len(),
            scanned_from = restored.scanned_from,
            log_end = log.next_offset(),
            "restored producer state"
        );
        // Replayed batches are worth a fresh snapshot at the next flush.
        let replayed = restored.scanned_from < log.next_offset();
        // Recovery leaves only verified, fsynced data behind, so all of it is visible on a
        // single node; a replica shows nothing until its group reports what is committed.
        let visible = if replica.is_some() {
            log.log_start_offset()
        } else {
            log.next_offset()
        };
        let (high_watermark, _) = watch::channel(visible);
        let deleted_below = read_deleted_below(&dir);
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index,
            dir,
            log: RwLock::new(LogState { log, entries }),
            high_watermark,
            flusher,
            flush_queued: AtomicBool::new(false),
            policy,
            rules: RwLock::new(BatchRules::new(config)),
            deleted_below: AtomicU64::new(deleted_below),
            deleted_below_writer: Mutex::new(()),
            snapshot_due: AtomicBool::new(replayed),
            snapshot_written: Mutex::new(restored.snapshot_offset),
            producers: Mutex::new(ProducerTracking::new(restored.state, restored.txns)),
            replica,
            remote: RwLock::new(None),
            tiered: AtomicBool::new(config.remote_storage),
            traffic: strom_metrics::global().topic(topic),
        }))
    }

    pub(crate) fn mark_snapshot_due(&self) {
        self.snapshot_due.store(true, Ordering::Release);
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Validates every batch, then appends all of them or none. Durability is *not* awaited here:
    /// call [`Partition::wait_durable`] with the returned end offset before acknowledging.
    ///
    /// Idempotent batches are checked against the producer state under the write lock, atomically
    /// with the append (see [`crate::producer_state`]). A retry of a recently appended batch
    /// appends nothing and returns the original batch's offsets. A transactional batch is taken
    /// only in a transaction its coordinator added this partition to ([`Partition::allow_transaction`]).
    pub fn append(self: &Arc<Self>, batches: &[Bytes]) -> Result<AppendResult, BrokerError> {
        self.append_client(batches, Writer::Client)
    }

    /// [`Partition::append`] of a produce whose transaction the coordinator has just verified:
    /// a sequence error now is the batch's own.
    pub fn append_verified(
        self: &Arc<Self>,
        batches: &[Bytes],
    ) -> Result<AppendResult, BrokerError> {
        self.append_client(batches, Writer::Verified)
    }

    fn append_client(
        self: &Arc<Self>,
        batches: &[Bytes],
        writer: Writer<'_>,
    ) -> Result<AppendResult, BrokerError> {
        let now = crate::now_ms();
        let rules = *self.rules.read().unwrap_or_else(|p| p.into_inner());
        let (batches, headers) = rules.apply(batches, now)?;
        for h in &headers {
            if h.is_transactional() && (h.producer_id < 0 || h.base_sequence < 0) {
                return Err(BrokerError::InvalidRecord(
                    "a transactional batch needs a producer id and a sequence".into(),
                ));
            }
        }
        let appended = self.append_checked(&batches, &headers, writer)?;
        let bytes: usize = batches.iter().map(Bytes::len).sum();
        let records: i64 = headers
            .iter()
            .map(|h| i64::from(h.records_count.max(0)))
            .sum();
        self.traffic.bytes_in.inc_by(bytes as u64);
        self.traffic.records_in.inc_by(records as u64);
        self.traffic.appends_in.inc();
        Ok(appended)
    }

    fn snapshot_lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.snapshot_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f`, which removes producer-state snapshots that count entries the log no longer
    /// has, with no snapshot being written meanwhile. The caller holds the log's write lock.
    pub(crate) fn replace_snapshots<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut written = self.snapshot_lock();
        // What is on disk is what `f` leaves: any newer state may be written again.
        *written = None;
        f()
    }

    /// The topic's traffic counters; a front end adds what it served to `bytes_out` and
    /// `records_out`.
    pub fn traffic(&self) -> &strom_metrics::TopicCounters {
        &self.traffic
    }

    /// The broker's own writes: transaction markers and transactional offset commits. No
    /// topic rules (a marker is a control batch) and no transaction check: the coordinator
    /// checked the producer.
    pub(crate) fn append_internal(
        self: &Arc<Self>,
        batches: &[Bytes],
        writer: Writer<'_>,
    ) -> Result<AppendResult, BrokerError> {
        let headers = batches
            .iter()
            .map(|b| strom_storage::batch::validate(b))
            .collect::<Result<Vec<_>, _>>()?;
        self.append_checked(batches, &headers, writer)
    }

    fn append_checked(
        self: &Arc<Self>,
        batches: &[Bytes],
        headers: &[BatchHeader],
        writer: Writer<'_>,
    ) -> Result<AppendResult, BrokerError> {
        let now = crate::now_ms();
        if let Some(replica) = &self.replica {
            return self.append_replicated(replica, batches, headers, writer);
        }
        let log = self.log_mut();
        let mut producers = self.producers_mut();
        let base_offset = log.next_offset();
        // The producer's epoch first: a fenced producer hears that it is fenced.
        let verdict = producers.state.check(headers, base_offset, now);
        let pending = match producers.unpermitted_first(writer, headers, verdict)? {
            Verdict::Append(pending) => {
                producers.check_writer(writer, headers)?;
                pending
            }
            Verdict::Duplicate {
                base_offset,
                last_offset,
            } => {
                tracing::debug!(partition = ?self, base_offset, "duplicate idempotent batch; answering its original offset");
                // The original may still be on its way to disk; the caller waits for it as usual.
                return Ok(AppendResult {
                    base_offset,
                    end_offset: last_offset + 1,
                    log_start_offset: log.log_start_offset(),
                    raft: None,
                });
            }
        };
        self.append_local(log, producers, batches, headers, pending, base_offset, now)
    }

    /// Takes a topic's new configuration: batch rules for the next produce, segment and
    /// retention settings for the log.
    pub(crate) fn set_config(&self, config: &crate::TopicConfig) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = BatchRules::new(config);
        self.tiered.store(config.remote_storage, Ordering::Release);
        self.log_mut().set_config(config.log_config());
    }

    #[allow(clippy::too_many_arguments)]
    fn append_local(
        self: &Arc<Self>,
        mut log: RwLockWriteGuard<'_, LogState>,
        mut producers: MutexGuard<'_, ProducerTracking>,
        batches: &[Bytes],
        headers: &[BatchHeader],
        pending: crate::producer_state::Pending,
        base_offset: u64,
        now: i64,
    ) -> Result<AppendResult, BrokerError> {
        let segments_before = log.segment_count();
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
        producers.state.commit(pending);
        let mut offset = base_offset;
        for (h, b) in headers.iter().zip(batches) {
            producers.track_transaction(h, offset, b);
            offset += u64::try_from(h.last_offset_delta).unwrap_or(0) + 1;
        }
        producers.bytes_since_snapshot += batches.iter().map(|b| b.len() as u64).sum::<u64>();
        if log.segment_count() != segments_before
            || producers.bytes_since_snapshot >= SNAPSHOT_INTERVAL_BYTES
        {
            producers.bytes_since_snapshot = 0;
            self.snapshot_due.store(true, Ordering::Release);
        }
        let result = AppendResult {
            base_offset,
            end_offset: log.next_offset(),
            log_start_offset: log.log_start_offset(),
            raft: None,
        };
        drop(producers);
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

    pub(crate) fn queue_flush(self: &Arc<Self>) {
        if !self.flush_queued.swap(true, Ordering::SeqCst) {
            self.flusher.enqueue(Arc::clone(self));
        }
    }

    /// Called by the flusher: fsync everything appended so far and publish it.
    pub(crate) fn flush(&self) {
        if let Some(replica) = &self.replica {
            return self.flush_replicated(replica);
        }
        let durable = self.sync_log();
        if self.policy == FlushPolicy::Always {
            self.raise_high_watermark(durable);
        }
        self.write_producer_snapshot_if_due();
    }

    /// Writes the producer-state snapshot once enough was appended since the last one (or a
    /// segment rolled).
    pub(crate) fn write_producer_snapshot_if_due(&self) {
        if self.snapshot_due.swap(false, Ordering::AcqRel) {
            self.write_producer_snapshot();
        }
    }

    /// Writes the producer state as of the current log end. The snapshot may cover batches not
    /// yet fsynced: if a crash then loses them, the snapshot lies beyond the recovered log end
    /// and `producer_snapshot::restore` discards it. Failure only costs a longer scan on the next
    /// open, so it is logged, not fatal.
    pub(crate) fn write_producer_snapshot(&self) {
        let (offset, bytes, mut written) = {
            let log = self.log_ref();
            let producers = self.producers_mut();
            let offset = log.next_offset();
            let bytes = producer_snapshot::encode(offset, &producers.state, &producers.txns);
            drop(producers);
            // Taken before the log is let go: a replica cutting its log takes this lock after
            // the log's ([`Partition::replace_snapshots`]), so it waits for this file and then
            // removes it with the entries it counts; no snapshot of cut entries survives.
            let written = self.snapshot_lock();
            (offset, bytes, written)
        };
        // Another writer got a newer state on disk first.
        if written.is_some_and(|w| w >= offset) {
            return;
        }
        match producer_snapshot::write(&self.dir, &bytes) {
            Ok(()) => *written = Some(offset),
            Err(e) => {
                tracing::warn!(partition = ?self, "could not write the producer-state snapshot: {e}")
            }
        }
    }

    /// What the partition knows about `producer_id` (idempotent produce).
    pub fn producer_entry(&self, producer_id: i64) -> Option<ProducerEntry> {
        self.producers_mut().state.get(producer_id).cloned()
    }

    /// Every producer the partition tracks, by id.
    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        let tracking = self.producers_mut();
        let sorted = tracking.state.sorted();
        sorted.into_iter().map(|(id, e)| (id, e.clone())).collect()
    }

    pub(crate) fn raise_high_watermark(&self, end: u64) {
        if end > self.high_watermark() {
            // Transactions ended below it are settled (Raft never cuts below it).
            self.producers_mut().txns.on_high_watermark(end);
        }
        raise(&self.high_watermark, end);
    }

    /// Fsyncs everything appended so far (fail-stop on error) and returns the log's durable
    /// offset afterwards. A truncation or reset since the sync point was taken voids the point
    /// (`Log::mark_synced`); what the cut kept, it fsynced itself, so the durable offset is
    /// right either way.
    pub(crate) fn sync_log(&self) -> u64 {
        let point = self.log_ref().sync_point();
        let started = std::time::Instant::now();
        if let Err(err) = point.sync() {
            fail_stop(format!("{self:?}: {err}"));
        }
        strom_metrics::global()
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut log = self.log_mut();
        log.mark_synced(&point);
        log.durable_offset()
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

    /// The first offset served: the log's first segment (in the object store, for a tiered
    /// partition), or a DeleteRecords point past it.
    pub fn log_start_offset(&self) -> u64 {
        let local = self.log_ref().log_start_offset();
        self.whole_log_start(local)
    }

    /// DeleteRecords on a single node: from now on nothing below `offset` (at most the high
    /// watermark) is served, and whole segments below it are deleted. Durable before it
    /// returns; returns the new log start.
    pub fn delete_records(&self, offset: u64) -> Result<u64, BrokerError> {
        let high_watermark = self.high_watermark();
        if offset > high_watermark {
            return Err(BrokerError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end: high_watermark,
            });
        }
        self.raise_log_start(offset)?;
        if self.replica.is_none() {
            let removed = self.log_mut().remove_segments_below(offset)?;
            self.forget_producers(removed, offset, crate::now_ms());
        }
        Ok(self.log_start_offset())
    }

    /// The DeleteRecords point: nothing below it is served.
    pub(crate) fn deleted_below(&self) -> u64 {
        self.deleted_below.load(Ordering::Acquire)
    }

    /// Raises the DeleteRecords point to `offset` (a no-op if it is not higher), persisting it
    /// first. In a cluster every replica takes the controller's value; retention then deletes
    /// the committed segments below it.
    pub(crate) fn raise_log_start(&self, offset: u64) -> Result<(), BrokerError> {
        let _writer = self
            .deleted_below_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if offset <= self.deleted_below() {
            return Ok(());
        }
        let path = self.dir.join(DELETED_BELOW_FILE);
        crate::metadata::write_atomic(&path, format!("{offset}\n"))?;
        self.deleted_below.store(offset, Ordering::Release);
        tracing::info!(partition = ?self, offset, "records below the offset deleted");
        Ok(())
    }

    pub fn log_end_offset(&self) -> u64 {
        self.log_ref().next_offset()
    }

    /// Whole batches from `offset`, never past the high watermark.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        first: FirstBatch,
    ) -> Result<FetchData, BrokerError> {
        self.read_isolated(offset, max_bytes, first, Isolation::ReadUncommitted)
    }

    /// Whole batches from `offset`, never past the high watermark, and for read_committed
    /// never past the last stable offset.
    pub fn read_isolated(
        &self,
        offset: u64,
        max_bytes: usize,
        first: FirstBatch,
        isolation: Isolation,
    ) -> Result<FetchData, BrokerError> {
        let log = self.log_ref();
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.producers_mut().txns.last_stable_offset(high_watermark);
        let deleted_below = self.deleted_below.load(Ordering::Acquire);
        let log_start_offset = self.whole_log_start(log.log_start_offset());
        let last_stable_offset = last_stable_offset.max(log_start_offset).min(high_watermark);
        if offset < deleted_below {
            return Err(BrokerError::OffsetOutOfRange {
                offset,
                start: deleted_below,
                end: log.next_offset(),
            });
        }
        let bound = isolation.bound(high_watermark, last_stable_offset);
        let read = log
            .read_with(offset, max_bytes, bound, first)
            .map_err(|e| {
                if let StorageError::Corrupt { .. } = e {
                    tracing::error!(partition = ?self, "refusing to serve corrupt data: {e}");
                }
                BrokerError::from(e)
            })?;
        drop(log);
        let aborted = match isolation {
            Isolation::ReadCommitted if !read.bytes.is_empty() => {
                // Up to the bound, not the end of what was read: an extra entry is harmless
                // (a client only applies one when it meets that producer's batches).
                self.aborted_transactions(offset, bound)
            }
            _ => Vec::new(),
        };
        Ok(FetchData {
            records: read.bytes,
            high_watermark,
            last_stable_offset,
            log_start_offset,
            aborted,
        })
    }

    /// ListOffsets by timestamp: the first record whose timestamp is >= `ts_ms`, if visible.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<(u64, i64)>, BrokerError> {
        let from = self.deleted_below.load(Ordering::Acquire);
        let found = self.log_ref().offset_for_timestamp(ts_ms, from)?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    /// ListOffsets MAX_TIMESTAMP: the first record carrying the largest timestamp, if visible.
    pub fn max_timestamp(&self) -> Result<Option<(u64, i64)>, BrokerError> {
        let found = self.log_ref().max_timestamp()?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    /// Deletes segments past retention, then forgets producers whose batches are all gone or
    /// who have been idle past [`PRODUCER_EXPIRATION_MS`] (they become unknown producers).
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, BrokerError> {
        let removed = match &self.replica {
            Some(replica) => self.apply_replicated_retention(replica, now_ms)?,
            None => {
                // A tiered partition keeps every segment not yet in the store.
                let limit = self.local_deletion_limit();
                let mut log = self.log_mut();
                let point = log.retention_point(now_ms, limit);
                let removed = log.remove_segments_below(point)?;
                // Finishes a DeleteRecords that a crash interrupted after its point was written.
                removed + log.remove_segments_below(self.deleted_below.load(Ordering::Acquire))?
            }
        };
        // Under the write lock, like every change to the producer state. Transactions are kept
        // for what the store still serves.
        let start = self.log_start_offset();
        let _log = self.log_mut();
        self.forget_producers(removed, start, now_ms);
        Ok(removed)
    }

    /// After retention: producers whose batches are all gone, or idle too long, are forgotten.
    fn forget_producers(&self, removed: usize, log_start: u64, now_ms: i64) {
        let mut producers = self.producers_mut();
        let evicted = if removed > 0 {
            producers.state.evict_below(log_start)
        } else {
            0
        };
        if removed > 0 {
            producers.txns.remove_below(log_start);
        }
        let expired = producers.state.expire(now_ms, PRODUCER_EXPIRATION_MS);
        if evicted + expired > 0 {
            tracing::debug!(partition = ?self, evicted, expired, "forgot producers");
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.log_ref().size_bytes()
    }

    /// Clean shutdown: fsync and write the recovery checkpoint so the next start skips re-scanning.
    /// Also writes the producer-state snapshot, so the next open replays no batch.
    pub(crate) fn close(&self) -> Result<(), BrokerError> {
        self.log_mut().checkpoint()?;
        if let Some(replica) = &self.replica {
            replica.checkpoint();
        }
        self.write_producer_snapshot();
        Ok(())
    }

    // A poisoned lock means a thread panicked mid-operation; the log itself is still consistent
    // because every mutation is a single method call that either completes or returns an error.
    pub(crate) fn log_ref(&self) -> RwLockReadGuard<'_, LogState> {
        self.log.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn log_mut(&self) -> RwLockWriteGuard<'_, LogState> {
        self.log.write().unwrap_or_else(|p| p.into_inner())
    }

    // Poisoning: `check` has no side effects and `commit` is a single map extend, so the state
    // is consistent even if a holder panicked.
    pub(crate) fn producers_mut(&self) -> MutexGuard<'_, ProducerTracking> {
        self.producers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn fail_on_fatal(err: &StorageError) {
    if matches!(err, StorageError::Fsync { .. } | StorageError::Failed) {
        fail_stop(err);
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;

#[path = "partition_txns.rs"]
mod txns;
pub use txns::MAX_OPEN_TRANSACTIONS;
pub(crate) use txns::{ProducerTracking, Writer};

/// Raises a watched offset that only ever grows; waiters wake only when it moved.
pub(crate) fn raise(offset: &watch::Sender<u64>, to: u64) {
    offset.send_if_modified(|now| {
        let raised = to > *now;
        if raised {
            *now = to;
        }
        raised
    });
}
