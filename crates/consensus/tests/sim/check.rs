//! The invariants, checked incrementally as the drivers report events, so a violation fails at
//! the step that caused it rather than at the end.

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};

use strom_consensus::driver::RoleState;
use strom_consensus::raft::eraftpb::{ConfState, Entry, EntryType};
use strom_consensus::raft_state::LogStart;
use strom_consensus::{GroupId, NodeId};
use strom_storage::records;

use super::machine::{self, State};
use super::storage::{Appended, Content, Inner};

/// What the run did, summed over seeds to prove the faults really happened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub partitions: u64,
    pub crashes: u64,
    /// Entries a crash took from a log (unsynced, or synced but cut with the unsynced tail).
    pub lost_entries: u64,
    pub torn_tails: u64,
    pub syncs: u64,
    pub proposals: u64,
    pub refused: u64,
    pub acked: u64,
    pub leader_changes: u64,
    pub truncations: u64,
    pub conf_changes: u64,
    pub transfers: u64,
    /// Retention runs that moved a replica's log start (driver state first, then the files).
    pub compactions: u64,
    pub segments_removed: u64,
    /// Compactions cut short by a crash after the state file named the new log start and
    /// before (all) the segments were deleted: the reopen has to finish the deletion.
    pub interrupted_compactions: u64,
    /// Snapshots a follower installed because its leader had compacted what it needed.
    pub snapshots: u64,
    /// Machine snapshots the journal group's members wrote.
    pub machine_snapshots: u64,
    /// Times a member's commit hook found its machine behind (after a Raft snapshot).
    pub machine_gaps: u64,
    /// Restarts of a member whose log starts after its machine snapshot.
    pub machine_reopened_behind: u64,
    /// Gaps filled from a peer's machine snapshot.
    pub machine_catch_ups: u64,
    /// Fetches that found no peer with a recent enough snapshot, or a log that no longer held
    /// the skipped entries, and were tried again.
    pub machine_fetch_retries: u64,
    /// Seeds whose settled machines were checked against a replay from entry 1.
    pub machines_replayed: u64,
    /// Order-sensitive hash of everything observable, to prove a seed replays identically.
    pub digest: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.delivered += o.delivered;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.partitions += o.partitions;
        self.crashes += o.crashes;
        self.lost_entries += o.lost_entries;
        self.torn_tails += o.torn_tails;
        self.syncs += o.syncs;
        self.proposals += o.proposals;
        self.refused += o.refused;
        self.acked += o.acked;
        self.leader_changes += o.leader_changes;
        self.truncations += o.truncations;
        self.conf_changes += o.conf_changes;
        self.transfers += o.transfers;
        self.compactions += o.compactions;
        self.segments_removed += o.segments_removed;
        self.interrupted_compactions += o.interrupted_compactions;
        self.snapshots += o.snapshots;
        self.machine_snapshots += o.machine_snapshots;
        self.machine_gaps += o.machine_gaps;
        self.machine_reopened_behind += o.machine_reopened_behind;
        self.machine_catch_ups += o.machine_catch_ups;
        self.machine_fetch_retries += o.machine_fetch_retries;
        self.machines_replayed += o.machines_replayed;
        self.digest = mix(self.digest, o.digest);
    }

    pub fn observe(&mut self, values: &[u64]) {
        for v in values {
            self.digest = mix(self.digest, *v);
        }
    }
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v)
        .wrapping_mul(0x100_0000_01B3)
        .rotate_left(29)
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
}

#[derive(Debug, Clone)]
struct Committed {
    term: u64,
    content: Content,
    /// The highest term any node had reported when this entry was first seen committed. The
    /// leader that committed it had a term <= this, so every leader of a later term must hold it.
    max_term_then: u64,
    /// The client write the entry carries: once retention removed the entry from a log, this
    /// is what still decides a proposal at its index and finds a write committed twice.
    write: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
    pub write: u64,
}

