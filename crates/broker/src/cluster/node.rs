//! A node of a replicated cluster: the transport, the controller's Raft group (group 0, a
//! replicated log of [`Command`]s applied to every node's [`ClusterState`]), the partition
//! replicas this node holds, and the loops that keep them moving:
//!
//! - the ticker drives every group's Raft clock;
//! - the reconciler opens the replicas the controller assigns to this node, registers the node,
//!   and reports the leader and the caught-up replicas (ISR) of every partition it leads, so
//!   Metadata on any node can tell clients where to go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use strom_consensus::driver::DriverConfig;
use strom_consensus::transport::{Inbound, Transport, TransportConfig};
use tokio::sync::{mpsc, watch};

use super::machine::ControllerMachine;
use super::rpc::{self, Request, Response};
use super::state::{Applied, ClusterState, Command, NodeId, NodeInfo};
use crate::journal::{Journal, JournalSpec};
use crate::replica::{ReplicaEvent, ReplicaSpec};
use crate::{Broker, BrokerError, Partition};
pub use leadership::PartitionCoordinator;
pub use services::NodeService;

mod leadership;
mod router;
mod services;
mod snapshots;

use router::Router;

/// How long a proposal to the controller may take before the caller gets an error.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// A forwarded proposal: the controller's leader answers within a commit, or is in trouble.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
const RECONCILE_INTERVAL: Duration = Duration::from_millis(500);
/// Controller entries between snapshots of the cluster state (a restart replays only the
/// entries after the last one).
const CONTROLLER_SNAPSHOT_ENTRIES: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    pub raft_addr: SocketAddr,
    /// What clients are told to connect to (Metadata).
    pub kafka_host: String,
    pub kafka_port: u16,
    /// The controller's initial voters and their Raft addresses.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub secret: Vec<u8>,
    /// Shared by every node (derived from the initial peers): the transport refuses nodes of
    /// another cluster, and Metadata reports it.
    pub cluster_id: String,
    pub tick_ms: u64,
    pub driver: DriverConfig,
    /// A new node of a running cluster: `peers` are the existing nodes, this one is not among
    /// them, and its controller replica starts with no configuration (the leader adds it as a
    /// learner once it registered).
    pub join: bool,
    /// A node unheard of for this long has its replicas rebuilt elsewhere.
    pub dead_node_timeout: Duration,
    /// The front ends' client URLs, shared through the controller (see `NodeInfo`).
    pub endpoints: BTreeMap<String, String>,
    /// Mutual TLS between nodes (in addition to the secret handshake).
    pub tls: Option<strom_tls::TlsFiles>,
}

pub struct Cluster {
    config: ClusterConfig,
    broker: std::sync::Weak<Broker>,
    transport: Arc<Transport>,
    /// The controller's journal (group 0); `controller` is its replicated partition.
    journal: Arc<Journal<ControllerMachine>>,
    controller: Arc<Partition>,
    state: Arc<RwLock<ClusterState>>,
    /// Bumped after every applied command; waiters (topic creation) watch it.
    version: watch::Sender<u64>,
    router: Arc<Router>,
    /// When this node last became the controller's leader (term, instant): a node is only
    /// declared dead after a full timeout of this leader's own observation.
    pub(super) leading_since: std::sync::Mutex<Option<(u64, Instant)>>,
    /// Coordinators served by the leaders of an internal topic's partitions, by topic.
    coordinators: RwLock<BTreeMap<String, Arc<dyn PartitionCoordinator>>>,
}

