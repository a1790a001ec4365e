use strom_storage::StorageError;

use crate::GroupId;

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("not the leader of group {group}; the leader is {leader:?}")]
    NotLeader { group: GroupId, leader: Option<u64> },
    #[error("group {0}: proposal dropped (leadership changing or too much uncommitted data)")]
    ProposalDropped(GroupId),
    #[error("raft state file {path}: {reason}")]
    BadStateFile { path: String, reason: String },
    #[error("entry {index} does not follow the log (first {first}, last {last})")]
    NotContiguous { index: u64, first: u64, last: u64 },
    #[error("entry {index} would rewrite the committed prefix (applied up to {applied})")]
    RewritesCommitted { index: u64, applied: u64 },
    #[error("entry data at index {index} is not a record batch: {reason}")]
    BadEntry { index: u64, reason: String },
}
