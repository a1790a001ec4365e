//! A seeded, single-threaded simulation of a Strom cluster's Raft groups on real segment logs.
//!
//! Nothing here reads the wall clock, spawns a thread or uses an unseeded RNG: one seed fixes
//! every fault, delay and choice, so a failing seed replays step for step. Each step delivers the
//! messages due, then performs one random action (tick a node, complete an fsync, propose, change
//! membership, transfer leadership, compact a replica's log by retention, crash a node, partition
//! the network); events the drivers report are checked as they happen ([`check`]). After the
//! last step the faults stop, the cluster must converge and then stay quiet, and the final logs
//! are checked whole. Retention cuts each replica's log independently, so followers behind a
//! leader's log start catch up through (record-less) snapshots, and the checks compare logs on
//! the range they still share. One group is a journal ([`machine`]): its members apply it to a
//! state machine that snapshots, compacts behind its snapshots and, behind its log start,
//! catches up from a peer's snapshot; the machines must agree at every index.
//!
//! The files are real (segment logs, state files) and so are the fsyncs, but durability is the
//! simulator's: a crash keeps what the completed sync points covered, plus maybe some of the rest.

pub mod check;
pub mod machine;
pub mod net;
pub mod rng;
pub mod storage;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protobuf::Message as _;
use strom_consensus::driver::{DriverConfig, GroupDriver, Outbox};
use strom_consensus::entry_log::EntryIndex;
use strom_consensus::raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, Message, MessageType,
};
use strom_consensus::raft_state::{self, LogStart, PersistedState};
use strom_consensus::{ConsensusError, GroupId, NodeId};
use strom_storage::records::{self, KeyValue};
use strom_storage::{LogConfig, SyncPoint};

use check::{Checker, Proposal, Stats};
use net::{Envelope, Network, SimOutbox};
use rng::Rng;
use storage::{Content, Event, SimLog};

/// Settle steps allowed before a cluster without faults counts as stuck (a liveness failure).
const SETTLE_BUDGET: u64 = 40_000;
/// Full log scans (storage read path against the invariants) run this often.
const FULL_CHECK_EVERY: u64 = 500;
/// Idle steps a settled cluster must keep its leaders through: many election timeouts.
const QUIET_STEPS: u64 = 1500;
const TRACE_LEN: usize = 40;

#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub id: GroupId,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// Whether the run promotes and demotes members of this group.
    pub conf_changes: bool,
}

impl GroupSpec {
    fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    fn bootstrap(&self) -> PersistedState {
        let mut p = PersistedState::bootstrap(&self.voters);
        p.conf.learners = self.learners.clone();
        p
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: u64,
    pub groups: Vec<GroupSpec>,
    pub steps: u64,
    pub driver: DriverConfig,
    pub log: LogConfig,
}

impl Params {
    /// The cluster shape and limits also vary by seed: every fourth seed runs five nodes with
    /// learners and membership changes, and small message, in-flight, uncommitted and segment
    /// limits make flow control, proposal refusal and segment rolls happen. Retention deletes
    /// whole segments, so small ones give it something to cut (and snapshots to send); one seed
    /// in four keeps a single huge segment, whose log retention never shortens.
    pub fn for_seed(seed: u64, steps: u64) -> Params {
        let mut r = Rng::new(seed ^ 0x0005_EED0_F5EE_D000);
        let five = seed % 4 == 3;
        let nodes = if five { 5 } else { 3 };
        let mut groups = vec![GroupSpec {
            id: 1,
            voters: (1..=nodes).collect(),
            learners: Vec::new(),
            conf_changes: five,
        }];
        if matches!(seed % 3, 1 | 2) {
            groups.push(GroupSpec {
                id: 2,
                voters: vec![1, 2, 3],
                learners: if five { vec![4, 5] } else { Vec::new() },
                conf_changes: five,
            });
        }
        groups.push(machine::spec(nodes));
        let per_msg: u64 = *r.pick(&[1 << 10, 4 << 10, 64 << 10]);
        let driver = DriverConfig {
            election_tick: 10,
            // raft-rs would draw the timeout from its thread RNG; the random tick order
            // desynchronizes the nodes instead.
            max_election_tick: 11,
            heartbeat_tick: 2,
            max_size_per_msg: per_msg,
            max_inflight_msgs: *r.pick(&[2, 8, 256]),
            // raft-rs requires more than one message's worth.
            max_uncommitted_size: per_msg * *r.pick(&[8, 256, 8192]),
            max_isr_lag: 4096,
        };
        let log = LogConfig {
            segment_bytes: *r.pick(&[2 << 10, 4 << 10, 16 << 10, 1 << 30]),
            ..LogConfig::default()
        };
        Params {
            nodes,
            groups,
            steps,
            driver,
            log,
        }
    }
}

/// A failed seed: where, why, and what led there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub reason: String,
    pub recent: Vec<String>,
}

impl Failure {
    pub fn summary(&self) -> String {
        format!(
            "seed {} FAILED at step {}: {} (replay: STROM_SIM_SEED={})",
            self.seed, self.step, self.reason, self.seed
        )
    }
}

