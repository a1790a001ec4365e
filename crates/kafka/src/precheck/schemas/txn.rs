//! The transaction APIs' request schemas (see the parent module for what a table is).

use super::*;

// ---- 24 AddPartitionsToTxn (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----
//
// v4 replaced the single transaction (the `v3_and_below_*` fields) with a batch of them, each
// with `verify_only`; the topic struct is the same in both forms.

pub(super) static ADD_PARTITIONS_TO_TXN_REQUEST: StructDef = StructDef {
    name: "AddPartitionsToTxnRequest",
    fields: &[
        field("transactions", structs(&ADD_PARTITIONS_TO_TXN_TRANSACTION), 4, MAX),
        field("v3_and_below_transactional_id", STR, 0, 3),
        field("v3_and_below_producer_id", I64, 0, 3),
        field("v3_and_below_producer_epoch", I16, 0, 3),
        field("v3_and_below_topics", structs(&ADD_PARTITIONS_TO_TXN_TOPIC), 0, 3),
    ],
    tagged: &[],
};

pub(super) static ADD_PARTITIONS_TO_TXN_TRANSACTION: StructDef = StructDef {
    name: "AddPartitionsToTxnTransaction",
    fields: &[
        field("transactional_id", STR, 4, MAX),
        field("producer_id", I64, 4, MAX),
        field("producer_epoch", I16, 4, MAX),
        field("verify_only", BOOL, 4, MAX),
        field("topics", structs(&ADD_PARTITIONS_TO_TXN_TOPIC), 4, MAX),
    ],
    tagged: &[],
};

pub(super) static ADD_PARTITIONS_TO_TXN_TOPIC: StructDef = StructDef {
    name: "AddPartitionsToTxnTopic",
    fields: &[
        field("name", STR, 0, MAX),
        field("partitions", I32S, 0, MAX),
    ],
    tagged: &[],
};

// ---- 25 AddOffsetsToTxn (kafka-protocol 0.18 knows v0..=v4; Strom checks v0..=v4) ----

pub(super) static ADD_OFFSETS_TO_TXN_REQUEST: StructDef = StructDef {
    name: "AddOffsetsToTxnRequest",
    fields: &[
        field("transactional_id", STR, 0, MAX),
        field("producer_id", I64, 0, MAX),
        field("producer_epoch", I16, 0, MAX),
        field("group_id", STR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 26 EndTxn (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----
//
// v5's request is v4's; its answer carries the bumped epoch (transaction version 2).

pub(super) static END_TXN_REQUEST: StructDef = StructDef {
    name: "EndTxnRequest",
    fields: &[
        field("transactional_id", STR, 0, MAX),
        field("producer_id", I64, 0, MAX),
        field("producer_epoch", I16, 0, MAX),
        field("committed", BOOL, 0, MAX),
    ],
    tagged: &[],
};

// ---- 28 TxnOffsetCommit (kafka-protocol 0.18 knows v0..=v5; Strom checks v0..=v5) ----
//
// v5 is v4 on the wire; the group coordinator adds its partition to the transaction.

pub(super) static TXN_OFFSET_COMMIT_REQUEST: StructDef = StructDef {
    name: "TxnOffsetCommitRequest",
    fields: &[
        field("transactional_id", STR, 0, MAX),
        field("group_id", STR, 0, MAX),
        field("producer_id", I64, 0, MAX),
        field("producer_epoch", I16, 0, MAX),
        field("generation_id", I32, 3, MAX),
        field("member_id", STR, 3, MAX),
        field("group_instance_id", NSTR, 3, MAX),
        field("topics", structs(&TXN_OFFSET_COMMIT_REQUEST_TOPIC), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static TXN_OFFSET_COMMIT_REQUEST_TOPIC: StructDef = StructDef {
    name: "TxnOffsetCommitRequestTopic",
    fields: &[
        field("name", STR, 0, MAX),
        field("partitions", structs(&TXN_OFFSET_COMMIT_REQUEST_PARTITION), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static TXN_OFFSET_COMMIT_REQUEST_PARTITION: StructDef = StructDef {
    name: "TxnOffsetCommitRequestPartition",
    fields: &[
        field("partition_index", I32, 0, MAX),
        field("committed_offset", I64, 0, MAX),
        field("committed_leader_epoch", I32, 2, MAX),
        field("committed_metadata", NSTR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 65 DescribeTransactions (kafka-protocol 0.18 knows v0..=v0; Strom checks v0..=v0) ----

pub(super) static DESCRIBE_TRANSACTIONS_REQUEST: StructDef = StructDef {
    name: "DescribeTransactionsRequest",
    fields: &[
        field("transactional_ids", STRS, 0, MAX),
    ],
    tagged: &[],
};

// ---- 66 ListTransactions (kafka-protocol 0.18 knows v0..=v2; Strom checks v0..=v1) ----
//
// v2's `transactional_id_pattern` (nullable string) is outside the checked range.

pub(super) static LIST_TRANSACTIONS_REQUEST: StructDef = StructDef {
    name: "ListTransactionsRequest",
    fields: &[
        field("state_filters", STRS, 0, MAX),
        field("producer_id_filters", I64S, 0, MAX),
        field("duration_filter", I64, 1, MAX),
    ],
    tagged: &[],
};
