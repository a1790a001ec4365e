//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics and the broker.
//!
//! Every topic config Kafka documents is accepted and described; those Strom does not act on
//! carry a note in their `documentation` (see `strom_broker::topic_config`). A change is checked
//! in full before anything is written, then made durable (the topic's metadata file, or the
//! controller's log in a cluster) before it is answered.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_broker::topic_config::{apply_incremental, AlterOp, Effect, TOPIC_CONFIGS};
use strom_broker::BrokerError;

use super::admin::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::{str_bytes, Reply};
use crate::errors::kafka_error;
use crate::Context;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's `ConfigType` for the broker's values, which Strom describes as strings.
const TYPE_STRING: i8 = 2;

pub fn describe(ctx: &Arc<Context>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match topic_configs(ctx, &r.resource_name) {
                    Some(entries) => entries,
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "unknown topic {}",
                                r.resource_name.as_str()
                            ))))
                    }
                },
                RESOURCE_BROKER => broker_configs(ctx),
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!(
                            "resource type {other} is not supported"
                        ))))
                }
            };
            let configs = entries
                .into_iter()
                .filter(|e| wanted(&e.name))
                .map(|e| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(e.name))
                        .with_value(Some(str_bytes(e.value)))
                        .with_config_source(e.source)
                        .with_read_only(r.resource_type == RESOURCE_BROKER)
                        .with_config_type(e.kafka_type);
                    if req.include_documentation {
                        c = c.with_documentation(e.documentation.map(str_bytes));
                    }
                    c
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One described config.
struct Entry {
    name: String,
    value: String,
    source: i8,
    kafka_type: i8,
    documentation: Option<String>,
}

fn topic_configs(ctx: &Arc<Context>, name: &str) -> Option<Vec<Entry>> {
    let settings = ctx.broker.topic(name)?.settings();
    Some(
        TOPIC_CONFIGS
            .iter()
            .map(|d| Entry {
                name: d.name.to_string(),
                value: settings.config.get(d.name).unwrap_or_default(),
                source: if settings.overrides.contains_key(d.name) {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                },
                kafka_type: d.kafka_type(),
                documentation: match d.effect {
                    Effect::Acted => None,
                    Effect::StoredOnly(note) => Some(format!("Strom: {note}")),
                },
            })
            .collect(),
    )
}

fn broker_configs(ctx: &Arc<Context>) -> Vec<Entry> {
    let c = ctx.broker.config();
    let d = &c.topic_defaults;
    let flush = match c.flush {
        strom_broker::FlushPolicy::Always => "always".to_string(),
        strom_broker::FlushPolicy::IntervalMs(ms) => ms.to_string(),
    };
    [
        ("broker.id", c.node_id.to_string()),
        ("num.partitions", c.default_partitions.to_string()),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("log.retention.ms", d.retention_ms.to_string()),
        ("log.retention.bytes", d.retention_bytes.to_string()),
        ("log.segment.bytes", d.segment_bytes.to_string()),
        ("log.roll.ms", d.segment_ms.to_string()),
        ("message.max.bytes", d.max_message_bytes.to_string()),
        (
            "socket.request.max.bytes",
            ctx.config.max_request_bytes.to_string(),
        ),
        ("strom.flush", flush),
    ]
    .into_iter()
    .map(|(n, v)| Entry {
        name: n.to_string(),
        value: v,
        source: SOURCE_STATIC_BROKER,
        kafka_type: TYPE_STRING,
        documentation: None,
    })
    .collect()
}

/// One resource of an alter request, reduced to what both request kinds share: the topic's
/// complete new overrides, or the error to answer.
struct Change {
    resource_type: i8,
    resource_name: StrBytes,
    outcome: Result<(String, BTreeMap<String, String>), BrokerError>,
}