impl Cluster {
    /// Starts the transport and the controller group, then the background loops.
    pub async fn start(
        broker: &Arc<Broker>,
        config: ClusterConfig,
    ) -> Result<Arc<Cluster>, BrokerError> {
        let router = Arc::new(Router::default());
        router.register_builtin_services();
        let transport = Transport::start(
            TransportConfig {
                node_id: config.node_id,
                listen: config.raft_addr,
                secret: config.secret.clone(),
                cluster_id: config.cluster_id.clone(),
                peers: config
                    .peers
                    .iter()
                    .filter(|(id, _)| **id != config.node_id)
                    .map(|(id, a)| (*id, *a))
                    .collect(),
                tls: config
                    .tls
                    .as_ref()
                    .map(raft_tls)
                    .transpose()
                    .map_err(|e| BrokerError::InvalidConfig(format!("raft TLS: {e}")))?,
            },
            Arc::clone(&router) as Arc<dyn Inbound>,
        )
        .await
        .map_err(|e| BrokerError::InvalidConfig(format!("raft transport: {e}")))?;
        let state = Arc::new(RwLock::new(ClusterState::new(config.cluster_id.clone())));
        let (version, _) = watch::channel(0u64);
        let (applied_tx, applied_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let journal = Journal::open(
            broker,
            JournalSpec {
                name: "controller".into(),
                group: super::state::CONTROLLER_GROUP,
                node: config.node_id,
                voters: if config.join {
                    Vec::new()
                } else {
                    config.peers.keys().copied().collect()
                },
                driver: config.driver.clone(),
                outbox: Arc::clone(&transport) as Arc<dyn strom_consensus::driver::Outbox>,
                snapshot_every: CONTROLLER_SNAPSHOT_ENTRIES,
                compact: false,
                source: None,
                // The cluster's tick loop drives it, with the partitions.
                tick: None,
                propose_timeout: PROPOSE_TIMEOUT,
            },
            ControllerMachine {
                state: Arc::clone(&state),
                applied_tx,
                version: version.clone(),
                index: 0,
            },
        )?;
        let controller = Arc::clone(journal.partition());
        router.insert(super::state::CONTROLLER_GROUP, Arc::clone(&controller));
        let cluster = Arc::new(Cluster {
            config,
            broker: Arc::downgrade(broker),
            transport,
            journal,
            controller,
            state,
            version,
            router: Arc::clone(&router),
            leading_since: std::sync::Mutex::new(None),
            coordinators: RwLock::new(BTreeMap::new()),
        });
        let _ = router.cluster.set(Arc::downgrade(&cluster));
        tokio::spawn(Arc::clone(&cluster).tick_loop());
        tokio::spawn(Arc::clone(&cluster).reconcile_loop(applied_rx, events_rx, events_tx));
        Ok(cluster)
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.config.cluster_id
    }

    /// A copy of the applied cluster state.
    pub fn state(&self) -> ClusterState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the applied cluster state without copying it.
    pub fn with_state<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn controller(&self) -> &Arc<Partition> {
        &self.controller
    }

    pub(super) fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// When `node` last sent this node anything.
    pub(super) fn last_seen(&self, node: NodeId) -> Option<Instant> {
        self.router.last_seen(node)
    }

    /// Nodes that joined after the cluster formed are reached at the address they registered
    /// (those given in `--peers` keep theirs: a node may reach them through a proxy).
    fn learn_addresses(&self) {
        let me = self.config.node_id;
        let known: BTreeMap<NodeId, SocketAddr> = self.transport.peers().into_iter().collect();
        let learned: Vec<(NodeId, SocketAddr)> = self.with_state(|s| {
            s.nodes
                .values()
                .filter(|n| n.id != me && !self.config.peers.contains_key(&n.id))
                .filter_map(|n| Some((n.id, n.raft_addr.parse().ok()?)))
                .collect()
        });
        for (id, addr) in learned {
            if known.get(&id) != Some(&addr) {
                tracing::info!(node = id, %addr, "learned a node's raft address");
                self.transport.set_peer(id, addr);
            }
        }
    }

    pub fn controller_leader(&self) -> Option<NodeId> {
        self.controller.with_driver(|d| d.role().leader).flatten()
    }

    async fn tick_loop(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.config.tick_ms.max(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if self.stopping() {
                return;
            }
            for p in self.router.all() {
                if let Some(Err(e)) = p.with_driver(|d| d.tick()) {
                    tracing::warn!(partition = ?p, "raft tick failed: {e}");
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.broker.upgrade().is_none_or(|b| b.is_stopping())
    }

    async fn reconcile_loop(
        self: Arc<Self>,
        mut applied: mpsc::UnboundedReceiver<Applied>,
        mut events: mpsc::UnboundedReceiver<ReplicaEvent>,
        events_tx: mpsc::UnboundedSender<ReplicaEvent>,
    ) {
        let mut every = tokio::time::interval(RECONCILE_INTERVAL);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                Some(_) = applied.recv() => { while applied.try_recv().is_ok() {} }
                Some(event) = events.recv() => {
                    self.on_replica_event(event);
                    while let Ok(event) = events.try_recv() {
                        self.on_replica_event(event);
                    }
                }
            }
            if self.stopping() {
                return;
            }
            self.learn_addresses();
            self.open_assigned_replicas(&events_tx);
            self.report().await;
            self.journal_duties();
            if self.controller_leader() == Some(self.config.node_id) {
                self.controller_duties().await;
            } else {
                *self.leading_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
    }

    /// Opens every replica the controller assigns here that is not open yet, and stops those
    /// of deleted topics.
    fn open_assigned_replicas(&self, events_tx: &mpsc::UnboundedSender<ReplicaEvent>) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let me = self.config.node_id;
        let state = self.state();
        let mut wanted = std::collections::HashSet::new();
        for topic in state.topics.values() {
            let config = match broker.config().topic_defaults.with_overrides(&topic.config) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(topic = %topic.name, "bad topic config: {e}");
                    continue;
                }
            };
            let registered = broker.register_cluster_topic(topic, &config);
            for (index, pa) in topic.partitions.iter().enumerate() {
                if !pa.hosts(me) {
                    continue;
                }
                wanted.insert(pa.group);
                if let Some(open) = self.router.get(pa.group) {
                    if let Err(e) = open.raise_log_start(pa.log_start) {
                        tracing::warn!(topic = %topic.name, partition = index, "cannot record the log start: {e}");
                    }
                    broker.attach_tier(&open, topic.id, &config);
                    open.set_manifest(&pa.remote);
                    continue;
                }
                let dir = broker
                    .config()
                    .data_dir
                    .join(format!("{}-{}", topic.name, index));
                let spec = ReplicaSpec {
                    group: pa.group,
                    node: me,
                    bootstrap_voters: if pa.replicas.contains(&me) {
                        pa.replicas.clone()
                    } else {
                        Vec::new()
                    },
                    driver: self.config.driver.clone(),
                    outbox: Arc::clone(&self.transport) as Arc<dyn strom_consensus::driver::Outbox>,
                    events: Some(events_tx.clone()),
                    hook: None,
                    replay_from: None,
                };
                match Partition::open_replicated(
                    &topic.name,
                    index as i32,
                    dir,
                    &config,
                    broker.flusher(),
                    broker.config().flush,
                    spec,
                ) {
                    Ok(p) => {
                        if let Err(e) = p.raise_log_start(pa.log_start) {
                            tracing::warn!(topic = %topic.name, partition = index, "cannot record the log start: {e}");
                        }
                        broker.attach_tier(&p, topic.id, &config);
                        p.set_manifest(&pa.remote);
                        registered.set_partition(index, Arc::clone(&p));
                        self.router.insert(pa.group, p);
                        tracing::info!(topic = %topic.name, partition = index, group = pa.group, "opened replica");
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = index, "could not open replica: {e}")
                    }
                }
            }
        }
        let journals = self
            .router
            .journals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for p in self.router.all() {
            let Some(group) = p.group() else { continue };
            if group != super::state::CONTROLLER_GROUP
                && !journals.contains_key(&group)
                && !wanted.contains(&group)
            {
                p.stop_replica();
                self.router.remove(group);
                broker.forget_cluster_partition(&p);
            }
        }
        broker.drop_deleted_cluster_topics(&state);
    }

