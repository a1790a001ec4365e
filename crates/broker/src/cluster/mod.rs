//! The replicated cluster's metadata: the controller's state machine.
//!
//! Raft group 0 ("the controller") commits [`state::Command`]s; every node applies the committed
//! commands, in log order, to its own [`state::ClusterState`]. Both modules are pure logic (no
//! I/O, no clock, no randomness), so every node reaches the same state from the same log, and the
//! tests drive them directly:
//! - `state` — nodes, topics and partition assignments, the commands and how they apply;
//! - `placement` — where new replicas go, which node replaces a dead one, the preferred leader.

mod machine;
pub mod placement;
pub mod state;

pub use state::{
    Applied, ApplyError, ClusterState, Command, GroupId, NodeId, NodeInfo, PartitionAssignment,
    TopicState,
};

mod heal;
pub mod node;
pub mod rpc;

pub use node::{Cluster, ClusterConfig, NodeService, PartitionCoordinator};
/// A replica's own view of its group's leadership.
pub use strom_consensus::driver::RoleState;
