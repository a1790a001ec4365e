//! DescribeConfigs for topics and for the broker.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;
use strom_broker::topic::CONFIG_NAMES;

use super::admin::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::str_bytes;
use crate::Context;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;

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
            let entries: Vec<(String, String, i8)> = match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = ctx.broker.topic(&r.resource_name) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "unknown topic {}",
                                r.resource_name.as_str()
                            ))));
                    };
                    CONFIG_NAMES
                        .iter()
                        .filter_map(|n| {
                            let source = if topic.overrides.contains_key(*n) {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            topic.config.get(n).map(|v| (n.to_string(), v, source))
                        })
                        .collect()
                }
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
                .filter(|(n, _, _)| wanted(n))
                .map(|(n, v, source)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(n))
                        .with_value(Some(str_bytes(v)))
                        .with_config_source(source)
                        .with_read_only(
                            source != SOURCE_TOPIC && r.resource_type == RESOURCE_BROKER,
                        )
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(ctx: &Arc<Context>) -> Vec<(String, String, i8)> {
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
    .map(|(n, v)| (n.to_string(), v, SOURCE_STATIC_BROKER))
    .collect()
}
