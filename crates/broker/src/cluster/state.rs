//! The controller's state: registered nodes, topics and where each partition's replicas live.
//!
//! Every node applies the controller's committed [`Command`]s in log order with
//! [`ClusterState::apply`], so `apply` is deterministic: no clock (times arrive inside commands),
//! no randomness (ids arrive inside commands), no `HashMap` iteration. A command that fails
//! validation changes nothing, on every node alike; its error only tells the proposer why.
//!
//! Reports from partition leaders (`SetLeader`, `SetIsr`) can arrive late, after a newer term
//! was reported, because any node may propose them; the leader epoch (the partition's Raft term)
//! decides which one stands.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::placement;

/// A node of the cluster; never 0.
pub type NodeId = u64;
/// A Raft group: 0 is the controller itself, partitions get 1, 2, 3, ... in creation order.
pub type GroupId = u64;

/// The controller's own Raft group.
pub const CONTROLLER_GROUP: GroupId = 0;
/// Most partitions a topic may have: the single-node broker's limit.
pub const PARTITIONS_MAX: u32 = crate::PARTITIONS_MAX as u32;

/// How to reach a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Advertised to Kafka clients in Metadata responses.
    pub kafka_host: String,
    pub kafka_port: u16,
    /// Where peers send Raft messages.
    pub raft_addr: String,
    /// When the node last registered (the proposer's clock; milliseconds since the UNIX epoch).
    pub registered_ms: i64,
    /// Its front ends' client URLs by name (`etcd`: what etcd's MemberList lists).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub endpoints: std::collections::BTreeMap<String, String>,
}

/// One partition: its Raft group and where its replicas live.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub group: GroupId,
    /// The replica set; the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    /// The Raft leader as last reported; `None` until the first report, and after the reported
    /// leader left the replica set.
    pub leader: Option<NodeId>,
    /// The Raft term of the reported leader: Kafka's leader epoch.
    pub leader_epoch: u64,
    /// Caught-up replicas as last reported by the leader.
    pub isr: Vec<NodeId>,
    /// The desired replica set while a reassignment is in progress.
    pub target_replicas: Option<Vec<NodeId>>,
    /// DeleteRecords: no offset below this is served; replicas delete the segments below it.
    #[serde(default)]
    pub log_start: u64,
    /// Tiered storage: what the object store holds of this partition. Only committed changes
    /// count, so every replica deletes local segments only once their upload is recorded.
    #[serde(default, skip_serializing_if = "strom_tier::Manifest::is_empty")]
    pub remote: strom_tier::Manifest,
}

