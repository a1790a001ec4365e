//! A journal-style group: the broker's `journal` (a deterministic state machine applied from
//! the committed entries of a group's segment log), modelled on every member of one extra group.
//!
//! The machine is tiny (the index of the last data entry applied and a hash chain over the data
//! of every data entry applied), so that what is checked is the path around it, the part a
//! journal can get wrong while Raft is right: the machine lives in memory and a crash loses it;
//! it snapshots after every `every` entries (the snapshot survives a crash) and may then
//! compact the log behind the snapshot; a restart restores the snapshot and the driver reports
//! what follows it (`replay_from.max(log_start - 1).min(commit)`, as the broker's replica
//! opens it); a member behind its log start (a Raft snapshot, which carries no machine state,
//! or a restart with an older machine snapshot) skips committed entries until it has fetched
//! a peer's machine snapshot, then restores it and applies the skipped entries after it from
//! its own log. The decisions follow `journal/mod.rs` and `journal/catch_up.rs`, including
//! their order (restore first, then read the log), because a model that is merely correct
//! would not find their mistakes.

use std::collections::BTreeMap;

use strom_consensus::raft::eraftpb::{Entry, EntryType};
use strom_consensus::raft::{self, StorageError};
use strom_consensus::raft_state::LogStart;
use strom_consensus::{GroupId, NodeId};

use super::check::{Checker, Move};
use super::rng::Rng;
use super::storage::{Content, Inner};
use super::{GroupSpec, NodeState, Sim};

/// The journal group's id, next to the plain groups 1 and 2.
pub const GROUP: GroupId = 3;

/// Entries read from the log per step of a catch-up: the journal bounds its memory the same
/// way, and small reads make a catch-up take several.
const READ_BYTES: u64 = 4 << 10;
/// Fetches answer only after a round trip or a file transfer, and one in five is slow: a
/// transfer that outlasts elections, crashes and further compactions.
const FETCH_DELAY: (u64, u64) = (5, 60);
const SLOW_FETCH_DELAY: (u64, u64) = (60, 600);
/// The journal retries a failed fetch after a pause.
const RETRY_DELAY: (u64, u64) = (20, 120);
/// The snapshot task runs some time after the hook found a snapshot due.
const SNAPSHOT_DELAY: (u64, u64) = (1, 50);

/// Members as group 2 has them: three voters, and learners that may be promoted on the
/// five-node seeds, so a learner's machine is checked too.
pub fn spec(nodes: u64) -> GroupSpec {
    let five = nodes == 5;
    GroupSpec {
        id: GROUP,
        voters: vec![1, 2, 3],
        learners: if five { vec![4, 5] } else { Vec::new() },
        conf_changes: five,
    }
}

/// The machine's whole state, which is also what its snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// The last data entry applied (`StateMachine::applied`: entries without data, such as a
    /// new leader's empty entry or a configuration change, do not move it).
    pub index: u64,
    pub hash: u64,
}

impl State {
    /// Folds the data of the entry at `index` into the chain. `body` leaves out the bytes the
    /// log rewrites (`Content`), so every replica folds the same bytes.
    pub fn apply_data(&mut self, index: u64, body: &[u8]) {
        // FNV-1a, continued from the previous hash and closed with the index, so the chain
        // depends on the order of the entries and on where each one sits.
        let mut h = self.hash ^ 0xCBF2_9CE4_8422_2325;
        for b in body {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
        }
        self.hash = (h ^ index).wrapping_mul(0x100_0000_01B3);
        self.index = index;
    }

    /// As the journal's `apply_entries`: data entries after the machine's index only.
    fn apply(&mut self, e: &Entry) -> bool {
        if e.get_entry_type() != EntryType::EntryNormal
            || e.data.is_empty()
            || e.index <= self.index
        {
            return false;
        }
        self.apply_data(e.index, &Content::of(e).body);
        true
    }
}

/// The committed entries a member behind its log start has skipped (`catch_up::Gap`).
#[derive(Debug, Clone, Copy)]
struct Gap {
    /// The machine needs the state at this index or later.
    need: u64,
    skipped_to: u64,
}

