//! The admin API: health, as Redpanda's admin API answers it (what load balancers and
//! Kubernetes probes call), and JSON views of the cluster and its topics.
//! - `GET /v1/status/live`: answers while the process serves HTTP at all.
//! - `GET /v1/status/ready`: `{"status": "ready"}` once the node can serve clients (a cluster
//!   node: it knows its controller's leader), else 503 `{"status": "booting"}`.
//! - `GET /v1/cluster`: the nodes, the controller's leader, fenced and removed nodes.
//! - `GET /v1/topics`, `GET /v1/topics/{name}`: topics; a topic's partitions with leader,
//!   replicas, ISR and, for the replicas this node holds, offsets and sizes (local and in the
//!   object store). An unknown topic is 404.
//! - `GET /v1/groups`, `GET /v1/groups/{id}`: the consumer groups this node coordinates (in a
//!   cluster, the leader of a group's `__consumer_offsets` partition does, as in Kafka); a
//!   group's members with their assignments, and its committed offsets with the lag behind
//!   the high watermark and the last stable offset where this node holds the partition. A
//!   group not known here is 404 (naming its coordinator in a cluster).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use strom_broker::{Broker, Partition};

use crate::ApiError;

/// What the admin API reads: the broker, and the Kafka address it advertises (a single node
/// has no node registry to take it from).
#[derive(Clone)]
pub struct Admin {
    pub broker: Arc<Broker>,
    pub kafka_addr: String,
}

/// The probes a load balancer or orchestrator polls: answered without credentials.
pub fn health(admin: Admin) -> Router {
    Router::new()
        .route(
            "/v1/status/live",
            get(|| async { Json(json!({"status": "live"})) }),
        )
        .route("/v1/status/ready", get(ready))
        .with_state(admin)
}

pub fn routes(admin: Admin) -> Router {
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/v1/topics", get(topics))
        .route("/v1/topics/{name}", get(topic))
        .route("/v1/groups", get(groups))
        .route("/v1/groups/{id}", get(group))
        .with_state(admin)
}

async fn ready(State(admin): State<Admin>) -> (StatusCode, Json<Value>) {
    let broker = &admin.broker;
    let ready = !broker.is_stopping()
        && broker
            .cluster()
            .is_none_or(|c| c.controller_leader().is_some());
    if ready {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "booting"})),
        )
    }
}

#[derive(Serialize)]
struct NodeView {
    id: u64,
    kafka: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    raft: Option<String>,
    fenced: bool,
    removed: bool,
}

#[derive(Serialize)]
struct ClusterView {
    cluster_id: String,
    /// `single` or `cluster`.
    mode: &'static str,
    node_id: u64,
    controller_leader: Option<u64>,
    nodes: Vec<NodeView>,
}

async fn cluster(State(admin): State<Admin>) -> Json<ClusterView> {
    let broker = &admin.broker;
    let node_id = u64::try_from(broker.node_id()).unwrap_or(0);
    let view = match broker.cluster() {
        None => ClusterView {
            cluster_id: broker.cluster_id().to_string(),
            mode: "single",
            node_id,
            controller_leader: Some(node_id),
            nodes: vec![NodeView {
                id: node_id,
                kafka: admin.kafka_addr.clone(),
                raft: None,
                fenced: false,
                removed: false,
            }],
        },
        Some(c) => c.with_state(|s| ClusterView {
            cluster_id: s.cluster_id.clone(),
            mode: "cluster",
            node_id,
            controller_leader: c.controller_leader(),
            nodes: s
                .nodes
                .values()
                .map(|n| NodeView {
                    id: n.id,
                    kafka: format!("{}:{}", n.kafka_host, n.kafka_port),
                    raft: Some(n.raft_addr.clone()),
                    fenced: s.fenced_nodes.contains(&n.id),
                    removed: s.removed_nodes.contains(&n.id),
                })
                .collect(),
        }),
    };
    Json(view)
}

#[derive(Serialize)]
struct TopicSummary {
    name: String,
    id: String,
    partitions: usize,
    replication_factor: u32,
    internal: bool,
}

async fn topics(State(admin): State<Admin>) -> Json<Vec<TopicSummary>> {
    let broker = &admin.broker;
    let list = match broker.cluster() {
        Some(c) => c.with_state(|s| {
            s.topics
                .values()
                .map(|t| TopicSummary {
                    name: t.name.clone(),
                    id: t.id.to_string(),
                    partitions: t.partitions.len(),
                    replication_factor: t.replication_factor,
                    internal: strom_broker::topic::is_internal_topic(&t.name),
                })
                .collect()
        }),
        None => broker
            .topics()
            .iter()
            .map(|t| TopicSummary {
                name: t.name.clone(),
                id: t.id.to_string(),
                partitions: t.partition_count(),
                replication_factor: 1,
                internal: strom_broker::topic::is_internal_topic(&t.name),
            })
            .collect(),
    };
    Json(list)
}

/// Offsets and sizes of a replica this node holds.
#[derive(Serialize)]
struct LocalReplica {
    log_start_offset: u64,
    local_log_start_offset: u64,
    high_watermark: u64,
    last_stable_offset: u64,
    log_end_offset: u64,
    size_bytes: u64,
    remote_size_bytes: u64,
}

impl LocalReplica {
    fn of(p: &Partition) -> LocalReplica {
        LocalReplica {
            log_start_offset: p.log_start_offset(),
            local_log_start_offset: p.local_log_start_offset(),
            high_watermark: p.high_watermark(),
            last_stable_offset: p.last_stable_offset(),
            log_end_offset: p.log_end_offset(),
            size_bytes: p.size_bytes(),
            remote_size_bytes: p.remote_size_bytes(),
        }
    }
}