impl PartitionAssignment {
    /// Whether `node` holds a replica or is to hold one once a reassignment completes.
    pub fn hosts(&self, node: NodeId) -> bool {
        self.replicas.contains(&node)
            || self
                .target_replicas
                .as_ref()
                .is_some_and(|t| t.contains(&node))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TopicState {
    pub name: String,
    pub id: Uuid,
    /// Kafka topic config overrides (`retention.ms`, ...), as given; the broker applies defaults.
    pub config: BTreeMap<String, String>,
    /// Index `i` is partition `i`.
    pub partitions: Vec<PartitionAssignment>,
    /// Replicas per partition at creation, used again for partitions added later (a partition
    /// being reassigned may temporarily have another count).
    pub replication_factor: u32,
    /// `now_ms` of the `CreateTopic` command.
    pub created_ms: i64,
}

/// The cluster metadata every node holds a copy of.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClusterState {
    pub cluster_id: String,
    /// Every node that ever registered, removed ones included: their addresses are still needed
    /// while their replicas move elsewhere.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub topics: BTreeMap<String, TopicState>,
    /// The next partition's group id. Only grows: a deleted topic's group ids are never handed
    /// out again, so a lingering Raft log of a deleted partition cannot pass for a new one.
    pub next_group_id: GroupId,
    /// Decommissioned nodes: placement never uses them again.
    pub removed_nodes: BTreeSet<NodeId>,
    /// Nodes the controller has not heard from for a broker session (Kafka's fencing): left out
    /// of Metadata, so clients do not keep dialling a dead node. Cleared when it is heard again.
    #[serde(default)]
    pub fenced_nodes: BTreeSet<NodeId>,
    /// Users, ACLs and quotas: in the controller so every node enforces the same set as soon
    /// as it applies the change.
    #[serde(default)]
    pub security: strom_auth::SecurityState,
    /// group -> (topic, partition index); derived from `topics`, so not encoded, and rebuilt on
    /// decode. Kept in step by `apply`: code that edits `topics` directly must call
    /// [`ClusterState::rebuild_index`].
    #[serde(skip)]
    groups: BTreeMap<GroupId, (String, u32)>,
}

impl Default for ClusterState {
    fn default() -> Self {
        ClusterState::new(String::new())
    }
}

/// A change to the cluster metadata, as committed in the controller's log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Insert, or update the addresses of a node that restarted. A removed node may update its
    /// addresses (its replicas may still be moving away) but stays removed.
    RegisterNode(NodeInfo),
    CreateTopic {
        name: String,
        /// Chosen by the proposer: `apply` takes no randomness.
        id: Uuid,
        partitions: u32,
        replication_factor: u32,
        config: BTreeMap<String, String>,
        now_ms: i64,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows a topic to `count` partitions; never shrinks.
    CreatePartitions {
        name: String,
        count: u32,
    },
    /// A partition's Raft leader reports itself. Ignored unless `epoch` >= the current leader
    /// epoch: a report from an old term must not win over a newer one.
    SetLeader {
        group: GroupId,
        leader: NodeId,
        epoch: u64,
    },
    /// The leader reports its caught-up replicas. Ignored unless (`leader`, `epoch`) are the
    /// current leader and epoch.
    SetIsr {
        group: GroupId,
        leader: NodeId,
        epoch: u64,
        isr: Vec<NodeId>,
    },
    /// The desired replica set: sets `target_replicas`, or clears it when `target` is already the
    /// replica set. A mere reordering (same nodes) needs no Raft change and applies at once.
    Reassign {
        group: GroupId,
        target: Vec<NodeId>,
    },
    /// The partition's leader reports that its Raft configuration now is `replicas` (an
    /// intermediate step or the target): sets the replica set, and clears the target once it is
    /// reached.
    ReassignDone {
        group: GroupId,
        replicas: Vec<NodeId>,
    },
    /// Decommissions a node: it stays known but placement never uses it again.
    RemoveNode {
        node: NodeId,
    },
    /// Replaces the topic's config overrides as a whole (incremental changes are merged by the
    /// proposer).
    AlterTopicConfig {
        name: String,
        config: BTreeMap<String, String>,
    },
    /// DeleteRecords: raises a partition's log start (never lowers it).
    SetLogStart {
        group: GroupId,
        offset: u64,
    },
    /// Tiered storage: the partition's leader uploaded a segment, or retention removes remote
    /// segments. An upload of a range already recorded (a deposed leader's) is ignored.
    TierManifest {
        group: GroupId,
        change: strom_tier::ManifestChange,
    },
    /// Users, ACLs, quotas.
    Security(strom_auth::Command),
    /// The controller's leader lost (or regained) contact with a node for a broker session.
    SetFenced {
        node: NodeId,
        fenced: bool,
    },
}

impl Command {
    /// The command's bytes in the controller's log (JSON).
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: no custom serializer, and the only maps have string keys.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("bad controller command: {e}"))
    }
}

/// Why a command changed nothing.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("invalid topic name {0}")]
    InvalidTopicName(String),
    #[error("replication factor {requested} is not between 1 and the {available} live nodes")]
    InvalidReplicationFactor { requested: u32, available: u32 },
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    #[error("node id must not be 0")]
    InvalidNodeId,
    #[error("node {0} was removed from the cluster")]
    NodeRemoved(NodeId),
    #[error("invalid replica set: {0}")]
    InvalidReplicas(String),
}