/// The in-memory part of a member's journal: a crash loses all of it.
#[derive(Debug)]
struct Live {
    machine: State,
    /// The hook's applied mark (the journal's `applied` watch): the last committed entry
    /// handed to it, data or not. A gap is a commit report that does not follow on from it.
    applied: u64,
    gap: Option<Gap>,
    /// When the pending snapshot fetch answers.
    fetch_at: Option<u64>,
    /// When the snapshot the hook found due is written.
    snapshot_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Member {
    /// The machine snapshot file: written atomically, so a crash keeps it whole.
    snapshot: Option<State>,
    live: Option<Live>,
}

impl Member {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.map_or(0, |s| s.index)
    }
}

/// Every member's journal.
pub struct Journals {
    /// Entries between snapshots (the journal's `snapshot_every`).
    every: u64,
    members: BTreeMap<NodeId, Member>,
}

impl Journals {
    pub fn new(seed: u64) -> Journals {
        let mut r = Rng::new(seed ^ 0x0000_4A0E_4A1F_0000);
        Journals {
            every: *r.pick(&[5, 16, 40]),
            members: BTreeMap::new(),
        }
    }

    fn live(&mut self, node: NodeId) -> Option<&mut Live> {
        self.members.get_mut(&node)?.live.as_mut()
    }

    /// The newest machine snapshot any node has: a log of this group may start only after
    /// entries some snapshot covers, or the state they made is gone.
    fn newest_snapshot(&self) -> u64 {
        self.members
            .values()
            .map(Member::snapshot_index)
            .max()
            .unwrap_or(0)
    }

    /// How far retention may cut this replica's log: behind its machine snapshot only (the
    /// entries after it are what a restart replays). `None` for the other groups.
    pub fn compaction_cap(&self, node: NodeId, group: GroupId) -> Option<u64> {
        (group == GROUP).then(|| self.members.get(&node).map_or(0, Member::snapshot_index))
    }

    /// The process stopped: the machine goes, its snapshot file stays.
    pub fn stop(&mut self, node: NodeId) {
        if let Some(m) = self.members.get_mut(&node) {
            m.live = None;
        }
    }

    /// `Journal::open`: restores the snapshot, notes a gap if the log starts after it, and
    /// returns the applied index the replica passes to the driver (`first_index` and `commit`
    /// as the replica has them on disk).
    pub fn open(
        &mut self,
        node: NodeId,
        first_index: u64,
        commit: u64,
        now: u64,
        rng: &mut Rng,
        checker: &mut Checker,
    ) -> Result<u64, String> {
        let newest = self.newest_snapshot();
        if first_index - 1 > newest {
            return Err(format!(
                "node {node} group {GROUP}: reopens with its log starting at {first_index}, but \
                 the newest machine snapshot on any node is at {newest}: the state of the \
                 entries before the log start is lost"
            ));
        }
        let m = self.members.entry(node).or_default();
        let machine = m.snapshot.unwrap_or_default();
        checker.on_machine(node, machine, Move::Reopened)?;
        let replay_from = machine.index;
        let gap = (first_index > replay_from + 1).then(|| Gap {
            need: first_index - 1,
            skipped_to: first_index - 1,
        });
        if gap.is_some() {
            checker.stats.machine_reopened_behind += 1;
        }
        m.live = Some(Live {
            machine,
            applied: replay_from,
            gap,
            fetch_at: gap.map(|_| now + fetch_delay(rng)),
            snapshot_at: None,
        });
        Ok(replay_from.max(first_index - 1).min(commit))
    }