/// The summary and the actions that led to it.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.summary())?;
        for line in &self.recent {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// What survives a panic inside the run, to say where it happened.
#[derive(Clone, Default)]
struct Recorder {
    clock: Arc<AtomicU64>,
    trace: Arc<Mutex<VecDeque<String>>>,
}

impl Recorder {
    fn note(&self, line: String) {
        let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == TRACE_LEN {
            t.pop_front();
        }
        t.push_back(line);
    }

    fn failure(&self, seed: u64, reason: String) -> Failure {
        Failure {
            seed,
            step: self.clock.load(Ordering::Relaxed),
            reason,
            recent: self
                .trace
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// Runs one seed; a panic anywhere (raft-rs asserts included) becomes a `Failure` too.
pub fn run_seed(seed: u64, steps: u64) -> Result<Stats, Failure> {
    let recorder = Recorder::default();
    let params = Params::for_seed(seed, steps);
    let rec = recorder.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
        let mut sim = Sim::new(seed, params, rec)?;
        sim.run()
    }));
    match outcome {
        Ok(Ok(stats)) => Ok(stats),
        Ok(Err(reason)) => Err(recorder.failure(seed, reason)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(recorder.failure(seed, format!("panic: {msg}")))
        }
    }
}

struct Replica {
    driver: GroupDriver<SimLog>,
    log: Arc<SimLog>,
    /// Highest index this incarnation reported committed (or was told was applied at start).
    commit: u64,
}

enum NodeState {
    Up(BTreeMap<GroupId, Replica>),
    Down { until: u64 },
}

struct Node {
    id: NodeId,
    dir: PathBuf,
    outbox: Arc<SimOutbox>,
    state: NodeState,
}

struct PendingSync {
    node: NodeId,
    group: GroupId,
    token: u64,
    point: SyncPoint,
    ready_at: u64,
}

struct Partition {
    /// Side of each node (indexed by id - 1); links between sides are cut.
    side: Vec<bool>,
    heal_at: u64,
}

pub struct Sim {
    params: Params,
    rng: Rng,
    rec: Recorder,
    /// Holds every node's files; removed when the run ends.
    _root: tempfile::TempDir,
    nodes: Vec<Node>,
    net: Network,
    partition: Option<Partition>,
    syncs: Vec<PendingSync>,
    checker: Checker,
    /// The journal group's machines.
    journal: machine::Journals,
    next_write: u64,
    /// Off while settling: no drops, duplicates, crashes, partitions or long delays.
    faults: bool,
}

/// Where the nodes' files go: `STROM_SIM_DIR`, else tmpfs when there is one. Every fsync the
/// drivers and logs do is real, and on a disk they would make up most of the run time, while
/// what a crash keeps is decided by the simulator anyway.
fn files_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("STROM_SIM_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

fn err(context: impl std::fmt::Display) -> impl FnOnce(ConsensusError) -> String {
    move |e| format!("{context}: {e}")
}

impl Sim {
    fn new(seed: u64, params: Params, rec: Recorder) -> Result<Sim, String> {
        let root = tempfile::Builder::new()
            .prefix("strom-sim-")
            .tempdir_in(files_root())
            .map_err(|e| format!("tempdir: {e}"))?;
        let nodes = (1..=params.nodes)
            .map(|id| Node {
                id,
                dir: root.path().join(format!("node-{id}")),
                outbox: Arc::new(SimOutbox::default()),
                state: NodeState::Down { until: 0 },
            })
            .collect();
        let mut sim = Sim {
            params,
            rng: Rng::new(seed),
            rec,
            _root: root,
            nodes,
            net: Network::default(),
            partition: None,
            syncs: Vec::new(),
            checker: Checker::default(),
            journal: machine::Journals::new(seed),
            next_write: 1,
            faults: true,
        };
        for id in 1..=sim.params.nodes {
            sim.restart(id)?;
        }
        Ok(sim)
    }

    fn now(&self) -> u64 {
        self.rec.clock.load(Ordering::Relaxed)
    }

    fn note(&self, what: impl FnOnce() -> String) {
        let line = format!("{:>6} {}", self.now(), what());
        self.rec.note(line);
    }

    fn run(&mut self) -> Result<Stats, String> {
        let mut next_full_check = FULL_CHECK_EVERY;
        for _ in 0..self.params.steps {
            self.advance()?;
            self.random_action()?;
            if self.now() >= next_full_check {
                next_full_check += FULL_CHECK_EVERY;
                self.full_check()?;
            }
        }
        self.settle()?;
        let machines = self.check_machines_converged()?;
        self.final_check()?;
        self.check_machines_replay(machines)?;
        Ok(self.checker.stats.clone())
    }

    /// Moves the clock; restarts nodes and heals partitions whose time has come.
    fn advance(&mut self) -> Result<(), String> {
        let now = self.rec.clock.fetch_add(1, Ordering::Relaxed) + 1;
        for i in 0..self.nodes.len() {
            if matches!(self.nodes[i].state, NodeState::Down { until } if until <= now) {
                self.restart(self.nodes[i].id)?;
            }
        }
        if self.partition.as_ref().is_some_and(|p| p.heal_at <= now) {
            self.partition = None;
            self.note(|| "heal".into());
        }
        self.deliver_due()?;
        self.poll_journal()
    }

    fn random_action(&mut self) -> Result<(), String> {
        match self.rng.below(1000) {
            0..440 => self.tick(),
            440..450 => self.compact(),
            450..700 => self.complete_sync(),
            700..950 => self.propose(),
            950..975 => self.change_membership(),
            975..985 => self.transfer_leadership(),
            985..991 => self.crash(),
            991..997 => self.cut_network(),
            _ => Ok(()),
        }
    }

    fn replica(&mut self, node: NodeId, group: GroupId) -> Option<&mut Replica> {
        match &mut self.nodes[(node - 1) as usize].state {
            NodeState::Up(groups) => groups.get_mut(&group),
            NodeState::Down { .. } => None,
        }
    }

    fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.state, NodeState::Up(_)))
            .map(|n| n.id)
            .collect()
    }

    fn leaders(&mut self, group: GroupId) -> Vec<NodeId> {
        let mut out = Vec::new();
        for n in self.up_nodes() {
            if self
                .replica(n, group)
                .is_some_and(|r| r.driver.role().is_leader)
            {
                out.push(n);
            }
        }
        out
    }

    fn cut(&self, a: NodeId, b: NodeId) -> bool {
        self.partition
            .as_ref()
            .is_some_and(|p| p.side[(a - 1) as usize] != p.side[(b - 1) as usize])
    }

    /// Delivers every message due now, in random order (with the random delays, that is the
    /// reordering). Delivery does not compete with the other actions for steps: a backlog would
    /// grow latency without bound once more nodes send more than one message per step.
    fn deliver_due(&mut self) -> Result<(), String> {
        let now = self.now();
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.net.queue.len() {
            if self.net.queue[i].deliver_at <= now {
                due.push(self.net.take(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|e| e.seq);
        self.rng.shuffle(&mut due);
        for env in due {
            self.deliver(env)?;
        }
        Ok(())
    }

    fn deliver(&mut self, env: Envelope) -> Result<(), String> {
        if self.cut(env.from, env.to) {
            self.checker.stats.dropped += 1;
            return Ok(());
        }
        let msg = Message::parse_from_bytes(&env.bytes)
            .map_err(|e| format!("a message does not decode: {e}"))?;
        let kind = msg.get_msg_type();
        let Some(r) = self.replica(env.to, env.group) else {
            self.checker.stats.dropped += 1;
            return Ok(());
        };
        let result = r.driver.step(msg);
        self.note(|| format!("deliver {kind:?} {}->{} g{}", env.from, env.to, env.group));
        result.map_err(|e| format!("node {} step: {e}", env.to))?;
        self.checker.stats.delivered += 1;
        self.checker
            .stats
            .observe(&[env.from, env.to, env.group, kind as u64]);
        self.drain(env.to)
    }

    /// A node picked at random among those running, if any.
    fn random_up_node(&mut self) -> Option<NodeId> {
        let up = self.up_nodes();
        (!up.is_empty()).then(|| *self.rng.pick(&up))
    }

    fn tick(&mut self) -> Result<(), String> {
        let Some(node) = self.random_up_node() else {
            return Ok(());
        };
        self.tick_node(node)
    }

    fn tick_node(&mut self, node: NodeId) -> Result<(), String> {
        if let NodeState::Up(groups) = &mut self.nodes[(node - 1) as usize].state {
            for (g, r) in groups.iter_mut() {
                r.driver
                    .tick()
                    .map_err(|e| format!("node {node} group {g} tick: {e}"))?;
            }
        }
        self.note(|| format!("tick {node}"));
        self.drain(node)
    }

    /// Ticks every node once, in random order.
    fn tick_all(&mut self) -> Result<(), String> {
        let mut up = self.up_nodes();
        self.rng.shuffle(&mut up);
        for node in up {
            self.tick_node(node)?;
        }
        Ok(())
    }

    /// The owner's group-commit flusher: one fsync, then the driver hears which request it
    /// covered, either the one picked or, as a flusher that batched them would, the newest.
    fn complete_sync(&mut self) -> Result<(), String> {
        let now = self.now();
        let due: Vec<usize> = (0..self.syncs.len())
            .filter(|&i| self.syncs[i].ready_at <= now)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut pick = due[self.rng.index(due.len())];
        let (node, group) = (self.syncs[pick].node, self.syncs[pick].group);
        if self.rng.per_mille(500) {
            // A flusher that batched requests: the newest one, whose point covers the rest.
            pick = (0..self.syncs.len())
                .filter(|&i| self.syncs[i].node == node && self.syncs[i].group == group)
                .max_by_key(|&i| self.syncs[i].token)
                .unwrap_or(pick);
        }
        let done = self.syncs.swap_remove(pick);
        let token = done.token;
        self.syncs
            .retain(|p| !(p.node == node && p.group == group && p.token <= token));
        let Some(r) = self.replica(node, group) else {
            return Err(format!(
                "a pending sync for node {node} group {group}, which is down"
            ));
        };
        r.log
            .sync(&done.point)
            .map_err(|e| format!("node {node} group {group} fsync: {e}"))?;
        r.driver
            .on_synced(token)
            .map_err(|e| format!("node {node} group {group} on_synced: {e}"))?;
        self.checker.stats.syncs += 1;
        self.note(|| format!("synced {node} g{group} token {token}"));
        self.drain(node)
    }

    fn random_group(&mut self) -> GroupSpec {
        let i = self.rng.index(self.params.groups.len());
        self.params.groups[i].clone()
    }

    /// A client write on whichever node believes it leads: one to three batches, each a unique
    /// write id in 1..4 records, so Kafka offsets and Raft indexes diverge.
    fn propose(&mut self) -> Result<(), String> {
        let group = self.random_group().id;
        let leaders = self.leaders(group);
        if leaders.is_empty() {
            return Ok(());
        }
        let node = *self.rng.pick(&leaders);
        let count = self.rng.range(1, 4) as usize;
        self.propose_writes(node, group, count).map(|_| ())
    }

    /// Returns the write ids if the leader took them.
    fn propose_writes(
        &mut self,
        node: NodeId,
        group: GroupId,
        count: usize,
    ) -> Result<Option<Vec<u64>>, String> {
        let now = self.now() as i64;
        let mut writes = Vec::with_capacity(count);
        let mut batches = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.next_write;
            self.next_write += 1;
            let recs: Vec<KeyValue> = (0..self.rng.range(1, 5))
                .map(|r| {
                    let pad = self.rng.below(160) as usize;
                    let mut value = id.to_be_bytes().to_vec();
                    value.extend((0..pad).map(|i| (id as usize + i) as u8));
                    KeyValue {
                        key: Bytes::from(format!("w{id}/{r}")),
                        value: Some(Bytes::from(value)),
                    }
                })
                .collect();
            batches.push(records::encode_batch(&recs, now));
            writes.push(id);
        }
        let Some(r) = self.replica(node, group) else {
            return Ok(None);
        };
        let result = r.driver.propose(&batches);
        let taken = match result {
            Ok((first, last, term)) => {
                if last + 1 - first != count as u64 {
                    return Err(format!(
                        "node {node} group {group}: {count} batches proposed as {first}..={last}"
                    ));
                }
                for (i, w) in writes.iter().enumerate() {
                    self.checker.proposed(
                        group,
                        Proposal {
                            index: first + i as u64,
                            term,
                            write: *w,
                        },
                    );
                }
                self.checker.stats.proposals += count as u64;
                self.note(|| format!("propose {node} g{group} {first}..={last} t{term}"));
                Some(writes)
            }
            Err(ConsensusError::NotLeader { .. } | ConsensusError::ProposalDropped(_)) => {
                self.checker.stats.refused += 1;
                None
            }
            Err(e) => return Err(format!("node {node} group {group} propose: {e}")),
        };
        self.drain(node)?;
        Ok(taken)
    }

    /// Promotes a learner or demotes a voter (never below three voters, never the leader
    /// itself), through the leader.
    fn change_membership(&mut self) -> Result<(), String> {
        let spec = self.random_group();
        if !spec.conf_changes {
            return Ok(());
        }
        let leaders = self.leaders(spec.id);
        let Some(&node) = leaders.first() else {
            return Ok(());
        };
        let Some(r) = self.replica(node, spec.id) else {
            return Ok(());
        };
        let conf = r.driver.conf_state();
        if !conf.voters_outgoing.is_empty() {
            return Ok(());
        }
        let demotable: Vec<NodeId> = conf.voters.iter().copied().filter(|v| *v != node).collect();
        let demote = conf.voters.len() > 3 && (conf.learners.is_empty() || self.rng.per_mille(500));
        let (change, target) = if demote {
            (ConfChangeType::AddLearnerNode, *self.rng.pick(&demotable))
        } else if !conf.learners.is_empty() {
            (ConfChangeType::AddNode, *self.rng.pick(&conf.learners))
        } else {
            return Ok(());
        };
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change);
        single.node_id = target;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        let Some(r) = self.replica(node, spec.id) else {
            return Ok(());
        };
        match r.driver.propose_conf_change(cc) {
            Ok(()) | Err(ConsensusError::ProposalDropped(_) | ConsensusError::NotLeader { .. }) => {
            }
            Err(e) => return Err(format!("node {node} group {} conf change: {e}", spec.id)),
        }
        self.note(|| format!("conf change {node} g{} {change:?} {target}", spec.id));
        self.drain(node)
    }

    fn transfer_leadership(&mut self) -> Result<(), String> {
        let spec = self.random_group();
        let leaders = self.leaders(spec.id);
        let Some(&node) = leaders.first() else {
            return Ok(());
        };
        let Some(r) = self.replica(node, spec.id) else {
            return Ok(());
        };
        let voters: Vec<NodeId> = r
            .driver
            .conf_state()
            .voters
            .into_iter()
            .filter(|v| *v != node)
            .collect();
        if voters.is_empty() {
            return Ok(());
        }
        let to = *self.rng.pick(&voters);
        let Some(r) = self.replica(node, spec.id) else {
            return Ok(());
        };
        r.driver
            .transfer_leader(to)
            .map_err(|e| format!("node {node} transfer: {e}"))?;
        self.checker.stats.transfers += 1;
        self.note(|| format!("transfer g{} {node}->{to}", spec.id));
        self.drain(node)
    }

    fn compact(&mut self) -> Result<(), String> {
        let Some(node) = self.random_up_node() else {
            return Ok(());
        };
        let group = self.random_group().id;
        self.compact_replica(node, group)
    }

    /// Retention on one replica, as the broker's `apply_replicated_retention` does it: a cut at
    /// a segment boundary at or below the end of what this replica applied (all of it, or a
    /// random part), recorded by the driver first, then the segments deleted and the index
    /// compacted under the log's lock. Sometimes the node crashes right after the driver
    /// recorded it, with none or only some of the segments gone: the reopen must finish it.
    /// A journal's log is cut only behind its machine snapshot, as `compact_journal` does.
    fn compact_replica(&mut self, node: NodeId, group: GroupId) -> Result<(), String> {
        let cap = self.journal.compaction_cap(node, group);
        let part = if self.rng.per_mille(500) {
            1000
        } else {
            self.rng.below(1000)
        };
        let interrupt = self.rng.per_mille(100);
        let partial = self.rng.below(1000);
        let Some(r) = self.replica(node, group) else {
            return Ok(());
        };
        let ctx = format!("node {node} group {group} compact");
        let start = {
            let inner = r.log.lock();
            let log_start = inner.log.log_start_offset();
            // Everything this incarnation reported committed is applied (the driver applies
            // what it reports); the driver refuses a cut above that.
            let upto = cap.map_or(r.commit, |cap| cap.min(r.commit));
            if upto + 1 < inner.index.first_index() {
                return Ok(());
            }
            let applied_end = inner
                .end_offset(upto)
                .ok_or_else(|| format!("{ctx}: applied index {upto} is not in the log"))?;
            let limit = log_start + (applied_end - log_start) * part / 1000;
            let point = inner.log.retention_point(i64::MAX, limit);
            if point <= log_start {
                return Ok(());
            }
            inner.index.start_at(point, &inner.log).ok_or_else(|| {
                format!(
                    "{ctx}: retention point {point} (limit {limit}) is not the start of an entry \
                     (log {log_start}..{}, entries {}..={}, applied {} ending at {applied_end})",
                    inner.log.next_offset(),
                    inner.index.first_index(),
                    inner.index.last_index(),
                    r.commit
                )
            })?
        };
        if start.first_index - 1 > r.commit {
            return Err(format!(
                "{ctx}: cut {start:?} is above the applied index {}",
                r.commit
            ));
        }
        // The cut the log chose, not the limit asked for: entries past the machine snapshot
        // are what a restart of the machine replays.
        if let Some(cap) = cap.filter(|cap| start.first_index - 1 > *cap) {
            return Err(format!(
                "{ctx}: cut {start:?} goes past the machine snapshot at {cap}"
            ));
        }
        r.driver
            .compact(start)
            .map_err(|e| format!("{ctx} {start:?}: {e}"))?;
        if interrupt {
            if partial < 500 {
                let mut inner = r.log.lock();
                let log_start = inner.log.log_start_offset();
                let some = log_start + (start.start_offset - log_start) * partial / 500;
                let point = inner.log.retention_point(i64::MAX, some);
                inner
                    .log
                    .remove_segments_below(point)
                    .map_err(|e| format!("{ctx}: removing segments below {point}: {e}"))?;
            }
            self.checker.stats.interrupted_compactions += 1;
            self.note(|| format!("compact {node} g{group} {start:?}, interrupted by a crash"));
            return self.crash_node(node);
        }
        let removed = {
            let mut inner = r.log.lock();
            let storage::Inner { log, index, .. } = &mut *inner;
            let removed = log
                .remove_segments_below(start.start_offset)
                .map_err(|e| format!("{ctx}: removing segments: {e}"))?;
            index.compact(start);
            let now = index.log_start(log);
            if now != start {
                return Err(format!(
                    "{ctx}: asked for {start:?}, the log starts at {now:?}"
                ));
            }
            removed
        };
        self.checker.check_log_start(node, group, &start)?;
        self.checker.stats.compactions += 1;
        self.checker.stats.segments_removed += removed as u64;
        self.checker
            .stats
            .observe(&[node, group, start.first_index, start.start_offset, 19]);
        self.note(|| format!("compact {node} g{group} {start:?}: {removed} segments"));
        self.drain(node)
    }

    fn cut_network(&mut self) -> Result<(), String> {
        if self.partition.is_some() {
            return Ok(());
        }
        let n = self.nodes.len();
        // A random proper, non-empty subset goes to the other side.
        let mask = self.rng.range(1, (1 << n) - 1);
        let side: Vec<bool> = (0..n).map(|i| mask & (1 << i) != 0).collect();
        let heal_at = self.now() + self.rng.range(30, 600);
        self.note(|| format!("partition {side:?} until {heal_at}"));
        self.partition = Some(Partition { side, heal_at });
        self.checker.stats.partitions += 1;
        Ok(())
    }

    fn crash(&mut self) -> Result<(), String> {
        let Some(node) = self.random_up_node() else {
            return Ok(());
        };
        self.crash_node(node)
    }

    /// The process dies: the drivers go, and each log keeps what the disk has: the fsynced
    /// prefix and, sometimes, part of the unsynced tail that the page cache wrote back in time,
    /// maybe followed by a torn batch. The raft-state file is always written with fsync.
    fn crash_node(&mut self, node: NodeId) -> Result<(), String> {
        let until = self.now() + self.rng.range(10, 250);
        let idx = (node - 1) as usize;
        let state = std::mem::replace(&mut self.nodes[idx].state, NodeState::Down { until });
        let NodeState::Up(groups) = state else {
            return Ok(());
        };
        self.nodes[idx].outbox.take();
        self.syncs.retain(|s| s.node != node);
        self.journal.stop(node);
        self.checker.stats.crashes += 1;
        self.note(|| format!("crash {node} until {until}"));
        for (group, r) in groups {
            drop(r.driver);
            let log = Arc::try_unwrap(r.log)
                .map_err(|_| format!("node {node} group {group}: the log is still shared"))?;
            let (keep, lost) = {
                let inner = log.lock();
                let durable = inner.log.durable_offset();
                let boundaries: Vec<u64> = (inner.index.first_index()
                    ..=inner.index.last_index() + 1)
                    .filter_map(|i| inner.index.start_offset(i, &inner.log))
                    .filter(|o| *o >= durable)
                    .collect();
                let keep = if boundaries.is_empty() || self.rng.per_mille(500) {
                    durable
                } else {
                    *self.rng.pick(&boundaries)
                };
                let lost = boundaries.iter().filter(|o| **o >= keep).count() as u64;
                (keep, lost.saturating_sub(1))
            };
            let mut log = log.into_log();
            log.truncate_suffix(keep)
                .map_err(|e| format!("node {node} group {group}: crash truncation: {e}"))?;
            self.checker.stats.lost_entries += lost;
            let dir = log.dir().to_path_buf();
            drop(log);
            if self.rng.per_mille(300) {
                self.tear_tail(&dir)?;
            }
        }
        Ok(())
    }

    /// Appends the first part of a batch to the newest segment: a write the crash cut short.
    fn tear_tail(&mut self, dir: &Path) -> Result<(), String> {
        let mut segments: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        segments.sort();
        let Some(active) = segments.last() else {
            return Ok(());
        };
        let batch = records::encode_batch(
            &[KeyValue {
                key: Bytes::from_static(b"torn"),
                value: Some(Bytes::from(vec![7u8; 200])),
            }],
            0,
        );
        let keep = self.rng.range(1, batch.len() as u64) as usize;
        OpenOptions::new()
            .append(true)
            .open(active)
            .and_then(|mut f| f.write_all(&batch[..keep]))
            .map_err(|e| format!("{}: {e}", active.display()))?;
        self.checker.stats.torn_tails += 1;
        Ok(())
    }

    /// Reopens a node's groups from disk as a broker would: state file, log recovery, index
    /// rebuild, then a new driver.
    fn restart(&mut self, node: NodeId) -> Result<(), String> {
        let idx = (node - 1) as usize;
        let outbox = Arc::new(SimOutbox::default());
        let mut groups = BTreeMap::new();
        for spec in self.params.groups.clone() {
            if !spec.members().any(|m| m == node) {
                continue;
            }
            let dir = self.nodes[idx].dir.join(format!("g{}", spec.id));
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let ctx = format!("node {node} group {} restart", spec.id);
            let persisted = match raft_state::load(&dir).map_err(err(&ctx))? {
                Some(p) => p,
                None => {
                    let p = spec.bootstrap();
                    raft_state::store(&dir, &p).map_err(err(&ctx))?;
                    p
                }
            };
            self.checker
                .on_restart(node, spec.id, persisted.hard.term)?;
            let log = SimLog::open(
                &dir,
                self.params.log.clone(),
                persisted.start,
                Arc::clone(&self.rec.clock),
            )?;
            let (first, last) = {
                let inner = log.lock();
                self.checker.check_recovered(node, spec.id, &inner)?;
                (inner.index.first_index(), inner.index.last_index())
            };
            // What the owner says it applied: the stored commit (as the broker passes), the
            // driver's own applied mark, or nothing (an owner that replays everything); a
            // journal, what its machine snapshot covers.
            let applied = if spec.id == machine::GROUP {
                let now = self.now();
                self.journal.open(
                    node,
                    first,
                    persisted.hard.commit,
                    now,
                    &mut self.rng,
                    &mut self.checker,
                )?
            } else {
                match self.rng.below(3) {
                    0 => persisted.hard.commit.min(last),
                    1 => persisted.applied,
                    _ => 0,
                }
            };
            // The driver clamps the same way; entries above this must be reported again.
            let floor = first - 1;
            let commit = persisted.hard.commit.clamp(floor, last.max(floor));
            let reported = applied.clamp(floor, commit);
            let conf_index = persisted.conf_index;
            let log = Arc::new(log);
            let driver = GroupDriver::new(
                spec.id,
                node,
                self.params.driver.clone(),
                Arc::clone(&log),
                dir,
                persisted,
                applied,
                Arc::clone(&outbox) as Arc<dyn Outbox>,
            )
            .map_err(err(&ctx))?;
            // A driver may apply configuration changes while it opens (ones its state file's
            // commit counted but it had not applied); nothing else happens before a first call.
            for event in log.take_events() {
                match event {
                    Event::Conf { conf, index } => {
                        self.checker.on_conf(node, spec.id, index, &conf, true)?
                    }
                    _ => return Err(format!("{ctx}: the driver did more than open")),
                }
            }
            // Entries up to `reported` are never applied again, so the configuration must
            // already include every change up to there.
            let upto = reported.max(conf_index);
            let want = self
                .checker
                .conf_at(spec.id, upto)
                .cloned()
                .unwrap_or_else(|| spec.bootstrap().conf);
            if !same_members(&driver.conf_state(), &want) {
                return Err(format!(
                    "{ctx}: starts with configuration {:?}, but the changes up to {upto}, which \
                     it will not apply again, make {want:?}",
                    driver.conf_state()
                ));
            }
            groups.insert(
                spec.id,
                Replica {
                    driver,
                    log,
                    commit: reported,
                },
            );
        }
        let n = &mut self.nodes[idx];
        n.outbox = outbox;
        n.state = NodeState::Up(groups);
        self.note(|| format!("restart {node}"));
        Ok(())
    }

    /// Hands a node's sent messages to the network and checks the events its drivers reported.
    fn drain(&mut self, node: NodeId) -> Result<(), String> {
        let idx = (node - 1) as usize;
        let now = self.now();
        for (to, group, msg) in self.nodes[idx].outbox.take() {
            if msg.from != node || msg.to != to {
                return Err(format!(
                    "node {node} sent a message from {} to {} addressed to {to}",
                    msg.from, msg.to
                ));
            }
            if msg.get_msg_type() == MessageType::MsgRequestVoteResponse && !msg.reject {
                self.checker.on_vote(node, group, msg.term, to)?;
                // A vote leaves only once it is on disk.
                let dir = self.nodes[idx].dir.join(format!("g{group}"));
                let stored = raft_state::load(&dir)
                    .map_err(|e| format!("node {node} group {group}: {e}"))?
                    .map(|p| (p.hard.term, p.hard.vote));
                if !stored.is_some_and(|(t, v)| t > msg.term || (t, v) == (msg.term, to)) {
                    return Err(format!(
                        "node {node} group {group} granted its vote to {to} in term {} with \
                         (term, vote) {stored:?} in its state file",
                        msg.term
                    ));
                }
            }
            if msg.get_msg_type() == MessageType::MsgAppendResponse && !msg.reject {
                self.check_ack(node, group, &msg)?;
            }
            let bytes = msg
                .write_to_bytes()
                .map_err(|e| format!("a message does not encode: {e}"))?;
            if self.faults && self.rng.per_mille(50) {
                self.checker.stats.dropped += 1;
                continue;
            }
            let copies = if self.faults && self.rng.per_mille(20) {
                self.checker.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if self.faults {
                    self.rng.range(1, 25)
                } else {
                    self.rng.range(1, 4)
                };
                self.net.push(now + delay, node, to, group, bytes.clone());
            }
        }
        let Sim {
            params,
            nodes,
            checker,
            journal,
            syncs,
            rng,
            rec,
            ..
        } = self;
        let NodeState::Up(groups) = &mut nodes[idx].state else {
            return Ok(());
        };
        for (&group, r) in groups.iter_mut() {
            // The configuration a snapshot carries is reported right after it.
            let mut from_snapshot = false;
            for event in r.log.take_events() {
                let after_snapshot = std::mem::take(&mut from_snapshot);
                match event {
                    Event::Appended {
                        truncated_from,
                        entries,
                    } => checker.on_appended(node, group, truncated_from, &entries, r.commit)?,
                    Event::SyncRequested { token, point } => syncs.push(PendingSync {
                        node,
                        group,
                        token,
                        point,
                        ready_at: now + rng.range(1, 40),
                    }),
                    Event::Committed { index, entries } => {
                        check_commit(node, group, r, index, &entries)?;
                        checker.on_committed(node, group, &entries)?;
                        r.commit = index;
                        checker.resolve(node, group, index, &r.log.lock())?;
                        journal.on_commit(node, group, &entries, now, rng, checker)?;
                    }
                    Event::Role(role) => {
                        rec.note(format!(
                            "{now:>6} role n{node} g{group}: term {} leader {:?}",
                            role.term, role.leader
                        ));
                        checker.on_role(node, group, &role, &r.log.lock())?;
                    }
                    Event::Conf { conf, index } => {
                        if after_snapshot {
                            // A snapshot's configuration is the leader's applied one, labelled
                            // with the index of the change that made it: it must be the
                            // configuration in force at that index.
                            let want = checker.conf_at(group, index).cloned().or_else(|| {
                                params
                                    .groups
                                    .iter()
                                    .find(|g| g.id == group)
                                    .map(|g| g.bootstrap().conf)
                            });
                            if !want.as_ref().is_some_and(|w| same_members(w, &conf)) {
                                return Err(format!(
                                    "node {node} group {group}: a snapshot brought configuration \
                                     {conf:?} as of index {index}, where it was {want:?}"
                                ));
                            }
                        }
                        checker.on_conf(node, group, index, &conf, !after_snapshot)?
                    }
                    Event::Snapshot { start } => {
                        rec.note(format!(
                            "{now:>6} snapshot n{node} g{group}: {start:?} (reported commit {})",
                            r.commit
                        ));
                        checker.on_snapshot(node, group, &start, r.commit)?;
                        journal.on_raft_snapshot(node, group, &start)?;
                        // The snapshot's index is committed (Raft takes only such snapshots) and
                        // applied: the next commit report continues after it. Proposals up to
                        // there are decided now, by what was reported committed.
                        let index = start.first_index - 1;
                        r.commit = index;
                        checker.resolve(node, group, index, &r.log.lock())?;
                        from_snapshot = true;
                    }
                }
            }
            if r.driver.is_failed() {
                return Err(format!("node {node} group {group}: the driver stopped"));
            }
        }
        Ok(())
    }

    /// A follower acknowledges only what is on disk. Checked for acknowledgements of the
    /// sender's current term: an older one may be overtaken by a truncation for a new leader
    /// (which ignores it for its stale term). Up to the log start the entries are the compacted,
    /// committed prefix (a snapshot's acknowledgement names its index); above it they must be
    /// in the log and durable: in particular, acknowledgements of appends a snapshot install
    /// threw away must not leave.
    fn check_ack(&mut self, node: NodeId, group: GroupId, msg: &Message) -> Result<(), String> {
        let Some(r) = self.replica(node, group) else {
            return Ok(());
        };
        if msg.term != r.driver.role().term {
            return Ok(());
        }
        let inner = r.log.lock();
        if msg.index < inner.index.first_index() {
            return Ok(());
        }
        let end = inner.end_offset(msg.index);
        if msg.index > inner.index.last_index()
            || end.is_none_or(|end| end > inner.log.durable_offset())
        {
            return Err(format!(
                "node {node} group {group} acknowledged entry {} in term {}, but its log has \
                 entries {}..={} and is durable to offset {} (the entry ends at {end:?})",
                msg.index,
                msg.term,
                inner.index.first_index(),
                inner.index.last_index(),
                inner.log.durable_offset()
            ));
        }
        Ok(())
    }

    /// Every live log read back whole: committed entries as reported, everything else as
    /// appended.
    fn full_check(&mut self) -> Result<(), String> {
        for n in &self.nodes {
            let NodeState::Up(groups) = &n.state else {
                continue;
            };
            for (&group, r) in groups {
                let inner = r.log.lock();
                self.checker.check_recovered(n.id, group, &inner)?;
                let entries = inner.all_entries()?;
                let upto: Vec<Entry> = entries
                    .into_iter()
                    .take_while(|e| e.index <= r.commit)
                    .collect();
                self.checker.check_committed(n.id, group, &upto)?;
            }
        }
        Ok(())
    }

    /// Faults stop, every node comes back, and the cluster must converge: one leader per group
    /// that every member follows, every log committed to its end, no fsync outstanding, and a
    /// last write per group committed everywhere (liveness, not only safety).
    fn settle(&mut self) -> Result<(), String> {
        self.faults = false;
        self.partition = None;
        for id in 1..=self.params.nodes {
            if matches!(self.nodes[(id - 1) as usize].state, NodeState::Down { .. }) {
                self.restart(id)?;
            }
        }
        self.note(|| "settle".into());
        let groups: Vec<GroupId> = self.params.groups.iter().map(|g| g.id).collect();
        let mut markers: BTreeMap<GroupId, u64> = BTreeMap::new();
        let start = self.now();
        let mut next_look = start;
        while self.now() < start + SETTLE_BUDGET {
            self.advance()?;
            if self.rng.per_mille(450) {
                self.tick()?;
            } else {
                self.complete_sync()?;
            }
            if self.now() < next_look {
                continue;
            }
            next_look = self.now() + 25;
            let mut done = true;
            for &g in &groups {
                let Some(leader) = self.converged(g) else {
                    done = false;
                    continue;
                };
                match markers.get(&g) {
                    Some(w) if self.checker.acked.contains_key(w) => {}
                    Some(_) => done = false,
                    None => {
                        done = false;
                        if let Some(w) = self.propose_writes(leader, g, 1)? {
                            markers.insert(g, w[0]);
                        }
                    }
                }
            }
            if done && self.journal_settled() {
                return self.stay_quiet(&groups);
            }
        }
        Err(format!(
            "the cluster did not converge within {SETTLE_BUDGET} fault-free steps: {}{}",
            self.describe(),
            self.journal.describe()
        ))
    }

    /// A settled cluster left idle must keep its leaders: with every node up and no message
    /// lost, a leader that steps down (check-quorum) means followers went silent.
    fn stay_quiet(&mut self, groups: &[GroupId]) -> Result<(), String> {
        let mut leaders = BTreeMap::new();
        for &g in groups {
            let leader = self
                .converged(g)
                .ok_or_else(|| format!("group {g} is no longer converged"))?;
            let term = self.replica(leader, g).map_or(0, |r| r.driver.role().term);
            leaders.insert(g, (leader, term));
        }
        self.note(|| format!("quiet with leaders {leaders:?}"));
        let end = self.now() + QUIET_STEPS;
        let mut ticks = 0;
        while self.now() < end {
            self.advance()?;
            // Clocks run at one rate here: a leader whose ticks starve looks dead to its
            // followers, which is a fault, and this phase has none.
            if self.rng.per_mille(150) {
                self.tick_all()?;
                ticks += 1;
                // Once every follower has had an election timeout to answer, none may drop
                // out of the ISR (a check-quorum round must not make them look behind).
                if ticks > 2 * self.params.driver.election_tick {
                    self.all_caught_up(&leaders)?;
                }
            } else {
                self.complete_sync()?;
            }
        }
        // Let the last heartbeats and fsyncs land before looking.
        for _ in 0..200 {
            self.advance()?;
            self.complete_sync()?;
        }
        for (&g, &(leader, term)) in &leaders {
            let now = self
                .replica(leader, g)
                .map(|r| (r.driver.role().is_leader, r.driver.role().term));
            if now != Some((true, term)) || self.converged(g) != Some(leader) {
                return Err(format!(
                    "group {g}: leader {leader} (term {term}) did not survive {QUIET_STEPS} idle, \
                     fault-free steps: {}",
                    self.describe()
                ));
            }
        }
        Ok(())
    }

    /// Every member of each group is caught up as its leader reports it.
    fn all_caught_up(&mut self, leaders: &BTreeMap<GroupId, (NodeId, u64)>) -> Result<(), String> {
        for (&g, &(leader, _)) in leaders {
            let Some(st) = self.replica(leader, g).map(|r| r.driver.status()) else {
                continue;
            };
            let behind: Vec<NodeId> = st
                .progress
                .iter()
                .filter(|p| !p.caught_up)
                .map(|p| p.node)
                .collect();
            if !behind.is_empty() {
                return Err(format!(
                    "group {g}: leader {leader} reports {behind:?} not caught up in a quiet, \
                     fault-free cluster: {:?}",
                    st.progress
                ));
            }
        }
        Ok(())
    }

    /// The group's leader, if the group has converged.
    fn converged(&mut self, group: GroupId) -> Option<NodeId> {
        if self.syncs.iter().any(|s| s.group == group) {
            return None;
        }
        let spec = self.params.groups.iter().find(|g| g.id == group)?.clone();
        let mut leader = None;
        let mut seen = Vec::new();
        for m in spec.members() {
            let r = self.replica(m, group)?;
            let st = r.driver.status();
            if st.role.is_leader {
                if leader.is_some() {
                    return None;
                }
                leader = Some(m);
            }
            seen.push((
                st.role.leader,
                st.role.term,
                st.last_index,
                st.commit,
                r.commit,
            ));
        }
        let leader = leader?;
        let (_, term, last, _, _) = seen[0];
        seen.iter()
            .all(|s| *s == (Some(leader), term, last, last, last))
            .then_some(leader)
    }

    fn describe(&mut self) -> String {
        let mut out = String::new();
        for spec in self.params.groups.clone() {
            for m in spec.members() {
                let line = match self.replica(m, spec.id) {
                    Some(r) => {
                        let st = r.driver.status();
                        format!(
                            " [g{} n{m}: leader {:?} term {} last {} commit {} reported {} voters {:?} progress {:?}]",
                            spec.id, st.role.leader, st.role.term, st.last_index, st.commit, r.commit, st.voters, st.progress
                        )
                    }
                    None => format!(" [g{} n{m}: down]", spec.id),
                };
                out.push_str(&line);
            }
        }
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in &self.net.queue {
            if let Ok(m) = Message::parse_from_bytes(&e.bytes) {
                *kinds
                    .entry(format!(
                        "{:?} {}->{} i{} lt{} n{} rej{} c{} t{}",
                        m.get_msg_type(),
                        e.from,
                        e.to,
                        m.index,
                        m.log_term,
                        m.entries.len(),
                        m.reject,
                        m.commit,
                        m.term
                    ))
                    .or_default() += 1;
            }
        }
        out.push_str(&format!(
            " in flight {} {kinds:?}, pending syncs {}",
            self.net.queue.len(),
            self.syncs.len()
        ));
        out
    }

    /// The settled cluster: identical logs on every member (entries, terms, Kafka offsets, leader
    /// epoch answers, configuration), every committed entry and acknowledged write in them, and
    /// a clean restart of every node rebuilding the same index from disk.
    ///
    /// Retention cuts each replica's log at its own point, so "identical" means: the same end
    /// (last index and end offset), the same entries and offsets wherever two logs overlap, and
    /// a log that starts later starting exactly where the other has that entry boundary (term
    /// before it, offset). Entries below a replica's start are checked on the replicas that
    /// still hold them, and against what was reported committed during the run.
    fn final_check(&mut self) -> Result<(), String> {
        for spec in self.params.groups.clone() {
            let g = spec.id;
            let mut held: Vec<Held> = Vec::new();
            for m in spec.members() {
                let r = self
                    .replica(m, g)
                    .ok_or_else(|| format!("node {m} is down after settling"))?;
                let conf = r.driver.conf_state();
                let inner = r.log.lock();
                let start = inner.index.log_start(&inner.log);
                let entries = inner.all_entries()?;
                let offsets: Vec<u64> = entries
                    .iter()
                    .map(|e| {
                        inner
                            .index
                            .start_offset(e.index, &inner.log)
                            .unwrap_or(u64::MAX)
                    })
                    .chain(std::iter::once(inner.log.next_offset()))
                    .collect();
                check_epochs(m, g, &inner, &entries, &offsets)?;
                drop(inner);
                held.push(Held {
                    node: m,
                    start,
                    entries,
                    offsets,
                    conf,
                });
            }
            for (i, a) in held.iter().enumerate() {
                for b in &held[i + 1..] {
                    compare_logs(g, a, b)?;
                }
            }
            let Some(reference) = held.first() else {
                continue;
            };
            let want = self
                .checker
                .last_conf(g)
                .cloned()
                .unwrap_or_else(|| spec.bootstrap().conf);
            if !same_members(&reference.conf, &want) {
                return Err(format!(
                    "group {g}: the members agree on {:?}, but the last committed change made {want:?}",
                    reference.conf
                ));
            }
            for h in &held {
                self.checker
                    .check_final_log(g, h.node, &h.start, &h.entries)?;
            }
        }
        self.restart_cleanly()
    }

    /// Every node stops (drivers checkpoint their state) and reopens: the rebuilt index and
    /// entries must be what was there.
    fn restart_cleanly(&mut self) -> Result<(), String> {
        for id in 1..=self.params.nodes {
            let idx = (id - 1) as usize;
            let mut before = BTreeMap::new();
            if let NodeState::Up(groups) = &mut self.nodes[idx].state {
                for (&g, r) in groups.iter_mut() {
                    r.driver
                        .checkpoint()
                        .map_err(|e| format!("node {id} group {g} checkpoint: {e}"))?;
                    let commit = r.driver.status().commit;
                    let inner = r.log.lock();
                    let start = inner.index.log_start(&inner.log);
                    let entries = inner.all_entries()?;
                    drop(inner);
                    before.insert(g, (start, entries, commit));
                }
            }
            self.nodes[idx].state = NodeState::Down { until: 0 };
            self.restart(id)?;
            for (g, (start, entries, commit)) in before {
                let r = self
                    .replica(id, g)
                    .ok_or_else(|| format!("node {id} group {g} did not reopen"))?;
                let inner = r.log.lock();
                let after = inner.all_entries()?;
                // The state file must say where retention left the log.
                if inner.index.log_start(&inner.log) != start {
                    return Err(format!(
                        "node {id} group {g}: a clean restart moved the log start from {start:?} \
                         to {:?}",
                        inner.index.log_start(&inner.log)
                    ));
                }
                if after.len() != entries.len()
                    || after
                        .iter()
                        .zip(&entries)
                        .any(|(a, b)| a.term != b.term || Content::of(a) != Content::of(b))
                {
                    return Err(format!(
                        "node {id} group {g}: a clean restart changed the log"
                    ));
                }
                drop(inner);
                if r.driver.status().commit != commit {
                    return Err(format!(
                        "node {id} group {g}: commit {} after a clean restart, {commit} before",
                        r.driver.status().commit
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One member's settled log, read back for the final check.
struct Held {
    node: NodeId,
    start: LogStart,
    entries: Vec<Entry>,
    /// The offset each entry starts at, then the log end.
    offsets: Vec<u64>,
    conf: ConfState,
}

impl Held {
    fn last_index(&self) -> u64 {
        self.start.first_index + self.entries.len() as u64 - 1
    }

    /// The offset entry `idx` starts at; `last_index() + 1` gives the log end.
    fn offset(&self, idx: u64) -> Option<u64> {
        let rel = idx.checked_sub(self.start.first_index)?;
        self.offsets.get(rel as usize).copied()
    }

    fn entry(&self, idx: u64) -> Option<&Entry> {
        let rel = idx.checked_sub(self.start.first_index)?;
        self.entries.get(rel as usize)
    }

    /// The term of entry `idx`, or of the one before the log start.
    fn term(&self, idx: u64) -> Option<u64> {
        if idx + 1 == self.start.first_index {
            return Some(self.start.prev_term);
        }
        self.entry(idx).map(|e| e.term)
    }
}

/// Two settled logs of a group: the same end, the same entries and offsets where they overlap,
/// and the later-starting one starting at an entry boundary of the other, with the same term
/// before it. (Without retention both start at 1 and this is plain equality.)
fn compare_logs(g: GroupId, a: &Held, b: &Held) -> Result<(), String> {
    let (an, bn) = (a.node, b.node);
    if a.last_index() != b.last_index() {
        return Err(format!(
            "group {g}: node {bn} ends at entry {}, node {an} at {}",
            b.last_index(),
            a.last_index()
        ));
    }
    let (early, late) = if a.start.first_index <= b.start.first_index {
        (a, b)
    } else {
        (b, a)
    };
    let from = late.start.first_index;
    if early.term(from - 1) != Some(late.start.prev_term)
        || early.offset(from) != Some(late.start.start_offset)
    {
        return Err(format!(
            "group {g}: node {} starts at {:?}, but node {} has term {:?} before that entry and \
             the entry at offset {:?}",
            late.node,
            late.start,
            early.node,
            early.term(from - 1),
            early.offset(from)
        ));
    }
    for idx in from..=a.last_index() + 1 {
        if a.offset(idx) != b.offset(idx) {
            return Err(format!(
                "group {g}: offsets differ between nodes {an} and {bn} at entry {idx}"
            ));
        }
        let (Some(x), Some(y)) = (a.entry(idx), b.entry(idx)) else {
            continue;
        };
        if x.index != y.index || x.term != y.term || Content::of(x) != Content::of(y) {
            return Err(format!(
                "group {g}: entry {idx} differs between nodes {an} and {bn}"
            ));
        }
    }
    if !same_members(&a.conf, &b.conf) {
        return Err(format!(
            "group {g}: node {bn} has configuration {:?}, node {an} {:?}",
            b.conf, a.conf
        ));
    }
    Ok(())
}

/// raft-rs lists members in hash set order, which differs between nodes.
fn same_members(a: &ConfState, b: &ConfState) -> bool {
    let sorted = |ids: &[u64]| {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v
    };
    sorted(&a.voters) == sorted(&b.voters)
        && sorted(&a.learners) == sorted(&b.learners)
        && sorted(&a.voters_outgoing) == sorted(&b.voters_outgoing)
        && sorted(&a.learners_next) == sorted(&b.learners_next)
}

/// A commit report: contiguous from the last one, ending at `index`, matching the local log,
/// and durable here (the driver promises "committed and durable").
fn check_commit(
    node: NodeId,
    group: GroupId,
    r: &Replica,
    index: u64,
    entries: &[Entry],
) -> Result<(), String> {
    let ctx = format!("node {node} group {group} commit {index}");
    if index <= r.commit {
        return Err(format!("{ctx}: not above the previous {}", r.commit));
    }
    let first = entries.first().map(|e| e.index);
    if first != Some(r.commit + 1) || entries.last().map(|e| e.index) != Some(index) {
        return Err(format!(
            "{ctx}: reported entries {first:?}..={:?}, expected {}..={index}",
            entries.last().map(|e| e.index),
            r.commit + 1
        ));
    }
    if entries.windows(2).any(|w| w[1].index != w[0].index + 1) {
        return Err(format!("{ctx}: the entries have a gap"));
    }
    let inner = r.log.lock();
    for e in entries {
        if inner.term(e.index) != Some(e.term) {
            return Err(format!(
                "{ctx}: entry {} has term {} but the log has {:?}",
                e.index,
                e.term,
                inner.term(e.index)
            ));
        }
    }
    let end = inner
        .end_offset(index)
        .ok_or_else(|| format!("{ctx}: beyond the log"))?;
    if end > inner.log.durable_offset() {
        return Err(format!(
            "{ctx}: reported committed while not durable (ends at offset {end}, durable {})",
            inner.log.durable_offset()
        ));
    }
    Ok(())
}

/// OffsetForLeaderEpoch against a model built from the entries: for every epoch, the largest
/// epoch <= it that has entries and the offset where the next one starts.
fn check_epochs(
    node: NodeId,
    group: GroupId,
    inner: &storage::Inner,
    entries: &[Entry],
    offsets: &[u64],
) -> Result<(), String> {
    let max = entries.last().map_or(0, |e| e.term);
    for epoch in 0..=max + 1 {
        let want = entries
            .iter()
            .rposition(|e| e.term <= epoch)
            .map(|last| (entries[last].term, offsets[last + 1]));
        let got = inner.index.epoch_end(epoch, &inner.log);
        if got != want {
            return Err(format!(
                "node {node} group {group}: epoch_end({epoch}) = {got:?}, expected {want:?}"
            ));
        }
    }
    // The index rebuilt from the batch headers alone must agree with the live one.
    let start = inner.index.log_start(&inner.log);
    let rebuilt = EntryIndex::scan(&inner.log, start)
        .map_err(|e| format!("node {node} group {group}: rebuilding the index: {e}"))?;
    for e in entries {
        if rebuilt.term(e.index).ok() != Some(e.term)
            || rebuilt.start_offset(e.index, &inner.log)
                != inner.index.start_offset(e.index, &inner.log)
        {
            return Err(format!(
                "node {node} group {group}: the rebuilt index differs at entry {}",
                e.index
            ));
        }
    }
    Ok(())
}
