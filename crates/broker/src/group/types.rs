//! What the coordinator takes and returns: plain data, no wire format. Member metadata and
//! assignments are opaque bytes; client-side assignors give them meaning, the broker only relays.

use bytes::Bytes;
use tokio::sync::oneshot;

/// The classic group states, named as Kafka names them in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before the next generation.
    PreparingRebalance,
    /// The next generation is formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or about to be removed; requests get COORDINATOR_NOT_AVAILABLE and retry.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// The state named `s`, case-insensitively (ListGroups filters compare that way).
    pub fn parse(s: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|st| st.name().eq_ignore_ascii_case(s))
    }
}

/// Why a group request failed; front ends map each to their protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("member id required: rejoin with the member id given")]
    MemberIdRequired,
    #[error("a newer member with the same group.instance.id fenced this one")]
    FencedInstanceId,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("session timeout {0} ms outside the allowed range")]
    InvalidSessionTimeout(i32),
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("coordinator not available: {0}")]
    CoordinatorNotAvailable(String),
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("group id not found")]
    GroupIdNotFound,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("offset metadata larger than {0} bytes")]
    OffsetMetadataTooLarge(usize),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Cluster mode: another node leads the group's offsets partition.
    #[error("not the group's coordinator")]
    NotCoordinator,
    /// TxnOffsetCommit from an older epoch than the producer's current one.
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    /// Cluster mode: this node just took the group over and is still reading its offsets.
    #[error("the group's offsets are being loaded")]
    LoadInProgress,
}

impl GroupError {
    /// The group is gone (deleted or never loaded); the client should look it up again.
    pub(crate) fn dead() -> GroupError {
        GroupError::CoordinatorNotAvailable("the group is being removed".into())
    }
}

/// One assignment protocol a member supports, with its metadata (e.g. a consumer subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty on a member's first join.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and a member id to rejoin with.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol; only the leader gets them.
    pub members: Vec<JoinedMember>,
    /// The leader should not compute a new assignment (a static leader rejoined unchanged).
    pub skip_assignment: bool,
}

impl JoinResponse {
    pub fn failed(error: GroupError, member_id: String) -> JoinResponse {
        JoinResponse {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// SyncGroup v5: must match the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn failed(error: GroupError) -> SyncResponse {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A member named in LeaveGroup (v3+ names several, by member id or by instance id).
#[derive(Debug, Clone)]
pub struct MemberIdentity {
    pub member_id: String,
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the chosen protocol; empty unless the group is Stable (as Kafka reports it).
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol while Stable, else empty.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when the client does not know it.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A committed offset as stored and returned by OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// Wall-clock time of the commit, ms since the UNIX epoch.
    pub commit_timestamp_ms: i64,
}

/// An answer that is ready now, or one that a later event (other members joining, the leader's
/// assignment, a timeout) delivers. The receiver never waits forever: every waiting member has
/// a deadline that the coordinator's timers enforce.
#[derive(Debug)]
pub enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

impl<T> Pending<T> {
    /// Waits for the answer; `gone` builds one if the group dropped the waiter without answering.
    pub async fn resolve(self, gone: impl FnOnce() -> T) -> T {
        match self {
            Pending::Ready(t) => t,
            Pending::Wait(rx) => rx.await.unwrap_or_else(|_| gone()),
        }
    }

    /// The answer if it is already there (tests drive the state machine without a runtime).
    pub fn try_now(&mut self) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Pending::Ready(t) => Some(t.clone()),
            Pending::Wait(rx) => rx.try_recv().ok(),
        }
    }
}
