//! Request-body schemas for the pre-decode walker, one static table per api.
//!
//! Each table mirrors the field order and per-version presence of the
//! matching `*_request.rs` decoder in kafka-protocol 0.18.0 (the crate Strom
//! hands bodies to after the walk). Only fields that exist somewhere in the
//! version range Strom checks are listed. A field's `min`/`max` are the
//! versions in which it is on the wire; `MAX` means "through the newest
//! version". Flexible versions (`flexible_from` and newer) switch every
//! string/bytes/array to its compact form and give every struct a trailing
//! tagged-field section; `tagged` lists the tags the library decodes as
//! typed values instead of skipping them.
//!
//! The tests in `tests.rs` encode fully populated requests with
//! kafka-protocol for every listed version and check that these tables
//! consume them exactly, so a drift from the library shows up there.

use super::{Elem, Field, Schema, StructDef, TaggedField, Ty};

mod groups;
use groups::*;
mod security;
use security::*;
mod txn;
use txn::*;

/// Open upper bound of a field's version range.
const MAX: i16 = i16::MAX;
/// `flexible_from` for apis without any flexible version.
const NEVER_FLEXIBLE: i16 = i16::MAX;

const BOOL: Ty = Ty::Bool;
const I8: Ty = Ty::I8;
const I16: Ty = Ty::I16;
const I32: Ty = Ty::I32;
const I64: Ty = Ty::I64;
const UUID: Ty = Ty::Uuid;
const STR: Ty = Ty::Str { nullable: false };
const NSTR: Ty = Ty::Str { nullable: true };
const BYTES: Ty = Ty::Bytes { nullable: false };
const NBYTES: Ty = Ty::Bytes { nullable: true };

const I32S: Ty = Ty::Array {
    elem: Elem::I32,
    nullable: false,
};
const I64S: Ty = Ty::Array {
    elem: Elem::I64,
    nullable: false,
};
const STRS: Ty = Ty::Array {
    elem: Elem::Str,
    nullable: false,
};
const NULLABLE_STRS: Ty = Ty::Array {
    elem: Elem::Str,
    nullable: true,
};

/// An array of structs.
const fn structs(def: &'static StructDef) -> Ty {
    Ty::Array {
        elem: Elem::Struct(def),
        nullable: false,
    }
}

/// A nullable array of structs.
const fn nullable_structs(def: &'static StructDef) -> Ty {
    Ty::Array {
        elem: Elem::Struct(def),
        nullable: true,
    }
}

const fn field(name: &'static str, ty: Ty, min: i16, max: i16) -> Field {
    Field { name, ty, min, max }
}

const fn tagged(tag: u32, name: &'static str, ty: Ty, min: i16, max: i16) -> TaggedField {
    TaggedField {
        tag,
        name,
        ty,
        min,
        max,
    }
}

// ---- 0 Produce (kafka-protocol 0.18 knows v3..=v13; Strom checks v3..=v12) ----
//
// v12 is v11 on the wire; it says the client uses transaction version 2 (KIP-890 part 2).

static PRODUCE_REQUEST: StructDef = StructDef {
    name: "ProduceRequest",
    fields: &[
        field("transactional_id", NSTR, 3, MAX),
        field("acks", I16, 3, MAX),
        field("timeout_ms", I32, 3, MAX),
        field("topic_data", structs(&TOPIC_PRODUCE_DATA), 3, MAX),
    ],
    tagged: &[],
};

static TOPIC_PRODUCE_DATA: StructDef = StructDef {
    name: "TopicProduceData",
    fields: &[
        field("name", STR, 3, 12),
        field("partition_data", structs(&PARTITION_PRODUCE_DATA), 3, MAX),
    ],
    tagged: &[],
};

static PARTITION_PRODUCE_DATA: StructDef = StructDef {
    name: "PartitionProduceData",
    fields: &[
        field("index", I32, 3, MAX),
        field("records", NBYTES, 3, MAX),
    ],
    tagged: &[],
};

