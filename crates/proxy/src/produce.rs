//! Producing over HTTP: v2's `POST /topics/{name}[/partitions/{p}]` (many records, JSON or
//! binary embedded format) and v3's `POST /v3/clusters/{id}/topics/{name}/records` (one
//! record with typed key and value). Records go through the proxy's producer (acks=all,
//! idempotent), so a 200 means every record is committed as a Kafka client's would be.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{parse_body, reply, topics, Acting, Format, ProxyError, KAFKA_TIMEOUT};

/// Records in one v2 request; a larger batch is refused (the body limit bounds bytes).
const MAX_RECORDS: usize = 10_000;

#[derive(Deserialize)]
struct ProduceBody {
    records: Vec<V2Record>,
}

#[derive(Deserialize)]
struct V2Record {
    #[serde(default)]
    key: Value,
    #[serde(default)]
    value: Value,
    partition: Option<i32>,
}

/// A key or value in `format`: JSON is stored as its text, binary is base64; null is none.
fn decode(format: Format, v: &Value, what: &str) -> Result<Option<Vec<u8>>, ProxyError> {
    match (format, v) {
        (_, Value::Null) => Ok(None),
        (Format::Json, v) => Ok(Some(v.to_string().into_bytes())),
        (Format::Binary, Value::String(s)) => crate::BASE64
            .decode(s)
            .map(Some)
            .map_err(|e| ProxyError::new(422, format!("the {what} is not valid base64: {e}"))),
        (Format::Binary, _) => Err(ProxyError::new(
            422,
            format!("the {what} must be a base64 string in the binary format"),
        )),
    }
}

/// A record ready to send.
struct Outgoing {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
    headers: Vec<(String, Vec<u8>)>,
}

/// Sends `records` to `topic` in order; each one's (partition, offset) or error.
async fn send_all(
    proxy: &Acting,
    topic: &str,
    records: &[Outgoing],
) -> Result<Vec<Result<(i32, i64), String>>, ProxyError> {
    let producer = proxy.producer()?;
    // Polled in order, so records for one partition are queued, and written, in order.
    let sends = records.iter().map(|r| {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if !r.headers.is_empty() {
            let mut headers = OwnedHeaders::new();
            for (name, value) in &r.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_slice()),
                });
            }
            record = record.headers(headers);
        }
        producer.send(record, KAFKA_TIMEOUT)
    });
    let results = futures::future::join_all(sends).await;
    // Refused by the caller's ACLs: no record of the request can succeed.
    let denied = results.iter().any(|r| {
        r.as_ref().is_err_and(|(e, _)| {
            e.rdkafka_error_code()
                == Some(rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed)
        })
    });
    if denied {
        return Err(ProxyError::forbidden(format!(
            "Not authorized to access topics: [{topic}]"
        )));
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.map(|d| (d.partition, d.offset))
                .map_err(|(e, _)| e.to_string())
        })
        .collect())
}

/// How long a topic's partition count is trusted before metadata is asked again.
const PARTITIONS_TTL: Duration = Duration::from_secs(10);

/// The topic's partition count, or 40401: an unknown topic is not created by producing. Kept
/// for [`PARTITIONS_TTL`], so a stream of produce requests does not cost a metadata round trip
/// each; an unknown topic is asked about every time, so one created meanwhile is found.
async fn partition_count(proxy: &Acting, topic: &str) -> Result<usize, ProxyError> {
    if let Some(&(count, at)) = proxy.partition_counts().get(topic) {
        if at.elapsed() < PARTITIONS_TTL {
            return Ok(count);
        }
    }
    let count = topics::partitions_of(proxy, Some(topic.to_string()))
        .await?
        .into_iter()
        .find(|(name, _)| name == topic)
        .map(|(_, parts)| parts.len())
        .ok_or_else(|| ProxyError::topic_not_found(topic))?;
    let mut counts = proxy.partition_counts();
    // Bounded: the map is rebuilt rather than left to grow with every topic ever named.
    if counts.len() >= 10_000 {
        counts.clear();
    }
    counts.insert(topic.to_string(), (count, Instant::now()));
    Ok(count)
}