#[derive(Default)]
pub struct Checker {
    /// `(group, index, term)` -> what an entry with that index and term holds, in any log.
    appended: HashMap<(GroupId, u64, u64), Appended>,
    committed: BTreeMap<GroupId, BTreeMap<u64, Committed>>,
    leaders: BTreeMap<(GroupId, u64), NodeId>,
    /// `(group, term, voter)` -> the candidate it granted its vote to.
    votes: BTreeMap<(GroupId, u64, NodeId), NodeId>,
    max_term: BTreeMap<GroupId, u64>,
    /// Highest term each replica reported, across restarts (the term is durable).
    terms: BTreeMap<(NodeId, GroupId), u64>,
    confs: BTreeMap<(GroupId, u64), ConfState>,
    proposals: BTreeMap<GroupId, Vec<Proposal>>,
    /// Write id -> (group, index), for every acknowledged write.
    pub acked: BTreeMap<u64, (GroupId, u64)>,
    /// The journal group's machines: the first hash any of them had at each index.
    machine_hashes: BTreeMap<u64, u64>,
    /// Each node's machine index as last seen, across its crashes.
    machine_index: BTreeMap<NodeId, u64>,
    pub stats: Stats,
}

/// How a journal machine got to a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// It applied a committed data entry.
    Applied,
    /// It restored a peer's snapshot to fill a gap.
    Restored,
    /// Its node restarted and it restored its own snapshot.
    Reopened,
}

/// The client write id a data entry carries (see `Sim::propose`).
pub fn write_id(e: &Entry) -> Result<Option<u64>, String> {
    if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
        return Ok(None);
    }
    let (_, recs) =
        records::decode_batch(&e.data).map_err(|err| format!("entry {}: {err}", e.index))?;
    let first = recs
        .first()
        .ok_or_else(|| format!("entry {}: a data batch without records", e.index))?;
    let key = std::str::from_utf8(&first.key).unwrap_or("");
    let id = key
        .strip_prefix('w')
        .and_then(|k| k.split('/').next())
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| format!("entry {}: record key {key:?} is not a write id", e.index))?;
    Ok(Some(id))
}

impl Checker {
    pub fn proposed(&mut self, group: GroupId, p: Proposal) {
        self.proposals.entry(group).or_default().push(p);
    }

    /// Log matching, per appended entry, and a node never cuts what it reported committed. (A
    /// lagging node may still take a stale leader's entry at an index committed elsewhere: it
    /// is uncommitted there and will be replaced; the commit and leader checks cover that.)
    pub fn on_appended(
        &mut self,
        node: NodeId,
        group: GroupId,
        truncated_from: Option<u64>,
        entries: &[Appended],
        own_commit: u64,
    ) -> Result<(), String> {
        if let Some(from) = truncated_from {
            self.stats.truncations += 1;
            if from <= own_commit {
                return Err(format!(
                    "node {node} group {group}: append cut the log from {from}, at or below its \
                     reported commit {own_commit}"
                ));
            }
        }
        for a in entries {
            self.stats.observe(&[node, group, a.index, a.term]);
            match self.appended.get(&(group, a.index, a.term)) {
                Some(seen) => {
                    if seen.content != a.content
                        || seen.prev_term != a.prev_term
                        || seen.offset != a.offset
                    {
                        return Err(format!(
                            "log matching: node {node} group {group} appended entry {}/{} as \
                             (prev term {}, offset {}, {:?}) but it was (prev term {}, offset {}, \
                             {:?}) elsewhere",
                            a.index,
                            a.term,
                            a.prev_term,
                            a.offset,
                            a.content.kind,
                            seen.prev_term,
                            seen.offset,
                            seen.content.kind
                        ));
                    }
                }
                None => {
                    self.appended.insert((group, a.index, a.term), a.clone());
                }
            }
        }
        Ok(())
    }