// ---- 1 Fetch (kafka-protocol 0.18 knows v4..=v18; Strom checks v4..=v12) ----

static FETCH_REQUEST: StructDef = StructDef {
    name: "FetchRequest",
    fields: &[
        field("replica_id", I32, 4, 14),
        field("max_wait_ms", I32, 4, MAX),
        field("min_bytes", I32, 4, MAX),
        field("max_bytes", I32, 4, MAX),
        field("isolation_level", I8, 4, MAX),
        field("session_id", I32, 7, MAX),
        field("session_epoch", I32, 7, MAX),
        field("topics", structs(&FETCH_TOPIC), 4, MAX),
        field("forgotten_topics_data", structs(&FORGOTTEN_TOPIC), 7, MAX),
        field("rack_id", STR, 11, MAX),
    ],
    tagged: &[
        tagged(0, "cluster_id", NSTR, 12, MAX),
    ],
};

static FORGOTTEN_TOPIC: StructDef = StructDef {
    name: "ForgottenTopic",
    fields: &[
        field("topic", STR, 7, 12),
        field("partitions", I32S, 7, MAX),
    ],
    tagged: &[],
};

static FETCH_TOPIC: StructDef = StructDef {
    name: "FetchTopic",
    fields: &[
        field("topic", STR, 4, 12),
        field("partitions", structs(&FETCH_PARTITION), 4, MAX),
    ],
    tagged: &[],
};

static FETCH_PARTITION: StructDef = StructDef {
    name: "FetchPartition",
    fields: &[
        field("partition", I32, 4, MAX),
        field("current_leader_epoch", I32, 9, MAX),
        field("fetch_offset", I64, 4, MAX),
        field("last_fetched_epoch", I32, 12, MAX),
        field("log_start_offset", I64, 5, MAX),
        field("partition_max_bytes", I32, 4, MAX),
    ],
    tagged: &[],
};

// ---- 2 ListOffsets (kafka-protocol 0.18 knows v1..=v10; Strom checks v1..=v8) ----

static LIST_OFFSETS_REQUEST: StructDef = StructDef {
    name: "ListOffsetsRequest",
    fields: &[
        field("replica_id", I32, 1, MAX),
        field("isolation_level", I8, 2, MAX),
        field("topics", structs(&LIST_OFFSETS_TOPIC), 1, MAX),
    ],
    tagged: &[],
};

static LIST_OFFSETS_TOPIC: StructDef = StructDef {
    name: "ListOffsetsTopic",
    fields: &[
        field("name", STR, 1, MAX),
        field("partitions", structs(&LIST_OFFSETS_PARTITION), 1, MAX),
    ],
    tagged: &[],
};

static LIST_OFFSETS_PARTITION: StructDef = StructDef {
    name: "ListOffsetsPartition",
    fields: &[
        field("partition_index", I32, 1, MAX),
        field("current_leader_epoch", I32, 4, MAX),
        field("timestamp", I64, 1, MAX),
    ],
    tagged: &[],
};

// ---- 3 Metadata (kafka-protocol 0.18 knows v0..=v13; Strom checks v0..=v12) ----

static METADATA_REQUEST: StructDef = StructDef {
    name: "MetadataRequest",
    fields: &[
        field("topics", nullable_structs(&METADATA_REQUEST_TOPIC), 0, MAX),
        field("allow_auto_topic_creation", BOOL, 4, MAX),
        field("include_cluster_authorized_operations", BOOL, 8, 10),
        field("include_topic_authorized_operations", BOOL, 8, MAX),
    ],
    tagged: &[],
};

