//! Cluster mode: a partition as one replica of its Raft group. The partition's segment log *is*
//! the Raft log ([`strom_consensus::entry_log`]); this file connects the two:
//!
//! - a produce on the leader checks idempotence against the producer state, proposes the
//!   batches (the driver appends them to the log at once, so pipelined requests keep their
//!   order) and waits until the entry commits with its term still in place;
//! - every replica updates its producer state as entries are appended, so a new leader
//!   deduplicates retries of batches its predecessor wrote;
//! - the flusher's fsync reports back to the driver, which only then lets a follower
//!   acknowledge (`on_synced`);
//! - the high watermark moves to the end of the committed (and locally durable) entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry};
use strom_consensus::driver::{DriverConfig, GroupDriver, Outbox, ReplicaLog, RoleState};
use strom_consensus::entry_log::EntryIndex;
use strom_consensus::raft_state::{self, LogStart};
use strom_consensus::{raft, ConsensusError, GroupId, NodeId};
use strom_storage::batch::BatchHeader;
use tokio::sync::{mpsc, watch};

use crate::partition::{AppendResult, LogState, Partition, RaftAck};
use crate::producer_snapshot;
use crate::producer_state::Verdict;
use crate::BrokerError;

/// What a replica tells the cluster node, which reports it to the controller.
#[derive(Debug, Clone)]
pub enum ReplicaEvent {
    Role { group: GroupId, role: RoleState },
    Conf { group: GroupId, conf: ConfState },
}

/// Runs for every committed batch of a group whose state machine is more than a log (the
/// controller). Called under the group's lock: it must not call back into the group.
pub type CommitHook = Box<dyn Fn(&[Entry]) + Send + Sync>;

pub(crate) struct Replica {
    pub(crate) group: GroupId,
    driver: Mutex<Option<GroupDriver<Partition>>>,
    /// Watched: an `acks=all` waiter gives up as soon as this leader is deposed.
    role: watch::Sender<RoleState>,
    /// Highest Ready number whose entries a flush must cover.
    sync_token: AtomicU64,
    /// Locally fsynced log end (acks=1 waits on it; acks=all waits on the high watermark).
    durable: watch::Sender<u64>,
    events: Option<mpsc::UnboundedSender<ReplicaEvent>>,
    hook: Option<CommitHook>,
    me: OnceLock<Weak<Partition>>,
}

/// How to open a replicated partition.
pub struct ReplicaSpec {
    pub group: GroupId,
    pub node: NodeId,
    /// Voters of a group created now (ignored when the group's state file exists). Empty for a
    /// replica joining an existing group: it learns the configuration from the leader.
    pub bootstrap_voters: Vec<NodeId>,
    pub driver: DriverConfig,
    pub outbox: Arc<dyn Outbox>,
    pub events: Option<mpsc::UnboundedSender<ReplicaEvent>>,
    pub hook: Option<CommitHook>,
    /// `Some(i)`: re-apply the committed entries after index `i` on open (a state machine kept
    /// in memory, restored from a snapshot at `i`, or from nothing at 0). `None`: the log is
    /// the whole state.
    pub replay_from: Option<u64>,
}

pub(crate) fn consensus_error(e: ConsensusError) -> BrokerError {
    match e {
        ConsensusError::NotLeader { .. } => BrokerError::NotLeader,
        ConsensusError::Storage(s) => BrokerError::from(s),
        other => BrokerError::LeaderNotAvailable(other.to_string()),
    }
}

