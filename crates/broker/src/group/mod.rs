//! The consumer group coordinator, Kafka's classic group protocol. This single node coordinates
//! every group.
//!
//! - `state`, `join`, `membership`, `view` — the group state machine, pure logic driven with
//!   an explicit clock, so it is unit-tested without a runtime;
//! - `coordinator` — the registry of groups (one lock each) and the tokio timer task that
//!   enforces session, join and initial-delay deadlines, so a client that disappears
//!   mid-rebalance never wedges a group;
//! - `store`, `replay`, `offsets`, `records` — committed offsets as records in
//!   `__consumer_offsets`, appended through `Partition::append`, acknowledged after
//!   `wait_durable`, replayed on start;
//! - `metadata_record` — each generation's membership and assignment, stored in the same
//!   partition before members hear of it, so a coordinator that takes over (a failover, a
//!   restart) serves the same generation: members go on without a rebalance, as in Kafka.

mod coordinator;
mod join;
mod member;
mod membership;
mod metadata_record;
mod offsets;
mod ownership;
mod replay;
mod state;
mod store;
mod txn_offsets;
mod types;
mod view;

#[cfg(test)]
mod tests;

pub use coordinator::{Coordinator, CoordinatorConfig};
pub use ownership::offsets_partition;
pub(crate) use ownership::GroupsOnOffsets;
pub use state::{Group, GroupConfig};
pub use store::{offsets_topic, Durable, FetchedOffsets, PartitionResults};
pub use txn_offsets::TxnCommitter;
pub use types::{
    CommittedOffset, GroupDescription, GroupError, GroupListing, GroupState, JoinRequest,
    JoinResponse, JoinedMember, MemberDescription, MemberIdentity, OffsetCommit, Pending, Protocol,
    SyncRequest, SyncResponse,
};
pub use view::consumer_assignment;

pub use crate::internal::OFFSETS_TOPIC;
/// Its partition count when it is created.
pub const OFFSETS_PARTITIONS: i32 = crate::internal::INTERNAL_TOPICS[0].partitions;
/// `offset.metadata.max.bytes`: the longest metadata string stored with an offset.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
