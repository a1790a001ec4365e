//! The one way Strom keeps replicated state beyond a partition's records: a deterministic
//! state machine applied from the entries of a Strom log (JournalKeeper's idea).
//!
//! The journal is a Raft group whose log is a segment log like any partition's; a single
//! node runs it as a group of one voter, so both modes share every line of the path. A
//! proposal is one record batch (key: the proposer's request id, value: the machine's
//! command); it is acknowledged once committed, which means fsynced on a majority, and
//! applied: the proposer gets the machine's output for *its* entry through the request id.
//! Every replica applies every committed entry in order, under the machine's lock (from the
//! commit hook, under the group's lock too, or when catching up after a snapshot).
//!
//! Snapshots bound the log and the restart time: every `snapshot_every` applied entries the
//! machine's state is written to `machine.snapshot` (atomically, fsynced), then the whole
//! segments behind it are deleted. Opening restores the snapshot and applies the log tail.
//! A replica that falls behind the log start fetches a peer's snapshot ([`catch_up`]).

mod catch_up;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
pub use strom_consensus::driver::DriverConfig;
use strom_consensus::driver::{Outbox, ReplicaLog};
use strom_consensus::raft::eraftpb::{Entry, EntryType, Message};
use strom_consensus::{GroupId, NodeId};
use strom_storage::records::{self, KeyValue};
use tokio::sync::{oneshot, watch, Notify};

use catch_up::Gap;
pub use catch_up::{SharedSnapshot, SnapshotSource};

use crate::replica::ReplicaSpec;
use crate::{Broker, BrokerError, Partition};

const SNAPSHOT_FILE: &str = "machine.snapshot";
/// Small segments, so a snapshot lets the log shrink soon after it.
const SEGMENT_BYTES: u64 = 16 << 20;
/// Queued proposals are cut into entries of about this size: an entry travels to followers
/// in one message, and a few large commands must not make one huge.
const ENTRY_BYTES: usize = 4 << 20;
/// The journal's own bound on one entry (a single command may exceed `ENTRY_BYTES`; front
/// ends bound their requests well below this).
const MAX_ENTRY_BYTES: u32 = 64 << 20;

/// Snapshot files go to disk in synced 4 MiB steps at up to 64 MiB/s. Written at full speed,
/// tens of megabytes queue on the device ahead of the log's small fsyncs: with a 55 MB
/// snapshot every 20 s, the p99.9 of 1,000 puts/s was 67–142 ms, paced 13–33 ms
/// (docs/benchmarks.md).
const SNAPSHOT_PACE: crate::metadata::Pace = crate::metadata::Pace {
    chunk: 4 << 20,
    bytes_per_sec: 64 << 20,
};