impl Partition {
    /// Opens (or creates) a replica of a partition's Raft group and starts driving it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_replicated(
        topic: &str,
        index: i32,
        dir: std::path::PathBuf,
        config: &crate::TopicConfig,
        flusher: Arc<crate::flusher::Flusher>,
        policy: crate::FlushPolicy,
        spec: ReplicaSpec,
    ) -> Result<Arc<Partition>, BrokerError> {
        let io = |e: std::io::Error| {
            BrokerError::Storage(strom_storage::StorageError::Io {
                path: dir.clone(),
                source: e,
            })
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let stored = raft_state::load(&dir).map_err(consensus_error)?;
        let fresh = stored.is_none();
        let (bootstrap, persisted) = match stored {
            Some(p) => (Vec::new(), p),
            None => raft_state::bootstrap_entries(&spec.bootstrap_voters),
        };
        let (durable, _) = watch::channel(0);
        let replica = Replica {
            group: spec.group,
            driver: Mutex::new(None),
            role: watch::Sender::new(RoleState {
                leader: None,
                term: persisted.hard.term,
                is_leader: false,
            }),
            sync_token: AtomicU64::new(0),
            durable,
            events: spec.events,
            hook: spec.hook,
            me: OnceLock::new(),
        };
        let p = Partition::open_with(
            topic,
            index,
            dir.clone(),
            config,
            flusher,
            policy,
            Some((persisted.start, replica)),
        )?;
        let replica = p.replica()?;
        let _ = replica.me.set(Arc::downgrade(&p));
        if fresh {
            // The founding entries are on disk before the state that counts them committed.
            if !bootstrap.is_empty() {
                ReplicaLog::append(&*p, &bootstrap, 0).map_err(consensus_error)?;
                let point = p.log_ref().sync_point();
                point.sync()?;
                p.log_mut().mark_durable(point.end_offset());
            }
            raft_state::store(p.dir(), &persisted).map_err(consensus_error)?;
        }
        replica.durable.send_replace(p.log_end_offset());
        let applied = match spec.replay_from {
            // A machine behind the log start (its replica installed a Raft snapshot) cannot be
            // replayed from the log: Raft starts at the log start and the journal fetches the
            // machine's state from a peer (see `journal::catch_up`).
            Some(from) => from
                .max(ReplicaLog::log_start(&*p).first_index.saturating_sub(1))
                .min(persisted.hard.commit),
            None => persisted.hard.commit.min(p.last_index()),
        };
        if spec.replay_from.is_none() {
            // Everything up to the stored commit was committed before; show it at once.
            let log = p.log_ref();
            if let Some(end) = log
                .entries
                .as_ref()
                .and_then(|idx| idx.end_offset(applied, &log))
            {
                drop(log);
                p.raise_high_watermark(end);
            }
        }
        let driver = GroupDriver::new(
            spec.group,
            spec.node,
            spec.driver,
            Arc::clone(&p),
            dir,
            persisted,
            applied,
            spec.outbox,
        )
        .map_err(consensus_error)?;
        *replica.driver_lock() = Some(driver);
        Ok(p)
    }

    fn replica(&self) -> Result<&Replica, BrokerError> {
        self.replica
            .as_ref()
            .ok_or_else(|| BrokerError::LeaderNotAvailable("not a replicated partition".into()))
    }

    /// The Raft group of a replicated partition.
    pub fn group(&self) -> Option<GroupId> {
        self.replica.as_ref().map(|r| r.group)
    }

    /// Runs `f` on the partition's Raft driver (cluster mode only).
    pub fn with_driver<R>(&self, f: impl FnOnce(&mut GroupDriver<Partition>) -> R) -> Option<R> {
        let replica = self.replica.as_ref()?;
        let mut guard = replica.driver_lock();
        guard.as_mut().map(f)
    }

    /// Stops driving the group (the partition is being deleted or moved away).
    pub fn stop_replica(&self) {
        if let Some(r) = &self.replica {
            r.driver_lock().take();
        }
    }

    /// Single node: always. Cluster mode: only the group's current leader serves clients.
    pub fn ensure_leader(&self) -> Result<(), BrokerError> {
        match &self.replica {
            None => Ok(()),
            Some(r) if r.role().is_leader => Ok(()),
            Some(_) => Err(BrokerError::NotLeader),
        }
    }

    /// This replica's own view of its group's leadership (cluster mode), which may be newer than
    /// the controller's: a deposed or newly elected leader knows before the controller does.
    pub fn raft_role(&self) -> Option<RoleState> {
        self.replica.as_ref().map(Replica::role)
    }

    /// The Kafka leader epoch: the Raft term in cluster mode.
    pub fn leader_epoch(&self) -> i32 {
        match &self.replica {
            None => crate::partition::SINGLE_NODE_LEADER_EPOCH,
            Some(r) => i32::try_from(r.role().term).unwrap_or(i32::MAX),
        }
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and where it ends.
    pub fn epoch_end(&self, epoch: i32) -> Option<(i32, u64)> {
        let log = self.log_ref();
        match &log.entries {
            None => Some((
                crate::partition::SINGLE_NODE_LEADER_EPOCH,
                log.next_offset(),
            ))
            .filter(|_| epoch >= crate::partition::SINGLE_NODE_LEADER_EPOCH),
            Some(idx) => {
                let (term, end) = idx.epoch_end(u64::try_from(epoch).ok()?, &log)?;
                Some((i32::try_from(term).unwrap_or(i32::MAX), end))
            }
        }
    }

    /// Waits until an append may be acknowledged: `acks=1` at this leader's fsync, otherwise
    /// at commit (a majority has it on disk) with the entry still the one this leader wrote.
    pub async fn wait_ack(&self, r: &AppendResult, acks: i16) -> Result<(), BrokerError> {
        self.wait_ack_timed(r, acks).await.map(|_| ())
    }

    /// [`Partition::wait_ack`], returning when the append was on this node's disk (for the
    /// produce stage metrics; at most the time of the acknowledgement).
    pub async fn wait_ack_timed(
        &self,
        r: &AppendResult,
        acks: i16,
    ) -> Result<Instant, BrokerError> {
        let (Some(replica), Some(raft)) = (&self.replica, r.raft) else {
            self.wait_durable(r.end_offset).await;
            return Ok(Instant::now());
        };
        let mut durable = replica.durable.subscribe();
        if acks == 1 {
            let _ = durable.wait_for(|d| *d >= r.end_offset).await;
            return Ok(Instant::now());
        }
        let (index, term) = (raft.index, raft.term);
        let mut role = replica.role.subscribe();
        let mut durable_at = None;
        let committed = self.wait_durable(r.end_offset);
        tokio::pin!(committed);
        loop {
            tokio::select! {
                _ = &mut committed => break,
                _ = durable.wait_for(|d| *d >= r.end_offset), if durable_at.is_none() => {
                    durable_at = Some(Instant::now());
                }
                // Deposed: the entry may or may not commit under the next leader; the client
                // retries there (an idempotent retry is deduplicated) instead of waiting it out.
                _ = role.wait_for(|now| now.term != raft.leader_term || !now.is_leader) => {
                    if self.high_watermark() < r.end_offset {
                        return Err(BrokerError::NotLeader);
                    }
                    break;
                }
            }
        }
        let durable_at = durable_at.unwrap_or_else(Instant::now);
        // A leader never rewrites its own log, and leading in a term is one unbroken stretch:
        // still leading in the term it answered in, the entry it wrote (or found) at `index` is
        // the one that committed, even if retention has removed it since.
        let still_leading = {
            let now = role.borrow();
            now.is_leader && now.term == raft.leader_term
        };
        if still_leading {
            return Ok(durable_at);
        }
        let log = self.log_ref();
        match log.entries.as_ref().map(|idx| idx.term(index)) {
            Some(Ok(t)) if t == term => Ok(durable_at),
            _ => Err(BrokerError::NotCommitted),
        }
    }

    pub(crate) fn append_replicated(
        self: &Arc<Self>,
        replica: &Replica,
        batches: &[Bytes],
        headers: &[BatchHeader],
        writer: crate::partition::Writer<'_>,
    ) -> Result<AppendResult, BrokerError> {
        let mut guard = replica.driver_lock();
        let driver = guard.as_mut().ok_or(BrokerError::NotLeader)?;
        if !driver.role().is_leader {
            return Err(BrokerError::NotLeader);
        }
        // The check and the append below happen under the driver's lock, so no other append
        // can slip between them: the same atomicity as the single-node path.
        {
            let log = self.log_ref();
            let mut producers = self.producers_mut();
            // The producer's epoch first: a fenced producer hears that it is fenced.
            let verdict = producers
                .state
                .check(headers, log.next_offset(), crate::now_ms());
            let verdict = producers.unpermitted_first(writer, headers, verdict)?;
            if matches!(verdict, Verdict::Append(_)) {
                producers.check_writer(writer, headers)?;
            }
            if let Verdict::Duplicate {
                base_offset,
                last_offset,
            } = verdict
            {
                if last_offset < log.log_start_offset() {
                    // Retention removes only committed entries: the original is committed.
                    return Ok(AppendResult {
                        base_offset,
                        end_offset: last_offset + 1,
                        log_start_offset: log.log_start_offset(),
                        raft: None,
                    });
                }
                // The original may still be uncommitted, and be cut by a later leader: the
                // retry is acknowledged under the same rule, at commit with its entry's term.
                let idx = log.entries.as_ref().ok_or(BrokerError::NotLeader)?;
                let index = idx
                    .index_of_offset(last_offset, &log)
                    .ok_or(BrokerError::NotCommitted)?;
                let term = idx.term(index).map_err(|_| BrokerError::NotCommitted)?;
                return Ok(AppendResult {
                    base_offset,
                    end_offset: last_offset + 1,
                    log_start_offset: log.log_start_offset(),
                    raft: Some(RaftAck {
                        index,
                        term,
                        leader_term: driver.role().term,
                    }),
                });
            }
        }
        let (first, last, term) = driver.propose(batches).map_err(consensus_error)?;
        let log = self.log_ref();
        let idx = log.entries.as_ref().ok_or(BrokerError::NotLeader)?;
        match (idx.start_offset(first, &log), idx.end_offset(last, &log)) {
            (Some(base_offset), Some(end_offset)) => Ok(AppendResult {
                base_offset,
                end_offset,
                log_start_offset: log.log_start_offset(),
                raft: Some(RaftAck {
                    index: last,
                    term,
                    leader_term: term,
                }),
            }),
            _ => Err(BrokerError::NotCommitted),
        }
    }

    pub(crate) fn flush_replicated(&self, replica: &Replica) {
        // Read before the sync point: every Ready up to `token` appended before asking.
        let token = replica.sync_token.load(Ordering::SeqCst);
        // A truncation or snapshot reset during the sync is safe for Raft too: what survives a
        // truncation was fsynced by it, a reset drops the waiting readies, and later appends
        // carry later tokens.
        crate::partition::raise(&replica.durable, self.sync_log());
        if let Some(Err(e)) = self.with_driver(|d| d.on_synced(token)) {
            tracing::error!(partition = ?self, "raft group failed after fsync: {e}");
        }
        // After the acknowledgement, not before it: this bounds what a restart after a crash
        // re-reads, as on a partition of one node.
        self.write_producer_snapshot_if_due();
    }

    fn last_index(&self) -> u64 {
        let log = self.log_ref();
        log.entries.as_ref().map_or(0, |idx| idx.last_index())
    }

    /// Retention on a replica: only whole segments of committed entries go, and the new log
    /// start is in the group's state file before any file is deleted. A follower that then
    /// needs what was removed gets a snapshot ([`strom_consensus::snapshot`]).
    pub(crate) fn apply_replicated_retention(
        &self,
        replica: &Replica,
        now_ms: i64,
    ) -> Result<usize, BrokerError> {
        if replica.hook.is_some() {
            // A state machine beyond the log (the controller) would lose its state to a
            // snapshot that carries no records.
            return Ok(0);
        }
        let mut guard = replica.driver_lock();
        let Some(driver) = guard.as_mut() else {
            return Ok(0);
        };
        let start = {
            let log = self.log_ref();
            let high_watermark = self.high_watermark();
            let deleted_below = self.deleted_below().min(high_watermark);
            let limit = high_watermark.min(self.local_deletion_limit());
            let point = log
                .retention_point(now_ms, limit)
                .max(log.segment_start_for(deleted_below));
            if point <= log.log_start_offset() {
                return Ok(0);
            }
            log.entries
                .as_ref()
                .and_then(|idx| idx.start_at(point, &log))
                .ok_or_else(|| {
                    BrokerError::LeaderNotAvailable(format!(
                        "retention point {point} is not the start of an entry"
                    ))
                })?
        };
        self.compact_locked(driver, start)
    }

    /// A journal's log behind a snapshot of its state machine at `index`: the whole segments
    /// holding only entries up to `index` go.
    pub(crate) fn compact_journal(&self, index: u64) -> Result<usize, BrokerError> {
        let replica = self.replica()?;
        let mut guard = replica.driver_lock();
        let Some(driver) = guard.as_mut() else {
            return Ok(0);
        };
        // A machine restored from a peer's snapshot may be ahead of what this log applied.
        let index = index.min(driver.applied_index());
        let start = {
            let log = self.log_ref();
            let Some(idx) = log.entries.as_ref() else {
                return Ok(0);
            };
            let Some(end) = idx.end_offset(index, &log) else {
                return Ok(0);
            };
            let point = log.segment_start_for(end);
            if point <= log.log_start_offset() {
                return Ok(0);
            }
            let Some(start) = idx.start_at(point, &log) else {
                return Ok(0);
            };
            start
        };
        self.compact_locked(driver, start)
    }

    fn compact_locked(
        &self,
        driver: &mut GroupDriver<Partition>,
        start: LogStart,
    ) -> Result<usize, BrokerError> {
        driver.compact(start).map_err(consensus_error)?;
        let mut guard = self.log_mut();
        let LogState { log, entries } = &mut *guard;
        let removed = log.remove_segments_below(start.start_offset);
        // Even after a failure partway, the index must describe the files that are left (the
        // state file already names `start`; the next open finishes the deletion).
        if let Some(idx) = entries.as_mut() {
            if let Some(now) = idx.start_at(log.log_start_offset(), log) {
                idx.compact(now);
            }
        }
        Ok(removed?)
    }

    fn index_op<R>(
        &self,
        f: impl FnOnce(&strom_consensus::entry_log::EntryIndex, &LogState) -> R,
        missing: R,
    ) -> R {
        let log = self.log_ref();
        match log.entries.as_ref() {
            Some(idx) => f(idx, &log),
            None => missing,
        }
    }
}

impl Replica {
    fn driver_lock(&self) -> MutexGuard<'_, Option<GroupDriver<Partition>>> {
        self.driver.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn role(&self) -> RoleState {
        self.role.borrow().clone()
    }

    pub(crate) fn checkpoint(&self) {
        if let Some(Err(e)) = self.driver_lock().as_mut().map(|d| d.checkpoint()) {
            tracing::warn!(group = self.group, "could not write the raft state: {e}");
        }
    }
}

impl ReplicaLog for Partition {
    fn first_index(&self) -> u64 {
        self.index_op(|idx, _| idx.first_index(), 1)
    }

    fn last_index(&self) -> u64 {
        Partition::last_index(self)
    }

    fn term(&self, i: u64) -> raft::Result<u64> {
        self.index_op(
            |idx, _| idx.term(i),
            Err(raft::Error::Store(raft::StorageError::Unavailable)),
        )
    }

    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> raft::Result<Vec<Entry>> {
        self.index_op(
            |idx, log| idx.entries(log, low, high, max_size),
            Err(raft::Error::Store(raft::StorageError::Unavailable)),
        )
    }

    fn log_start(&self) -> LogStart {
        self.index_op(|idx, log| idx.log_start(log), LogStart::default())
    }

    fn install_snapshot(&self, start: LogStart) -> Result<(), ConsensusError> {
        let now = crate::now_ms();
        let mut guard = self.log_mut();
        let LogState { log, entries: idx } = &mut *guard;
        log.reset(start.start_offset)?;
        if let Some(idx) = idx.as_mut() {
            *idx = EntryIndex::empty(start);
        }
        let restored =
            self.replace_snapshots(|| producer_snapshot::restore(self.dir(), log, now))?;
        self.producers_mut().reset(restored);
        drop(guard);
        self.raise_high_watermark(start.start_offset);
        if let Some(replica) = &self.replica {
            crate::partition::raise(&replica.durable, start.start_offset);
        }
        Ok(())
    }

    fn append(&self, entries: &[Entry], applied: u64) -> Result<(), ConsensusError> {
        let now = crate::now_ms();
        let mut guard = self.log_mut();
        let LogState { log, entries: idx } = &mut *guard;
        let Some(idx) = idx.as_mut() else {
            return Ok(());
        };
        // Where the log is cut, if it is: the offset of the first entry replaced.
        let cut = entries
            .first()
            .filter(|e| e.index <= idx.last_index())
            .map(|e| idx.start_offset(e.index, log).unwrap_or(0));
        let segments_before = log.segment_count();
        let headers = idx.append(log, entries, applied, now)?;
        let mut producers = self.producers_mut();
        if let Some(cut) = cut {
            // Entries this replica had are gone: rebuild the producer state from the log, and
            // not from a snapshot that still counts them.
            let restored = self.replace_snapshots(|| {
                producer_snapshot::discard_beyond(self.dir(), cut)?;
                producer_snapshot::restore(self.dir(), log, now)
            })?;
            producers.reset(restored);
        } else {
            for (h, e) in headers.iter().zip(entries) {
                producers.state.replay(h, now);
                if h.base_offset >= 0 {
                    producers.track_transaction(h, h.base_offset as u64, &e.data);
                }
            }
        }
        producers.bytes_since_snapshot += headers.iter().map(|h| h.total_len() as u64).sum::<u64>();
        if log.segment_count() != segments_before
            || producers.bytes_since_snapshot >= crate::partition::SNAPSHOT_INTERVAL_BYTES
        {
            producers.bytes_since_snapshot = 0;
            self.mark_snapshot_due();
        }
        Ok(())
    }

    fn request_sync(&self, token: u64) {
        let Some(replica) = &self.replica else {
            return;
        };
        replica.sync_token.fetch_max(token, Ordering::SeqCst);
        if let Some(me) = replica.me.get().and_then(Weak::upgrade) {
            me.queue_flush();
        }
    }

    fn on_commit(&self, index: u64, entries: &[Entry]) {
        let end = self.index_op(
            |idx, log| {
                idx.release_applied(index);
                idx.end_offset(index, log)
            },
            None,
        );
        if let Some(end) = end {
            self.raise_high_watermark(end);
        }
        if let Some(hook) = self.replica.as_ref().and_then(|r| r.hook.as_ref()) {
            hook(entries);
        }
    }

    fn on_role(&self, role: &RoleState) {
        if !role.is_leader {
            self.index_op(|idx, _| idx.release_all(), ());
        }
        let Some(replica) = &self.replica else {
            return;
        };
        replica.role.send_replace(role.clone());
        tracing::info!(partition = ?self, group = replica.group, leader = ?role.leader, term = role.term, "leadership changed");
        if let Some(tx) = &replica.events {
            let _ = tx.send(ReplicaEvent::Role {
                group: replica.group,
                role: role.clone(),
            });
        }
    }

    fn on_conf_change(&self, conf: &ConfState, _index: u64) {
        let Some(replica) = &self.replica else {
            return;
        };
        if let Some(tx) = &replica.events {
            let _ = tx.send(ReplicaEvent::Conf {
                group: replica.group,
                conf: conf.clone(),
            });
        }
    }
}