/// AlterConfigs: the given configs replace all of the resource's overrides.
pub fn alter(ctx: &Arc<Context>, req: AlterConfigsRequest) -> Reply {
    let changes = req
        .resources
        .into_iter()
        .map(|r| {
            let outcome = resource_topic(r.resource_type, &r.resource_name).and_then(|name| {
                let mut overrides = BTreeMap::new();
                for c in r.configs {
                    let value = c.value.ok_or_else(|| {
                        BrokerError::InvalidConfig(format!("{} has no value", c.name.as_str()))
                    })?;
                    overrides.insert(c.name.to_string(), value.to_string());
                }
                Ok((name, overrides))
            });
            Change {
                resource_type: r.resource_type,
                resource_name: r.resource_name,
                outcome,
            }
        })
        .collect();
    apply(ctx, changes, req.validate_only, |responses| {
        AlterConfigsResponse::default()
            .with_responses(responses)
            .into()
    })
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on the current overrides.
pub fn incremental(ctx: &Arc<Context>, req: IncrementalAlterConfigsRequest) -> Reply {
    let changes = req
        .resources
        .into_iter()
        .map(|r| {
            let outcome = resource_topic(r.resource_type, &r.resource_name).and_then(|name| {
                let settings = ctx
                    .broker
                    .topic(&name)
                    .ok_or(BrokerError::UnknownTopicOrPartition)?
                    .settings();
                let mut overrides = settings.overrides;
                for c in r.configs {
                    let op = AlterOp::from_code(c.config_operation).ok_or_else(|| {
                        BrokerError::InvalidConfig(format!(
                            "unknown operation {} for {}",
                            c.config_operation,
                            c.name.as_str()
                        ))
                    })?;
                    apply_incremental(
                        &mut overrides,
                        &settings.config,
                        c.name.as_str(),
                        op,
                        c.value.as_ref().map(|v| v.as_str()),
                    )?;
                }
                Ok((name, overrides))
            });
            Change {
                resource_type: r.resource_type,
                resource_name: r.resource_name,
                outcome,
            }
        })
        .collect();
    apply(ctx, changes, req.validate_only, |responses| {
        let responses = responses
            .into_iter()
            .map(|r| {
                kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(r.error_code)
                    .with_error_message(r.error_message)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
            })
            .collect();
        IncrementalAlterConfigsResponse::default()
            .with_responses(responses)
            .into()
    })
}

/// The topic an alter names; the broker's own configs are static in Strom.
fn resource_topic(resource_type: i8, name: &StrBytes) -> Result<String, BrokerError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(name.to_string()),
        RESOURCE_BROKER => Err(BrokerError::InvalidRequest(
            "Strom's broker configs cannot be changed at run time: set them with `strom serve` \
             flags or its config file and restart"
                .into(),
        )),
        other => Err(BrokerError::InvalidRequest(format!(
            "resource type {other} cannot be altered"
        ))),
    }
}

/// Validates and makes every topic change durable (through the controller in a cluster), then
/// answers each resource with its outcome.
fn apply(
    ctx: &Arc<Context>,
    changes: Vec<Change>,
    validate_only: bool,
    respond: impl FnOnce(Vec<AlterConfigsResourceResponse>) -> kafka_protocol::messages::ResponseKind
        + Send
        + 'static,
) -> Reply {
    let ctx = Arc::clone(ctx);
    Reply::Later(Box::pin(async move {
        let mut responses = Vec::with_capacity(changes.len());
        for change in changes {
            let outcome = match change.outcome {
                Ok((name, overrides)) => alter_topic(&ctx, &name, overrides, validate_only).await,
                Err(e) => Err(e),
            };
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(change.resource_type)
                .with_resource_name(change.resource_name);
            responses.push(match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(kafka_error(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            });
        }
        Some(respond(responses))
    }))
}

async fn alter_topic(
    ctx: &Arc<Context>,
    name: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    match ctx.broker.cluster() {
        None => ctx
            .broker
            .alter_topic_config(name, overrides, validate_only),
        Some(cluster) => {
            ctx.broker.checked_topic_config(Some(name), &overrides)?;
            if validate_only {
                return cluster
                    .with_state(|s| s.topics.contains_key(name))
                    .then_some(())
                    .ok_or(BrokerError::UnknownTopicOrPartition);
            }
            super::cluster::alter_topic_config(cluster, name, overrides).await
        }
    }
}
