//! Bootstrap for the native client: which broker leads each partition of the bench topic
//! (Metadata v12), and a partition's earliest or latest offset (ListOffsets v7).

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::kafka_conn::Connection;

const METADATA_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 7;

/// ListOffsets timestamp asking for a partition's first offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp asking for the end of a partition (the high watermark).
pub const LATEST: i64 = -1;

/// The bench topic's partition leaders and their addresses.
pub struct Cluster {
    pub topic: TopicName,
    /// Partition → leader's `host:port`.
    leaders: HashMap<i32, String>,
}

impl Cluster {
    /// Asks the bootstrap brokers (comma-separated, tried in order) for `topic`'s metadata.
    pub async fn discover(bootstrap: &str, topic: &str) -> anyhow::Result<Cluster> {
        let mut last_err = anyhow!("no bootstrap broker given");
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Cluster::ask(addr, topic).await {
                Ok(cluster) => return Ok(cluster),
                Err(err) => last_err = err,
            }
        }
        Err(last_err)
    }

    async fn ask(addr: &str, topic: &str) -> anyhow::Result<Cluster> {
        let name = TopicName(StrBytes::from_string(topic.to_string()));
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name.clone()))
            ]))
            .with_allow_auto_topic_creation(false);
        let mut conn = Connection::connect(addr).await?;
        let response: MetadataResponse = conn
            .request(ApiKey::Metadata, METADATA_VERSION, &request)
            .await?;
        let brokers: HashMap<i32, String> = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let found = response
            .topics
            .iter()
            .find(|t| t.name.as_ref() == Some(&name))
            .ok_or_else(|| anyhow!("{addr} returned no metadata for topic {topic}"))?;
        check(found.error_code, || format!("metadata of topic {topic}"))?;
        let mut leaders = HashMap::new();
        for partition in &found.partitions {
            let index = partition.partition_index;
            check(partition.error_code, || {
                format!("metadata of {topic}/{index}")
            })?;
            let leader = partition.leader_id.0;
            let addr = brokers
                .get(&leader)
                .ok_or_else(|| anyhow!("{topic}/{index} has no known leader (node {leader})"))?;
            leaders.insert(index, addr.clone());
        }
        Ok(Cluster {
            topic: name,
            leaders,
        })
    }

    /// The leader's address of `partition`.
    pub fn leader(&self, partition: i32) -> anyhow::Result<&str> {
        self.leaders
            .get(&partition)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no leader known for {}/{partition}", self.topic.0.as_str()))
    }

    /// `partitions` grouped by leader address (sorted, so connection order is stable).
    pub fn by_leader(&self, partitions: &[i32]) -> anyhow::Result<BTreeMap<String, Vec<i32>>> {
        let mut grouped: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for &partition in partitions {
            grouped
                .entry(self.leader(partition)?.to_string())
                .or_default()
                .push(partition);
        }
        Ok(grouped)
    }
}

/// The offset at `timestamp` ([`EARLIEST`] or [`LATEST`]) of each of `partitions`, which
/// `conn`'s broker leads.
pub async fn list_offsets(
    conn: &mut Connection,
    topic: &TopicName,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<HashMap<i32, i64>> {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic.clone())
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response: ListOffsetsResponse = conn
        .request(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)
        .await?;
    let mut offsets = HashMap::new();
    for t in response.topics.iter().filter(|t| &t.name == topic) {
        for p in &t.partitions {
            let index = p.partition_index;
            check(p.error_code, || {
                format!("listing offsets of {}/{index}", topic.0.as_str())
            })?;
            offsets.insert(index, p.offset);
        }
    }
    if let Some(missing) = partitions.iter().find(|p| !offsets.contains_key(p)) {
        bail!(
            "{} returned no offset for {}/{missing}",
            conn.addr(),
            topic.0.as_str()
        );
    }
    Ok(offsets)
}

/// Turns a Kafka error code into an error naming what failed.
pub fn check(code: i16, what: impl FnOnce() -> String) -> anyhow::Result<()> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(err) => bail!("{}: {err} (error code {code})", what()),
    }
}
