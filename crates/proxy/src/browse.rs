//! What the console's message browser and topic actions use:
//! - `GET /v1/topics/{name}/partitions/{p}/records?offset=N|timestamp=MS&limit=L`: up to `L`
//!   records of one partition from offset `N` (or the first at or after timestamp `MS`; with
//!   neither, the newest `L`), with timestamps and headers, keys and values in base64. A
//!   short-lived librdkafka consumer with no group reads them, so compression, the cluster's
//!   leaders and transactions (read_committed) are handled as for any client.
//! - v3's `POST /v3/clusters/{id}/topics` and `DELETE /v3/clusters/{id}/topics/{name}`, through
//!   the Kafka admin API.
//! - `POST /v1/groups/{id}/reset-offsets` (`{"topic", "to": "earliest"|"latest"|OFFSET}`): commits
//!   the group's offsets of every partition of a topic, as `kafka-consumer-groups
//!   --reset-offsets` does; like Kafka, only while the group has no active members.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::json;

use crate::{blocking, parse_body, reply, Acting, LogContext, ProxyError, KAFKA_TIMEOUT};

/// Most records one browse returns.
const MAX_LIMIT: i64 = 500;
/// Most bytes of keys, values and headers one browse returns.
const MAX_BYTES: usize = 4 << 20;
/// How long a browse waits for records it knows exist.
const READ_WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
pub struct BrowseQuery {
    offset: Option<i64>,
    timestamp: Option<i64>,
    limit: Option<i64>,
}

fn b64(bytes: &[u8]) -> String {
    crate::BASE64.encode(bytes)
}

pub(crate) async fn records(
    proxy: Acting,
    Path((topic, partition)): Path<(String, i32)>,
    Query(q): Query<BrowseQuery>,
) -> Result<Response, ProxyError> {
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let config = proxy.client_config();
    let body = blocking(move || {
        let consumer: BaseConsumer<LogContext> = config
            .clone()
            .set("group.id", "strom-console-browser")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create_with_context(LogContext)
            .map_err(|e| ProxyError::of_kafka("consumer", &e))?;
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, KAFKA_TIMEOUT)
            .map_err(|e| match e.rdkafka_error_code() {
                Some(rdkafka::types::RDKafkaErrorCode::UnknownPartition) => {
                    ProxyError::partition_not_found(&topic, partition)
                }
                Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) => {
                    ProxyError::topic_not_found(&topic)
                }
                _ => ProxyError::of_kafka("watermarks", &e),
            })?;
        let start = match (q.offset, q.timestamp) {
            (Some(o), _) => o.clamp(low, high),
            (None, Some(ts)) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&topic, partition, Offset::Offset(ts))
                    .map_err(|e| ProxyError::kafka(e.to_string()))?;
                let found = consumer
                    .offsets_for_times(tpl, KAFKA_TIMEOUT)
                    .map_err(|e| ProxyError::of_kafka("offsets for times", &e))?;
                match found.find_partition(&topic, partition).map(|p| p.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => high,
                }
            }
            (None, None) => (high - limit).max(low),
        };
        let mut out = Vec::new();
        if start < high {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition, Offset::Offset(start))
                .map_err(|e| ProxyError::kafka(e.to_string()))?;
            consumer
                .assign(&tpl)
                .map_err(|e| ProxyError::of_kafka("assign", &e))?;
            let deadline = Instant::now() + READ_WAIT;
            let mut bytes = 0;
            let mut next = start;
            while (out.len() as i64) < limit && next < high && bytes < MAX_BYTES {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let Some(polled) = consumer.poll(left) else {
                    continue;
                };
                let m = polled.map_err(|e| ProxyError::of_kafka("read", &e))?;
                next = m.offset() + 1;
                let mut headers = Vec::new();
                if let Some(hs) = m.headers() {
                    for h in hs.iter() {
                        bytes += h.key.len() + h.value.map_or(0, <[u8]>::len);
                        headers.push(json!([h.key, h.value.map(b64)]));
                    }
                }
                bytes += m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
                out.push(json!({
                    "offset": m.offset(),
                    "timestamp": m.timestamp().to_millis(),
                    "key": m.key().map(b64),
                    "value": m.payload().map(b64),
                    "headers": headers,
                }));
            }
        }
        Ok(json!({
            "topic": topic,
            "partition": partition,
            "log_start_offset": low,
            "high_watermark": high,
            "records": out,
        }))
    })
    .await?;
    Ok(reply(StatusCode::OK, body))
}

#[derive(Deserialize)]
struct CreateTopic {
    topic_name: String,
    #[serde(default = "minus_one")]
    partitions_count: i32,
    #[serde(default = "minus_one")]
    replication_factor: i32,
    #[serde(default)]
    configs: Vec<ConfigPair>,
}

