//! Requests between nodes (and from `strom cluster`) over the transport's RPC frames, as JSON:
//! small, rare, and readable in a packet capture.

use serde::{Deserialize, Serialize};

use super::state::{ClusterState, Command, GroupId, NodeId};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Request {
    /// Propose a command to the controller (sent to its leader); answered once committed.
    Propose(Command),
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
}

pub fn encode<T: Serialize>(v: &T) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(b).map_err(|e| e.to_string())
}
