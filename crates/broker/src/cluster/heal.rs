//! Self-healing and reassignment: moving Raft groups from the configuration they have to the one
//! the controller wants.
//!
//! The wanted state lives in the controller (a partition's `target_replicas`); two loops move
//! reality toward it. Both look at the current Raft configuration every round and take the next
//! step only, so a lost proposal, a leader change or a crash merely delays them:
//!
//! - the controller's leader ([`Cluster::controller_duties`]) sets targets: the replicas of a node
//!   it has not heard from for `dead_node_timeout`, or of a removed node, go to the least-loaded
//!   live node ([`placement::replace`]), at most `MAX_CONCURRENT_MOVES` partitions at a time. It also keeps the controller group itself in shape:
//!   registered nodes join it as learners (so they replicate the cluster state), removed nodes
//!   leave it, and a joint configuration left behind by a leader change is left. A node silent
//!   for a broker session (`BROKER_SESSION`, or the dead-node timeout if shorter) is fenced:
//!   Metadata stops naming it until it is heard from again, as Kafka fences a broker whose
//!   heartbeats stopped.
//! - each partition's leader ([`drive_reassignment`]) walks its group to the target: newcomers
//!   join as learners and catch up from the log; then one joint-consensus change promotes them
//!   and removes the leavers (leadership moves first if the leader itself leaves); finally it
//!   reports `ReassignDone`. Raft never drops below the old quorum this way: the data stays on a
//!   majority of the old configuration until a majority of the new one has it.

use std::time::{Duration, Instant};

use strom_consensus::driver::GroupStatus;
use strom_consensus::raft::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};

use super::node::Cluster;
use super::placement;
use super::state::{ClusterState, Command, NodeId, PartitionAssignment};
use crate::Partition;

/// Kafka's `broker.session.timeout.ms` default.
const BROKER_SESSION: Duration = Duration::from_secs(9);

pub(super) fn change(change_type: ConfChangeType, node: NodeId) -> ConfChangeSingle {
    ConfChangeSingle {
        change_type,
        node_id: node,
        ..ConfChangeSingle::default()
    }
}

/// One configuration change; several changes at once go through a joint configuration that
/// raft-rs leaves by itself once it is committed.
pub(super) fn conf_change(changes: Vec<ConfChangeSingle>) -> ConfChangeV2 {
    ConfChangeV2 {
        transition: ConfChangeTransition::Auto,
        changes: changes.into(),
        ..ConfChangeV2::default()
    }
}

/// Proposes `cc` on `p`'s group unless a change is already in flight (Raft takes one at a time,
/// and raft-rs would turn a second one into an empty entry).
pub(super) fn propose_conf(p: &Partition, cc: ConfChangeV2, why: &str) {
    let result = p.with_driver(|d| {
        if d.has_pending_conf() {
            return Ok(());
        }
        tracing::info!(group = d.group(), changes = ?cc.changes, "{why}");
        d.propose_conf_change(cc)
    });
    if let Some(Err(e)) = result {
        tracing::debug!(partition = ?p, "configuration change not proposed: {e}");
    }
}