static METADATA_REQUEST_TOPIC: StructDef = StructDef {
    name: "MetadataRequestTopic",
    fields: &[
        field("topic_id", UUID, 10, MAX),
        field("name", NSTR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 18 ApiVersions (kafka-protocol 0.18 knows v0..=v4; Strom checks v0..=v3) ----

static API_VERSIONS_REQUEST: StructDef = StructDef {
    name: "ApiVersionsRequest",
    fields: &[
        field("client_software_name", STR, 3, MAX),
        field("client_software_version", STR, 3, MAX),
    ],
    tagged: &[],
};

// ---- 19 CreateTopics (kafka-protocol 0.18 knows v2..=v7; Strom checks v2..=v7) ----

static CREATE_TOPICS_REQUEST: StructDef = StructDef {
    name: "CreateTopicsRequest",
    fields: &[
        field("topics", structs(&CREATABLE_TOPIC), 2, MAX),
        field("timeout_ms", I32, 2, MAX),
        field("validate_only", BOOL, 2, MAX),
    ],
    tagged: &[],
};

static CREATABLE_TOPIC: StructDef = StructDef {
    name: "CreatableTopic",
    fields: &[
        field("name", STR, 2, MAX),
        field("num_partitions", I32, 2, MAX),
        field("replication_factor", I16, 2, MAX),
        field("assignments", structs(&CREATABLE_REPLICA_ASSIGNMENT), 2, MAX),
        field("configs", structs(&CREATABLE_TOPIC_CONFIG), 2, MAX),
    ],
    tagged: &[],
};

static CREATABLE_TOPIC_CONFIG: StructDef = StructDef {
    name: "CreatableTopicConfig",
    fields: &[
        field("name", STR, 2, MAX),
        field("value", NSTR, 2, MAX),
    ],
    tagged: &[],
};

static CREATABLE_REPLICA_ASSIGNMENT: StructDef = StructDef {
    name: "CreatableReplicaAssignment",
    fields: &[
        field("partition_index", I32, 2, MAX),
        field("broker_ids", I32S, 2, MAX),
    ],
    tagged: &[],
};

// ---- 20 DeleteTopics (kafka-protocol 0.18 knows v1..=v6; Strom checks v1..=v6) ----

static DELETE_TOPICS_REQUEST: StructDef = StructDef {
    name: "DeleteTopicsRequest",
    fields: &[
        field("topics", structs(&DELETE_TOPIC_STATE), 6, MAX),
        field("topic_names", STRS, 1, 5),
        field("timeout_ms", I32, 1, MAX),
    ],
    tagged: &[],
};

static DELETE_TOPIC_STATE: StructDef = StructDef {
    name: "DeleteTopicState",
    fields: &[
        field("name", NSTR, 6, MAX),
        field("topic_id", UUID, 6, MAX),
    ],
    tagged: &[],
};

// ---- 21 DeleteRecords (kafka-protocol 0.18 knows v0..=v2; Strom checks v0..=v2) ----

static DELETE_RECORDS_REQUEST: StructDef = StructDef {
    name: "DeleteRecordsRequest",
    fields: &[
        field("topics", structs(&DELETE_RECORDS_TOPIC), 0, MAX),
        field("timeout_ms", I32, 0, MAX),
    ],
    tagged: &[],
};

static DELETE_RECORDS_TOPIC: StructDef = StructDef {
    name: "DeleteRecordsTopic",
    fields: &[
        field("name", STR, 0, MAX),
        field("partitions", structs(&DELETE_RECORDS_PARTITION), 0, MAX),
    ],
    tagged: &[],
};

static DELETE_RECORDS_PARTITION: StructDef = StructDef {
    name: "DeleteRecordsPartition",
    fields: &[
        field("partition_index", I32, 0, MAX),
        field("offset", I64, 0, MAX),
    ],
    tagged: &[],
};

// ---- 22 InitProducerId (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----

static INIT_PRODUCER_ID_REQUEST: StructDef = StructDef {
    name: "InitProducerIdRequest",
    fields: &[
        field("transactional_id", NSTR, 0, MAX),
        field("transaction_timeout_ms", I32, 0, MAX),
        field("producer_id", I64, 3, MAX),
        field("producer_epoch", I16, 3, MAX),
    ],
    tagged: &[],
};

// ---- 23 OffsetForLeaderEpoch (kafka-protocol 0.18 knows v2..=v4; Strom checks v2..=v4) ----

static OFFSET_FOR_LEADER_EPOCH_REQUEST: StructDef = StructDef {
    name: "OffsetForLeaderEpochRequest",
    fields: &[
        field("replica_id", I32, 3, MAX),
        field("topics", structs(&OFFSET_FOR_LEADER_TOPIC), 2, MAX),
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_TOPIC: StructDef = StructDef {
    name: "OffsetForLeaderTopic",
    fields: &[
        field("topic", STR, 2, MAX),
        field("partitions", structs(&OFFSET_FOR_LEADER_PARTITION), 2, MAX),
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_PARTITION: StructDef = StructDef {
    name: "OffsetForLeaderPartition",
    fields: &[
        field("partition", I32, 2, MAX),
        field("current_leader_epoch", I32, 2, MAX),
        field("leader_epoch", I32, 2, MAX),
    ],
    tagged: &[],
};

// ---- 32 DescribeConfigs (kafka-protocol 0.18 knows v1..=v4; Strom checks v1..=v4) ----

static DESCRIBE_CONFIGS_REQUEST: StructDef = StructDef {
    name: "DescribeConfigsRequest",
    fields: &[
        field("resources", structs(&DESCRIBE_CONFIGS_RESOURCE), 1, MAX),
        field("include_synonyms", BOOL, 1, MAX),
        field("include_documentation", BOOL, 3, MAX),
    ],
    tagged: &[],
};

static DESCRIBE_CONFIGS_RESOURCE: StructDef = StructDef {
    name: "DescribeConfigsResource",
    fields: &[
        field("resource_type", I8, 1, MAX),
        field("resource_name", STR, 1, MAX),
        field("configuration_keys", NULLABLE_STRS, 1, MAX),
    ],
    tagged: &[],
};

// ---- 33 AlterConfigs (kafka-protocol 0.18 knows v0..=v2; Strom checks v0..=v2) ----

static ALTER_CONFIGS_REQUEST: StructDef = StructDef {
    name: "AlterConfigsRequest",
    fields: &[
        field("resources", structs(&ALTER_CONFIGS_RESOURCE), 0, MAX),
        field("validate_only", BOOL, 0, MAX),
    ],
    tagged: &[],
};

static ALTER_CONFIGS_RESOURCE: StructDef = StructDef {
    name: "AlterConfigsResource",
    fields: &[
        field("resource_type", I8, 0, MAX),
        field("resource_name", STR, 0, MAX),
        field("configs", structs(&ALTERABLE_CONFIG), 0, MAX),
    ],
    tagged: &[],
};

static ALTERABLE_CONFIG: StructDef = StructDef {
    name: "AlterableConfig",
    fields: &[
        field("name", STR, 0, MAX),
        field("value", NSTR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 37 CreatePartitions (kafka-protocol 0.18 knows v0..=v3; Strom checks v0..=v3) ----

static CREATE_PARTITIONS_REQUEST: StructDef = StructDef {
    name: "CreatePartitionsRequest",
    fields: &[
        field("topics", structs(&CREATE_PARTITIONS_TOPIC), 0, MAX),
        field("timeout_ms", I32, 0, MAX),
        field("validate_only", BOOL, 0, MAX),
    ],
    tagged: &[],
};

static CREATE_PARTITIONS_TOPIC: StructDef = StructDef {
    name: "CreatePartitionsTopic",
    fields: &[
        field("name", STR, 0, MAX),
        field("count", I32, 0, MAX),
        field("assignments", nullable_structs(&CREATE_PARTITIONS_ASSIGNMENT), 0, MAX),
    ],
    tagged: &[],
};

static CREATE_PARTITIONS_ASSIGNMENT: StructDef = StructDef {
    name: "CreatePartitionsAssignment",
    fields: &[
        field("broker_ids", I32S, 0, MAX),
    ],
    tagged: &[],
};

// ---- 44 IncrementalAlterConfigs (kafka-protocol 0.18 knows v0..=v1; Strom checks v0..=v1) ----

static INCREMENTAL_ALTER_CONFIGS_REQUEST: StructDef = StructDef {
    name: "IncrementalAlterConfigsRequest",
    fields: &[
        field("resources", structs(&INCREMENTAL_ALTER_CONFIGS_RESOURCE), 0, MAX),
        field("validate_only", BOOL, 0, MAX),
    ],
    tagged: &[],
};

static INCREMENTAL_ALTER_CONFIGS_RESOURCE: StructDef = StructDef {
    name: "AlterConfigsResource",
    fields: &[
        field("resource_type", I8, 0, MAX),
        field("resource_name", STR, 0, MAX),
        field("configs", structs(&INCREMENTAL_ALTERABLE_CONFIG), 0, MAX),
    ],
    tagged: &[],
};

static INCREMENTAL_ALTERABLE_CONFIG: StructDef = StructDef {
    name: "AlterableConfig",
    fields: &[
        field("name", STR, 0, MAX),
        field("config_operation", I8, 0, MAX),
        field("value", NSTR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 60 DescribeCluster (kafka-protocol 0.18 knows v0..=v2; Strom checks v0..=v1) ----

static DESCRIBE_CLUSTER_REQUEST: StructDef = StructDef {
    name: "DescribeClusterRequest",
    fields: &[
        field("include_cluster_authorized_operations", BOOL, 0, MAX),
        field("endpoint_type", I8, 1, MAX),
    ],
    tagged: &[],
};

// ---- 61 DescribeProducers (kafka-protocol 0.18 knows v0..=v0; Strom checks v0..=v0) ----

static DESCRIBE_PRODUCERS_REQUEST: StructDef = StructDef {
    name: "DescribeProducersRequest",
    fields: &[field("topics", structs(&DESCRIBE_PRODUCERS_TOPIC), 0, MAX)],
    tagged: &[],
};

static DESCRIBE_PRODUCERS_TOPIC: StructDef = StructDef {
    name: "TopicRequest",
    fields: &[
        field("name", STR, 0, MAX),
        field("partition_indexes", I32S, 0, MAX),
    ],
    tagged: &[],
};

/// Every request schema this module knows, one per api key.
pub(super) static SCHEMAS: &[Schema] = &[
    Schema {
        api_key: 0,
        name: "Produce",
        min_version: 3,
        max_version: 12,
        flexible_from: 9,
        body: &PRODUCE_REQUEST,
    },
    Schema {
        api_key: 1,
        name: "Fetch",
        min_version: 4,
        max_version: 12,
        flexible_from: 12,
        body: &FETCH_REQUEST,
    },
    Schema {
        api_key: 2,
        name: "ListOffsets",
        min_version: 1,
        max_version: 8,
        flexible_from: 6,
        body: &LIST_OFFSETS_REQUEST,
    },
    Schema {
        api_key: 3,
        name: "Metadata",
        min_version: 0,
        max_version: 12,
        flexible_from: 9,
        body: &METADATA_REQUEST,
    },
    Schema {
        api_key: 8,
        name: "OffsetCommit",
        min_version: 2,
        max_version: 9,
        flexible_from: 8,
        body: &OFFSET_COMMIT_REQUEST,
    },
    Schema {
        api_key: 9,
        name: "OffsetFetch",
        min_version: 1,
        max_version: 9,
        flexible_from: 6,
        body: &OFFSET_FETCH_REQUEST,
    },
    Schema {
        api_key: 10,
        name: "FindCoordinator",
        min_version: 0,
        max_version: 4,
        flexible_from: 3,
        body: &FIND_COORDINATOR_REQUEST,
    },
    Schema {
        api_key: 11,
        name: "JoinGroup",
        min_version: 0,
        max_version: 9,
        flexible_from: 6,
        body: &JOIN_GROUP_REQUEST,
    },
    Schema {
        api_key: 12,
        name: "Heartbeat",
        min_version: 0,
        max_version: 4,
        flexible_from: 4,
        body: &HEARTBEAT_REQUEST,
    },
    Schema {
        api_key: 13,
        name: "LeaveGroup",
        min_version: 0,
        max_version: 5,
        flexible_from: 4,
        body: &LEAVE_GROUP_REQUEST,
    },
    Schema {
        api_key: 14,
        name: "SyncGroup",
        min_version: 0,
        max_version: 5,
        flexible_from: 4,
        body: &SYNC_GROUP_REQUEST,
    },
    Schema {
        api_key: 15,
        name: "DescribeGroups",
        min_version: 0,
        max_version: 5,
        flexible_from: 5,
        body: &DESCRIBE_GROUPS_REQUEST,
    },
    Schema {
        api_key: 16,
        name: "ListGroups",
        min_version: 0,
        max_version: 5,
        flexible_from: 3,
        body: &LIST_GROUPS_REQUEST,
    },
    Schema {
        api_key: 17,
        name: "SaslHandshake",
        min_version: 0,
        max_version: 1,
        flexible_from: NEVER_FLEXIBLE,
        body: &SASL_HANDSHAKE_REQUEST,
    },
    Schema {
        api_key: 18,
        name: "ApiVersions",
        min_version: 0,
        max_version: 3,
        flexible_from: 3,
        body: &API_VERSIONS_REQUEST,
    },
    Schema {
        api_key: 19,
        name: "CreateTopics",
        min_version: 2,
        max_version: 7,
        flexible_from: 5,
        body: &CREATE_TOPICS_REQUEST,
    },
    Schema {
        api_key: 20,
        name: "DeleteTopics",
        min_version: 1,
        max_version: 6,
        flexible_from: 4,
        body: &DELETE_TOPICS_REQUEST,
    },
    Schema {
        api_key: 21,
        name: "DeleteRecords",
        min_version: 0,
        max_version: 2,
        flexible_from: 2,
        body: &DELETE_RECORDS_REQUEST,
    },
    Schema {
        api_key: 22,
        name: "InitProducerId",
        min_version: 0,
        max_version: 5,
        flexible_from: 2,
        body: &INIT_PRODUCER_ID_REQUEST,
    },
    Schema {
        api_key: 23,
        name: "OffsetForLeaderEpoch",
        min_version: 2,
        max_version: 4,
        flexible_from: 4,
        body: &OFFSET_FOR_LEADER_EPOCH_REQUEST,
    },
    Schema {
        api_key: 24,
        name: "AddPartitionsToTxn",
        min_version: 0,
        max_version: 5,
        flexible_from: 3,
        body: &ADD_PARTITIONS_TO_TXN_REQUEST,
    },
    Schema {
        api_key: 25,
        name: "AddOffsetsToTxn",
        min_version: 0,
        max_version: 4,
        flexible_from: 3,
        body: &ADD_OFFSETS_TO_TXN_REQUEST,
    },
    Schema {
        api_key: 26,
        name: "EndTxn",
        min_version: 0,
        max_version: 5,
        flexible_from: 3,
        body: &END_TXN_REQUEST,
    },
    Schema {
        api_key: 28,
        name: "TxnOffsetCommit",
        min_version: 0,
        max_version: 5,
        flexible_from: 3,
        body: &TXN_OFFSET_COMMIT_REQUEST,
    },
    Schema {
        api_key: 29,
        name: "DescribeAcls",
        min_version: 1,
        max_version: 3,
        flexible_from: 2,
        body: &DESCRIBE_ACLS_REQUEST,
    },
    Schema {
        api_key: 30,
        name: "CreateAcls",
        min_version: 1,
        max_version: 3,
        flexible_from: 2,
        body: &CREATE_ACLS_REQUEST,
    },
    Schema {
        api_key: 31,
        name: "DeleteAcls",
        min_version: 1,
        max_version: 3,
        flexible_from: 2,
        body: &DELETE_ACLS_REQUEST,
    },
    Schema {
        api_key: 32,
        name: "DescribeConfigs",
        min_version: 1,
        max_version: 4,
        flexible_from: 4,
        body: &DESCRIBE_CONFIGS_REQUEST,
    },
    Schema {
        api_key: 33,
        name: "AlterConfigs",
        min_version: 0,
        max_version: 2,
        flexible_from: 2,
        body: &ALTER_CONFIGS_REQUEST,
    },
    Schema {
        api_key: 36,
        name: "SaslAuthenticate",
        min_version: 0,
        max_version: 2,
        flexible_from: 2,
        body: &SASL_AUTHENTICATE_REQUEST,
    },
    Schema {
        api_key: 37,
        name: "CreatePartitions",
        min_version: 0,
        max_version: 3,
        flexible_from: 2,
        body: &CREATE_PARTITIONS_REQUEST,
    },
    Schema {
        api_key: 42,
        name: "DeleteGroups",
        min_version: 0,
        max_version: 2,
        flexible_from: 2,
        body: &DELETE_GROUPS_REQUEST,
    },
    Schema {
        api_key: 44,
        name: "IncrementalAlterConfigs",
        min_version: 0,
        max_version: 1,
        flexible_from: 1,
        body: &INCREMENTAL_ALTER_CONFIGS_REQUEST,
    },
    Schema {
        api_key: 47,
        name: "OffsetDelete",
        min_version: 0,
        max_version: 0,
        flexible_from: NEVER_FLEXIBLE,
        body: &OFFSET_DELETE_REQUEST,
    },
    Schema {
        api_key: 48,
        name: "DescribeClientQuotas",
        min_version: 0,
        max_version: 1,
        flexible_from: 1,
        body: &DESCRIBE_CLIENT_QUOTAS_REQUEST,
    },
    Schema {
        api_key: 49,
        name: "AlterClientQuotas",
        min_version: 0,
        max_version: 1,
        flexible_from: 1,
        body: &ALTER_CLIENT_QUOTAS_REQUEST,
    },
    Schema {
        api_key: 50,
        name: "DescribeUserScramCredentials",
        min_version: 0,
        max_version: 0,
        flexible_from: 0,
        body: &DESCRIBE_USER_SCRAM_CREDENTIALS_REQUEST,
    },
    Schema {
        api_key: 51,
        name: "AlterUserScramCredentials",
        min_version: 0,
        max_version: 0,
        flexible_from: 0,
        body: &ALTER_USER_SCRAM_CREDENTIALS_REQUEST,
    },
    Schema {
        api_key: 60,
        name: "DescribeCluster",
        min_version: 0,
        max_version: 1,
        flexible_from: 0,
        body: &DESCRIBE_CLUSTER_REQUEST,
    },
    Schema {
        api_key: 61,
        name: "DescribeProducers",
        min_version: 0,
        max_version: 0,
        flexible_from: 0,
        body: &DESCRIBE_PRODUCERS_REQUEST,
    },
    Schema {
        api_key: 65,
        name: "DescribeTransactions",
        min_version: 0,
        max_version: 0,
        flexible_from: 0,
        body: &DESCRIBE_TRANSACTIONS_REQUEST,
    },
    Schema {
        api_key: 66,
        name: "ListTransactions",
        min_version: 0,
        max_version: 1,
        flexible_from: 0,
        body: &LIST_TRANSACTIONS_REQUEST,
    },
];