    /// The journal's commit hook: applies the entries, or skips them while the machine is
    /// behind (and starts a fetch when it first finds it is).
    pub fn on_commit(
        &mut self,
        node: NodeId,
        group: GroupId,
        entries: &[Entry],
        now: u64,
        rng: &mut Rng,
        checker: &mut Checker,
    ) -> Result<(), String> {
        let every = self.every;
        let Some(live) = self.live(node).filter(|_| group == GROUP) else {
            return Ok(());
        };
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        let before = live.applied;
        if let Some(g) = live.gap.as_mut() {
            g.skipped_to = g.skipped_to.max(last);
            return Ok(());
        }
        let first_new = entries.iter().map(|e| e.index).find(|i| *i > before);
        if let Some(first) = first_new.filter(|i| *i > before + 1) {
            live.gap = Some(Gap {
                need: first - 1,
                skipped_to: last,
            });
            live.fetch_at = Some(now + fetch_delay(rng));
            checker.stats.machine_gaps += 1;
            return Ok(());
        }
        for e in entries {
            if live.machine.apply(e) {
                checker.on_machine(node, live.machine, Move::Applied)?;
            }
        }
        live.applied = last.max(before);
        if last / every != before / every && live.snapshot_at.is_none() {
            live.snapshot_at = Some(now + rng.range(SNAPSHOT_DELAY.0, SNAPSHOT_DELAY.1));
        }
        Ok(())
    }

    /// A follower installed a Raft snapshot: its log now starts after the leader's compacted
    /// prefix, whose state only a machine snapshot still holds.
    pub fn on_raft_snapshot(
        &self,
        node: NodeId,
        group: GroupId,
        start: &LogStart,
    ) -> Result<(), String> {
        let newest = self.newest_snapshot();
        if group == GROUP && start.first_index - 1 > newest {
            return Err(format!(
                "node {node} group {GROUP} installed a Raft snapshot at {start:?}, but the newest \
                 machine snapshot on any node is at {newest}: no peer can give it the state"
            ));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let mut out = format!(" journal (every {}):", self.every);
        for (node, m) in &self.members {
            out.push_str(&format!(" [n{node}: snapshot {:?}", m.snapshot));
            match &m.live {
                Some(l) => out.push_str(&format!(
                    " machine {:?} applied {} gap {:?} fetch at {:?}]",
                    l.machine, l.applied, l.gap, l.fetch_at
                )),
                None => out.push_str(" down]"),
            }
        }
        out
    }
}

fn fetch_delay(rng: &mut Rng) -> u64 {
    let (lo, hi) = if rng.per_mille(200) {
        SLOW_FETCH_DELAY
    } else {
        FETCH_DELAY
    };
    rng.range(lo, hi)
}

/// Committed entries `low..=high` from a log, in bounded reads as the journal's catch-up does
/// them. `Compacted` when the log no longer holds them.
fn read_entries(log: &Inner, low: u64, high: u64) -> raft::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut next = low;
    while next <= high {
        let got = log
            .index
            .entries(&log.log, next, high + 1, Some(READ_BYTES))?;
        // Stopping short would fill the gap with a hole in it.
        let Some(last) = got.last().map(|e| e.index) else {
            return Err(raft::Error::Store(StorageError::Unavailable));
        };
        out.extend(got);
        next = last + 1;
    }
    Ok(out)
}

impl Sim {
    /// Runs what has come due on the members' journals: fetches that answer now and the
    /// snapshots the hooks asked for.
    pub(super) fn poll_journal(&mut self) -> Result<(), String> {
        let now = self.now();
        let due: Vec<(NodeId, bool, bool)> = self
            .journal
            .members
            .iter()
            .filter_map(|(&node, m)| {
                let l = m.live.as_ref()?;
                let fetch = l.fetch_at.is_some_and(|t| t <= now);
                let snapshot = l.snapshot_at.is_some_and(|t| t <= now);
                (fetch || snapshot).then_some((node, fetch, snapshot))
            })
            .collect();
        for (node, fetch, snapshot) in due {
            if fetch {
                self.fill_gap(node)?;
            }
            if snapshot {
                self.snapshot_machine(node)?;
            }
        }
        Ok(())
    }

