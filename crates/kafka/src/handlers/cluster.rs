//! Cluster mode: answers that come from the controller's state rather than from this node's
//! registry: Metadata (every node can tell a client where each partition's leader is), topic
//! creation and deletion (committed through the controller), the group coordinator's location,
//! and the leader/epoch checks that send clients to the right node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use strom_broker::cluster::{Cluster, ClusterState, Command, NodeId, RoleState, TopicState};
use strom_broker::topic::validate_topic_name;
use strom_broker::{BrokerError, Partition};

use super::metadata::error_topic;
use super::{str_bytes, topic_name};
use crate::Context;

/// How long CreateTopics/DeleteTopics wait for this node to apply the committed change.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// May this node serve a client's read or write of `p`, given the epoch the client believes in?
pub(crate) fn check_serving(p: &Partition, current_leader_epoch: i32) -> Result<(), ResponseError> {
    p.ensure_leader()
        .map_err(|_| ResponseError::NotLeaderOrFollower)?;
    let ours = p.leader_epoch();
    match current_leader_epoch {
        -1 => Ok(()),
        e if e == ours => Ok(()),
        e if e > ours => Err(ResponseError::UnknownLeaderEpoch),
        _ => Err(ResponseError::FencedLeaderEpoch),
    }
}

/// The error for a partition this node cannot find: in cluster mode, a topic that exists but
/// whose replica lives elsewhere sends the client to the leader.
pub(crate) fn missing_partition(ctx: &Context, topic: &str, index: i32) -> ResponseError {
    match ctx.broker.cluster() {
        Some(c)
            if c.with_state(|s| {
                s.topics
                    .get(topic)
                    .is_some_and(|t| usize::try_from(index).is_ok_and(|i| i < t.partitions.len()))
            }) =>
        {
            ResponseError::NotLeaderOrFollower
        }
        _ => ResponseError::UnknownTopicOrPartition,
    }
}

pub fn metadata(
    ctx: &Arc<Context>,
    cluster: &Arc<Cluster>,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let cluster_ops = version >= 8 && req.include_cluster_authorized_operations;
    let state = cluster.state();
    let me = cluster.node_id();
    let describe = |t: &TopicState| {
        let here = ctx.broker.topic(&t.name).filter(|local| local.id == t.id);
        describe(&state, t, version, |i| {
            let role = here
                .as_ref()?
                .partition(i32::try_from(i).ok()?)?
                .raft_role()?;
            Some((me, role))
        })
    };
    let topics = super::metadata::requested_topics(
        req,
        version,
        || state.topics.values().map(&describe).collect(),
        |id| state.topics.values().find(|t| t.id == id).map(&describe),
        |name, may_create| match state.topics.get(&name) {
            Some(t) => describe(t),
            None if may_create && ctx.broker.config().auto_create_topics => {
                // Kafka's answer while an auto-created topic is on its way.
                spawn_auto_create(ctx, cluster, &name);
                error_topic(Some(name), ResponseError::LeaderNotAvailable)
            }
            None => error_topic(Some(name), ResponseError::UnknownTopicOrPartition),
        },
    );
    // Removed and fenced (silent) nodes are left out: a client would only keep dialling them.
    // This node is alive whatever the controller last concluded, and a fenced node that the
    // answer names as a leader stays (only the controller lost it; the partition's clients may
    // still reach it, and a leader missing from the list would leave them with none).
    let leaders: std::collections::BTreeSet<i32> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.leader_id.0))
        .collect();
    let mut brokers: Vec<MetadataResponseBroker> = state
        .nodes
        .values()
        .filter(|n| {
            !state.removed_nodes.contains(&n.id)
                && (n.id == me
                    || !state.fenced_nodes.contains(&n.id)
                    || leaders.contains(&(n.id as i32)))
        })
        .map(|n| {
            let (host, port) = kafka_address(ctx, n);
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n.id as i32))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .collect();
    // Until this node's registration commits, still name it: a client told of no broker at
    // all has nowhere to send its next request.
    if !state.nodes.contains_key(&me) {
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(me as i32))
                .with_host(str_bytes(ctx.config.advertised_host.clone()))
                .with_port(ctx.config.advertised_port),
        );
    }
    // Every node accepts admin requests and forwards them to the controller's leader (as Kafka
    // does since KIP-590), so while no leader is known, or the leader is not in the list (its
    // registration not yet applied here, or fenced), this node is as good an answer as any: a
    // client told of a controller it has no address for waits for one until its admin request
    // times out.
    let controller = cluster
        .controller_leader()
        .map(|l| l as i32)
        .filter(|l| brokers.iter().any(|b| b.node_id.0 == *l))
        .unwrap_or(me as i32);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(cluster.cluster_id())))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(super::metadata::cluster_authorized_operations(
            cluster_ops,
        ))
}

