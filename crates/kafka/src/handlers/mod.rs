//! One module per Kafka API. Handlers build responses from broker state; they never touch files.

pub mod admin;
pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod delete_records;
pub mod describe_producers;
pub mod fetch;
pub mod group;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod security;
pub mod txn;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Context;

/// A handler's answer.
pub enum Reply {
    Now(Box<ResponseKind>),
    /// Resolves to the response (or to none, for acks=0) once the request's wait is over.
    Later(Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>),
    /// acks=0 produce: Kafka sends no response at all.
    Nothing,
}

/// Who sent a request, as group members are described (DescribeGroups client id and host).
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub id: String,
    /// The peer address as Kafka prints it, e.g. `/127.0.0.1`.
    pub host: String,
    /// The peer's IP as ACL host filters name it, e.g. `127.0.0.1`.
    pub ip: String,
    /// `User:NAME` once authenticated (SASL or a client certificate), else `User:ANONYMOUS`.
    pub principal: String,
}

pub fn handle(ctx: &Arc<Context>, request: RequestKind, version: i16, client: &Client) -> Reply {
    use group::{admin as groups, find_coordinator, membership, offsets};
    let now = |resp: ResponseKind| Reply::Now(Box::new(resp));
    match request {
        RequestKind::ApiVersions(_) => Reply::Now(Box::new(api_versions::handle().into())),
        RequestKind::Metadata(r) => match ctx.broker.cluster() {
            Some(c) => now(cluster::metadata(ctx, c, r, version).into()),
            None => now(metadata::handle(ctx, r, version).into()),
        },
        RequestKind::Produce(r) => produce::handle(ctx, r, version),
        RequestKind::Fetch(r) => fetch::handle(ctx, r),
        RequestKind::ListOffsets(r) => list_offsets::handle(ctx, r, version),
        RequestKind::CreateTopics(r) if ctx.broker.cluster().is_some() => {
            admin::create_topics_cluster(ctx, r)
        }
        RequestKind::CreateTopics(r) => {
            Reply::Now(Box::new(admin::create_topics(ctx, r, version).into()))
        }
        RequestKind::DeleteTopics(r) if ctx.broker.cluster().is_some() => {
            admin::delete_topics_cluster(ctx, r)
        }
        RequestKind::DeleteTopics(r) => Reply::Now(Box::new(admin::delete_topics(ctx, r).into())),
        RequestKind::CreatePartitions(r) => {
            Reply::Now(Box::new(admin::create_partitions(ctx, r).into()))
        }
        RequestKind::DescribeConfigs(r) => Reply::Now(Box::new(configs::describe(ctx, r).into())),
        RequestKind::AlterConfigs(r) => configs::alter(ctx, r),
        RequestKind::DeleteRecords(r) => delete_records::handle(ctx, r),
        RequestKind::DescribeProducers(r) => now(describe_producers::handle(ctx, r).into()),
        RequestKind::IncrementalAlterConfigs(r) => configs::incremental(ctx, r),
        RequestKind::InitProducerId(r) => init_producer_id::handle(ctx, r, version),
        RequestKind::AddPartitionsToTxn(r) => txn::add_partitions(ctx, r, version),
        RequestKind::AddOffsetsToTxn(r) => txn::add_offsets(ctx, r),
        RequestKind::EndTxn(r) => txn::end_txn(ctx, r, version),
        RequestKind::TxnOffsetCommit(r) => txn::txn_offset_commit(ctx, r, version),
        RequestKind::DescribeTransactions(r) => txn::describe(ctx, r),
        RequestKind::ListTransactions(r) => txn::list(ctx, r),
        RequestKind::FindCoordinator(r) => now(find_coordinator::handle(ctx, r, version).into()),
        RequestKind::JoinGroup(r) => membership::join(ctx, r, version, client),
        RequestKind::SyncGroup(r) => membership::sync(ctx, r, version),
        RequestKind::Heartbeat(r) => now(membership::heartbeat(ctx, r).into()),
        RequestKind::LeaveGroup(r) => now(membership::leave(ctx, r, version).into()),
        RequestKind::OffsetCommit(r) => offsets::commit(ctx, r),
        RequestKind::OffsetFetch(r) => now(offsets::fetch(ctx, r, version).into()),
        RequestKind::OffsetDelete(r) => offsets::delete(ctx, r),
        RequestKind::ListGroups(r) => now(groups::list(ctx, r, version).into()),
        RequestKind::DescribeGroups(r) => now(groups::describe(ctx, r, version).into()),
        RequestKind::DeleteGroups(r) => groups::delete(ctx, r),
        RequestKind::OffsetForLeaderEpoch(r) => now(offset_for_leader_epoch::handle(ctx, r).into()),
        RequestKind::CreateAcls(r) => security::create_acls(ctx, r),
        RequestKind::DescribeAcls(r) => now(security::describe_acls(ctx, r)),
        RequestKind::DeleteAcls(r) => security::delete_acls(ctx, r),
        RequestKind::DescribeUserScramCredentials(r) => now(security::describe_users(ctx, r)),
        RequestKind::AlterUserScramCredentials(r) => security::alter_users(ctx, r),
        RequestKind::DescribeClientQuotas(r) => now(security::describe_quotas(ctx, r)),
        RequestKind::AlterClientQuotas(r) => security::alter_quotas(ctx, r),
        other => {
            // Unreachable through dispatch, which admits only the versions table's APIs.
            tracing::error!("no handler for {other:?}");
            Reply::Nothing
        }
    }
}

/// Kafka's authorized-operation bit sets as a broker without an authorizer answers them: every
/// operation the resource type supports (Metadata v8+, DescribeCluster, DescribeGroups v3+).
/// With the authorizer on, `authz` narrows them to what the caller's ACLs allow.
pub(crate) mod authorized {
    const fn bits(ops: &[u8]) -> i32 {
        let mut set = 0;
        let mut i = 0;
        while i < ops.len() {
            set |= 1 << ops[i];
            i += 1;
        }
        set
    }
    // Kafka's AclOperation codes: 3 READ, 4 WRITE, 5 CREATE, 6 DELETE, 7 ALTER, 8 DESCRIBE,
    // 9 CLUSTER_ACTION, 10 DESCRIBE_CONFIGS, 11 ALTER_CONFIGS, 12 IDEMPOTENT_WRITE.
    pub const TOPIC: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
    pub const CLUSTER: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);
    pub const GROUP: i32 = bits(&[3, 6, 8]);
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}
