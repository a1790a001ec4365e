//! One Raft group, driven by whoever holds its lock: a ticker, the transport delivering a
//! message, a produce proposing, the flusher reporting an fsync. Every entry point ends in
//! [`GroupDriver::process`], the `Ready` loop:
//!
//! 1. send the leader's messages at once (it replicates while it fsyncs, Raft thesis 10.2.1);
//! 2. append new entries to the log (page cache, not synced) and ask the owner for a sync;
//! 3. write the hard state when term or vote changed (fsynced inline: rare);
//! 4. apply committed entries (configuration changes here, the rest by the owner);
//! 5. `advance_append_async`; the persisted messages of that ready (a follower's acks, votes)
//!    wait until the owner's group-commit fsync covering it reports back through
//!    [`GroupDriver::on_synced`]. So a follower acknowledges only what is on disk.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType, Snapshot,
};
use raft::{Config, GetEntriesContext, RaftState, RawNode, StateRole, Storage};

use crate::raft_state::{self, LogStart, PersistedState};
use crate::snapshot::SnapshotData;
use crate::{slog_tracing, ConsensusError, GroupId, NodeId};

/// The log a group drives, as its owner provides it (a broker partition, or the simulator's).
pub trait ReplicaLog: Send + Sync + 'static {
    fn first_index(&self) -> u64;
    fn last_index(&self) -> u64;
    fn term(&self, idx: u64) -> raft::Result<u64>;
    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> raft::Result<Vec<Entry>>;
    /// Where the log starts, read atomically (first index, the term before it, its offset).
    fn log_start(&self) -> LogStart;
    /// Discards the whole log; it restarts empty at `start` (a snapshot from the leader).
    /// Durable when it returns.
    fn install_snapshot(&self, start: LogStart) -> Result<(), ConsensusError>;
    /// Appends, cutting a conflicting suffix first; not synced. Entries at or below `applied`
    /// are committed and must never be rewritten.
    fn append(&self, entries: &[Entry], applied: u64) -> Result<(), ConsensusError>;
    /// Make everything appended so far durable, then call [`GroupDriver::on_synced`] with
    /// `token`, later and from outside this call (the driver's lock is held here).
    fn request_sync(&self, token: u64);
    /// Entries up to `index` are committed and durable here; `entries` were just committed.
    fn on_commit(&self, index: u64, entries: &[Entry]);
    /// Leadership or term changed.
    fn on_role(&self, role: &RoleState);
    /// The configuration changed (applied at `index`).
    fn on_conf_change(&self, conf: &ConfState, index: u64);
}

/// Where outgoing messages go (the transport, batched per destination node).
pub trait Outbox: Send + Sync + 'static {
    fn send(&self, to: NodeId, group: GroupId, msg: Message);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub is_leader: bool,
}

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub election_tick: usize,
    /// Election timeouts are drawn from `[election_tick, max_election_tick)`; 0 means raft-rs's
    /// default, `2 * election_tick`. raft-rs draws them from the thread RNG, which a seeded
    /// simulation cannot control: it sets `election_tick + 1` and randomizes tick timing itself.
    pub max_election_tick: usize,
    pub heartbeat_tick: usize,
    /// Bytes of entries per append message. Above the largest batch a topic accepts.
    pub max_size_per_msg: u64,
    pub max_inflight_msgs: usize,
    /// Proposals are refused while this many bytes are uncommitted (a stalled quorum must not
    /// fill memory).
    pub max_uncommitted_size: u64,
    /// Entries a follower may lag and still count as caught up (in the ISR).
    pub max_isr_lag: u64,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            election_tick: 10,
            max_election_tick: 0,
            heartbeat_tick: 2,
            max_size_per_msg: 4 << 20,
            max_inflight_msgs: 256,
            max_uncommitted_size: 512 << 20,
            max_isr_lag: 4096,
        }
    }
}

/// raft-rs reads the log through this.
pub struct LogStorage<L> {
    log: Arc<L>,
    initial: RaftState,
    /// The applied configuration and the index of the change that made it, for snapshots.
    conf: Arc<Mutex<(ConfState, u64)>>,
}