    /// `Journal::snapshot_now(compact)`: nothing while the machine is behind, the file only
    /// moves forward, then the log may be cut behind it. Compaction waits for the faults,
    /// since a compaction may be cut short by a crash.
    fn snapshot_machine(&mut self, node: NodeId) -> Result<(), String> {
        let Some(m) = self.journal.members.get_mut(&node) else {
            return Ok(());
        };
        let Some(live) = m.live.as_mut() else {
            return Ok(());
        };
        live.snapshot_at = None;
        if live.gap.is_some() || live.machine.index == 0 {
            return Ok(());
        }
        let state = live.machine;
        if state.index > m.snapshot_index() {
            m.snapshot = Some(state);
            self.checker.stats.machine_snapshots += 1;
            self.checker
                .stats
                .observe(&[node, state.index, state.hash, 23]);
            self.note(|| format!("machine snapshot n{node} at {}", state.index));
        }
        if self.faults && self.rng.per_mille(700) {
            self.compact_replica(node, GROUP)?;
        }
        Ok(())
    }

    /// Where a member behind asks, in the journal's order: the leader it knows, then the
    /// voters and learners.
    fn fetch_order(&mut self, node: NodeId) -> Vec<NodeId> {
        let Some(r) = self.replica(node, GROUP) else {
            return Vec::new();
        };
        let st = r.driver.status();
        let mut order: Vec<NodeId> = st.role.leader.into_iter().collect();
        order.extend(st.voters.iter().chain(&st.learners));
        let mut seen = vec![node];
        order.retain(|n| {
            let new = !seen.contains(n);
            seen.push(*n);
            new
        });
        order
    }

    /// `Journal::fill_gap` after a fetch: the first peer in order that is reachable and has a
    /// snapshot at the needed index or later gives it; the machine restores it and applies
    /// the skipped entries after it from the local log. A fetch that finds no such peer, or a
    /// log that no longer holds the entries, is retried later.
    fn fill_gap(&mut self, node: NodeId) -> Result<(), String> {
        let now = self.now();
        let Some(gap) = self.journal.live(node).and_then(|l| {
            l.fetch_at = None;
            l.gap
        }) else {
            return Ok(());
        };
        let ctx = format!("node {node} group {GROUP} catch-up");
        let source = self.fetch_order(node).into_iter().find_map(|peer| {
            let up = matches!(self.nodes[(peer - 1) as usize].state, NodeState::Up(_));
            let snap = self.journal.members.get(&peer)?.snapshot?;
            (up && !self.cut(node, peer) && snap.index >= gap.need).then_some((peer, snap))
        });
        let Some((peer, snap)) = source else {
            self.checker.stats.machine_fetch_retries += 1;
            self.note(|| format!("{ctx}: no peer has a snapshot at {} yet", gap.need));
            self.retry_fetch(node, now);
            return Ok(());
        };
        let Some(r) = self.replica(node, GROUP) else {
            return Err(format!("{ctx}: the journal runs without its replica"));
        };
        let read = read_entries(&r.log.lock(), snap.index + 1, gap.skipped_to);
        let Some(live) = self.journal.live(node) else {
            return Ok(());
        };
        // The journal restores before it reads the log, so a failed read leaves it restored.
        live.machine = snap;
        self.checker.on_machine(node, snap, Move::Restored)?;
        let entries = match read {
            Ok(entries) => entries,
            Err(raft::Error::Store(StorageError::Compacted)) => {
                self.checker.stats.machine_fetch_retries += 1;
                self.note(|| {
                    format!(
                        "{ctx}: restored {}'s snapshot at {}, but the log no longer holds {}..={}",
                        peer,
                        snap.index,
                        snap.index + 1,
                        gap.skipped_to
                    )
                });
                self.retry_fetch(node, now);
                return Ok(());
            }
            Err(e) => {
                return Err(format!(
                    "{ctx}: reading the skipped entries {}..={}: {e}",
                    snap.index + 1,
                    gap.skipped_to
                ))
            }
        };
        for e in &entries {
            if live.machine.apply(e) {
                self.checker.on_machine(node, live.machine, Move::Applied)?;
            }
        }
        live.gap = None;
        live.applied = snap.index.max(gap.skipped_to);
        // Written as this member's own snapshot, so a restart does not fetch it again.
        if let Some(m) = self.journal.members.get_mut(&node) {
            if snap.index > m.snapshot_index() {
                m.snapshot = Some(snap);
            }
        }
        self.checker.stats.machine_catch_ups += 1;
        self.checker
            .stats
            .observe(&[node, peer, snap.index, gap.skipped_to, 29]);
        self.note(|| {
            format!(
                "{ctx}: restored {peer}'s snapshot at {}, applied the skipped entries to {}",
                snap.index, gap.skipped_to
            )
        });
        Ok(())
    }