/// What a command changed, so the node can react (open or close a partition's Raft group, update
/// the Kafka metadata cache, ...). `Nothing` for an accepted command that changed nothing: a
/// stale report, a repeated registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    NodeChanged(NodeId),
    TopicCreated(String),
    TopicDeleted(String),
    /// Partitions `from..to` were added.
    PartitionsCreated {
        topic: String,
        from: u32,
        to: u32,
    },
    LeaderChanged(GroupId),
    IsrChanged(GroupId),
    ReassignmentChanged(GroupId),
    NodeRemoved(NodeId),
    TopicConfigChanged(String),
    LogStartChanged(GroupId),
}

impl ClusterState {
    /// An empty cluster; the first partition gets group 1.
    pub fn new(cluster_id: String) -> Self {
        ClusterState {
            cluster_id,
            nodes: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_group_id: 1,
            removed_nodes: BTreeSet::new(),
            fenced_nodes: BTreeSet::new(),
            security: Default::default(),
            groups: BTreeMap::new(),
        }
    }

    /// Applies one committed command. Deterministic: the same commands in the same order give the
    /// same state on every node. On error the state is unchanged.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, ApplyError> {
        match cmd {
            Command::RegisterNode(info) => self.register_node(info),
            Command::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                config,
                now_ms,
            } => self.create_topic(name, *id, *partitions, *replication_factor, config, *now_ms),
            Command::DeleteTopic { name } => self.delete_topic(name),
            Command::CreatePartitions { name, count } => self.create_partitions(name, *count),
            Command::SetLeader {
                group,
                leader,
                epoch,
            } => self.set_leader(*group, *leader, *epoch),
            Command::SetIsr {
                group,
                leader,
                epoch,
                isr,
            } => self.set_isr(*group, *leader, *epoch, isr),
            Command::Reassign { group, target } => self.reassign(*group, target),
            Command::ReassignDone { group, replicas } => self.reassign_done(*group, replicas),
            Command::RemoveNode { node } => self.remove_node(*node),
            Command::AlterTopicConfig { name, config } => self.alter_topic_config(name, config),
            Command::SetFenced { node, fenced } => self.set_fenced(*node, *fenced),
            Command::SetLogStart { group, offset } => {
                let p = self.partition_mut(*group)?;
                if *offset <= p.log_start {
                    return Ok(Applied::Nothing);
                }
                p.log_start = *offset;
                Ok(Applied::LogStartChanged(*group))
            }
            Command::TierManifest { group, change } => {
                let p = self.partition_mut(*group)?;
                Ok(if p.remote.apply(change) {
                    Applied::LogStartChanged(*group)
                } else {
                    Applied::Nothing
                })
            }
            Command::Security(cmd) => {
                self.security.apply(cmd);
                Ok(Applied::Nothing)
            }
        }
    }

    /// The partition a Raft group serves: (topic, partition index, assignment).
    pub fn partition_by_group(&self, group: GroupId) -> Option<(&str, u32, &PartitionAssignment)> {
        let (topic, index) = self.groups.get(&group)?;
        let t = self.topics.get(topic)?;
        Some((t.name.as_str(), *index, t.partitions.get(*index as usize)?))
    }

    /// Every partition with `node` among its replicas or its target replicas, in topic and
    /// partition order.
    pub fn partitions_on(&self, node: NodeId) -> Vec<(String, u32, PartitionAssignment)> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.hosts(node) {
                    out.push((t.name.clone(), i as u32, p.clone()));
                }
            }
        }
        out
    }

    /// Registered and not removed, ascending.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|n| !self.removed_nodes.contains(n))
            .collect()
    }

    /// Partitions each node hosts (replicas or target replicas), for placement. Every registered
    /// node has an entry, idle ones with 0.
    pub fn replica_load(&self) -> BTreeMap<NodeId, usize> {
        let mut load: BTreeMap<NodeId, usize> = self.nodes.keys().map(|&n| (n, 0)).collect();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            let target = p.target_replicas.as_deref().unwrap_or(&[]);
            let extra = target.iter().filter(|n| !p.replicas.contains(n));
            for &n in p.replicas.iter().chain(extra) {
                *load.entry(n).or_insert(0) += 1;
            }
        }
        load
    }

    /// Snapshot bytes (JSON). The group index is left out and rebuilt by [`ClusterState::decode`].
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: no custom serializer, and map keys are strings or integers.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut state: ClusterState =
            serde_json::from_slice(bytes).map_err(|e| format!("bad controller snapshot: {e}"))?;
        state.rebuild_index();
        Ok(state)
    }

    /// Recomputes the group index from `topics`.
    pub fn rebuild_index(&mut self) {
        self.groups = self
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.group, (t.name.clone(), i as u32)))
            })
            .collect();
    }

    fn register_node(&mut self, info: &NodeInfo) -> Result<Applied, ApplyError> {
        if info.id == 0 {
            return Err(ApplyError::InvalidNodeId);
        }
        if self.nodes.get(&info.id) == Some(info) {
            return Ok(Applied::Nothing);
        }
        self.nodes.insert(info.id, info.clone());
        Ok(Applied::NodeChanged(info.id))
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: Uuid,
        partitions: u32,
        replication_factor: u32,
        config: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Applied, ApplyError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(ApplyError::TopicExists(name.to_string()));
        }
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(ApplyError::InvalidPartitions(format!(
                "{partitions} (must be between 1 and {PARTITIONS_MAX})"
            )));
        }
        let sets = placement::assign(
            name,
            0,
            partitions,
            replication_factor,
            &self.live_nodes(),
            &self.replica_load(),
        )?;
        let assignments = self.new_partitions(sets)?;
        self.topics.insert(
            name.to_string(),
            TopicState {
                name: name.to_string(),
                id,
                config: config.clone(),
                partitions: Vec::new(),
                replication_factor,
                created_ms: now_ms,
            },
        );
        self.add_partitions(name, assignments);
        tracing::debug!(
            topic = name,
            partitions,
            replication_factor,
            "topic created"
        );
        Ok(Applied::TopicCreated(name.to_string()))
    }

    fn delete_topic(&mut self, name: &str) -> Result<Applied, ApplyError> {
        let topic = self
            .topics
            .remove(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.to_string()))?;
        for p in &topic.partitions {
            self.groups.remove(&p.group);
        }
        Ok(Applied::TopicDeleted(name.to_string()))
    }

    fn create_partitions(&mut self, name: &str, count: u32) -> Result<Applied, ApplyError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.to_string()))?;
        let current = topic.partitions.len() as u32;
        if count <= current {
            return Err(ApplyError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count must be larger, not {count}"
            )));
        }
        if count > PARTITIONS_MAX {
            return Err(ApplyError::InvalidPartitions(format!(
                "{count} exceeds {PARTITIONS_MAX}"
            )));
        }
        let sets = placement::assign(
            name,
            current,
            count - current,
            topic.replication_factor,
            &self.live_nodes(),
            &self.replica_load(),
        )?;
        let assignments = self.new_partitions(sets)?;
        self.add_partitions(name, assignments);
        Ok(Applied::PartitionsCreated {
            topic: name.to_string(),
            from: current,
            to: count,
        })
    }

    fn set_leader(
        &mut self,
        group: GroupId,
        leader: NodeId,
        epoch: u64,
    ) -> Result<Applied, ApplyError> {
        // Membership in the replica set is not checked: Raft decides who leads, and while
        // reassignments overlap its configuration may hold nodes in neither list. Metadata that
        // names the real leader routes clients right.
        if !self.nodes.contains_key(&leader) {
            return Err(ApplyError::UnknownNode(leader));
        }
        let p = self.partition_mut(group)?;
        if epoch < p.leader_epoch {
            tracing::debug!(
                group,
                leader,
                epoch,
                current = p.leader_epoch,
                "stale leader report"
            );
            return Ok(Applied::Nothing);
        }
        if p.leader == Some(leader) && p.leader_epoch == epoch {
            return Ok(Applied::Nothing);
        }
        p.leader = Some(leader);
        p.leader_epoch = epoch;
        // Raft elects only a node holding every committed entry: the new leader is in sync,
        // which the preferred-leader check relies on before its first ISR report.
        if !p.isr.contains(&leader) {
            p.isr.push(leader);
        }
        Ok(Applied::LeaderChanged(group))
    }

    fn set_isr(
        &mut self,
        group: GroupId,
        leader: NodeId,
        epoch: u64,
        isr: &[NodeId],
    ) -> Result<Applied, ApplyError> {
        let known = |n: &NodeId| self.nodes.contains_key(n);
        if let Some(&n) = isr.iter().find(|n| !known(n)) {
            return Err(ApplyError::UnknownNode(n));
        }
        let p = self.partition_mut(group)?;
        if p.leader != Some(leader) || p.leader_epoch != epoch {
            tracing::debug!(group, leader, epoch, "ISR report from a former leader");
            return Ok(Applied::Nothing);
        }
        let isr = dedup(isr);
        if p.isr == isr {
            return Ok(Applied::Nothing);
        }
        p.isr = isr;
        Ok(Applied::IsrChanged(group))
    }

    fn reassign(&mut self, group: GroupId, target: &[NodeId]) -> Result<Applied, ApplyError> {
        check_replica_list(target)?;
        for n in target {
            if !self.nodes.contains_key(n) {
                return Err(ApplyError::UnknownNode(*n));
            }
            if self.removed_nodes.contains(n) {
                return Err(ApplyError::NodeRemoved(*n));
            }
        }
        let p = self.partition_mut(group)?;
        let (replicas, target_replicas) = if same_set(target, &p.replicas) {
            (target.to_vec(), None)
        } else {
            (p.replicas.clone(), Some(target.to_vec()))
        };
        if p.replicas == replicas && p.target_replicas == target_replicas {
            return Ok(Applied::Nothing);
        }
        p.replicas = replicas;
        p.target_replicas = target_replicas;
        Ok(Applied::ReassignmentChanged(group))
    }

    fn reassign_done(
        &mut self,
        group: GroupId,
        reported: &[NodeId],
    ) -> Result<Applied, ApplyError> {
        check_replica_list(reported)?;
        // Removed nodes are allowed: moving replicas off them goes through such configurations.
        if let Some(&n) = reported.iter().find(|n| !self.nodes.contains_key(n)) {
            return Err(ApplyError::UnknownNode(n));
        }
        let p = self.partition_mut(group)?;
        let (replicas, target) = match &p.target_replicas {
            // The target's order, which carries the wanted preferred leader.
            Some(t) if same_set(t, reported) => (t.clone(), None),
            t => (order_like(&p.replicas, t.as_deref(), reported), t.clone()),
        };
        // Nodes outside the Raft configuration neither lead nor stay in sync.
        let isr: Vec<NodeId> = p
            .isr
            .iter()
            .copied()
            .filter(|n| replicas.contains(n))
            .collect();
        let leader = p.leader.filter(|l| replicas.contains(l));
        if p.replicas == replicas
            && p.target_replicas == target
            && p.isr == isr
            && p.leader == leader
        {
            return Ok(Applied::Nothing);
        }
        p.replicas = replicas;
        p.target_replicas = target;
        p.isr = isr;
        p.leader = leader;
        Ok(Applied::ReassignmentChanged(group))
    }

    fn remove_node(&mut self, node: NodeId) -> Result<Applied, ApplyError> {
        if !self.nodes.contains_key(&node) {
            return Err(ApplyError::UnknownNode(node));
        }
        if !self.removed_nodes.insert(node) {
            return Ok(Applied::Nothing);
        }
        Ok(Applied::NodeRemoved(node))
    }

    fn set_fenced(&mut self, node: NodeId, fenced: bool) -> Result<Applied, ApplyError> {
        if !self.nodes.contains_key(&node) {
            return Err(ApplyError::UnknownNode(node));
        }
        let changed = if fenced {
            self.fenced_nodes.insert(node)
        } else {
            self.fenced_nodes.remove(&node)
        };
        Ok(if changed {
            Applied::NodeChanged(node)
        } else {
            Applied::Nothing
        })
    }

    fn alter_topic_config(
        &mut self,
        name: &str,
        config: &BTreeMap<String, String>,
    ) -> Result<Applied, ApplyError> {
        let topic = self
            .topics
            .get_mut(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.to_string()))?;
        if topic.config == *config {
            return Ok(Applied::Nothing);
        }
        topic.config = config.clone();
        Ok(Applied::TopicConfigChanged(name.to_string()))
    }

    fn partition_mut(&mut self, group: GroupId) -> Result<&mut PartitionAssignment, ApplyError> {
        let (topic, index) = self
            .groups
            .get(&group)
            .ok_or(ApplyError::UnknownGroup(group))?;
        self.topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(*index as usize))
            .ok_or(ApplyError::UnknownGroup(group))
    }

    /// Fresh assignments for `sets`, with group ids from `next_group_id`, which is advanced. Fails
    /// (changing nothing) only if the ids ran out.
    fn new_partitions(
        &mut self,
        sets: Vec<Vec<NodeId>>,
    ) -> Result<Vec<PartitionAssignment>, ApplyError> {
        // A state built with `Default` or decoded from a faulty snapshot must not hand out the
        // controller's group.
        let first = self.next_group_id.max(CONTROLLER_GROUP + 1);
        let end = first
            .checked_add(sets.len() as u64)
            .ok_or_else(|| ApplyError::InvalidPartitions("group ids exhausted".to_string()))?;
        self.next_group_id = end;
        Ok((first..end)
            .zip(sets)
            .map(|(group, replicas)| PartitionAssignment {
                group,
                isr: replicas.clone(),
                replicas,
                leader: None,
                leader_epoch: 0,
                target_replicas: None,
                log_start: 0,
                remote: Default::default(),
            })
            .collect())
    }

    /// Appends `assignments` to the (existing) topic `name` and indexes them.
    fn add_partitions(&mut self, name: &str, assignments: Vec<PartitionAssignment>) {
        let Some(topic) = self.topics.get_mut(name) else {
            return;
        };
        for p in assignments {
            let index = topic.partitions.len() as u32;
            self.groups.insert(p.group, (name.to_string(), index));
            topic.partitions.push(p);
        }
    }
}

