//! The etcd v3 gRPC API on Strom: `etcdctl` and every etcd client library work against it.
//!
//! The state is `strom_kv::Store`, a deterministic state machine applied from Strom's journal
//! (`strom_broker::journal`): a write becomes one journal entry, acknowledged once a majority
//! fsynced it and it was applied. Reads are served from the applied state after a read
//! barrier. Watches read the store's history from their next revision whenever the applied
//! index moves, so a slow watcher costs no memory. Lease expiry is decided by the leader's
//! clock (`lease::Lessor`) and replicated as a revoke.

pub mod authz;
mod concurrency;
mod convert;
mod election;
mod kv;
mod lease;
mod lock;
mod machine;
mod maintenance;
mod metrics;
mod pb;
mod peer;
mod service;
mod status;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use pb::v3electionpb::election_server::ElectionServer;
use pb::v3lockpb::lock_server::LockServer;
use strom_broker::journal::{Journal, JournalSpec, NoPeers};
use strom_broker::Broker;

pub use machine::KvMachine;
pub use service::Etcd;

/// etcd's own allowance for gRPC framing on top of the request limit.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Largest request (etcd's `--max-request-bytes`, 1.5 MiB).
    pub max_request_bytes: usize,
    /// Most operations per transaction branch (etcd's `--max-txn-ops`, 128).
    pub max_txn_ops: usize,
    /// Space quota (etcd's `--quota-backend-bytes`, 2 GiB).
    pub quota_bytes: u64,
    /// Journal entries between snapshots of the state (etcd's `--snapshot-count`).
    pub snapshot_every: u64,
    /// What MemberList reports as this node's client URL.
    pub client_url: String,
    /// Most watchers on one Watch stream.
    pub max_watchers_per_stream: usize,
    /// A watcher with no events gets a progress notification this often, if it asked.
    pub progress_notify_interval: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            max_request_bytes: 3 * 512 * 1024,
            max_txn_ops: 128,
            quota_bytes: 2 << 30,
            snapshot_every: 100_000,
            client_url: "http://127.0.0.1:2379".into(),
            max_watchers_per_stream: 10_000,
            progress_notify_interval: Duration::from_secs(600),
        }
    }
}

/// The journal of the key-value store on a single node: a Raft group of one. Returns once
/// it leads and has applied its log, so the first request sees the recovered state.
pub async fn open_single(broker: &Arc<Broker>, config: EtcdConfig) -> Result<Arc<Etcd>, EtcdError> {
    let limits = strom_kv::Limits {
        quota_bytes: config.quota_bytes,
        ..strom_kv::Limits::default()
    };
    let journal = Journal::open(
        broker,
        JournalSpec {
            name: "kv".into(),
            group: KV_GROUP,
            node: 1,
            voters: vec![1],
            driver: Default::default(),
            outbox: Arc::new(NoPeers),
            snapshot_every: config.snapshot_every,
            compact: true,
            source: None,
            tick: Some(Duration::from_millis(100)),
            propose_timeout: Duration::from_secs(7),
        },
        KvMachine::new(limits),
    )?;
    journal.wait_ready(Duration::from_secs(30)).await?;
    Ok(Etcd::new(journal, None, config, 1, "strom".into()))
}

/// Cluster mode: the key-value journal is a Raft group of the founding voters, and nodes that
/// joined later replicate it as learners (its leader adds them); a node that does not lead
/// it forwards writes, read barriers and lease liveness to the one that does.
/// Each node compacts its log behind its own snapshots; a node behind the leader's log start
/// fetches a peer's snapshot.
pub fn open_cluster(
    broker: &Arc<Broker>,
    cluster: &Arc<strom_broker::cluster::Cluster>,
    config: EtcdConfig,
) -> Result<Arc<Etcd>, EtcdError> {
    // Empty on a node that joined later: it learns the group's configuration from its leader.
    let voters = cluster.founding_voters();
    let limits = strom_kv::Limits {
        quota_bytes: config.quota_bytes,
        ..strom_kv::Limits::default()
    };
    let node = cluster.node_id();
    let journal = Journal::open(
        broker,
        JournalSpec {
            name: "kv".into(),
            group: KV_GROUP,
            node,
            voters,
            driver: Default::default(),
            outbox: cluster.outbox(),
            snapshot_every: config.snapshot_every,
            compact: true,
            source: Some(cluster.snapshot_source()),
            tick: None,
            propose_timeout: Duration::from_secs(7),
        },
        KvMachine::new(limits),
    )?;
    cluster.attach_group(KV_GROUP, Arc::clone(journal.partition()), "etcd");
    cluster.share_snapshots("kv", Arc::downgrade(&journal) as _);
    let etcd = Etcd::new(
        journal,
        Some(Arc::clone(cluster)),
        config,
        node,
        format!("strom-{node}"),
    );
    cluster.register_service(
        peer::SERVICE,
        Arc::new(peer::Service(Arc::downgrade(&etcd))),
    );
    Ok(etcd)
}

/// The key-value journal's Raft group id: far above the ids the controller hands partitions.
pub const KV_GROUP: u64 = u64::MAX - 1;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{0}")]
    Broker(#[from] strom_broker::BrokerError),
    #[error("etcd listener: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the etcd API on `listener` (over TLS with `tls`) until it fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    etcd: Arc<Etcd>,
    tls: Option<Arc<strom_tls::TlsServer>>,
) -> Result<(), EtcdError> {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?local, "etcd API listening");
    let limit = etcd.config().max_request_bytes + GRPC_OVERHEAD_BYTES;
    lease::spawn_lessor(Arc::clone(&etcd));
    let svc = service::Svc(etcd);
    tonic::transport::Server::builder()
        .layer(metrics::MetricsLayer)
        .add_service(PbKvServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(PbWatchServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(PbLeaseServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(PbMaintenanceServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(PbClusterServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(LockServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(ElectionServer::new(svc).max_decoding_message_size(limit))
        .serve_with_incoming(incoming(listener, tls))
        .await?;
    Ok(())
}

/// Connections once accepted (with TCP_NODELAY: without it a small response waits for the
/// client's delayed ACK) and, with TLS, handshaken off the accept loop.
fn incoming(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<strom_tls::TlsServer>>,
) -> impl futures::Stream<Item = std::io::Result<Conn>> {
    let rx = strom_tls::incoming(listener, tls, "etcd");
    futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |c| {
        c.map(Conn)
    })
}

/// An accepted connection, as tonic takes them.
struct Conn(strom_tls::Conn);

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = authz::Peer;

    fn connect_info(&self) -> Self::ConnectInfo {
        authz::Peer {
            addr: self.0.peer_addr(),
            principal: match &self.0 {
                strom_tls::Conn::Tls(s) => strom_tls::principal(s),
                _ => None,
            },
        }
    }
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