    fn retry_fetch(&mut self, node: NodeId, now: u64) {
        let at = now + self.rng.range(RETRY_DELAY.0, RETRY_DELAY.1);
        if let Some(live) = self.journal.live(node) {
            live.fetch_at = Some(at);
        }
    }

    /// Every member's machine has applied its whole log (in a settled group, every entry in
    /// it is committed; after a restart the driver reports only what follows the snapshot).
    pub(super) fn journal_settled(&mut self) -> bool {
        let spec = spec(self.params.nodes);
        let settled = spec.members().all(|m| {
            let last = self
                .replica(m, GROUP)
                .map(|r| r.log.lock().index.last_index());
            let live = self.journal.members.get(&m).and_then(|m| m.live.as_ref());
            matches!((last, live), (Some(last), Some(l)) if l.gap.is_none() && l.applied >= last)
        });
        settled
    }

    /// After the cluster settled: every member's machine has applied exactly its log, all of
    /// them hold one state, and that state is what replaying every entry reported committed
    /// from the first one makes (when the run saw them all). Returns that state.
    pub(super) fn check_machines_converged(&mut self) -> Result<State, String> {
        let spec = spec(self.params.nodes);
        let mut states: Vec<(NodeId, State)> = Vec::new();
        for m in spec.members() {
            let ctx = format!("node {m} group {GROUP} after settling");
            let r = self
                .replica(m, GROUP)
                .ok_or_else(|| format!("{ctx}: down"))?;
            let last = r.log.lock().index.last_index();
            let live = self
                .journal
                .members
                .get(&m)
                .and_then(|m| m.live.as_ref())
                .ok_or_else(|| format!("{ctx}: no machine"))?;
            if live.gap.is_some() || live.applied != last {
                return Err(format!(
                    "{ctx}: the machine applied to {} (gap {:?}), its log ends at {last}",
                    live.applied, live.gap
                ));
            }
            states.push((m, live.machine));
        }
        let Some(&(first, want)) = states.first() else {
            return Ok(State::default());
        };
        if let Some((m, s)) = states.iter().find(|(_, s)| *s != want) {
            return Err(format!(
                "group {GROUP}: node {m}'s machine settled at {s:?}, node {first}'s at {want:?}"
            ));
        }
        let last = self
            .replica(first, GROUP)
            .map_or(0, |r| r.log.lock().index.last_index());
        if let Some(replayed) = self.checker.replay_committed(GROUP, last) {
            self.checker.stats.machines_replayed += 1;
            if replayed != want {
                return Err(format!(
                    "group {GROUP}: the machines settled at {want:?}, but replaying the \
                     committed entries 1..={last} makes {replayed:?}"
                ));
            }
        }
        Ok(want)
    }

    /// After the clean restart of every node: each machine restores its snapshot and the
    /// drivers report the rest of the log, which must bring every machine back to `want`.
    pub(super) fn check_machines_replay(&mut self, want: State) -> Result<(), String> {
        let start = self.now();
        while self.now() < start + super::SETTLE_BUDGET {
            self.advance()?;
            if self.rng.per_mille(450) {
                self.tick()?;
            } else {
                self.complete_sync()?;
            }
            if self.journal_settled() {
                let back = self.check_machines_converged()?;
                if back != want {
                    return Err(format!(
                        "group {GROUP}: the machines settled at {want:?}, and at {back:?} after \
                         a clean restart"
                    ));
                }
                return Ok(());
            }
        }
        Err(format!(
            "group {GROUP}: the machines did not catch up after a clean restart:{}",
            self.journal.describe()
        ))
    }
}
