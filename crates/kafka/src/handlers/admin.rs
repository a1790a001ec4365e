//! CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::ResponseError;
use strom_broker::topic_config::TOPIC_CONFIGS;
use strom_broker::BrokerError;

use super::{str_bytes, topic_name};
use crate::errors::kafka_error;
use crate::Context;

/// Kafka's DescribeConfigs/CreateTopics config source for a topic override and for a default.
pub(crate) const SOURCE_TOPIC: i8 = 1;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

pub fn create_topics(
    ctx: &Arc<Context>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let fail = |err: ResponseError, msg: String| {
                result
                    .clone()
                    .with_error_code(err.code())
                    .with_error_message(Some(str_bytes(msg)))
            };
            if duplicated.contains(&name) {
                return fail(
                    ResponseError::InvalidRequest,
                    format!("topic {name} appears twice in the request"),
                );
            }
            if !t.assignments.is_empty() {
                let node = ctx.broker.node_id();
                let foreign = t
                    .assignments
                    .iter()
                    .flat_map(|a| a.broker_ids.iter())
                    .any(|b| b.0 != node);
                if foreign || t.assignments.iter().any(|a| a.broker_ids.len() != 1) {
                    return fail(
                        ResponseError::InvalidReplicaAssignment,
                        format!("only node {node} exists"),
                    );
                }
            }
            let mut overrides = BTreeMap::new();
            for c in t.configs {
                match c.value {
                    Some(v) => overrides.insert(c.name.to_string(), v.to_string()),
                    None => {
                        return fail(
                            ResponseError::InvalidConfig,
                            format!("config {} has no value", c.name.as_str()),
                        )
                    }
                };
            }
            let partitions = if t.assignments.is_empty() {
                t.num_partitions
            } else {
                t.assignments.len() as i32
            };
            match ctx.broker.create_topic(
                &name,
                partitions,
                t.replication_factor as i32,
                overrides,
                req.validate_only,
            ) {
                Ok(topic) => {
                    let mut r = result.with_topic_id(topic.id);
                    if version >= 5 {
                        let settings = topic.settings();
                        let configs = TOPIC_CONFIGS
                            .iter()
                            .map(|d| {
                                let source = if settings.overrides.contains_key(d.name) {
                                    SOURCE_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(d.name))
                                    .with_value(settings.config.get(d.name).map(str_bytes))
                                    .with_config_source(source)
                            })
                            .collect();
                        let count = if req.validate_only {
                            partitions.max(ctx.broker.config().default_partitions)
                        } else {
                            topic.partition_count() as i32
                        };
                        r = r
                            .with_num_partitions(count)
                            .with_replication_factor(1)
                            .with_configs(Some(configs));
                    }
                    r
                }
                Err(e) => fail(kafka_error(&e), e.to_string()),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Cluster mode: each topic is created through the controller (replication factor -1 means
/// the cluster default; explicit assignments are not supported yet).
pub fn create_topics_cluster(ctx: &Arc<Context>, req: CreateTopicsRequest) -> super::Reply {
    let Some(cluster) = ctx.broker.cluster().cloned() else {
        return super::Reply::Nothing;
    };
    let default_partitions = ctx.broker.config().default_partitions;
    let broker = Arc::clone(&ctx.broker);
    super::Reply::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let partitions = if t.num_partitions == -1 {
                default_partitions
            } else {
                t.num_partitions
            };
            let rf = if t.replication_factor == -1 {
                super::cluster::default_replication_factor(&cluster) as i32
            } else {
                i32::from(t.replication_factor)
            };
            let overrides: BTreeMap<String, String> = t
                .configs
                .into_iter()
                .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
                .collect();
            let outcome = if !t.assignments.is_empty() {
                Err(BrokerError::InvalidConfig(
                    "explicit replica assignments are not supported; the controller places replicas".into(),
                ))
            } else if !(1..=strom_broker::PARTITIONS_MAX).contains(&partitions) {
                Err(BrokerError::InvalidPartitions(format!("{partitions}")))
            } else if rf < 1 {
                Err(BrokerError::InvalidReplicationFactor(rf))
            } else if let Err(e) = broker.checked_topic_config(None, &overrides) {
                Err(e)
            } else if req.validate_only {
                Ok(uuid::Uuid::nil())
            } else {
                super::cluster::create_topic(
                    &cluster,
                    &name,
                    partitions as u32,
                    rf as u32,
                    overrides,
                )
                .await
            };
            results.push(match outcome {
                Ok(id) => result
                    .with_topic_id(id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf as i16),
                Err(e) => result
                    .with_error_code(kafka_error(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            });
        }
        Some(CreateTopicsResponse::default().with_topics(results).into())
    }))
}

/// Cluster mode: each topic is deleted through the controller.
pub fn delete_topics_cluster(ctx: &Arc<Context>, req: DeleteTopicsRequest) -> super::Reply {
    let Some(cluster) = ctx.broker.cluster().cloned() else {
        return super::Reply::Nothing;
    };
    super::Reply::Later(Box::pin(async move {
        let mut responses = Vec::new();
        for (name, id) in requested_deletions(req) {
            let name = name.or_else(|| {
                cluster.with_state(|s| {
                    s.topics
                        .values()
                        .find(|t| t.id == id)
                        .map(|t| t.name.clone())
                })
            });
            let outcome = match &name {
                Some(n) => Some(super::cluster::delete_topic(&cluster, n).await),
                None => None,
            };
            responses.push(deletion_result(name, id, outcome));
        }
        Some(
            DeleteTopicsResponse::default()
                .with_responses(responses)
                .into(),
        )
    }))
}

pub fn delete_topics(ctx: &Arc<Context>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let responses = requested_deletions(req)
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| ctx.broker.topic_by_id(id).map(|t| t.name.clone()));
            let outcome = name.as_deref().map(|n| ctx.broker.delete_topic(n));
            deletion_result(name, id, outcome)
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// The topics a DeleteTopics names: v0-5 in `topic_names`; v6 in `topics`, by name or by id.
fn requested_deletions(req: DeleteTopicsRequest) -> Vec<(Option<String>, uuid::Uuid)> {
    let by_name = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()));
    let by_state = req
        .topics
        .into_iter()
        .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id));
    by_name.chain(by_state).collect()
}

/// One topic's answer: `outcome` is `None` when the id matched no topic.
fn deletion_result(
    name: Option<String>,
    id: uuid::Uuid,
    outcome: Option<Result<uuid::Uuid, BrokerError>>,
) -> DeletableTopicResult {
    let result = DeletableTopicResult::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id);
    match outcome {
        None => result.with_error_code(ResponseError::UnknownTopicId.code()),
        Some(Ok(id)) => result.with_topic_id(id),
        Some(Err(e)) => result
            .with_error_code(kafka_error(&e).code())
            .with_error_message(Some(str_bytes(e.to_string()))),
    }
}

pub fn create_partitions(
    ctx: &Arc<Context>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match ctx
                .broker
                .create_partitions(&t.name.0, t.count, req.validate_only)
            {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(kafka_error(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