/// A deterministic state machine: `apply` depends only on the state and the command (no
/// clock, no randomness, no iteration over unordered maps).
pub trait StateMachine: Send + Sync + 'static {
    type Output: Send + 'static;
    /// Applies one command of the committed entry at `index` (an entry may carry several,
    /// applied in order, all with the same index).
    fn apply(&mut self, index: u64, command: &[u8]) -> Self::Output;
    /// A frozen copy of the state, taken under the lock that apply waits for; it is encoded
    /// after the lock is released, so applying stalls only for the copy.
    type Frozen: Send + 'static;
    /// The index of the last entry applied (part of the snapshot).
    fn applied(&self) -> u64;
    fn freeze(&self) -> Self::Frozen;
    /// Streams the frozen state to `out` (a snapshot file; no second copy in memory).
    fn encode(frozen: Self::Frozen, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

pub struct JournalSpec {
    /// Directory under `<data>/meta/`.
    pub name: String,
    pub group: GroupId,
    pub node: NodeId,
    /// Voters of a new group; `[node]` alone on a single node.
    pub voters: Vec<NodeId>,
    pub driver: DriverConfig,
    pub outbox: Arc<dyn Outbox>,
    pub snapshot_every: u64,
    /// Delete the log behind each snapshot. With peers, only with a `source`: a replica that
    /// falls behind the log start needs a peer's snapshot.
    pub compact: bool,
    /// Where a replica behind its log start fetches a peer's snapshot (cluster mode).
    pub source: Option<Arc<dyn SnapshotSource>>,
    /// A journal outside a cluster drives its own Raft clock at this interval.
    pub tick: Option<Duration>,
    /// How long a proposal may wait for its commit.
    pub propose_timeout: Duration,
}

/// Messages of a group of one go nowhere.
pub struct NoPeers;

impl Outbox for NoPeers {
    fn send(&self, _to: NodeId, _group: GroupId, _msg: Message) {}
}

type Waiters<O> = Arc<Mutex<HashMap<[u8; 16], oneshot::Sender<Result<(u64, O), BrokerError>>>>>;

pub struct Journal<M: StateMachine> {
    name: String,
    partition: Arc<Partition>,
    machine: Arc<RwLock<M>>,
    waiters: Waiters<M::Output>,
    /// Proposals waiting to be appended together.
    queue: Mutex<Vec<([u8; 16], Bytes)>>,
    applied: watch::Sender<u64>,
    seq: AtomicU64,
    node: NodeId,
    propose_timeout: Duration,
    /// A group of one voter: it need not wait an election timeout to lead.
    single: bool,
    /// Set while the machine is behind the log start (see [`catch_up`]).
    gap: Arc<Mutex<Option<Gap>>>,
    snapshot_path: PathBuf,
    /// The index of the snapshot file (a lower bound: it is raised after the file is renamed).
    snapshot_index: AtomicU64,
    /// Held while a snapshot is taken and written, so the file never moves back.
    snapshot_lock: Mutex<()>,
}

impl<M: StateMachine> Journal<M> {
    /// Opens (or creates) the journal, restores the snapshot and applies the log after it.
    pub fn open(
        broker: &Arc<Broker>,
        spec: JournalSpec,
        mut machine: M,
    ) -> Result<Arc<Journal<M>>, BrokerError> {
        let dir = broker.config().data_dir.join("meta").join(&spec.name);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&snapshot_path) {
            Ok(bytes) => machine.restore(&bytes).map_err(|e| {
                BrokerError::InvalidConfig(format!(
                    "damaged state snapshot {}: {e}",
                    snapshot_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&snapshot_path, e)),
        }
        let replay_from = machine.applied();
        let machine = Arc::new(RwLock::new(machine));
        let waiters: Waiters<M::Output> = Arc::default();
        let (applied, _) = watch::channel(replay_from);
        let due = Arc::new(Notify::new());
        let behind = Arc::new(Notify::new());
        let gap: Arc<Mutex<Option<Gap>>> = Arc::default();
        let hook = {
            let machine = Arc::clone(&machine);
            let waiters = Arc::clone(&waiters);
            let applied = applied.clone();
            let due = Arc::clone(&due);
            let behind = Arc::clone(&behind);
            let gap = Arc::clone(&gap);
            let every = spec.snapshot_every.max(1);
            Box::new(move |entries: &[Entry]| {
                let Some(last) = entries.last().map(|e| e.index) else {
                    return;
                };
                let mut m = machine.write().unwrap_or_else(|p| p.into_inner());
                let before = *applied.borrow();
                {
                    let mut gap = gap.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(g) = gap.as_mut() {
                        // Another Raft snapshot moved the log start on: the state needed too.
                        let first = entries.first().map_or(last, |e| e.index);
                        if first > g.skipped_to + 1 {
                            g.need = g.need.max(first - 1);
                        }
                        g.skipped_to = g.skipped_to.max(last);
                        return;
                    }
                    let first_new = entries.iter().map(|e| e.index).find(|i| *i > before);
                    if let Some(first) = first_new.filter(|i| *i > before + 1) {
                        tracing::warn!(applied = before, first, "journal behind its log start");
                        *gap = Some(Gap {
                            need: first - 1,
                            skipped_to: last,
                        });
                        behind.notify_one();
                        return;
                    }
                }
                apply_entries(&mut *m, entries, &waiters);
                drop(m);
                applied.send_replace(last.max(before));
                if last / every != before / every {
                    due.notify_one();
                }
            }) as crate::replica::CommitHook
        };
        let config = crate::TopicConfig {
            segment_bytes: SEGMENT_BYTES,
            max_message_bytes: MAX_ENTRY_BYTES,
            ..crate::TopicConfig::default()
        };
        let single = spec.voters == [spec.node];
        let source = spec.source.clone();
        let partition = Partition::open_replicated(
            &format!("__{}", spec.name),
            0,
            dir.clone(),
            &config,
            broker.flusher(),
            broker.config().flush,
            ReplicaSpec {
                group: spec.group,
                node: spec.node,
                bootstrap_voters: spec.voters.clone(),
                driver: spec.driver,
                outbox: spec.outbox,
                events: None,
                hook: Some(hook),
                replay_from: Some(replay_from),
            },
        )?;
        // Restarted behind the log start (a Raft snapshot installed, the state not yet fetched).
        let log_start = ReplicaLog::log_start(&*partition).first_index;
        if log_start > replay_from + 1 {
            let need = log_start - 1;
            let mut gap = gap.lock().unwrap_or_else(|p| p.into_inner());
            gap.get_or_insert(Gap {
                need,
                skipped_to: need,
            });
            behind.notify_one();
        }
        let journal = Arc::new(Journal {
            name: spec.name.clone(),
            partition,
            machine,
            waiters,
            queue: Mutex::new(Vec::new()),
            applied,
            seq: AtomicU64::new(0),
            node: spec.node,
            propose_timeout: spec.propose_timeout,
            single,
            gap,
            snapshot_path: snapshot_path.clone(),
            snapshot_index: AtomicU64::new(replay_from),
            snapshot_lock: Mutex::new(()),
        });
        if let Some(source) = source {
            tokio::spawn(catch_up::catch_up_loop(
                Arc::downgrade(&journal),
                behind,
                source,
            ));
        }
        if let Some(every) = spec.tick {
            tokio::spawn(tick_loop(
                Arc::downgrade(&journal),
                Arc::downgrade(broker),
                every,
            ));
        }
        tokio::spawn(snapshot_loop(Arc::downgrade(&journal), due, spec.compact));
        Ok(journal)
    }

    /// Appends a command and waits until it is committed and applied; returns the index it
    /// was applied at and the machine's output for it.
    ///
    /// Concurrent proposals share entries: the first to find the queue empty drains it
    /// (after letting the tasks that are ready run) and appends everything queued as one
    /// batch of records, so the per-entry costs (Raft step, write, apply wake-up) are paid
    /// once per batch, not once per request.
    pub async fn propose(
        self: &Arc<Self>,
        command: &[u8],
    ) -> Result<(u64, M::Output), BrokerError> {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.node.to_be_bytes());
        id[8..].copy_from_slice(&self.seq.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let first = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push((id, Bytes::copy_from_slice(command)));
            queue.len() == 1
        };
        if first {
            tokio::task::yield_now().await;
            self.append_queued();
        }
        match tokio::time::timeout(self.propose_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BrokerError::NotLeader),
            Err(_) => {
                self.fail(&[id], BrokerError::Timeout);
                Err(BrokerError::Timeout)
            }
        }
    }

    fn append_queued(self: &Arc<Self>) {
        let mut queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        while !queued.is_empty() {
            let mut bytes = 0;
            let take = queued
                .iter()
                .take_while(|(_, c)| {
                    bytes += c.len();
                    bytes <= ENTRY_BYTES
                })
                .count()
                .max(1);
            let rest = queued.split_off(take);
            self.append_entry(queued);
            queued = rest;
        }
    }

    fn append_entry(self: &Arc<Self>, queued: Vec<([u8; 16], Bytes)>) {
        let ids: Vec<[u8; 16]> = queued.iter().map(|(id, _)| *id).collect();
        let records: Vec<KeyValue> = queued
            .into_iter()
            .map(|(id, command)| KeyValue {
                key: Bytes::copy_from_slice(&id),
                value: Some(command),
            })
            .collect();
        let batch = records::encode_batch(&records, crate::now_ms());
        let appended = match self.partition.append(&[batch]) {
            Ok(r) => r,
            Err(e) => return self.fail(&ids, e),
        };
        // The outputs come from the apply hook; this only fails the waiters of an entry that
        // lost its place (a deposed leader).
        let journal = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = journal.partition.wait_ack(&appended, -1).await {
                journal.fail(&ids, e);
            }
        });
    }

    fn fail(&self, ids: &[[u8; 16]], error: BrokerError) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if let Some(tx) = waiters.remove(id) {
                let _ = tx.send(Err(clone_error(&error)));
            }
        }
    }

    /// The applied state, for reads. Held briefly: apply waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, M> {
        self.machine.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of the last entry applied here.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// The index of the last applied entry, watched (watchers wake on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// A linearizable read's index (Raft's ReadIndex): this leader's commit index, once it
    /// has committed an entry of its own term (before that, its commit index may lag what an
    /// earlier leader acknowledged).
    pub fn read_index(&self) -> Result<u64, BrokerError> {
        let (role, commit) = self
            .partition
            .with_driver(|d| (d.role().clone(), d.commit_index()))
            .ok_or(BrokerError::NotLeader)?;
        if !role.is_leader {
            return Err(BrokerError::NotLeader);
        }
        let term = ReplicaLog::term(&*self.partition, commit).unwrap_or(0);
        if term != role.term {
            return Err(BrokerError::LeaderNotAvailable(
                "the leader has not committed an entry of its term yet".into(),
            ));
        }
        Ok(commit)
    }

    /// Leader and term as this replica knows them, without taking the group's lock.
    pub fn role(&self) -> Option<strom_consensus::driver::RoleState> {
        self.partition.raft_role()
    }

    /// Raft's ReadIndex, confirmed: the read index once a quorum has acknowledged this
    /// leader after the read arrived, so a leader deposed without knowing it cannot answer.
    pub async fn confirmed_read_index(&self) -> Result<u64, BrokerError> {
        let index = self.read_index()?;
        let ctx = self.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.partition
            .with_driver(|d| d.read_index(ctx, tx))
            .ok_or(BrokerError::NotLeader)?
            .map_err(crate::replica::consensus_error)?;
        let confirmed = tokio::time::timeout(self.propose_timeout, rx)
            .await
            .map_err(|_| BrokerError::Timeout)?
            .map_err(|_| BrokerError::NotLeader)?;
        Ok(confirmed.max(index))
    }

    /// Waits until this replica can serve linearizable reads: there is a leader that
    /// committed in its term, and everything it committed is applied here (on a restart,
    /// the whole log tail after the snapshot).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let index = loop {
            match self.read_index() {
                Ok(index) => break index,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        tokio::time::timeout_at(deadline, self.wait_applied(index))
            .await
            .map_err(|_| BrokerError::Timeout)
    }

    /// Waits until the entry at `index` is applied here.
    pub async fn wait_applied(&self, index: u64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|applied| *applied >= index).await;
    }

    pub fn is_leader(&self) -> bool {
        self.partition.ensure_leader().is_ok()
    }

    /// (leader, term, last index, commit index) as this replica sees them.
    pub fn raft_status(&self) -> Option<strom_consensus::driver::GroupStatus> {
        self.partition.with_driver(|d| d.status())
    }

    /// Bytes of the journal's log on disk.
    pub fn log_bytes(&self) -> u64 {
        self.partition.size_bytes()
    }

    /// The journal's replicated partition (its Raft group).
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// Writes a snapshot of the applied state now and, if `compact`, deletes the log behind it.
    pub fn snapshot_now(&self, compact: bool) -> Result<u64, BrokerError> {
        let writing = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (index, frozen) = {
            let m = self.read();
            if self.gap.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                return Ok(0);
            }
            (m.applied(), m.freeze())
        };
        if index == 0 {
            return Ok(0);
        }
        self.write_snapshot_locked(index, |out| M::encode(frozen, out))?;
        drop(writing);
        if compact {
            self.partition.compact_journal(index)?;
        }
        Ok(index)
    }
}

