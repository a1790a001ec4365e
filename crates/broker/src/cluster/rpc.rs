//! Requests between nodes (and from `strom cluster`) over the transport's RPC frames, as JSON:
//! small, rare, and readable in a packet capture.

use serde::{Deserialize, Serialize};

use super::state::{ClusterState, Command, GroupId, NodeId};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Request {
    /// Propose a command to the controller; answered once committed. Any node takes it and
    /// forwards it to the controller's leader.
    Propose(Command),
    /// A proposal forwarded by a node to the controller's leader: never forwarded again, so
    /// nodes with stale views of the leader cannot bounce it around.
    Forwarded(Command),
    /// Make a registered node (a learner of the controller) a voter of the controller group.
    AddVoter(NodeId),
    /// The cluster state as this node has applied it, with its view of the Raft groups.
    Status,
    /// Move leadership of every partition this node leads to its preferred leader if that is a
    /// caught-up replica.
    RebalanceLeaders,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Response {
    pub error: Option<String>,
    pub status: Option<Status>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Status {
    pub node: NodeId,
    pub controller_leader: Option<NodeId>,
    pub state: ClusterState,
    /// The Raft groups this node holds: (group, leader, term, commit index).
    pub groups: Vec<(GroupId, Option<NodeId>, u64, u64)>,
    pub connected: Vec<NodeId>,
    /// The controller group's configuration as this node has applied it.
    #[serde(default)]
    pub controller_voters: Vec<NodeId>,
    #[serde(default)]
    pub controller_learners: Vec<NodeId>,
}

pub fn encode<T: Serialize>(v: &T) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(b).map_err(|e| e.to_string())
}
