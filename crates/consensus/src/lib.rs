//! Raft per partition, on the partition's own segment log.
//!
//! - [`entry_log`]: the Raft view of a `strom_storage::Log`. One Raft entry is one stored
//!   RecordBatch; non-data entries (leader no-op, configuration change) are stored as control
//!   batches ([`control`]) that consumers skip. Raft indexes are dense, Kafka offsets count
//!   records; the entry index maps one to the other and keeps the term of every entry.
//! - [`raft_state`]: the small per-group file with the hard state, configuration and log start.
//! - [`snapshot`]: what a replica behind the leader's log start receives: where the log now
//!   starts and the configuration, never records.
//! - [`driver`]: one Raft group driven by whoever holds its lock: ticks, inbound messages,
//!   proposals, `Ready` handling with asynchronous persistence through the caller's group-commit
//!   fsync, apply.
//! - [`transport`]: node-to-node TCP, authenticated by the cluster secret, messages batched per
//!   destination node.

pub mod control;
pub mod driver;
pub mod entry_log;
pub mod error;
pub mod raft_state;
pub mod slog_tracing;
pub mod snapshot;
pub mod transport;

pub use error::ConsensusError;
pub use raft;

/// A node's id: the Kafka broker id and the Raft peer id are the same number (never 0).
pub type NodeId = u64;
/// A Raft group: 0 is the controller, every partition replica set has its own.
pub type GroupId = u64;

/// The controller's Raft group.
pub const CONTROLLER_GROUP: GroupId = 0;

/// Raft messages leave through the transport, which batches them per destination node.
impl driver::Outbox for transport::Transport {
    fn send(&self, to: NodeId, group: GroupId, msg: raft::eraftpb::Message) {
        transport::Transport::send(self, to, group, msg);
    }
}