/// The single-node broker's rules, so a name valid in one mode is valid in the other.
fn validate_topic_name(name: &str) -> Result<(), ApplyError> {
    crate::topic::validate_topic_name(name).map_err(|e| match e {
        crate::BrokerError::InvalidTopicName(why) => ApplyError::InvalidTopicName(why),
        other => ApplyError::InvalidTopicName(other.to_string()),
    })
}

/// A replica list names each node once and has at least one node, none of them 0.
fn check_replica_list(nodes: &[NodeId]) -> Result<(), ApplyError> {
    if nodes.is_empty() {
        return Err(ApplyError::InvalidReplicas("empty".to_string()));
    }
    if nodes.contains(&0) {
        return Err(ApplyError::InvalidNodeId);
    }
    if dedup(nodes).len() != nodes.len() {
        return Err(ApplyError::InvalidReplicas(format!(
            "{nodes:?} names a node twice"
        )));
    }
    Ok(())
}

/// `nodes` without repeats, first occurrences kept in order.
fn dedup(nodes: &[NodeId]) -> Vec<NodeId> {
    let mut seen = BTreeSet::new();
    nodes.iter().copied().filter(|n| seen.insert(*n)).collect()
}

/// A Raft configuration is a set: order does not matter.
fn same_set(a: &[NodeId], b: &[NodeId]) -> bool {
    a.len() == b.len() && a.iter().all(|n| b.contains(n))
}

/// Orders the reported configuration so the preferred leader stays put: surviving replicas in
/// their current order, then newcomers in the target's order, then any others as reported.
fn order_like(current: &[NodeId], target: Option<&[NodeId]>, reported: &[NodeId]) -> Vec<NodeId> {
    let target = target.unwrap_or(&[]);
    let mut out: Vec<NodeId> = Vec::with_capacity(reported.len());
    for &n in current.iter().chain(target).chain(reported) {
        if reported.contains(&n) && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
