use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use strom_broker::group::OFFSETS_TOPIC;
use strom_broker::partition::SINGLE_NODE_LEADER_EPOCH;
use strom_broker::topic::validate_topic_name;
use strom_broker::Topic;

use super::{str_bytes, topic_name};
use crate::Context;

pub fn handle(ctx: &Arc<Context>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let cluster_ops = version >= 8 && req.include_cluster_authorized_operations;
    let broker = &ctx.broker;
    let node = broker.node_id();
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(ctx.config.advertised_host.clone()))
        .with_port(ctx.config.advertised_port)];
    let topics = requested_topics(
        req,
        version,
        || broker.topics().iter().map(|t| describe(node, t)).collect(),
        |id| broker.topic_by_id(id).map(|t| describe(node, &t)),
        |name, may_create| {
            let found = if may_create {
                broker.topic_or_auto_create(&name)
            } else {
                Ok(broker.topic(&name))
            };
            match found {
                Ok(Some(t)) => describe(node, &t),
                Ok(None) => error_topic(Some(name), ResponseError::UnknownTopicOrPartition),
                Err(e) => error_topic(Some(name), crate::errors::kafka_error(&e)),
            }
        },
    );
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id())))
        .with_controller_id(BrokerId(node))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_authorized_operations(cluster_ops))
}

/// What Metadata v8-10 answers for `include_cluster_authorized_operations`: every operation
/// (no authorizer), or Kafka's "not asked" value.
pub(crate) fn cluster_authorized_operations(asked: bool) -> i32 {
    if asked {
        super::authorized::CLUSTER
    } else {
        i32::MIN
    }
}

/// The topics a Metadata request asks about, whichever registry answers (this node's, or the
/// controller's state in cluster mode): `all` for "every topic", `by_id` for a topic named by id,
/// `by_name(name, may_create)` for a valid name. Invalid names and unknown ids are answered here,
/// and internal topics are flagged.
pub(crate) fn requested_topics(
    req: MetadataRequest,
    version: i16,
    all: impl FnOnce() -> Vec<MetadataResponseTopic>,
    by_id: impl Fn(uuid::Uuid) -> Option<MetadataResponseTopic>,
    mut by_name: impl FnMut(String, bool) -> MetadataResponseTopic,
) -> Vec<MetadataResponseTopic> {
    let topic_ops = version >= 8 && req.include_topic_authorized_operations;
    // v0: an empty list means every topic; v1+: null means every topic.
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    // v4+ lets the client ask not to auto-create; before v4 auto-creation is implied.
    let may_create = version < 4 || req.allow_auto_topic_creation;
    let mut topics = match wanted {
        None => all(),
        Some(requested) => requested
            .into_iter()
            .map(|rt| {
                let Some(name) = rt.name.map(|n| n.0.to_string()) else {
                    return by_id(rt.topic_id).unwrap_or_else(|| {
                        error_topic(None, ResponseError::UnknownTopicId).with_topic_id(rt.topic_id)
                    });
                };
                if validate_topic_name(&name).is_err() {
                    return error_topic(Some(name), ResponseError::InvalidTopicException);
                }
                by_name(name, may_create)
            })
            .collect(),
    };
    if topic_ops {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            t.topic_authorized_operations = super::authorized::TOPIC;
        }
    }
    // v1+ flags internal topics; clients leave them out of pattern subscriptions.
    if version >= 1 {
        for t in &mut topics {
            if t.name
                .as_ref()
                .is_some_and(|n| n.0.as_str() == OFFSETS_TOPIC)
            {
                t.is_internal = true;
            }
        }
    }
    topics
}

pub(crate) fn error_topic(name: Option<String>, err: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_error_code(err.code())
}

pub(crate) fn describe(node: i32, t: &Topic) -> MetadataResponseTopic {
    let partitions = t
        .partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(SINGLE_NODE_LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(t.name.clone())))
        .with_topic_id(t.id)
        .with_partitions(partitions)
}