impl<L: ReplicaLog> Storage for LogStorage<L> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(self.initial.clone())
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size.into())
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.last_index())
    }

    /// Asked for when a follower needs entries below the log start (see [`crate::snapshot`]).
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let start = self.log.log_start();
        if start.first_index <= 1 {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let (conf, conf_index) = self.conf.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut snap = Snapshot {
            data: SnapshotData {
                start_offset: start.start_offset,
                conf_index,
            }
            .encode(),
            ..Snapshot::default()
        };
        let meta = snap.mut_metadata();
        meta.index = start.first_index - 1;
        meta.term = start.prev_term;
        meta.set_conf_state(conf);
        Ok(snap)
    }
}

/// A follower's replication progress, seen from the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProgress {
    pub node: NodeId,
    pub matched: u64,
    pub caught_up: bool,
}

#[derive(Debug, Clone)]
pub struct GroupStatus {
    pub role: RoleState,
    pub commit: u64,
    pub last_index: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// Filled on the leader only.
    pub progress: Vec<PeerProgress>,
}

pub struct GroupDriver<L: ReplicaLog> {
    group: GroupId,
    id: NodeId,
    node: RawNode<LogStorage<L>>,
    log: Arc<L>,
    out: Arc<dyn Outbox>,
    dir: PathBuf,
    /// What the state file holds now.
    stored: PersistedState,
    /// Readies whose persistence is pending, in order: (number, needs its own sync, the
    /// messages that may leave only after it). One that needs no sync (a vote, only ordered
    /// behind earlier appends) completes as soon as everything before it has.
    waiting: VecDeque<(u64, bool, Vec<Message>)>,
    applied: u64,
    role: RoleState,
    config: DriverConfig,
    /// Set after a storage failure: the group stops taking part rather than risk its log.
    failed: bool,
    /// Shared with [`LogStorage`], which builds snapshots from it.
    snapshot_conf: Arc<Mutex<(ConfState, u64)>>,
    /// An installed snapshot's index, applied once the entries that came with it are synced.
    snapshot_applied: Option<u64>,
    /// Linearizable reads waiting for a quorum to confirm this leader (Raft's ReadIndex),
    /// by request context; dropped (the waiter sees a closed channel) when the role changes.
    reads: HashMap<u64, tokio::sync::oneshot::Sender<u64>>,
    /// Ticks so far, and the tick at which each peer last answered this node. raft-rs's own
    /// `recent_active` is cleared for every peer at each check-quorum round, which would make
    /// caught-up followers drop out of the ISR for a moment every election timeout.
    ticks: u64,
    heard: HashMap<NodeId, u64>,
}

