//! Broker errors as Kafka error codes.

use kafka_protocol::ResponseError;
use strom_broker::BrokerError;

pub fn code(err: &BrokerError) -> i16 {
    kafka_error(err).code()
}

pub fn kafka_error(err: &BrokerError) -> ResponseError {
    match err {
        BrokerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        BrokerError::InvalidTopicName(_) => ResponseError::InvalidTopicException,
        BrokerError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        BrokerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        BrokerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        BrokerError::InvalidConfig(_) => ResponseError::InvalidConfig,
        BrokerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        BrokerError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        BrokerError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        BrokerError::Corrupt(_) => ResponseError::CorruptMessage,
        BrokerError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        BrokerError::Storage(_) | BrokerError::RemoteStorage(_) => ResponseError::KafkaStorageError,
        BrokerError::Timeout => ResponseError::RequestTimedOut,
        BrokerError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        BrokerError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        BrokerError::UnknownProducerId(_) => ResponseError::UnknownProducerId,
        BrokerError::NotLeader | BrokerError::NotCommitted => ResponseError::NotLeaderOrFollower,
        BrokerError::LeaderNotAvailable(_) => ResponseError::LeaderNotAvailable,
        BrokerError::InvalidRecord(_) => ResponseError::InvalidRecord,
        BrokerError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        BrokerError::CoordinatorFenced(_) => ResponseError::TransactionCoordinatorFenced,
    }
}

/// Transaction coordinator errors as Kafka error codes.
pub fn txn_error(err: &strom_txn::TxnError) -> ResponseError {
    use strom_txn::TxnError;
    match err {
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
        TxnError::CoordinatorNotAvailable(_) => ResponseError::CoordinatorNotAvailable,
        TxnError::ProducerFenced => ResponseError::ProducerFenced,
        TxnError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
        TxnError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        TxnError::OperationNotAttempted => ResponseError::OperationNotAttempted,
        TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
        TxnError::InvalidRequest(_) => ResponseError::InvalidRequest,
    }
}

/// The authorization failures, by resource type (Kafka answers each with its own code).
pub mod denied {
    use kafka_protocol::ResponseError;

    pub const TOPIC: i16 = ResponseError::TopicAuthorizationFailed.code();
    pub const GROUP: i16 = ResponseError::GroupAuthorizationFailed.code();
    pub const CLUSTER: i16 = ResponseError::ClusterAuthorizationFailed.code();
    pub const TRANSACTIONAL_ID: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
}
