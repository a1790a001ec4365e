//! The group coordinator's APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, OffsetDelete, ListGroups, DescribeGroups, DeleteGroups. The
//! logic is `strom_broker::group`; these modules translate wire messages to and from it.
//! JoinGroup and SyncGroup answer when the group's rebalance gets there (`Reply::Later`);
//! commits and deletions answer when their records are durable.

pub mod admin;
pub mod consumer_protocol;
pub mod find_coordinator;
pub mod membership;
pub mod offsets;

use kafka_protocol::ResponseError;
use strom_broker::group::GroupError;

pub(crate) fn kafka_error(err: &GroupError) -> ResponseError {
    match err {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::CoordinatorNotAvailable(_) => ResponseError::CoordinatorNotAvailable,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge(_) => ResponseError::OffsetMetadataTooLarge,
        GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        GroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::ProducerFenced(_) => ResponseError::ProducerFenced,
    }
}

/// The Kafka error code of an optional group error (0 for none).
pub(crate) fn code(err: Option<&GroupError>) -> i16 {
    err.map_or(0, |e| kafka_error(e).code())
}

pub(crate) fn result_code(r: &Result<(), GroupError>) -> i16 {
    code(r.as_ref().err())
}