#[derive(Serialize)]
struct PartitionView {
    partition: i32,
    leader: Option<u64>,
    leader_epoch: u64,
    replicas: Vec<u64>,
    isr: Vec<u64>,
    /// Present where this node holds a replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    local: Option<LocalReplica>,
}

#[derive(Serialize)]
struct TopicView {
    name: String,
    id: String,
    /// The overrides as given (the rest are the broker's defaults).
    config: BTreeMap<String, String>,
    partitions: Vec<PartitionView>,
}

async fn topic(
    State(admin): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<TopicView>, ApiError> {
    let broker = &admin.broker;
    let missing = || ApiError::not_found(format!("Topic {name} not found"));
    let local = |index: i32| {
        broker
            .topic(&name)
            .and_then(|t| t.partition(index))
            .map(|p| LocalReplica::of(&p))
    };
    let view = match broker.cluster() {
        Some(c) => c
            .with_state(|s| {
                let t = s.topics.get(&name)?;
                Some(TopicView {
                    name: t.name.clone(),
                    id: t.id.to_string(),
                    config: t.config.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(i, pa)| PartitionView {
                            partition: i as i32,
                            leader: pa.leader,
                            leader_epoch: pa.leader_epoch,
                            replicas: pa.replicas.clone(),
                            isr: pa.isr.clone(),
                            local: None,
                        })
                        .collect(),
                })
            })
            .ok_or_else(missing)?,
        None => {
            let t = broker.topic(&name).ok_or_else(missing)?;
            let node = u64::try_from(broker.node_id()).unwrap_or(0);
            TopicView {
                name: t.name.clone(),
                id: t.id.to_string(),
                config: t.settings().overrides,
                partitions: (0..t.partition_count() as i32)
                    .map(|i| PartitionView {
                        partition: i,
                        leader: Some(node),
                        leader_epoch: 0,
                        replicas: vec![node],
                        isr: vec![node],
                        local: None,
                    })
                    .collect(),
            }
        }
    };
    let mut view = view;
    for p in &mut view.partitions {
        p.local = local(p.partition);
    }
    Ok(Json(view))
}

#[derive(Serialize)]
struct GroupSummary {
    group_id: String,
    protocol_type: String,
    state: &'static str,
    coordinator: u64,
}

async fn groups(State(admin): State<Admin>) -> Json<Vec<GroupSummary>> {
    let node = u64::try_from(admin.broker.node_id()).unwrap_or(0);
    Json(
        admin
            .broker
            .groups()
            .list()
            .into_iter()
            .map(|g| GroupSummary {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                state: g.state.name(),
                coordinator: node,
            })
            .collect(),
    )
}

#[derive(Serialize)]
struct MemberView {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    /// (topic, partition) pairs, for consumer groups.
    assignment: Vec<(String, i32)>,
}

#[derive(Serialize)]
struct OffsetView {
    topic: String,
    partition: i32,
    committed_offset: i64,
    metadata: String,
    /// Where this node holds the partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    high_watermark: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stable_offset: Option<u64>,
    /// High watermark minus the committed offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<i64>,
}

#[derive(Serialize)]
struct GroupView {
    group_id: String,
    state: &'static str,
    protocol_type: String,
    protocol: String,
    coordinator: u64,
    members: Vec<MemberView>,
    offsets: Vec<OffsetView>,
}

async fn group(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    let broker = &admin.broker;
    let node = u64::try_from(broker.node_id()).unwrap_or(0);
    let described = broker.groups().describe(&id);
    let committed = broker.groups().fetch_offsets(&id, None);
    let known = described.state != strom_broker::group::GroupState::Dead
        || committed.iter().any(|(_, parts)| !parts.is_empty());
    if !known {
        let hint = broker
            .cluster()
            .and_then(|c| {
                let index = strom_broker::group::offsets_partition(&id);
                c.with_state(|s| {
                    s.topics
                        .get(strom_broker::group::OFFSETS_TOPIC)?
                        .partitions
                        .get(index)?
                        .leader
                })
            })
            .filter(|leader| *leader != node)
            .map(|leader| format!(" on this node; its coordinator is node {leader}"))
            .unwrap_or_default();
        return Err(ApiError::not_found(format!("Group {id} not found{hint}")));
    }
    let offsets = committed
        .into_iter()
        .flat_map(|(topic, parts)| {
            let held = broker.topic(&topic);
            parts.into_iter().filter_map(move |(partition, c)| {
                let c = c?;
                let p = held.as_ref().and_then(|t| t.partition(partition));
                let high_watermark = p.as_ref().map(|p| p.high_watermark());
                Some(OffsetView {
                    topic: topic.clone(),
                    partition,
                    committed_offset: c.offset,
                    metadata: c.metadata,
                    high_watermark,
                    last_stable_offset: p.as_ref().map(|p| p.last_stable_offset()),
                    lag: high_watermark.map(|hw| (hw as i64 - c.offset).max(0)),
                })
            })
        })
        .collect();
    Ok(Json(GroupView {
        group_id: described.group_id,
        state: described.state.name(),
        protocol_type: described.protocol_type.clone(),
        protocol: described.protocol,
        coordinator: node,
        members: described
            .members
            .into_iter()
            .map(|m| MemberView {
                assignment: if described.protocol_type == "consumer" {
                    strom_broker::group::consumer_assignment(&m.assignment)
                } else {
                    Vec::new()
                },
                member_id: m.member_id,
                group_instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
            })
            .collect(),
        offsets,
    }))
}