/// The leader (and epoch) Metadata reports: the controller's record, unless this node's own
/// replica knows better. A node cut off from the others still holds an old record naming
/// itself; its replica knows it stepped down (check-quorum), and a freshly elected leader knows
/// before its report reaches the controller.
fn local_view(
    recorded: Option<NodeId>,
    recorded_epoch: u64,
    local: Option<(NodeId, RoleState)>,
) -> (Option<NodeId>, u64) {
    match local {
        Some((me, role)) if role.is_leader && role.term >= recorded_epoch => (Some(me), role.term),
        Some((me, role)) if recorded == Some(me) && !role.is_leader => {
            (role.leader.filter(|l| *l != me), role.term)
        }
        _ => (recorded, recorded_epoch),
    }
}

fn describe(
    state: &ClusterState,
    t: &TopicState,
    version: i16,
    local: impl Fn(usize) -> Option<(NodeId, RoleState)>,
) -> MetadataResponseTopic {
    let ids = |v: &[u64]| v.iter().map(|n| BrokerId(*n as i32)).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, pa)| {
            let (leader, epoch) = local_view(
                pa.leader.filter(|l| state.nodes.contains_key(l)),
                pa.leader_epoch,
                local(i),
            );
            let leader = leader.map_or(-1, |l| l as i32);
            let mut p = MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(ids(&pa.replicas))
                .with_isr_nodes(ids(&pa.isr));
            if version >= 7 {
                p = p.with_leader_epoch(i32::try_from(epoch).unwrap_or(i32::MAX));
            }
            if leader == -1 {
                p = p.with_error_code(ResponseError::LeaderNotAvailable.code());
            }
            p
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(t.name.clone())))
        .with_topic_id(t.id)
        .with_partitions(partitions)
}

fn spawn_auto_create(ctx: &Arc<Context>, cluster: &Arc<Cluster>, name: &str) {
    let cluster = Arc::clone(cluster);
    let partitions = ctx.broker.config().default_partitions.max(1) as u32;
    let rf = default_replication_factor(&cluster);
    let name = name.to_string();
    tokio::spawn(async move {
        if let Err(e) = create_topic(&cluster, &name, partitions, rf, BTreeMap::new()).await {
            tracing::debug!(topic = %name, "auto-create: {e}");
        }
    });
}

/// Three replicas when the cluster has three nodes or more, like Kafka's recommended default.
pub(crate) fn default_replication_factor(cluster: &Cluster) -> u32 {
    cluster.with_state(|s| s.live_nodes().len()).clamp(1, 3) as u32
}