    /// Registers this node and reports leadership and ISR of the partitions it leads.
    async fn report(&self) {
        let me = self.config.node_id;
        let info = NodeInfo {
            id: me,
            kafka_host: self.config.kafka_host.clone(),
            kafka_port: self.config.kafka_port,
            raft_addr: self.config.raft_addr.to_string(),
            registered_ms: 0,
            endpoints: self.config.endpoints.clone(),
        };
        let mut commands = Vec::new();
        self.with_state(|s| {
            match s.nodes.get(&me) {
                Some(n)
                    if n.kafka_host == info.kafka_host
                        && n.kafka_port == info.kafka_port
                        && n.raft_addr == info.raft_addr
                        && n.endpoints == info.endpoints => {}
                _ => commands.push(Command::RegisterNode(NodeInfo {
                    registered_ms: crate::now_ms(),
                    ..info.clone()
                })),
            }
            for p in self.router.all() {
                let Some(group) = p.group() else { continue };
                if group == super::state::CONTROLLER_GROUP {
                    continue;
                }
                let Some(status) = p.with_driver(|d| d.status()) else {
                    continue;
                };
                if !status.role.is_leader {
                    continue;
                }
                let Some((_, _, pa)) = s.partition_by_group(group) else {
                    continue;
                };
                if pa.leader != Some(me) || pa.leader_epoch != status.role.term {
                    commands.push(Command::SetLeader {
                        group,
                        leader: me,
                        epoch: status.role.term,
                    });
                    continue;
                }
                if let Some(cmd) = super::heal::drive_reassignment(&p, pa, &status, me) {
                    commands.push(cmd);
                }
                let isr: Vec<NodeId> = status
                    .progress
                    .iter()
                    .filter(|p| p.caught_up && status.voters.contains(&p.node))
                    .map(|p| p.node)
                    .collect();
                if isr != pa.isr {
                    let m = strom_metrics::global();
                    if pa.isr.iter().any(|n| !isr.contains(n)) {
                        m.isr_shrinks.inc();
                    }
                    if isr.iter().any(|n| !pa.isr.contains(n)) {
                        m.isr_expands.inc();
                    }
                    commands.push(Command::SetIsr {
                        group,
                        leader: me,
                        epoch: status.role.term,
                        isr,
                    });
                }
            }
        });
        for cmd in commands {
            if let Err(e) = self.propose(cmd).await {
                tracing::debug!("controller report not accepted yet: {e}");
                return;
            }
        }
    }