/// The next step of `pa`'s reassignment, taken by its leader `me`. Returns the report for the
/// controller once the group's configuration is the target (or, without a target, differs from
/// what the controller lists).
pub(super) fn drive_reassignment(
    p: &Partition,
    pa: &PartitionAssignment,
    status: &GroupStatus,
    me: NodeId,
) -> Option<Command> {
    let conf = p.with_driver(|d| d.conf_state())?;
    if !conf.voters_outgoing.is_empty() {
        // A joint configuration a former leader entered: raft-rs only leaves it automatically
        // on the leader that entered it.
        propose_conf(p, conf_change(Vec::new()), "leaving a joint configuration");
        return None;
    }
    let group = pa.group;
    let ConfState {
        voters, learners, ..
    } = &conf;
    let Some(target) = &pa.target_replicas else {
        // A learner left from a move that was called off (its target collapsed back onto the
        // replicas, e.g. when the node it replaced came back).
        if let Some(&n) = learners.iter().find(|n| !pa.replicas.contains(n)) {
            propose_conf(
                p,
                conf_change(vec![change(ConfChangeType::RemoveNode, n)]),
                "removing the learner of a cancelled move",
            );
            return None;
        }
        let same =
            voters.len() == pa.replicas.len() && voters.iter().all(|v| pa.replicas.contains(v));
        return (!same).then(|| Command::ReassignDone {
            group,
            replicas: voters.clone(),
        });
    };
    if let Some(&n) = target
        .iter()
        .find(|n| !voters.contains(n) && !learners.contains(n))
    {
        propose_conf(
            p,
            conf_change(vec![change(ConfChangeType::AddLearnerNode, n)]),
            "adding a learner",
        );
        return None;
    }
    let caught_up = |n: NodeId| status.progress.iter().any(|x| x.node == n && x.caught_up);
    let promote: Vec<NodeId> = target
        .iter()
        .copied()
        .filter(|n| learners.contains(n))
        .collect();
    let leave: Vec<NodeId> = voters
        .iter()
        .chain(learners)
        .copied()
        .filter(|n| !target.contains(n))
        .collect();
    if promote.is_empty() && leave.is_empty() {
        return Some(Command::ReassignDone {
            group,
            replicas: voters.clone(),
        });
    }
    if !promote.iter().all(|&n| caught_up(n)) {
        return None;
    }
    let mut changes: Vec<ConfChangeSingle> = promote
        .iter()
        .map(|&n| change(ConfChangeType::AddNode, n))
        .collect();
    if leave.contains(&me) {
        if changes.is_empty() {
            // Leadership goes to a caught-up voter that stays before this node leaves.
            if let Some(&next) = voters
                .iter()
                .find(|&&n| n != me && target.contains(&n) && caught_up(n))
            {
                tracing::info!(group, to = next, "handing leadership over before leaving");
                let _ = p.with_driver(|d| d.transfer_leader(next));
            }
            return None;
        }
        // Promote first; the handover and the removal follow in later rounds.
    } else {
        changes.extend(leave.iter().map(|&n| change(ConfChangeType::RemoveNode, n)));
    }
    propose_conf(p, conf_change(changes), "moving replicas");
    None
}

/// The membership of a journal's group (the controller's, a front end's): registered nodes
/// join as learners, removed ones leave, a left-behind joint configuration is left. Voters
/// are added only on request (`strom cluster add-node`).
pub(super) fn journal_membership(
    state: &ClusterState,
    conf: &ConfState,
    me: NodeId,
    eligible: &dyn Fn(NodeId) -> bool,
) -> Option<ConfChangeV2> {
    if !conf.voters_outgoing.is_empty() {
        return Some(conf_change(Vec::new()));
    }
    let member = |n: &NodeId| conf.voters.contains(n) || conf.learners.contains(n);
    let joins = |n: &&NodeId| !member(n) && eligible(**n);
    if let Some(&n) = state.live_nodes().iter().find(joins) {
        return Some(conf_change(vec![change(ConfChangeType::AddLearnerNode, n)]));
    }
    // A removed node that still holds replicas stays a learner: it must keep applying the
    // controller's log to see the moves planned for its partitions and, where it leads, to
    // carry them out (hand leadership over, leave). It goes once nothing is placed on it.
    let holds_replicas = |n: NodeId| {
        state
            .topics
            .values()
            .any(|t| t.partitions.iter().any(|pa| pa.hosts(n)))
    };
    let (removed, kind) = state.removed_nodes.iter().copied().find_map(|n| {
        if n == me || !member(&n) || conf.voters == [n] {
            return None;
        }
        if !holds_replicas(n) {
            Some((n, ConfChangeType::RemoveNode))
        } else if conf.voters.contains(&n) {
            Some((n, ConfChangeType::AddLearnerNode))
        } else {
            None
        }
    })?;
    Some(conf_change(vec![change(kind, removed)]))
}

