//! `GET /topics`, `/topics/{name}`, `/topics/{name}/partitions[/{p}]`, from the cluster's
//! metadata as a client sees it.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::Consumer as _;
use rdkafka::metadata::MetadataPartition;
use serde_json::{json, Value};

use crate::{blocking, reply, Acting, ProxyError, KAFKA_TIMEOUT};

/// One topic's partitions as metadata lists them; `None` if the topic does not exist.
pub(crate) async fn partitions_of(
    proxy: &Acting,
    topic: Option<String>,
) -> Result<Vec<(String, Vec<Value>)>, ProxyError> {
    let proxy = proxy.clone();
    blocking(move || {
        let md = proxy
            .metadata_client()?
            .fetch_metadata(topic.as_deref(), KAFKA_TIMEOUT)
            .map_err(|e| ProxyError::of_kafka("metadata", &e))?;
        let denied = rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
        if let Some(t) = md.topics().iter().find(|t| t.error() == Some(denied)) {
            return Err(ProxyError::forbidden(format!(
                "Not authorized to access topics: [{}]",
                t.name()
            )));
        }
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let parts = t.partitions().iter().map(partition_json).collect();
                (t.name().to_string(), parts)
            })
            .collect())
    })
    .await
}

fn partition_json(p: &MetadataPartition) -> Value {
    let replicas: Vec<Value> = p
        .replicas()
        .iter()
        .map(|r| {
            json!({
                "broker": r,
                "leader": *r == p.leader(),
                "in_sync": p.isr().contains(r),
            })
        })
        .collect();
    json!({"partition": p.id(), "leader": p.leader(), "replicas": replicas})
}

/// The partitions of `topic`, or 40401.
async fn topic_partitions(proxy: &Acting, topic: &str) -> Result<Vec<Value>, ProxyError> {
    partitions_of(proxy, Some(topic.to_string()))
        .await?
        .into_iter()
        .find(|(name, _)| name == topic)
        .map(|(_, parts)| parts)
        .ok_or_else(|| ProxyError::topic_not_found(topic))
}

pub(crate) async fn list(proxy: Acting) -> Result<Response, ProxyError> {
    let mut names: Vec<String> = partitions_of(&proxy, None)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with("__"))
        .collect();
    names.sort();
    Ok(reply(StatusCode::OK, json!(names)))
}

pub(crate) async fn describe(
    proxy: Acting,
    Path(topic): Path<String>,
) -> Result<Response, ProxyError> {
    let partitions = topic_partitions(&proxy, &topic).await?;
    let results = proxy
        .admin()?
        .describe_configs(
            &[ResourceSpecifier::Topic(&topic)],
            &AdminOptions::new().request_timeout(Some(KAFKA_TIMEOUT)),
        )
        .await
        .map_err(|e| ProxyError::of_kafka("describe configs", &e))?;
    let mut configs = serde_json::Map::new();
    for resource in results.into_iter().flatten() {
        for entry in resource.entries {
            configs.insert(entry.name, json!(entry.value));
        }
    }
    Ok(reply(
        StatusCode::OK,
        json!({"name": topic, "configs": configs, "partitions": partitions}),
    ))
}

pub(crate) async fn partitions(
    proxy: Acting,
    Path(topic): Path<String>,
) -> Result<Response, ProxyError> {
    let partitions = topic_partitions(&proxy, &topic).await?;
    Ok(reply(StatusCode::OK, json!(partitions)))
}

pub(crate) async fn partition(
    proxy: Acting,
    Path((topic, partition)): Path<(String, i32)>,
) -> Result<Response, ProxyError> {
    topic_partitions(&proxy, &topic)
        .await?
        .into_iter()
        .find(|p| p["partition"] == partition)
        .map(|p| reply(StatusCode::OK, p))
        .ok_or_else(|| ProxyError::partition_not_found(&topic, partition))
}