/// Commits a CreateTopic and waits until this node has applied it.
pub(crate) async fn create_topic(
    cluster: &Cluster,
    name: &str,
    partitions: u32,
    replication_factor: u32,
    config: BTreeMap<String, String>,
) -> Result<uuid::Uuid, BrokerError> {
    validate_topic_name(name)?;
    // Right after the cluster starts, nodes are still registering.
    let rf = replication_factor as usize;
    cluster
        .wait_for_state(APPLY_WAIT / 2, |s| s.live_nodes().len() >= rf)
        .await;
    let live = cluster.with_state(|s| s.live_nodes().len()) as u32;
    if replication_factor == 0 || replication_factor > live {
        return Err(BrokerError::InvalidReplicationFactor(
            replication_factor as i32,
        ));
    }
    if cluster.with_state(|s| s.topics.contains_key(name)) {
        return Err(BrokerError::TopicExists(name.to_string()));
    }
    let id = uuid::Uuid::new_v4();
    propose_patiently(
        cluster,
        Command::CreateTopic {
            name: name.to_string(),
            id,
            partitions,
            replication_factor,
            config,
            now_ms: strom_broker::now_ms(),
        },
    )
    .await?;
    // The command may still have been refused when applied (a racing create of the same name).
    cluster
        .wait_for_state(APPLY_WAIT, |s| s.topics.contains_key(name))
        .await;
    match cluster.with_state(|s| s.topics.get(name).map(|t| t.id)) {
        Some(applied) if applied == id => Ok(id),
        Some(_) => Err(BrokerError::TopicExists(name.to_string())),
        None => Err(BrokerError::Timeout),
    }
}

pub(crate) async fn delete_topic(cluster: &Cluster, name: &str) -> Result<uuid::Uuid, BrokerError> {
    let Some(id) = cluster.with_state(|s| s.topics.get(name).map(|t| t.id)) else {
        return Err(BrokerError::UnknownTopicOrPartition);
    };
    propose_patiently(
        cluster,
        Command::DeleteTopic {
            name: name.to_string(),
        },
    )
    .await?;
    cluster
        .wait_for_state(APPLY_WAIT, |s| !s.topics.contains_key(name))
        .await;
    Ok(id)
}

/// Replaces a topic's config overrides through the controller; answers once this node applied
/// the change (every node's reconciler hands it to the replicas it holds).
pub(crate) async fn alter_topic_config(
    cluster: &Cluster,
    name: &str,
    config: BTreeMap<String, String>,
) -> Result<(), BrokerError> {
    if !cluster.with_state(|s| s.topics.contains_key(name)) {
        return Err(BrokerError::UnknownTopicOrPartition);
    }
    propose_patiently(
        cluster,
        Command::AlterTopicConfig {
            name: name.to_string(),
            config: config.clone(),
        },
    )
    .await?;
    let applied = cluster
        .wait_for_state(APPLY_WAIT, |s| {
            s.topics.get(name).is_none_or(|t| t.config == config)
        })
        .await;
    match cluster.with_state(|s| s.topics.get(name).map(|t| t.config == config)) {
        Some(true) if applied => Ok(()),
        None => Err(BrokerError::UnknownTopicOrPartition),
        _ => Err(BrokerError::Timeout),
    }
}

/// Proposes, retrying while the controller is between leaders (an election takes about a
/// second), so an admin request right after a failover or a cold start succeeds.
pub(crate) async fn propose_patiently(cluster: &Cluster, cmd: Command) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        match cluster.propose(cmd.clone()).await {
            Err(BrokerError::LeaderNotAvailable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => return other,
        }
    }
}

/// A coordinator: the leader of the internal topic's partition holding the key (a group's
/// offsets, a transactional id's state), as in Kafka. `None` while that topic or partition
/// has no leader yet.
pub(crate) fn coordinator_for(
    ctx: &Context,
    cluster: &Cluster,
    topic: &str,
    partition: usize,
) -> Option<(i32, String, i32)> {
    cluster.with_state(|s| {
        let partition = s.topics.get(topic)?.partitions.get(partition)?;
        let node = partition.leader?;
        let (host, port) = kafka_address(ctx, s.nodes.get(&node)?);
        Some((node as i32, host, port))
    })
}

/// A node's address on the listener this request came in on (each node registers every
/// listener as endpoint `kafka:NAME`); its primary address if it has no such listener.
pub(crate) fn kafka_address(
    ctx: &Context,
    node: &strom_broker::cluster::NodeInfo,
) -> (String, i32) {
    node.endpoints
        .get(&format!("kafka:{}", ctx.listener.name))
        .and_then(|a| {
            let (host, port) = a.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .unwrap_or_else(|| (node.kafka_host.clone(), i32::from(node.kafka_port)))
}
