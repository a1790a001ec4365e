use strom_storage::{BatchError, StorageError};

/// What can go wrong in a broker operation; front ends map each to their protocol's error code.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid topic name: {0}")]
    InvalidTopicName(String),
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor {0}: this node is a single replica")]
    InvalidReplicationFactor(i32),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A request Strom understands but refuses as a whole (Kafka's INVALID_REQUEST).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A CreateTime batch outside the topic's `message.timestamp.{before,after}.max.ms`.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    #[error("corrupt batch: {0}")]
    Corrupt(#[from] BatchError),
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    #[error("storage error: {0}")]
    Storage(StorageError),
    #[error("timed out waiting for durability")]
    Timeout,
    /// An idempotent batch does not continue its producer's sequence (a gap, or a new epoch not
    /// starting at 0). A retry of a recent batch is not this: it is answered as a success.
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    /// An idempotent batch from an older epoch than its producer's current one (a fenced producer).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// Never raised by this broker: like Kafka >= 2.5 it accepts an unknown producer at any
    /// sequence (see `producer_state`). Kept so front ends map the whole producer vocabulary.
    #[error("unknown producer id: {0}")]
    UnknownProducerId(String),
    /// Cluster mode: this node does not lead the partition (clients refresh metadata and retry).
    #[error("this node is not the leader of the partition")]
    NotLeader,
    /// Cluster mode: the partition or the controller has no leader right now.
    #[error("no leader is available right now: {0}")]
    LeaderNotAvailable(String),
    /// A batch Strom refuses to store (Kafka's INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A transactional write or request out of step with its transaction (Kafka's
    /// INVALID_TXN_STATE).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction marker from a deposed coordinator (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error("transaction coordinator fenced: {0}")]
    CoordinatorFenced(String),
    /// Cluster mode: the write lost its place in the log (leadership changed before it committed).
    #[error("the write was not committed: leadership changed")]
    NotCommitted,
    /// Tiered storage: the object store failed or timed out (retriable: Kafka's
    /// KAFKA_STORAGE_ERROR).
    #[error("remote storage: {0}")]
    RemoteStorage(String),
}

impl From<StorageError> for BrokerError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::OffsetOutOfRange { offset, start, end } => {
                BrokerError::OffsetOutOfRange { offset, start, end }
            }
            StorageError::Batch(b) => BrokerError::Corrupt(b),
            other => BrokerError::Storage(other),
        }
    }
}