impl<L: ReplicaLog> GroupDriver<L> {
    /// `applied`: entries at or below it are not delivered for apply again (the owner's state
    /// already reflects them).
    #[allow(clippy::too_many_arguments)] // each is a distinct part of the group; a struct would only rename them
    pub fn new(
        group: GroupId,
        id: NodeId,
        config: DriverConfig,
        log: Arc<L>,
        dir: PathBuf,
        mut persisted: PersistedState,
        applied: u64,
        out: Arc<dyn Outbox>,
    ) -> Result<GroupDriver<L>, ConsensusError> {
        // The log may have lost unsynced entries in a crash that the hard state's commit had
        // already counted; Raft refuses a commit beyond the log, and the lost entries were
        // never acknowledged by this node.
        let last = log.last_index();
        let floor = log.first_index() - 1;
        persisted.hard.commit = persisted.hard.commit.clamp(floor, last.max(floor));
        let applied = applied.clamp(floor, persisted.hard.commit);
        let raft_config = Config {
            id,
            election_tick: config.election_tick,
            max_election_tick: config.max_election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            max_size_per_msg: config.max_size_per_msg,
            max_inflight_msgs: config.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: config.max_uncommitted_size,
            max_committed_size_per_ready: 16 << 20,
            ..Config::default()
        };
        raft_config.validate()?;
        let snapshot_conf = Arc::new(Mutex::new((persisted.conf.clone(), persisted.conf_index)));
        let storage = LogStorage {
            log: Arc::clone(&log),
            initial: RaftState {
                hard_state: persisted.hard.clone(),
                conf_state: persisted.conf.clone(),
            },
            conf: Arc::clone(&snapshot_conf),
        };
        let node = RawNode::new(&raft_config, storage, &slog_tracing::logger(group, id))?;
        let role = RoleState {
            leader: None,
            term: persisted.hard.term,
            is_leader: false,
        };
        let mut driver = GroupDriver {
            group,
            id,
            node,
            log,
            out,
            dir,
            stored: persisted,
            waiting: VecDeque::new(),
            applied,
            role,
            config,
            failed: false,
            snapshot_conf,
            snapshot_applied: None,
            reads: HashMap::new(),
            ticks: 0,
            heard: HashMap::new(),
        };
        // The state file's commit runs ahead of what this driver applied (it is written when
        // term or vote change, with the commit Raft knew then), and an owner may pass it as
        // `applied`. Configuration changes are the driver's state, not the owner's: apply the
        // ones in between now, or this replica would never apply them and keep an old voter set.
        let own = driver
            .stored
            .applied
            .max(driver.stored.conf_index)
            .max(floor);
        if applied > own {
            let skipped = driver.log.entries(own + 1, applied + 1, None)?;
            driver.apply_conf(&skipped)?;
        }
        Ok(driver)
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    pub fn role(&self) -> &RoleState {
        &self.role
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    pub fn tick(&mut self) -> Result<(), ConsensusError> {
        self.ticks += 1;
        self.node.tick();
        self.process()
    }

    /// A message from a peer. Messages for peers this group does not know are dropped.
    pub fn step(&mut self, msg: Message) -> Result<(), ConsensusError> {
        // Only answers to this node's appends and heartbeats show a peer is following it; a
        // node that cannot hear us still sends (pre-)votes.
        if matches!(
            msg.get_msg_type(),
            MessageType::MsgAppendResponse | MessageType::MsgHeartbeatResponse
        ) {
            self.heard.insert(msg.from, self.ticks);
        }
        match self.node.step(msg) {
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => {}
            Err(e) => tracing::debug!(group = self.group, "dropped a raft message: {e}"),
        }
        self.process()
    }

    /// Proposes one data entry per batch and appends them to the local log before returning. Returns the first and last index and
    /// the term they were proposed in: the caller's write is committed once the commit index
    /// reaches `last` *and* the entry there still has this term.
    pub fn propose(&mut self, batches: &[Bytes]) -> Result<(u64, u64, u64), ConsensusError> {
        self.ensure_ok()?;
        if self.node.raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        let before = self.node.raft.raft_log.last_index();
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = self.id;
        let entries: Vec<Entry> = batches
            .iter()
            .map(|b| Entry {
                // A copy, not a slice of the request: an entry stays in memory until it is
                // applied (see `entry_log`), which takes a quorum, and a slice would keep the
                // whole produce request (every partition's batches) alive until then.
                data: Bytes::copy_from_slice(b),
                ..Entry::default()
            })
            .collect();
        m.set_entries(entries.into());
        if self.node.step(m).is_err() {
            return Err(ConsensusError::ProposalDropped(self.group));
        }
        let after = self.node.raft.raft_log.last_index();
        if after != before + batches.len() as u64 {
            return Err(ConsensusError::ProposalDropped(self.group));
        }
        let term = self.node.raft.term;
        self.process()?;
        Ok((before + 1, after, term))
    }

    /// Proposes a configuration change (joint consensus when it changes several members).
    pub fn propose_conf_change(&mut self, cc: ConfChangeV2) -> Result<(), ConsensusError> {
        self.ensure_ok()?;
        if self.node.raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        self.node
            .propose_conf_change(Vec::new(), cc)
            .map_err(|_| ConsensusError::ProposalDropped(self.group))?;
        self.process()
    }

    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ConsensusError> {
        self.node.transfer_leader(to);
        self.process()
    }

    /// Raft's ReadIndex: once a quorum has confirmed this leader (a heartbeat round, or at
    /// once for a group of one), `done` gets the commit index a linearizable read must wait
    /// for. Dropped unanswered if leadership changes first.
    pub fn read_index(
        &mut self,
        ctx: u64,
        done: tokio::sync::oneshot::Sender<u64>,
    ) -> Result<(), ConsensusError> {
        self.ensure_ok()?;
        if self.node.raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        self.reads.insert(ctx, done);
        self.node.read_index(ctx.to_be_bytes().to_vec());
        self.process()
    }

    pub fn campaign(&mut self) -> Result<(), ConsensusError> {
        self.node.campaign()?;
        self.process()
    }

    /// The owner's fsync that `request_sync(token)` asked for is done.
    pub fn on_synced(&mut self, token: u64) -> Result<(), ConsensusError> {
        let mut last = None;
        let mut messages = Vec::new();
        while let Some((number, needs_sync, _)) = self.waiting.front() {
            if *number > token && *needs_sync {
                break;
            }
            if let Some((number, _, msgs)) = self.waiting.pop_front() {
                last = Some(number);
                messages.extend(msgs);
            }
        }
        if let Some(number) = last {
            self.node.on_persist_ready(number);
            self.send_all(messages);
            if let Some(index) = self.snapshot_applied.take() {
                self.applied = index;
                self.node.advance_apply_to(index);
            }
        }
        self.process()
    }

    pub fn status(&self) -> GroupStatus {
        let raft = &self.node.raft;
        let last_index = raft.raft_log.last_index();
        let conf = raft.prs().conf().to_conf_state();
        let progress = if raft.state == StateRole::Leader {
            let mut p: Vec<PeerProgress> = raft
                .prs()
                .iter()
                .map(|(id, pr)| PeerProgress {
                    node: *id,
                    matched: pr.matched,
                    // A short log is within the lag of nothing: without `matched > 0` a learner
                    // that never answered would count as caught up and be promoted.
                    caught_up: *id == self.id
                        || (self.heard_recently(*id)
                            && pr.matched > 0
                            && last_index.saturating_sub(pr.matched) <= self.config.max_isr_lag),
                })
                .collect();
            p.sort_by_key(|p| p.node);
            p
        } else {
            Vec::new()
        };
        GroupStatus {
            role: self.role.clone(),
            commit: raft.raft_log.committed,
            last_index,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            progress,
        }
    }

    /// Heard from within an election timeout, the window check-quorum uses.
    fn heard_recently(&self, node: NodeId) -> bool {
        self.heard
            .get(&node)
            .is_some_and(|at| self.ticks.saturating_sub(*at) < self.config.election_tick as u64)
    }

    /// The highest index known committed.
    /// The index of the last entry handed to the log's `apply`.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// Every committed entry has been applied (raft-rs refuses to campaign before).
    pub fn caught_up(&self) -> bool {
        self.node.raft.raft_log.applied >= self.node.raft.raft_log.committed
    }

    /// A configuration change was proposed and is not applied yet: Raft takes one at a time.
    pub fn has_pending_conf(&self) -> bool {
        self.node.raft.has_pending_conf()
    }

    /// The current configuration (voters, learners).
    pub fn conf_state(&self) -> ConfState {
        self.node.raft.prs().conf().to_conf_state()
    }

    /// Writes the state file with the current commit and applied index (clean shutdown), so a
    /// restart neither re-applies nor hides what was committed.
    pub fn checkpoint(&mut self) -> Result<(), ConsensusError> {
        let mut state = self.stored.clone();
        state.hard = self.node.raft.hard_state();
        state.applied = self.applied;
        self.store(state)
    }

    /// The owner is about to remove the entries below `start` (retention). Recorded first, so
    /// a crash midway is finished on the next open; refused for entries not yet applied.
    pub fn compact(&mut self, start: LogStart) -> Result<(), ConsensusError> {
        self.ensure_ok()?;
        if start.first_index <= self.stored.start.first_index {
            return Ok(());
        }
        if start.first_index - 1 > self.applied {
            return Err(ConsensusError::BadEntry {
                index: start.first_index,
                reason: format!("cannot compact past the applied index {}", self.applied),
            });
        }
        let mut state = self.stored.clone();
        state.hard = self.node.raft.hard_state();
        state.applied = self.applied;
        state.start = start;
        self.store(state)
    }

    fn ensure_ok(&self) -> Result<(), ConsensusError> {
        if self.failed {
            return Err(ConsensusError::ProposalDropped(self.group));
        }
        Ok(())
    }

    fn not_leader(&self) -> ConsensusError {
        ConsensusError::NotLeader {
            group: self.group,
            leader: self.role.leader,
        }
    }

    fn send_all(&mut self, messages: Vec<Message>) {
        for m in messages {
            let snapshot_to = (m.get_msg_type() == MessageType::MsgSnapshot).then_some(m.to);
            self.out.send(m.to, self.group, m);
            // A snapshot is a few bytes (see `crate::snapshot`), not a transfer to wait for.
            // Reported done at once, the follower's answer resumes replication; if the message
            // was lost, the next probe finds the follower still behind and sends it again.
            // Without a report raft-rs would wait for one forever.
            if let Some(to) = snapshot_to {
                strom_metrics::global().raft_snapshots_sent.inc();
                self.node.report_snapshot(to, raft::SnapshotStatus::Finish);
            }
        }
    }

    fn store(&mut self, state: PersistedState) -> Result<(), ConsensusError> {
        raft_state::store(&self.dir, &state)?;
        self.stored = state;
        Ok(())
    }

    /// The `Ready` loop; see the module docs.
    pub fn process(&mut self) -> Result<(), ConsensusError> {
        if self.failed {
            return Ok(());
        }
        let result = self.process_readies();
        if let Err(e) = &result {
            tracing::error!(group = self.group, "raft group stopped on this node: {e}");
            self.failed = true;
        }
        result
    }

    fn process_readies(&mut self) -> Result<(), ConsensusError> {
        while self.node.has_ready() {
            let mut rd = self.node.ready();
            if rd.ss().is_some() || self.node.raft.term != self.role.term {
                self.update_role();
            }
            self.send_all(rd.take_messages());
            for rs in rd.take_read_states() {
                let ctx = <[u8; 8]>::try_from(rs.request_ctx.as_slice()).map(u64::from_be_bytes);
                if let Some(tx) = ctx.ok().and_then(|ctx| self.reads.remove(&ctx)) {
                    let _ = tx.send(rs.index);
                }
            }
            let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
            if let Some(snap) = &snapshot {
                self.install_snapshot(snap)?;
            }
            let entries = rd.take_entries();
            let appended = !entries.is_empty();
            if appended {
                self.log.append(&entries, self.applied)?;
            }
            if let Some(hs) = rd.hs() {
                if hs.term != self.stored.hard.term || hs.vote != self.stored.hard.vote {
                    let mut state = self.stored.clone();
                    state.hard = hs.clone();
                    state.applied = self.applied;
                    self.store(state)?;
                }
            }
            let committed = rd.take_committed_entries();
            let persisted_messages = rd.take_persisted_messages();
            let number = rd.number();
            self.apply(&committed)?;
            self.node.advance_append_async(rd);
            if let Some(snap) = snapshot {
                // The snapshot is durable already and replaced whatever the earlier readies
                // appended: their acknowledgements must not leave.
                self.waiting.clear();
                self.snapshot_applied = None;
                let index = snap.get_metadata().index;
                if appended {
                    // Entries that came with it still need the fsync; apply after it.
                    self.waiting.push_back((number, true, persisted_messages));
                    self.snapshot_applied = Some(index);
                    self.log.request_sync(number);
                } else {
                    self.node.on_persist_ready(number);
                    self.send_all(persisted_messages);
                    self.applied = index;
                    self.node.advance_apply_to(index);
                }
                continue;
            }
            if appended || !self.waiting.is_empty() {
                self.waiting
                    .push_back((number, appended, persisted_messages));
                if appended {
                    self.log.request_sync(number);
                }
            } else {
                self.node.on_persist_ready(number);
                self.send_all(persisted_messages);
            }
            if let Some(last) = committed.last() {
                self.applied = last.index;
                self.node.advance_apply_to(last.index);
            }
        }
        Ok(())
    }

    /// The log restarts empty after the snapshot's index (log first, then the state file: see
    /// `entry_log::EntryIndex::open` for how a crash in between is repaired).
    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), ConsensusError> {
        let meta = snap.get_metadata();
        let data = SnapshotData::decode(meta.index, &snap.data)?;
        let start = LogStart {
            first_index: meta.index + 1,
            prev_term: meta.term,
            start_offset: data.start_offset,
        };
        tracing::info!(
            group = self.group,
            index = meta.index,
            term = meta.term,
            offset = data.start_offset,
            "installing a snapshot: the log restarts at the leader's log start"
        );
        self.log.install_snapshot(start)?;
        let conf = meta.get_conf_state().clone();
        let conf_index = data.conf_index.max(meta.index);
        let mut state = self.stored.clone();
        state.hard = self.node.raft.hard_state();
        state.conf = conf.clone();
        state.conf_index = conf_index;
        state.applied = meta.index;
        state.start = start;
        self.store(state)?;
        *self.snapshot_conf.lock().unwrap_or_else(|p| p.into_inner()) = (conf.clone(), conf_index);
        self.log.on_conf_change(&conf, conf_index);
        Ok(())
    }

    fn update_role(&mut self) {
        let raft = &self.node.raft;
        let role = RoleState {
            leader: (raft.leader_id != raft::INVALID_ID).then_some(raft.leader_id),
            term: raft.term,
            is_leader: raft.state == StateRole::Leader,
        };
        if role != self.role {
            let m = strom_metrics::global();
            if role.leader != self.role.leader && role.leader.is_some() {
                m.raft_leader_changes.inc();
            }
            if raft.state == StateRole::Candidate && role.term > self.role.term {
                m.raft_elections.inc();
            }
            self.reads.clear();
            tracing::debug!(group = self.group, leader = ?role.leader, term = role.term, "raft role changed");
            self.role = role;
            self.log.on_role(&self.role);
        }
    }

    fn apply(&mut self, committed: &[Entry]) -> Result<(), ConsensusError> {
        self.apply_conf(committed)?;
        if let Some(last) = committed.last() {
            self.log.on_commit(last.index, committed);
        }
        Ok(())
    }

    /// The configuration changes among `committed`, each applied once (those at or below the
    /// stored configuration's index are in it already) and stored before anything else happens.
    fn apply_conf(&mut self, committed: &[Entry]) -> Result<(), ConsensusError> {
        for e in committed {
            let cs = match e.get_entry_type() {
                EntryType::EntryNormal => continue,
                _ if e.index <= self.stored.conf_index => continue,
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| bad(e, err))?;
                    self.node.apply_conf_change(&cc)?
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| bad(e, err))?;
                    self.node.apply_conf_change(&cc)?
                }
            };
            let mut state = self.stored.clone();
            state.conf = cs.clone();
            state.conf_index = e.index;
            state.hard = self.node.raft.hard_state();
            state.applied = e.index;
            self.store(state)?;
            *self.snapshot_conf.lock().unwrap_or_else(|p| p.into_inner()) = (cs.clone(), e.index);
            tracing::info!(group = self.group, index = e.index, voters = ?cs.voters, learners = ?cs.learners, "configuration changed");
            self.log.on_conf_change(&cs, e.index);
        }
        Ok(())
    }
}

fn bad(e: &Entry, err: protobuf::ProtobufError) -> ConsensusError {
    ConsensusError::BadEntry {
        index: e.index,
        reason: err.to_string(),
    }
}