impl<M: StateMachine> Journal<M> {
    /// Replaces the snapshot file with the state at `index`, unless it holds a later one
    /// already: the file only moves forward, which is what peers fetching it rely on.
    fn write_snapshot(
        &self,
        index: u64,
        encode: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), BrokerError> {
        let _writing = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.write_snapshot_locked(index, encode)
    }

    fn write_snapshot_locked(
        &self,
        index: u64,
        encode: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), BrokerError> {
        if index <= self.snapshot_index.load(Ordering::Acquire) {
            return Ok(());
        }
        crate::metadata::write_atomic_paced(&self.snapshot_path, SNAPSHOT_PACE, encode)?;
        self.snapshot_index.fetch_max(index, Ordering::AcqRel);
        Ok(())
    }
}

/// Applies committed entries the machine has not applied yet, answering their proposers.
fn apply_entries<M: StateMachine>(m: &mut M, entries: &[Entry], waiters: &Waiters<M::Output>) {
    for e in entries {
        if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
            continue;
        }
        if e.index <= m.applied() {
            continue;
        }
        let Some(commands) = decode_entry(&e.data) else {
            tracing::error!(index = e.index, "undecodable journal entry skipped");
            continue;
        };
        for (id, command) in commands {
            let out = m.apply(e.index, &command);
            let waiter = id.and_then(|id| {
                waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
            });
            if let Some(tx) = waiter {
                let _ = tx.send(Ok((e.index, out)));
            }
        }
    }
}