impl Cluster {
    /// The internal topics (`__consumer_offsets`, `__transaction_state`), replicated like any
    /// topic, created as soon as enough nodes have registered for their replication factor
    /// (the founding voters' count, at most 3); ones created before compaction existed are
    /// made compacted.
    async fn create_internal_topics(&self, state: &ClusterState) {
        let rf = self.config().peers.len().clamp(1, 3);
        if state.live_nodes().len() < rf {
            return;
        }
        for topic in crate::internal::INTERNAL_TOPICS {
            if let Some(existing) = state.topics.get(topic.name) {
                // Created before compaction existed: compact it now.
                if let Some(config) = crate::internal::upgraded(&existing.config) {
                    let cmd = Command::AlterTopicConfig {
                        name: topic.name.to_string(),
                        config,
                    };
                    if let Err(e) = self.propose(cmd).await {
                        tracing::debug!("{} not upgraded to compaction yet: {e}", topic.name);
                    }
                }
                continue;
            }
            let cmd = Command::CreateTopic {
                name: topic.name.to_string(),
                id: uuid::Uuid::new_v4(),
                partitions: topic.partitions as u32,
                replication_factor: rf as u32,
                config: crate::internal::overrides(),
                now_ms: crate::now_ms(),
            };
            if let Err(e) = self.propose(cmd).await {
                tracing::debug!("{} not created yet: {e}", topic.name);
            }
        }
    }

    /// The controller leader's round: controller membership, then replacement of the replicas of
    /// dead and removed nodes.
    pub(super) async fn controller_duties(&self) {
        let me = self.node_id();
        let now = Instant::now();
        let Some((term, conf, pending)) = self
            .controller()
            .with_driver(|d| (d.role().term, d.conf_state(), d.has_pending_conf()))
        else {
            return;
        };
        let since = {
            let mut leading = self.leading_since.lock().unwrap_or_else(|e| e.into_inner());
            match *leading {
                Some((t, at)) if t == term => at,
                _ => {
                    *leading = Some((term, now));
                    now
                }
            }
        };
        let state = self.state();
        if !pending {
            if let Some(cc) = journal_membership(&state, &conf, me, &|_| true) {
                propose_conf(self.controller(), cc, "controller membership");
            }
        }
        if state.removed_nodes.contains(&me) && conf.voters.len() > 1 {
            if let Some(&next) = conf
                .voters
                .iter()
                .find(|n| !state.removed_nodes.contains(n))
            {
                let _ = self.controller().with_driver(|d| d.transfer_leader(next));
            }
        }
        self.create_internal_topics(&state).await;
        let timeout = self.config().dead_node_timeout;
        let gone = |n: NodeId| {
            state.removed_nodes.contains(&n)
                || (n != me
                    && now.duration_since(self.last_seen(n).map_or(since, |t| t.max(since)))
                        >= timeout)
        };
        let mut commands = Vec::new();
        let session = BROKER_SESSION.min(timeout);
        for n in state.live_nodes() {
            let last = self.last_seen(n);
            let fenced = state.fenced_nodes.contains(&n);
            // Fenced after a whole session of silence (counted from when this node began to
            // lead, as it cannot know before); unfenced only on hearing from it, so a new
            // controller leader does not bring back every dead node for a session.
            let silent =
                n != me && now.duration_since(last.map_or(since, |t| t.max(since))) >= session;
            let heard = n == me || last.is_some_and(|t| now.duration_since(t) < session);
            if (silent && !fenced) || (fenced && heard) {
                commands.push(Command::SetFenced {
                    node: n,
                    fenced: silent,
                });
            }
        }
        commands.extend(plan_replacements(&state, gone, MAX_CONCURRENT_MOVES));
        for cmd in commands {
            if let Err(e) = self.propose(cmd).await {
                tracing::debug!("controller command not proposed: {e}");
                return;
            }
        }
    }
}