async fn produce_v2(
    proxy: Acting,
    topic: String,
    partition: Option<i32>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ProxyError> {
    let format = Format::of_request(headers)?;
    let body: ProduceBody = parse_body(body)?;
    if body.records.len() > MAX_RECORDS {
        return Err(ProxyError::new(
            422,
            format!("at most {MAX_RECORDS} records per request"),
        ));
    }
    let partitions = partition_count(&proxy, &topic).await?;
    let mut records = Vec::with_capacity(body.records.len());
    for r in &body.records {
        let partition = partition.or(r.partition);
        if let Some(p) = partition {
            if usize::try_from(p).map_or(true, |p| p >= partitions) {
                return Err(ProxyError::partition_not_found(&topic, p));
            }
        }
        records.push(Outgoing {
            key: decode(format, &r.key, "key")?,
            value: decode(format, &r.value, "value")?,
            partition,
            headers: Vec::new(),
        });
    }
    let offsets: Vec<Value> = send_all(&proxy, &topic, &records)
        .await?
        .into_iter()
        .map(|r| match r {
            Ok((partition, offset)) => json!({
                "partition": partition, "offset": offset, "error_code": null, "error": null,
            }),
            // Confluent's per-record codes: 1 retriable, 2 not; the client decides.
            Err(e) => json!({"partition": null, "offset": null, "error_code": 1, "error": e}),
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({"key_schema_id": null, "value_schema_id": null, "offsets": offsets}),
    ))
}

pub(crate) async fn to_topic(
    proxy: Acting,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProxyError> {
    produce_v2(proxy, topic, None, &headers, &body).await
}

pub(crate) async fn to_partition(
    proxy: Acting,
    Path((topic, partition)): Path<(String, i32)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProxyError> {
    produce_v2(proxy, topic, Some(partition), &headers, &body).await
}

#[derive(Deserialize)]
struct V3Record {
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<V3Header>,
    key: Option<V3Data>,
    value: Option<V3Data>,
}

#[derive(Deserialize)]
struct V3Header {
    name: String,
    /// base64, as Confluent's v3 has it.
    value: Option<String>,
}

#[derive(Deserialize)]
struct V3Data {
    #[serde(rename = "type", default = "default_v3_type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

fn default_v3_type() -> String {
    "JSON".into()
}

impl V3Data {
    fn bytes(&self, what: &str) -> Result<Option<Vec<u8>>, ProxyError> {
        match self.kind.as_str() {
            "JSON" => decode(Format::Json, &self.data, what),
            "BINARY" => decode(Format::Binary, &self.data, what),
            "STRING" => match &self.data {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone().into_bytes())),
                _ => Err(ProxyError::bad_request(format!(
                    "the {what}'s data must be a string for type STRING"
                ))),
            },
            other => Err(ProxyError::bad_request(format!(
                "unsupported {what} type {other}: use JSON, BINARY or STRING"
            ))),
        }
    }
}

/// v3's produce, one record per request; the cluster id in the path is not checked.
pub(crate) async fn v3_record(
    proxy: Acting,
    Path((cluster, topic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let r: V3Record = parse_body(&body)?;
    let partitions = partition_count(&proxy, &topic).await?;
    if let Some(p) = r.partition_id {
        if usize::try_from(p).map_or(true, |p| p >= partitions) {
            return Err(ProxyError::partition_not_found(&topic, p));
        }
    }
    let mut headers = Vec::with_capacity(r.headers.len());
    for h in &r.headers {
        let value = decode(
            Format::Binary,
            &h.value.clone().map_or(Value::Null, Value::String),
            "header",
        )?;
        headers.push((h.name.clone(), value.unwrap_or_default()));
    }
    let key = r
        .key
        .as_ref()
        .map(|k| k.bytes("key"))
        .transpose()?
        .flatten();
    let value = r
        .value
        .as_ref()
        .map(|v| v.bytes("value"))
        .transpose()?
        .flatten();
    let sizes = (
        key.as_ref().map(Vec::len),
        value.as_ref().map(Vec::len),
        r.key.as_ref().map(|k| k.kind.clone()),
        r.value.as_ref().map(|v| v.kind.clone()),
    );
    let outgoing = [Outgoing {
        key,
        value,
        partition: r.partition_id,
        headers,
    }];
    let sent = send_all(&proxy, &topic, &outgoing).await?;
    match sent.into_iter().next() {
        Some(Ok((partition, offset))) => {
            let data = |kind: Option<String>, size: Option<usize>| {
                kind.map(|t| json!({"type": t, "size": size.unwrap_or(0)}))
            };
            Ok(reply(
                StatusCode::OK,
                json!({
                    "error_code": 200,
                    "cluster_id": cluster,
                    "topic_name": topic,
                    "partition_id": partition,
                    "offset": offset,
                    "key": data(sizes.2, sizes.0),
                    "value": data(sizes.3, sizes.1),
                }),
            ))
        }
        Some(Err(e)) => Err(ProxyError::kafka(e)),
        None => Err(ProxyError::new(500, "no delivery report")),
    }
}
