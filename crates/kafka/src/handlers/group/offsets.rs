//! OffsetCommit, OffsetFetch (single-group form before v8, multi-group from v8), OffsetDelete.

use std::sync::Arc;

use kafka_protocol::ResponseError;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use strom_broker::group::{CommittedOffset, OffsetCommit};

use super::{consumer_protocol, kafka_error, result_code};
use crate::handlers::{str_bytes, topic_name, Reply};
use crate::Context;

pub fn commit(ctx: &Arc<Context>, req: OffsetCommitRequest) -> Reply {
    // Remembers the response's shape: topic name and partition index per commit, in order.
    let mut shape: Vec<(kafka_protocol::messages::TopicName, Vec<i32>)> = Vec::new();
    let mut commits = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut indexes = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            indexes.push(p.partition_index);
            commits.push(OffsetCommit {
                topic: name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|m| m.to_string()),
            });
        }
        shape.push((t.name, indexes));
    }
    let durable = ctx.broker.groups().commit(
        &ctx.broker,
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_ref().map(|i| i.as_str()),
        req.generation_id_or_member_epoch,
        commits,
    );
    Reply::Later(Box::pin(async move {
        let results = durable.await;
        let mut results = results.iter();
        let topics = shape
            .into_iter()
            .map(|(name, indexes)| {
                let partitions = indexes
                    .into_iter()
                    .map(|i| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(i)
                            .with_error_code(results.next().map_or(0, result_code))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(OffsetCommitResponse::default().with_topics(topics).into())
    }))
}

/// (committed offset, leader epoch, metadata) as OffsetFetch reports them; -1 when none.
fn reported(c: Option<CommittedOffset>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

pub fn fetch(ctx: &Arc<Context>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let groups = ctx.broker.groups();
    if version >= 8 {
        let results = req
            .groups
            .into_iter()
            .map(|g| {
                if let Err(e) = groups.check_owner(&g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(super::kafka_error(&e).code());
                }
                let wanted: Option<Vec<(String, Vec<i32>)>> = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = groups
                    .fetch_offsets(&g.group_id.0, wanted.as_deref())
                    .into_iter()
                    .map(|(topic, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|(index, c)| {
                                let unstable =
                                    unstable(ctx, req.require_stable, &g.group_id.0, &topic, index);
                                let (offset, epoch, metadata) = reported(c);
                                OffsetFetchResponsePartitions::default()
                                    .with_error_code(unstable)
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(str_bytes(metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(results);
    }
    if let Err(e) = groups.check_owner(&req.group_id.0) {
        return OffsetFetchResponse::default().with_error_code(super::kafka_error(&e).code());
    }
    // v1 has no "all topics" form; a null list there is decoded as empty.
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = groups
        .fetch_offsets(&req.group_id.0, wanted.as_deref())
        .into_iter()
        .map(|(topic, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, c)| {
                    let unstable =
                        unstable(ctx, req.require_stable, &req.group_id.0, &topic, index);
                    let (offset, epoch, metadata) = reported(c);
                    let p = OffsetFetchResponsePartition::default()
                        .with_error_code(unstable)
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_metadata(Some(str_bytes(metadata)));
                    if version >= 5 {
                        p.with_committed_leader_epoch(epoch)
                    } else {
                        p
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// UNSTABLE_OFFSET_COMMIT when a read_committed consumer (`require_stable`, v7+) asks for an
/// offset a transaction has committed but not yet ended: it retries until the transaction
/// commits or aborts, so it never starts from an offset that may vanish.
fn unstable(ctx: &Context, require_stable: bool, group: &str, topic: &str, partition: i32) -> i16 {
    if require_stable
        && ctx
            .broker
            .groups()
            .has_unstable_offset(group, topic, partition)
    {
        ResponseError::UnstableOffsetCommit.code()
    } else {
        0
    }
}

pub fn delete(ctx: &Arc<Context>, req: OffsetDeleteRequest) -> Reply {
    let mut shape = Vec::new();
    let mut partitions = Vec::new();
    for t in req.topics {
        let indexes: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        partitions.extend(indexes.iter().map(|i| (t.name.0.to_string(), *i)));
        shape.push((t.name, indexes));
    }
    let deleted = ctx.broker.groups().delete_offsets(
        &ctx.broker,
        &req.group_id.0,
        &partitions,
        &consumer_protocol::subscribed_topics,
    );
    let durable = match deleted {
        Ok(d) => d,
        Err(e) => {
            let resp = OffsetDeleteResponse::default().with_error_code(kafka_error(&e).code());
            return Reply::Now(Box::new(resp.into()));
        }
    };
    Reply::Later(Box::pin(async move {
        let results = durable.await;
        let mut results = results.iter();
        let topics = shape
            .into_iter()
            .map(|(name, indexes)| {
                let partitions = indexes
                    .into_iter()
                    .map(|i| {
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(i)
                            .with_error_code(results.next().map_or(0, result_code))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(OffsetDeleteResponse::default().with_topics(topics).into())
    }))
}