/// Replicas being rebuilt at once, cluster-wide (Redpanda's default for its balancer's concurrent
/// moves). A node that dies holding many partitions must not have every one of them copied at
/// the same time: the rest wait for a later round.
const MAX_CONCURRENT_MOVES: usize = 50;

/// One `Reassign` per partition that has a replica on a `gone` node, moving it to the least
/// loaded live node, while fewer than `max_moves` partitions are moving (those with a target
/// count, whoever set it); and one per moving partition whose newcomer is `gone`, to another
/// node, whatever the count.
fn plan_replacements(
    state: &ClusterState,
    gone: impl Fn(NodeId) -> bool,
    max_moves: usize,
) -> Vec<Command> {
    // A fenced node (silent for a session) is no place to rebuild a replica either.
    let live: Vec<NodeId> = state
        .live_nodes()
        .into_iter()
        .filter(|&n| !gone(n) && !state.fenced_nodes.contains(&n))
        .collect();
    let mut load = state.replica_load();
    let partitions = || {
        state.topics.values().flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, pa)| (t.name.as_str(), i, pa))
        })
    };
    let mut moving = partitions()
        .filter(|(_, _, pa)| pa.target_replicas.is_some())
        .count();
    let mut commands = Vec::new();
    for (topic, index, pa) in partitions() {
        let target = match &pa.target_replicas {
            // A move whose newcomer died (or was removed) before it finished would wait for it
            // forever: another node takes its place. It is the same move, not a new one.
            // A removed node anywhere in the target makes it invalid as well.
            Some(target) => {
                let stale = |n: NodeId| {
                    state.removed_nodes.contains(&n) || (gone(n) && !pa.replicas.contains(&n))
                };
                let mut next = target.clone();
                // Each step swaps one stale node for a live one, so this ends.
                while let Some(&bad) = next.iter().find(|&&n| stale(n)) {
                    match placement::replace(&next, bad, &live, &load) {
                        Some(t) => next = t,
                        None => break,
                    }
                }
                if next == *target || next.iter().any(|&n| stale(n)) {
                    continue;
                }
                tracing::warn!(
                    topic,
                    partition = index,
                    from = ?target,
                    to = ?next,
                    "a node of a move's target is gone: moving to another node instead"
                );
                next
            }
            None if moving < max_moves => {
                let Some(&dead) = pa.replicas.iter().find(|&&n| gone(n)) else {
                    continue;
                };
                let Some(next) = placement::replace(&pa.replicas, dead, &live, &load) else {
                    continue;
                };
                tracing::warn!(
                    topic,
                    partition = index,
                    node = dead,
                    target = ?next,
                    "rebuilding the replica of a dead or removed node"
                );
                moving += 1;
                next
            }
            None => continue,
        };
        if let Some(&newcomer) = target.last() {
            *load.entry(newcomer).or_insert(0) += 1;
        }
        commands.push(Command::Reassign {
            group: pa.group,
            target,
        });
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::NodeInfo;

    fn register(s: &mut ClusterState, id: NodeId) {
        s.apply(&Command::RegisterNode(NodeInfo {
            id,
            kafka_host: "h".to_string(),
            kafka_port: 1,
            raft_addr: "h:2".to_string(),
            registered_ms: 0,
            endpoints: Default::default(),
        }))
        .unwrap();
    }

    fn state(nodes: &[NodeId], removed: &[NodeId]) -> ClusterState {
        let mut s = ClusterState::new("c".to_string());
        for &id in nodes {
            register(&mut s, id);
        }
        for &node in removed {
            s.apply(&Command::RemoveNode { node }).unwrap();
        }
        s
    }

    fn conf(voters: &[NodeId], learners: &[NodeId], outgoing: &[NodeId]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            ..ConfState::default()
        }
    }

    fn only(cc: Option<ConfChangeV2>) -> Vec<(ConfChangeType, NodeId)> {
        cc.expect("a change")
            .changes
            .iter()
            .map(|c| (c.change_type, c.node_id))
            .collect()
    }

    #[test]
    fn a_registered_node_joins_the_controller_as_a_learner() {
        let s = state(&[1, 2, 3, 4], &[]);
        let cc = journal_membership(&s, &conf(&[1, 2, 3], &[], &[]), 1, &|_| true);
        assert_eq!(only(cc), vec![(ConfChangeType::AddLearnerNode, 4)]);
        assert!(journal_membership(&s, &conf(&[1, 2, 3], &[4], &[]), 1, &|_| true).is_none());
    }

    #[test]
    fn a_front_end_journal_adds_only_nodes_that_serve_it() {
        let s = state(&[1, 2, 3, 4, 5], &[]);
        let serves = |n: NodeId| n != 4;
        let cc = journal_membership(&s, &conf(&[1, 2, 3], &[], &[]), 1, &serves);
        assert_eq!(only(cc), vec![(ConfChangeType::AddLearnerNode, 5)]);
        assert!(journal_membership(&s, &conf(&[1, 2, 3], &[5], &[]), 1, &serves).is_none());
    }

    #[test]
    fn a_removed_node_leaves_the_controller_but_never_the_last_voter_or_the_leader() {
        let s = state(&[1, 2, 3], &[3]);
        let cc = journal_membership(&s, &conf(&[1, 2, 3], &[], &[]), 1, &|_| true);
        assert_eq!(only(cc), vec![(ConfChangeType::RemoveNode, 3)]);
        let s = state(&[1, 2], &[1]);
        assert!(journal_membership(&s, &conf(&[1, 2], &[], &[]), 1, &|_| true).is_none());
        let s = state(&[1], &[1]);
        assert!(journal_membership(&s, &conf(&[1], &[], &[]), 2, &|_| true).is_none());
    }

    #[test]
    fn a_removed_node_holding_replicas_is_demoted_to_learner_until_drained() {
        let mut s = state(&[1, 2, 3], &[]);
        s.apply(&Command::CreateTopic {
            name: "t".to_string(),
            id: uuid::Uuid::from_u128(9),
            partitions: 1,
            replication_factor: 3,
            config: Default::default(),
            now_ms: 0,
        })
        .unwrap();
        s.apply(&Command::RemoveNode { node: 3 }).unwrap();
        // Still a replica: it keeps following the controller's log, as a learner.
        let cc = journal_membership(&s, &conf(&[1, 2, 3], &[], &[]), 1, &|_| true);
        assert_eq!(only(cc), vec![(ConfChangeType::AddLearnerNode, 3)]);
        assert!(journal_membership(&s, &conf(&[1, 2], &[3], &[]), 1, &|_| true).is_none());
        // Drained: it leaves.
        s.topics.clear();
        let cc = journal_membership(&s, &conf(&[1, 2], &[3], &[]), 1, &|_| true);
        assert_eq!(only(cc), vec![(ConfChangeType::RemoveNode, 3)]);
    }

    #[test]
    fn replacements_stop_at_the_cap_on_concurrent_moves() {
        let mut s = state(&[1, 2, 3, 4], &[]);
        s.apply(&Command::CreateTopic {
            name: "t".to_string(),
            id: uuid::Uuid::from_u128(7),
            partitions: 8,
            replication_factor: 3,
            config: Default::default(),
            now_ms: 0,
        })
        .unwrap();
        let on_3 = s.topics["t"]
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&3))
            .count();
        assert!(on_3 > 3, "placement puts most of 8 partitions on node 3");
        let gone = |n: NodeId| n == 3;
        let all = plan_replacements(&s, gone, usize::MAX);
        assert_eq!(all.len(), on_3, "one move per partition on the dead node");
        let first = plan_replacements(&s, gone, 2);
        assert_eq!(first.len(), 2);
        for cmd in &first {
            let Command::Reassign { target, .. } = cmd else {
                panic!("{cmd:?}")
            };
            assert!(!target.contains(&3), "{target:?}");
            s.apply(cmd).unwrap();
        }
        assert!(
            plan_replacements(&s, gone, 2).is_empty(),
            "two are moving already"
        );
        assert_eq!(plan_replacements(&s, gone, 3).len(), 1);
        assert_eq!(plan_replacements(&s, gone, usize::MAX).len(), on_3 - 2);
        // Node 4 fenced: never the newcomer (a partition on 1, 2 and 3 has nowhere to go).
        s.apply(&Command::SetFenced {
            node: 4,
            fenced: true,
        })
        .unwrap();
        for cmd in plan_replacements(&s, gone, usize::MAX) {
            let Command::Reassign { target, .. } = &cmd else {
                panic!("{cmd:?}")
            };
            // The newcomer comes last.
            assert_ne!(
                target.last(),
                Some(&4),
                "a fenced node was chosen: {target:?}"
            );
        }
    }

    #[test]
    fn a_move_whose_newcomer_dies_goes_to_another_node() {
        let mut s = state(&[1, 2, 3], &[]);
        s.apply(&Command::CreateTopic {
            name: "t".to_string(),
            id: uuid::Uuid::from_u128(7),
            partitions: 1,
            replication_factor: 3,
            config: Default::default(),
            now_ms: 0,
        })
        .unwrap();
        for id in [4, 5, 6] {
            register(&mut s, id);
        }
        let moves = |s: &ClusterState, gone: &[NodeId], cap: usize| {
            plan_replacements(s, |n| gone.contains(&n), cap)
                .into_iter()
                .map(|cmd| match cmd {
                    Command::Reassign { target, .. } => target,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        let first = moves(&s, &[3], usize::MAX);
        assert_eq!(first, vec![vec![1, 2, 4]], "the least loaded, lowest id");
        s.apply(&Command::Reassign {
            group: s.topics["t"].partitions[0].group,
            target: first[0].clone(),
        })
        .unwrap();
        assert!(moves(&s, &[3], usize::MAX).is_empty(), "already moving");

        // Node 4 dies before it caught up: the move goes to node 5 instead, even at the cap,
        // and the replicas that stay keep their place.
        assert_eq!(moves(&s, &[3, 4], 1), vec![vec![1, 2, 5]]);
        assert_eq!(moves(&s, &[3, 4], 0), vec![vec![1, 2, 5]]);
        // A replica that stays dying is no reason to re-plan: the move finishes, then that
        // replica is replaced like any other.
        assert!(moves(&s, &[3, 2], usize::MAX).is_empty());
        // Nowhere else to go: the move is left as it is.
        assert!(moves(&s, &[3, 4, 5, 6], usize::MAX).is_empty());
        // A replica that stays, once removed, makes the target invalid too: both it and the
        // dead newcomer are replaced in one go.
        s.apply(&Command::RemoveNode { node: 2 }).unwrap();
        let gone = [2, 3, 4];
        let next = moves(&s, &gone, usize::MAX);
        assert_eq!(next, vec![vec![1, 5, 6]]);
        s.apply(&Command::Reassign {
            group: s.topics["t"].partitions[0].group,
            target: next[0].clone(),
        })
        .expect("a valid target");
    }

    #[test]
    fn a_joint_configuration_is_left_first() {
        let s = state(&[1, 2, 3, 4], &[]);
        let cc = journal_membership(&s, &conf(&[1, 2, 4], &[], &[1, 2, 3]), 1, &|_| true)
            .expect("leave");
        assert!(
            cc.changes.is_empty(),
            "an empty change leaves the joint configuration"
        );
    }
}
