//! Kafka transactions: the transaction coordinator.
//!
//! - `state` — one transactional id's metadata and Kafka's transitions (pure);
//! - `record` — how that metadata is stored in `__transaction_state`;
//! - `coordinator` — the ids this node coordinates: the leader of an id's partition of
//!   `__transaction_state` coordinates it; every change is appended there and acknowledged
//!   once committed; a node taking a partition over replays it and finishes what its
//!   predecessor left half done;
//! - `ops` — the requests (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//!   DescribeTransactions, ListTransactions);
//! - `markers` — ending a transaction: a marker on every partition of it, written by that
//!   partition's leader (on another node through this crate's node service), then the
//!   Complete state; and the timer that aborts transactions past their timeout.
//!
//! The partition side (which producers may write transactionally, the last stable offset,
//! aborted transactions for read_committed fetches) is `strom_broker`'s.

mod coordinator;
mod markers;
mod ops;
mod record;
pub mod state;

pub use coordinator::{TxnConfig, TxnCoordinator};
pub use ops::{AddResults, TxnDescription, TxnListing};
pub use state::{TxnMetadata, TxnState};

/// What a transactional request can fail with; front ends map each to Kafka's error code.
/// Serializable: a partition leader gets it from the coordinator over the node service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TxnError {
    #[error("this node is not the transaction coordinator of the id")]
    NotCoordinator,
    #[error("the coordinator is loading its transactions")]
    LoadInProgress,
    #[error("the transaction coordinator is not available: {0}")]
    CoordinatorNotAvailable(String),
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the producer epoch is not the transaction's")]
    InvalidProducerEpoch,
    #[error("the producer id does not belong to the transactional id")]
    InvalidProducerIdMapping,
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    #[error("the previous transaction of the id is still being completed")]
    ConcurrentTransactions,
    #[error("transaction timeout {0} ms is outside 1..=transaction.max.timeout.ms")]
    InvalidTransactionTimeout(i32),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    #[error("unknown transactional id")]
    TransactionalIdNotFound,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}