    /// Commits `cmd` in the controller's log (on its leader, forwarding if need be).
    pub async fn propose(&self, cmd: Command) -> Result<(), BrokerError> {
        let leader = self.controller_leader();
        if leader == Some(self.config.node_id) {
            return self.propose_local(&cmd).await;
        }
        match leader {
            Some(leader) => self.call(leader, Request::Forwarded(cmd), true).await,
            // A joining node replicates nothing until it is registered: any existing node
            // forwards to the leader it knows.
            None if self.config.join => {
                let mut last = None;
                for &peer in self.config.peers.keys() {
                    match self.call(peer, Request::Propose(cmd.clone()), false).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    BrokerError::LeaderNotAvailable("no peer to join through".into())
                }))
            }
            None => Err(BrokerError::LeaderNotAvailable(
                "the controller has no leader".into(),
            )),
        }
    }

    /// Sends `req` to `leader` (the controller's leader, or for a joining node any node, which
    /// forwards it).
    async fn call(&self, leader: NodeId, req: Request, fail_fast: bool) -> Result<(), BrokerError> {
        // A leader we cannot reach is probably dead and about to be replaced: fail fast so the
        // caller retries against the next one instead of waiting out a timeout.
        if fail_fast && !self.transport.is_connected(leader) {
            return Err(BrokerError::LeaderNotAvailable(format!(
                "controller leader {leader} is unreachable"
            )));
        }
        let bytes = self
            .transport
            .call(leader, rpc::encode(&req), FORWARD_TIMEOUT)
            .await
            .map_err(|e| {
                BrokerError::LeaderNotAvailable(format!("controller leader {leader}: {e}"))
            })?;
        let response: Response = rpc::decode(&bytes).map_err(BrokerError::LeaderNotAvailable)?;
        match response.error {
            None => Ok(()),
            Some(e) => Err(BrokerError::LeaderNotAvailable(e)),
        }
    }

    async fn propose_local(&self, cmd: &Command) -> Result<(), BrokerError> {
        self.journal.propose(&cmd.encode()).await.map(|_| ())
    }

    /// Waits until the applied state satisfies `done` (after a proposal, for this node's copy
    /// to catch up), up to `timeout`.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&ClusterState) -> bool,
    ) -> bool {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.with_state(&mut done) {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    fn is_controller_leader(&self) -> bool {
        self.controller_leader() == Some(self.config.node_id)
    }

    /// Promotes `node`, a caught-up learner of the controller group, to a voter; answers once
    /// the change is applied here.
    async fn add_voter(&self, node: NodeId) -> Result<(), BrokerError> {
        let registered = self.with_state(|s| s.live_nodes().contains(&node));
        if !registered {
            return Err(BrokerError::InvalidConfig(format!(
                "node {node} is not a registered, live node (start it with --join first)"
            )));
        }
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        loop {
            let step = self.controller.with_driver(|d| {
                let conf = d.conf_state();
                if conf.voters.contains(&node) && conf.voters_outgoing.is_empty() {
                    return Ok(true);
                }
                let caught_up = d
                    .status()
                    .progress
                    .iter()
                    .any(|p| p.node == node && p.caught_up);
                if conf.learners.contains(&node) && caught_up && !d.has_pending_conf() {
                    let cc = super::heal::conf_change(vec![super::heal::change(
                        strom_consensus::raft::eraftpb::ConfChangeType::AddNode,
                        node,
                    )]);
                    d.propose_conf_change(cc)
                        .map_err(crate::replica::consensus_error)?;
                }
                Ok(false)
            });
            match step {
                Some(Ok(true)) => return Ok(()),
                Some(Err(e)) => return Err(e),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(BrokerError::Timeout);
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn serve_rpc(&self, from: NodeId, req: Request) -> Response {
        match req {
            Request::Propose(cmd) => answer(self.propose(cmd).await),
            Request::Forwarded(cmd) => answer(if self.is_controller_leader() {
                self.propose_local(&cmd).await
            } else {
                Err(BrokerError::LeaderNotAvailable(
                    "not the controller leader".into(),
                ))
            }),
            Request::AddVoter(node) => answer(match self.controller_leader() {
                _ if self.is_controller_leader() => self.add_voter(node).await,
                Some(l) if l != from => self.call(l, Request::AddVoter(node), true).await,
                _ => Err(BrokerError::LeaderNotAvailable(
                    "the controller has no leader".into(),
                )),
            }),
            Request::Status => Response {
                error: None,
                status: Some(self.status()),
            },
            Request::RebalanceLeaders => {
                let moved = self.rebalance_leaders();
                tracing::info!(moved, "preferred-leader rebalance requested");
                Response::default()
            }
        }
    }

    pub fn status(&self) -> rpc::Status {
        let mut groups: Vec<_> = self
            .router
            .all()
            .iter()
            .filter_map(|p| {
                let g = p.group()?;
                p.with_driver(|d| {
                    let s = d.status();
                    (g, s.role.leader, s.role.term, s.commit)
                })
            })
            .collect();
        groups.sort();
        let connected = self
            .transport
            .peers()
            .into_iter()
            .filter(|(id, _)| self.transport.is_connected(*id))
            .map(|(id, _)| id)
            .collect();
        let conf = self
            .controller
            .with_driver(|d| d.conf_state())
            .unwrap_or_default();
        rpc::Status {
            controller_voters: conf.voters,
            controller_learners: conf.learners,
            node: self.config.node_id,
            controller_leader: self.controller_leader(),
            state: self.state(),
            groups,
            connected,
        }
    }

    /// Hands leadership of each partition this node leads to its preferred leader (first
    /// replica) when that replica is caught up. Returns how many transfers started.
    pub fn rebalance_leaders(&self) -> usize {
        let me = self.config.node_id;
        let state = self.state();
        let live = state.live_nodes();
        let mut moved = 0;
        for p in self.router.all() {
            let Some(group) = p.group() else { continue };
            let Some((_, _, pa)) = state.partition_by_group(group) else {
                continue;
            };
            let Some(preferred) = super::placement::preferred_leader(pa, &live) else {
                continue;
            };
            if preferred == me {
                continue;
            }
            let started = p.with_driver(|d| {
                let s = d.status();
                let ready = s.role.is_leader
                    && s.progress
                        .iter()
                        .any(|x| x.node == preferred && x.caught_up);
                if ready {
                    let _ = d.transfer_leader(preferred);
                }
                ready
            });
            if started == Some(true) {
                moved += 1;
            }
        }
        moved
    }

    /// Closes the controller's log (partition replicas are closed with the broker's topics).
    pub fn shutdown(&self) {
        if let Err(e) = self.controller.close() {
            tracing::warn!("controller log not checkpointed: {e}");
        }
        self.transport.shutdown();
    }
}

fn answer(result: Result<(), BrokerError>) -> Response {
    match result {
        Ok(()) => Response::default(),
        Err(e) => Response {
            error: Some(e.to_string()),
            status: None,
        },
    }
}

/// Node-to-node mutual TLS from the node's certificate and the cluster's CA.
fn raft_tls(
    files: &strom_tls::TlsFiles,
) -> Result<strom_consensus::transport::RaftTls, strom_tls::TlsError> {
    Ok(strom_consensus::transport::RaftTls {
        server: strom_tls::TlsServer::new(files.clone(), strom_tls::ClientAuth::Required)?,
        client: strom_tls::TlsClient::new(files.clone(), true)?,
    })
}