    /// State machine safety: whatever any node applies at an index, every node applies there.
    pub fn on_committed(
        &mut self,
        node: NodeId,
        group: GroupId,
        entries: &[Entry],
    ) -> Result<(), String> {
        let max_term = self.max_term.get(&group).copied().unwrap_or(0);
        let map = self.committed.entry(group).or_default();
        for e in entries {
            let content = Content::of(e);
            let write = write_id(e)?;
            self.stats.observe(&[node, group, e.index, e.term, 7]);
            match map.get(&e.index) {
                Some(c) if c.term != e.term || c.content != content => {
                    return Err(format!(
                        "node {node} group {group} committed entry {} with term {} ({:?}); it was \
                         committed before with term {} ({:?})",
                        e.index, e.term, content.kind, c.term, c.content.kind
                    ));
                }
                Some(_) => {}
                None => {
                    map.insert(
                        e.index,
                        Committed {
                            term: e.term,
                            content,
                            max_term_then: max_term,
                            write,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// A node's entries up to its commit index, read back from its log, against what was
    /// reported committed.
    pub fn check_committed(
        &self,
        node: NodeId,
        group: GroupId,
        entries: &[Entry],
    ) -> Result<(), String> {
        let Some(map) = self.committed.get(&group) else {
            return Ok(());
        };
        for e in entries {
            if let Some(c) = map.get(&e.index) {
                if c.term != e.term || c.content != Content::of(e) {
                    return Err(format!(
                        "node {node} group {group}: committed entry {}/{} reads back as {}/{}",
                        e.index, c.term, e.index, e.term
                    ));
                }
            }
        }
        Ok(())
    }

    /// Proposals at or below a node's new commit index are decided now: acknowledged if the entry
    /// there still has the proposal's term (and then it must be that write), lost otherwise.
    pub fn resolve(
        &mut self,
        node: NodeId,
        group: GroupId,
        commit: u64,
        log: &Inner,
    ) -> Result<(), String> {
        let Some(pending) = self.proposals.get_mut(&group) else {
            return Ok(());
        };
        let mut decided = Vec::new();
        pending.retain(|p| {
            if p.index > commit {
                return true;
            }
            decided.push(p.clone());
            false
        });
        let mut undecided = Vec::new();
        for p in decided {
            // Retention removed the entry from this log (compaction here, or the snapshot that
            // replaced it): what was reported committed at that index decides instead, with
            // the same rule. If no node reported it (a crash can hide a commit), the proposal
            // waits for a replica that still holds the entry.
            if p.index < log.index.first_index() {
                let Some(c) = self.committed.get(&group).and_then(|m| m.get(&p.index)) else {
                    undecided.push(p);
                    continue;
                };
                if c.term != p.term {
                    continue;
                }
                if c.write != Some(p.write) {
                    return Err(format!(
                        "group {group}: committed entry {} has the proposal's term {} but holds \
                         write {:?}, not {}",
                        p.index, p.term, c.write, p.write
                    ));
                }
                if self.acked.insert(p.write, (group, p.index)).is_some() {
                    return Err(format!("write {} acknowledged twice", p.write));
                }
                self.stats.acked += 1;
                continue;
            }
            let term = log.term(p.index).ok_or_else(|| {
                format!(
                    "node {node} group {group}: committed index {} is not in its log",
                    p.index
                )
            })?;
            if term != p.term {
                continue;
            }
            let e = log.entry(p.index)?;
            let got = write_id(&e)?;
            if got != Some(p.write) {
                return Err(format!(
                    "node {node} group {group}: entry {} has the proposal's term {} but holds \
                     write {got:?}, not {}",
                    p.index, p.term, p.write
                ));
            }
            if self.acked.insert(p.write, (group, p.index)).is_some() {
                return Err(format!("write {} acknowledged twice", p.write));
            }
            self.stats.acked += 1;
        }
        if !undecided.is_empty() {
            self.proposals.entry(group).or_default().extend(undecided);
        }
        Ok(())
    }

    /// One leader per term, terms never go back on a node, and leader completeness.
    pub fn on_role(
        &mut self,
        node: NodeId,
        group: GroupId,
        role: &RoleState,
        log: &Inner,
    ) -> Result<(), String> {
        self.stats
            .observe(&[node, group, role.term, u64::from(role.is_leader), 11]);
        let seen = self.terms.entry((node, group)).or_default();
        if role.term < *seen {
            return Err(format!(
                "node {node} group {group}: term went back from {seen} to {}",
                role.term
            ));
        }
        *seen = role.term;
        let max = self.max_term.entry(group).or_default();
        *max = (*max).max(role.term);
        if !role.is_leader {
            return Ok(());
        }
        if role.leader != Some(node) {
            return Err(format!(
                "node {node} group {group}: leader of term {} but names {:?} as leader",
                role.term, role.leader
            ));
        }
        match self.leaders.insert((group, role.term), node) {
            Some(other) if other != node => {
                return Err(format!(
                    "group {group}: two leaders in term {}: {other} and {node}",
                    role.term
                ));
            }
            Some(_) => {}
            None => self.stats.leader_changes += 1,
        }
        if let Some(map) = self.committed.get(&group) {
            // Entries below the log start were removed by retention, which takes only applied
            // entries; the log start itself (the term before the first entry) is still checked.
            let below_start = log.index.first_index() - 1;
            for (index, c) in map.range(below_start..) {
                if c.max_term_then < role.term && log.term(*index) != Some(c.term) {
                    return Err(format!(
                        "leader completeness: node {node} leads group {group} in term {} without \
                         entry {index}/{} committed before that term (it has term {:?})",
                        role.term,
                        c.term,
                        log.term(*index)
                    ));
                }
            }
        }
        Ok(())
    }

    /// A node grants at most one candidate its vote per term, crashes included (the vote is
    /// durable): the root of "one leader per term", checked where it can first go wrong.
    pub fn on_vote(
        &mut self,
        voter: NodeId,
        group: GroupId,
        term: u64,
        candidate: NodeId,
    ) -> Result<(), String> {
        match self.votes.insert((group, term, voter), candidate) {
            Some(before) if before != candidate => Err(format!(
                "group {group}: node {voter} voted for {before} and then for {candidate} in term \
                 {term}"
            )),
            _ => Ok(()),
        }
    }

    /// A restarted replica's term comes from its state file; it must not have lost one it reported.
    pub fn on_restart(&mut self, node: NodeId, group: GroupId, term: u64) -> Result<(), String> {
        let seen = self.terms.get(&(node, group)).copied().unwrap_or(0);
        if term < seen {
            return Err(format!(
                "node {node} group {group} restarted with term {term}, below the {seen} it had \
                 reported: the state file lost a term"
            ));
        }
        Ok(())
    }

    /// A restarted log must hold only entries some driver appended, with the same content: crash
    /// recovery may cut the log but never invent or alter an entry.
    pub fn check_recovered(&self, node: NodeId, group: GroupId, log: &Inner) -> Result<(), String> {
        self.check_log_start(node, group, &log.index.log_start(&log.log))?;
        for e in log.all_entries()? {
            let Some(a) = self.appended.get(&(group, e.index, e.term)) else {
                return Err(format!(
                    "node {node} group {group}: recovered entry {}/{} that was never appended",
                    e.index, e.term
                ));
            };
            if a.content != Content::of(&e) {
                return Err(format!(
                    "node {node} group {group}: recovered entry {}/{} with other content",
                    e.index, e.term
                ));
            }
            let offset = log.index.start_offset(e.index, &log.log);
            if offset != Some(a.offset) {
                return Err(format!(
                    "node {node} group {group}: recovered entry {} at offset {offset:?}, \
                     appended at {}",
                    e.index, a.offset
                ));
            }
        }
        Ok(())
    }

    /// A log may start after index 1 only where retention cut it (here, or on the leader whose
    /// snapshot this log installed), and retention only takes committed entries: the term it
    /// records for the entry before its start must be the committed one.
    pub fn check_log_start(
        &self,
        node: NodeId,
        group: GroupId,
        start: &LogStart,
    ) -> Result<(), String> {
        if start.first_index <= 1 {
            return Ok(());
        }
        let below = start.first_index - 1;
        match self.committed.get(&group).and_then(|m| m.get(&below)) {
            Some(c) if c.term != start.prev_term => Err(format!(
                "node {node} group {group}: the log starts at {start:?}, but entry {below} was \
                 committed with term {}",
                c.term
            )),
            _ => Ok(()),
        }
    }

    /// A replica installed a snapshot: its log restarts after the leader's compacted prefix,
    /// which must not cut what this replica had reported committed (Raft refuses a snapshot at
    /// or below its commit index; the compacted prefix covers the rest).
    pub fn on_snapshot(
        &mut self,
        node: NodeId,
        group: GroupId,
        start: &LogStart,
        own_commit: u64,
    ) -> Result<(), String> {
        self.stats.snapshots += 1;
        self.stats
            .observe(&[node, group, start.first_index, start.start_offset, 17]);
        if start.first_index - 1 <= own_commit {
            return Err(format!(
                "node {node} group {group}: installed a snapshot at {start:?}, not above its \
                 reported commit {own_commit}"
            ));
        }
        self.check_log_start(node, group, start)
    }

    /// Every node applying a configuration change at an index ends up with the same one.
    /// `counted`: false for the configuration a snapshot carries (not a change of its own).
    pub fn on_conf(
        &mut self,
        node: NodeId,
        group: GroupId,
        index: u64,
        conf: &ConfState,
        counted: bool,
    ) -> Result<(), String> {
        self.stats.observe(&[node, group, index, 13]);
        let key = |c: &ConfState| {
            let mut v = [
                c.voters.clone(),
                c.learners.clone(),
                c.voters_outgoing.clone(),
                c.learners_next.clone(),
            ];
            v.iter_mut().for_each(|ids| ids.sort_unstable());
            v
        };
        match self.confs.get(&(group, index)) {
            Some(c) if key(c) != key(conf) => Err(format!(
                "node {node} group {group}: configuration at {index} is {conf:?}, others have {c:?}"
            )),
            Some(_) => Ok(()),
            None => {
                if counted {
                    self.stats.conf_changes += 1;
                }
                self.confs.insert((group, index), conf.clone());
                Ok(())
            }
        }
    }

    /// The configuration made by the last change applied at or below `index`, if any.
    pub fn conf_at(&self, group: GroupId, index: u64) -> Option<&ConfState> {
        self.confs
            .range((group, 0)..=(group, index))
            .next_back()
            .map(|(_, c)| c)
    }

    /// The configuration the last committed change produced, if any.
    pub fn last_conf(&self, group: GroupId) -> Option<&ConfState> {
        self.confs
            .range((group, 0)..=(group, u64::MAX))
            .next_back()
            .map(|(_, c)| c)
    }

    /// The settled log of a group, read back from one replica whose log starts at `start`,
    /// against everything reported committed during the run; then the acknowledged writes:
    /// each exactly once, at the index it was acknowledged at.
    ///
    /// Retention changes two things, and only these: committed entries and acknowledged writes
    /// below the log start are gone from this log (retention takes only applied entries, so
    /// that is no loss; the log start itself is checked against the committed term), and a
    /// write committed twice could hide across the compacted prefix, so duplicates are also
    /// looked for among all the committed entries reported during the run.
    pub fn check_final_log(
        &self,
        group: GroupId,
        node: NodeId,
        start: &LogStart,
        entries: &[Entry],
    ) -> Result<(), String> {
        self.check_log_start(node, group, start)?;
        if entries
            .first()
            .is_some_and(|e| e.index != start.first_index)
        {
            return Err(format!(
                "group {group} node {node}: the log starts at {start:?} but its first entry is {}",
                entries[0].index
            ));
        }
        let by_index: BTreeMap<u64, &Entry> = entries.iter().map(|e| (e.index, e)).collect();
        let mut committed_writes: BTreeMap<u64, u64> = BTreeMap::new();
        if let Some(map) = self.committed.get(&group) {
            for (index, c) in map {
                if let Some(w) = c.write {
                    if let Some(before) = committed_writes.insert(w, *index) {
                        return Err(format!(
                            "group {group}: write {w} was committed at {before} and at {index}"
                        ));
                    }
                }
            }
            for (index, c) in map.range(start.first_index..) {
                let Some(e) = by_index.get(index) else {
                    return Err(format!(
                        "group {group}: committed entry {index} is missing from node {node}'s \
                         final log (it starts at {})",
                        start.first_index
                    ));
                };
                if e.term != c.term || Content::of(e) != c.content {
                    return Err(format!(
                        "group {group}: committed entry {index}/{} became {}/{} in node {node}'s \
                         final log",
                        c.term, e.index, e.term
                    ));
                }
            }
        }
        let mut count: BTreeMap<u64, u64> = BTreeMap::new();
        for e in entries {
            if let Some(w) = write_id(e)? {
                *count.entry(w).or_default() += 1;
            }
        }
        if let Some((w, n)) = count.iter().find(|(_, n)| **n > 1) {
            return Err(format!(
                "group {group}: write {w} is in node {node}'s log {n} times"
            ));
        }
        for (w, &(g, index)) in &self.acked {
            if g != group || index < start.first_index {
                continue;
            }
            let held = match by_index.get(&index) {
                Some(e) => write_id(e)?,
                None => None,
            };
            if held != Some(*w) {
                return Err(format!(
                    "group {group}: acknowledged write {w} (entry {index}) is not in node \
                     {node}'s final log, which starts at {} (it holds {held:?} there)",
                    start.first_index
                ));
            }
        }
        Ok(())
    }

    /// A journal machine's new state: every machine has the same hash at the same index, and
    /// a machine's index never goes back, except to its own snapshot across a restart (which
    /// cannot be ahead of what the machine had applied).
    pub fn on_machine(&mut self, node: NodeId, state: State, how: Move) -> Result<(), String> {
        let g = machine::GROUP;
        self.stats.observe(&[node, state.index, state.hash, 31]);
        match self.machine_hashes.entry(state.index) {
            Slot::Occupied(first) if *first.get() != state.hash => {
                return Err(format!(
                    "node {node} group {g}: its machine has hash {:#x} at index {} ({how:?}); \
                     another machine had {:#x} there",
                    state.hash,
                    state.index,
                    first.get()
                ));
            }
            Slot::Occupied(_) => {}
            Slot::Vacant(slot) => {
                slot.insert(state.hash);
            }
        }
        let before = self.machine_index.insert(node, state.index).unwrap_or(0);
        match how {
            Move::Applied | Move::Restored if state.index < before => Err(format!(
                "node {node} group {g}: its machine went back from index {before} to {} without \
                 a restart ({how:?})",
                state.index
            )),
            Move::Reopened if state.index > before => Err(format!(
                "node {node} group {g}: reopened with a machine snapshot at {}, ahead of the {before} \
                 its machine had applied",
                state.index
            )),
            _ => Ok(()),
        }
    }

    /// The machine state that applying every entry reported committed in `1..=upto` makes, if
    /// the run saw each of them reported.
    pub fn replay_committed(&self, group: GroupId, upto: u64) -> Option<State> {
        let map = self.committed.get(&group)?;
        let mut state = State::default();
        for index in 1..=upto {
            let c = map.get(&index)?;
            if c.content.kind == EntryType::EntryNormal && !c.content.body.is_empty() {
                state.apply_data(index, &c.content.body);
            }
        }
        Some(state)
    }
}
