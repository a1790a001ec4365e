//! The group coordinator's request schemas (see the parent module for what a table is).

use super::*;

// ---- 8 OffsetCommit (kafka-protocol 0.18 knows v2..=v9; Strom checks v2..=v9) ----

pub(super) static OFFSET_COMMIT_REQUEST: StructDef = StructDef {
    name: "OffsetCommitRequest",
    fields: &[
        field("group_id", STR, 2, MAX),
        field("generation_id_or_member_epoch", I32, 2, MAX),
        field("member_id", STR, 2, MAX),
        field("group_instance_id", NSTR, 7, MAX),
        field("retention_time_ms", I64, 2, 4),
        field("topics", structs(&OFFSET_COMMIT_REQUEST_TOPIC), 2, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_COMMIT_REQUEST_TOPIC: StructDef = StructDef {
    name: "OffsetCommitRequestTopic",
    fields: &[
        field("name", STR, 2, MAX),
        field("partitions", structs(&OFFSET_COMMIT_REQUEST_PARTITION), 2, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_COMMIT_REQUEST_PARTITION: StructDef = StructDef {
    name: "OffsetCommitRequestPartition",
    fields: &[
        field("partition_index", I32, 2, MAX),
        field("committed_offset", I64, 2, MAX),
        field("committed_leader_epoch", I32, 6, MAX),
        field("committed_metadata", NSTR, 2, MAX),
    ],
    tagged: &[],
};

// ---- 9 OffsetFetch (kafka-protocol 0.18 knows v1..=v9; Strom checks v1..=v9) ----

pub(super) static OFFSET_FETCH_REQUEST: StructDef = StructDef {
    name: "OffsetFetchRequest",
    fields: &[
        field("group_id", STR, 1, 7),
        field("topics", nullable_structs(&OFFSET_FETCH_REQUEST_TOPIC), 1, 7),
        field("groups", structs(&OFFSET_FETCH_REQUEST_GROUP), 8, MAX),
        field("require_stable", BOOL, 7, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_FETCH_REQUEST_GROUP: StructDef = StructDef {
    name: "OffsetFetchRequestGroup",
    fields: &[
        field("group_id", STR, 8, MAX),
        field("member_id", NSTR, 9, MAX),
        field("member_epoch", I32, 9, MAX),
        field("topics", nullable_structs(&OFFSET_FETCH_REQUEST_TOPICS), 8, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_FETCH_REQUEST_TOPICS: StructDef = StructDef {
    name: "OffsetFetchRequestTopics",
    fields: &[
        field("name", STR, 8, MAX),
        field("partition_indexes", I32S, 8, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_FETCH_REQUEST_TOPIC: StructDef = StructDef {
    name: "OffsetFetchRequestTopic",
    fields: &[
        field("name", STR, 1, 7),
        field("partition_indexes", I32S, 1, 7),
    ],
    tagged: &[],
};

// ---- 10 FindCoordinator (kafka-protocol 0.18 knows v0..=v6; Strom checks v0..=v4) ----

pub(super) static FIND_COORDINATOR_REQUEST: StructDef = StructDef {
    name: "FindCoordinatorRequest",
    fields: &[
        field("key", STR, 0, 3),
        field("key_type", I8, 1, MAX),
        field("coordinator_keys", STRS, 4, MAX),
    ],
    tagged: &[],
};

// ---- 11 JoinGroup (kafka-protocol 0.18 knows v0..=v9; Strom checks v0..=v9) ----

pub(super) static JOIN_GROUP_REQUEST: StructDef = StructDef {
    name: "JoinGroupRequest",
    fields: &[
        field("group_id", STR, 0, MAX),
        field("session_timeout_ms", I32, 0, MAX),
        field("rebalance_timeout_ms", I32, 1, MAX),
        field("member_id", STR, 0, MAX),
        field("group_instance_id", NSTR, 5, MAX),
        field("protocol_type", STR, 0, MAX),
        field("protocols", structs(&JOIN_GROUP_REQUEST_PROTOCOL), 0, MAX),
        field("reason", NSTR, 8, MAX),
    ],
    tagged: &[],
};

pub(super) static JOIN_GROUP_REQUEST_PROTOCOL: StructDef = StructDef {
    name: "JoinGroupRequestProtocol",
    fields: &[
        field("name", STR, 0, MAX),
        field("metadata", BYTES, 0, MAX),
    ],
    tagged: &[],
};

// ---- 12 Heartbeat (kafka-protocol 0.18 knows v0..=v4; Strom checks v0..=v4) ----

pub(super) static HEARTBEAT_REQUEST: StructDef = StructDef {
    name: "HeartbeatRequest",
    fields: &[
        field("group_id", STR, 0, MAX),
        field("generation_id", I32, 0, MAX),
        field("member_id", STR, 0, MAX),
        field("group_instance_id", NSTR, 3, MAX),
    ],
    tagged: &[],
};

// ---- 13 LeaveGroup (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----

pub(super) static LEAVE_GROUP_REQUEST: StructDef = StructDef {
    name: "LeaveGroupRequest",
    fields: &[
        field("group_id", STR, 0, MAX),
        field("member_id", STR, 0, 2),
        field("members", structs(&MEMBER_IDENTITY), 3, MAX),
    ],
    tagged: &[],
};

pub(super) static MEMBER_IDENTITY: StructDef = StructDef {
    name: "MemberIdentity",
    fields: &[
        field("member_id", STR, 3, MAX),
        field("group_instance_id", NSTR, 3, MAX),
        field("reason", NSTR, 5, MAX),
    ],
    tagged: &[],
};

// ---- 14 SyncGroup (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----

pub(super) static SYNC_GROUP_REQUEST: StructDef = StructDef {
    name: "SyncGroupRequest",
    fields: &[
        field("group_id", STR, 0, MAX),
        field("generation_id", I32, 0, MAX),
        field("member_id", STR, 0, MAX),
        field("group_instance_id", NSTR, 3, MAX),
        field("protocol_type", NSTR, 5, MAX),
        field("protocol_name", NSTR, 5, MAX),
        field("assignments", structs(&SYNC_GROUP_REQUEST_ASSIGNMENT), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static SYNC_GROUP_REQUEST_ASSIGNMENT: StructDef = StructDef {
    name: "SyncGroupRequestAssignment",
    fields: &[
        field("member_id", STR, 0, MAX),
        field("assignment", BYTES, 0, MAX),
    ],
    tagged: &[],
};

// ---- 15 DescribeGroups (kafka-protocol 0.18 knows v0..=v6; Strom checks v0..=v5) ----

pub(super) static DESCRIBE_GROUPS_REQUEST: StructDef = StructDef {
    name: "DescribeGroupsRequest",
    fields: &[
        field("groups", STRS, 0, MAX),
        field("include_authorized_operations", BOOL, 3, MAX),
    ],
    tagged: &[],
};

// ---- 16 ListGroups (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----

pub(super) static LIST_GROUPS_REQUEST: StructDef = StructDef {
    name: "ListGroupsRequest",
    fields: &[
        field("states_filter", STRS, 4, MAX),
        field("types_filter", STRS, 5, MAX),
    ],
    tagged: &[],
};

// ---- 42 DeleteGroups (kafka-protocol 0.18 knows v0..=v2; Strom checks v0..=v2) ----

pub(super) static DELETE_GROUPS_REQUEST: StructDef = StructDef {
    name: "DeleteGroupsRequest",
    fields: &[
        field("groups_names", STRS, 0, MAX),
    ],
    tagged: &[],
};

// ---- 47 OffsetDelete (kafka-protocol 0.18 knows v0..=v0; Strom checks v0..=v0) ----

pub(super) static OFFSET_DELETE_REQUEST: StructDef = StructDef {
    name: "OffsetDeleteRequest",
    fields: &[
        field("group_id", STR, 0, MAX),
        field("topics", structs(&OFFSET_DELETE_REQUEST_TOPIC), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_DELETE_REQUEST_TOPIC: StructDef = StructDef {
    name: "OffsetDeleteRequestTopic",
    fields: &[
        field("name", STR, 0, MAX),
        field("partitions", structs(&OFFSET_DELETE_REQUEST_PARTITION), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static OFFSET_DELETE_REQUEST_PARTITION: StructDef = StructDef {
    name: "OffsetDeleteRequestPartition",
    fields: &[
        field("partition_index", I32, 0, MAX),
    ],
    tagged: &[],
};