/// The (request id, command) records of an entry.
fn decode_entry(data: &Bytes) -> Option<Vec<(Option<[u8; 16]>, Bytes)>> {
    let (_, recs) = records::decode_batch(data).ok()?;
    Some(
        recs.into_iter()
            .filter_map(|r| Some((<[u8; 16]>::try_from(r.key.as_ref()).ok(), r.value?)))
            .collect(),
    )
}

/// Every waiter of a failed batch gets the error; `BrokerError` holds an io::Error and is not
/// `Clone`, so the ones a journal sees are rebuilt.
fn clone_error(e: &BrokerError) -> BrokerError {
    match e {
        BrokerError::NotLeader => BrokerError::NotLeader,
        BrokerError::Timeout => BrokerError::Timeout,
        BrokerError::NotCommitted => BrokerError::NotCommitted,
        other => BrokerError::LeaderNotAvailable(other.to_string()),
    }
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> BrokerError {
    BrokerError::Storage(strom_storage::StorageError::Io {
        path: PathBuf::from(path),
        source: e,
    })
}

async fn tick_loop<M: StateMachine>(
    journal: std::sync::Weak<Journal<M>>,
    broker: std::sync::Weak<Broker>,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (Some(j), Some(b)) = (journal.upgrade(), broker.upgrade()) else {
            return;
        };
        if b.is_stopping() {
            return;
        }
        let result = j.partition.with_driver(|d| {
            if j.single && !d.role().is_leader && d.caught_up() {
                d.campaign()?;
            }
            d.tick()
        });
        if let Some(Err(e)) = result {
            tracing::warn!("journal tick failed: {e}");
        }
    }
}

async fn snapshot_loop<M: StateMachine>(
    journal: std::sync::Weak<Journal<M>>,
    due: Arc<Notify>,
    compact: bool,
) {
    loop {
        due.notified().await;
        let Some(j) = journal.upgrade() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || j.snapshot_now(compact)).await;
        match result {
            Ok(Ok(index)) => tracing::debug!(index, "journal snapshot written"),
            Ok(Err(e)) => tracing::error!("journal snapshot failed: {e}"),
            Err(e) => tracing::error!("journal snapshot task failed: {e}"),
        }
    }
}