#[derive(Deserialize)]
struct ConfigPair {
    name: String,
    value: String,
}

fn minus_one() -> i32 {
    -1
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(KAFKA_TIMEOUT))
        .operation_timeout(Some(KAFKA_TIMEOUT))
}

/// A topic-level admin result as the proxy's error: Kafka's reason, with Confluent's status.
fn topic_error(topic: &str, code: rdkafka::types::RDKafkaErrorCode) -> ProxyError {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code {
        C::TopicAlreadyExists => ProxyError::new(40002, format!("Topic '{topic}' already exists.")),
        C::UnknownTopicOrPartition => ProxyError::topic_not_found(topic),
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
            ProxyError::forbidden(format!("Not authorized to access topics: [{topic}]"))
        }
        C::InvalidTopic | C::InvalidPartitions | C::InvalidReplicationFactor | C::InvalidConfig => {
            ProxyError::bad_request(format!("{topic}: {code}"))
        }
        other => ProxyError::kafka(format!("{topic}: {other}")),
    }
}

pub(crate) async fn create_topic(
    proxy: Acting,
    Path(cluster): Path<String>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let t: CreateTopic = parse_body(&body)?;
    let mut new = NewTopic::new(
        &t.topic_name,
        t.partitions_count,
        TopicReplication::Fixed(t.replication_factor),
    );
    for c in &t.configs {
        new = new.set(&c.name, &c.value);
    }
    let results = proxy
        .admin()?
        .create_topics([&new], &admin_options())
        .await
        .map_err(|e| ProxyError::of_kafka("create topics", &e))?;
    for r in results {
        if let Err((topic, code)) = r {
            return Err(topic_error(&topic, code));
        }
    }
    Ok(reply(
        StatusCode::CREATED,
        json!({
            "kind": "KafkaTopic",
            "cluster_id": cluster,
            "topic_name": t.topic_name,
            "partitions_count": t.partitions_count,
            "replication_factor": t.replication_factor,
            "is_internal": false,
        }),
    ))
}

pub(crate) async fn delete_topic(
    proxy: Acting,
    Path((_cluster, topic)): Path<(String, String)>,
) -> Result<Response, ProxyError> {
    let results = proxy
        .admin()?
        .delete_topics(&[topic.as_str()], &admin_options())
        .await
        .map_err(|e| ProxyError::of_kafka("delete topics", &e))?;
    for r in results {
        if let Err((topic, code)) = r {
            return Err(topic_error(&topic, code));
        }
    }
    use axum::response::IntoResponse;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct Reset {
    topic: String,
    /// `earliest`, `latest` or an offset (clamped to each partition's range).
    to: serde_json::Value,
}

pub(crate) async fn reset_offsets(
    proxy: Acting,
    Path(group): Path<String>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let r: Reset = parse_body(&body)?;
    let to = match &r.to {
        serde_json::Value::String(s) if s == "earliest" || s == "latest" => s.clone(),
        serde_json::Value::Number(n) if n.as_i64().is_some_and(|o| o >= 0) => n.to_string(),
        other => {
            return Err(ProxyError::new(
                422,
                format!("reset to {other}: use \"earliest\", \"latest\" or an offset"),
            ))
        }
    };
    let config = proxy.client_config();
    let body = blocking(move || {
        let consumer: BaseConsumer<LogContext> = config
            .clone()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create_with_context(LogContext)
            .map_err(|e| ProxyError::of_kafka("consumer", &e))?;
        let md = consumer
            .fetch_metadata(Some(&r.topic), KAFKA_TIMEOUT)
            .map_err(|e| ProxyError::of_kafka("metadata", &e))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .find(|t| t.name() == r.topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .ok_or_else(|| ProxyError::topic_not_found(&r.topic))?;
        let mut tpl = TopicPartitionList::new();
        let mut offsets = Vec::new();
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&r.topic, p, KAFKA_TIMEOUT)
                .map_err(|e| ProxyError::of_kafka("watermarks", &e))?;
            let offset = match to.as_str() {
                "earliest" => low,
                "latest" => high,
                n => n.parse::<i64>().unwrap_or(low).clamp(low, high),
            };
            tpl.add_partition_offset(&r.topic, p, Offset::Offset(offset))
                .map_err(|e| ProxyError::kafka(e.to_string()))?;
            offsets.push(json!({"partition": p, "offset": offset}));
        }
        consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .map_err(|e| {
                ProxyError::new(
                    40901,
                    format!("cannot reset the offsets of group {group} (is it still active? stop its consumers first): {e}"),
                )
            })?;
        Ok(json!({"group": group, "topic": r.topic, "offsets": offsets}))
    })
    .await?;
    Ok(reply(StatusCode::OK, body))
}
