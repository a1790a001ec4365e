//! Node-to-node TCP for Raft traffic and small RPCs, authenticated by the shared cluster secret.
//!
//! # Handshake
//!
//! Both ends write a hello as soon as the TCP connection is up, then read the other's:
//!
//! ```text
//! "STRM" | version u16 = 1 | node id u64 | nonce [32] (getrandom) | cluster id len u16 | cluster id (UTF-8, ≤ 255)
//! ```
//!
//! All integers are big-endian. The magic and version come first so a future version (or a Kafka
//! client on the wrong port) is refused before anything else is parsed. Admin clients announce
//! node 0 and may leave the cluster id empty; an empty cluster id on either side skips the
//! cluster-id check. After checking the hello each end proves it knows the secret by sending
//!
//! ```text
//! HMAC-SHA256(secret, "strom-raft-v1" || own role byte || own node id u64 || peer's nonce || own nonce)
//! ```
//!
//! (role 1 = the end that dialed, 2 = the end that accepted) and verifies the peer's proof in
//! constant time. The role byte stops a proof from being reflected back at its sender, the peer's
//! nonce stops replay, and because the exchange is symmetric both ends see, and log, a wrong
//! secret or cluster id. The dialer also refuses a peer announcing a different node id than the
//! one it dialed. The whole handshake must finish within 5 s.
//!
//! # Frames
//!
//! ```text
//! length u32 (counts kind + payload, ≤ 256 MiB) | kind u8 | payload
//! RAFT_BATCH   (1): count u32, then per message: group u64, len u32, protobuf eraftpb::Message
//! RPC_REQUEST  (2): request id u64, request bytes
//! RPC_RESPONSE (3): request id u64, response bytes
//! ```
//!
//! A malformed or oversized frame closes only the connection it came on.
//!
//! # Connections
//!
//! Every node sends on its own outbound connection to each peer, made lazily on first use and
//! re-made with backoff (100 ms doubling to 2 s). Raft messages for one peer are queued and a
//! per-peer writer drains the whole queue into one frame per write, so the many Raft groups that
//! share a pair of nodes share its syscalls too. RPC responses go back on the connection the
//! request came in on; an admin client (node 0) may only send RPC requests.

mod client;
mod conn;
mod frame;
mod handshake;
mod peer;
mod ratelimit;
mod server;
mod shared;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{GroupId, NodeId};

pub use client::client_call;
pub use frame::{FrameError, MAX_FRAME};
pub use handshake::HandshakeError;
pub use peer::{MAX_QUEUED_BYTES, MAX_QUEUED_MESSAGES};

use peer::{Peer, Pending};
use shared::{Shared, Timing};

/// Where this node listens, who it is, and where its peers are.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub node_id: NodeId,
    pub listen: SocketAddr,
    pub secret: Vec<u8>,
    pub cluster_id: String,
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Mutual TLS under the secret handshake: both ends present a certificate of the cluster's
    /// CA, so a node without one cannot even start the handshake.
    pub tls: Option<RaftTls>,
}

#[derive(Clone)]
pub struct RaftTls {
    /// Requires and verifies the dialler's certificate.
    pub server: Arc<strom_tls::TlsServer>,
    /// Presents this node's certificate and verifies the peer's (reloaded with the files).
    pub client: Arc<strom_tls::TlsClient>,
}

impl std::fmt::Debug for RaftTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftTls")
    }
}

/// What the transport hands to the rest of the node.
pub trait Inbound: Send + Sync + 'static {
    /// Raft messages from node `from`, in the order sent; called from the connection's reader task. Must not block for long.
    fn on_raft(&self, from: NodeId, messages: Vec<(GroupId, raft::eraftpb::Message)>);
    /// A request from a peer node or an admin client (from = 0 for a client that is not a node). Returns the response bytes.
    fn on_rpc(&self, from: NodeId, request: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>>;
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid transport configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: HandshakeError,
    },
    #[error("node {0} is not a known peer")]
    UnknownPeer(NodeId),
    #[error("timed out")]
    Timeout,
    #[error("the connection to node {0} was lost before the response arrived")]
    ConnectionLost(NodeId),
    #[error("the connection was closed")]
    Closed,
    #[error("a message of {0} bytes does not fit in one frame")]
    TooLarge(usize),
    #[error("the transport is shut down")]
    Shutdown,
    #[error("malformed frame: {0}")]
    Protocol(#[from] FrameError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The node's end of the node-to-node network. Dropping it (the last `Arc`) shuts it down.
pub struct Transport {
    shared: Arc<Shared>,
}

impl Transport {
    /// Binds the listener (error if the address is taken) and starts accepting; outbound connections are made lazily per peer and re-made with backoff (100ms doubling to 2s) when they break.
    pub async fn start(
        config: TransportConfig,
        inbound: Arc<dyn Inbound>,
    ) -> Result<Arc<Transport>, TransportError> {
        Self::start_with_timing(config, inbound, Timing::default()).await
    }

    async fn start_with_timing(
        config: TransportConfig,
        inbound: Arc<dyn Inbound>,
        timing: Timing,
    ) -> Result<Arc<Transport>, TransportError> {
        validate(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TransportError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        let shared = Arc::new(Shared::new(config, local_addr, inbound, timing));
        tracing::info!(
            node = shared.node_id,
            %local_addr,
            "node-to-node transport listening"
        );
        shared
            .runtime
            .spawn(server::accept_loop(shared.clone(), listener));
        Ok(Arc::new(Transport { shared }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Non-blocking, never waits: queue a Raft message for `to`. Messages for one destination are batched: a per-peer writer task drains everything queued into one frame and writes it. If the peer's queue holds more than 64 MiB or 100_000 messages, drop the message (Raft retransmits) and count it. Unknown peer: drop with a debug log.
    pub fn send(&self, to: NodeId, group: GroupId, msg: raft::eraftpb::Message) {
        let Some(peer) = self.remote_peer(to) else {
            tracing::debug!(to, group, "dropping Raft message for an unknown peer");
            return;
        };
        if self.shared.is_shut_down() {
            return;
        }
        let encoded = match protobuf::Message::write_to_bytes(&msg) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) => {
                tracing::error!(to, group, %err, "cannot encode Raft message; dropped");
                return;
            }
        };
        if frame::raft_message_too_large(encoded.len()) {
            tracing::error!(
                to,
                group,
                len = encoded.len(),
                "Raft message does not fit in one frame; dropped"
            );
            peer.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !peer.enqueue_raft(group, encoded) {
            if let Some(suppressed) = self
                .shared
                .log_limiter
                .allow(ratelimit::LogKey::QueueFull(to))
            {
                tracing::warn!(
                    to,
                    dropped_total = peer.dropped.load(Ordering::Relaxed),
                    suppressed,
                    "send queue for node {to} is full ({MAX_QUEUED_MESSAGES} messages or \
                     {MAX_QUEUED_BYTES} bytes); dropping Raft messages, Raft will retransmit"
                );
            }
            return;
        }
        peer::ensure_running(&self.shared, &peer);
        peer.wake.notify_one();
    }

    /// Adds or changes a peer's address (cluster membership changes).
    pub fn set_peer(&self, node: NodeId, addr: SocketAddr) {
        if node == 0 {
            tracing::warn!(%addr, "ignoring a peer with node id 0 (reserved for admin clients)");
            return;
        }
        let mut peers = shared::write(&self.shared.peers);
        match peers.get(&node) {
            Some(peer) => {
                if peer.set_addr(addr) {
                    tracing::info!(node, %addr, "peer address changed");
                    // A connected writer must let go of the old address.
                    peer.addr_changed.notify_one();
                }
            }
            None => {
                tracing::info!(node, %addr, "peer added");
                peers.insert(node, Arc::new(Peer::new(node, addr)));
            }
        }
    }

    pub fn peers(&self) -> Vec<(NodeId, SocketAddr)> {
        let peers = shared::read(&self.shared.peers);
        let mut out: Vec<_> = peers.values().map(|p| (p.id, p.addr())).collect();
        out.sort_unstable();
        out
    }

    /// Request/response to a peer node over the same connection (multiplexed by a request id). Times out with TransportError::Timeout.
    pub async fn call(
        &self,
        to: NodeId,
        request: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        if self.shared.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        if frame::rpc_too_large(request.len()) {
            return Err(TransportError::TooLarge(request.len()));
        }
        let peer = self
            .remote_peer(to)
            .ok_or(TransportError::UnknownPeer(to))?;
        let id = self.shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        shared::lock(&peer.pending).insert(
            id,
            Pending {
                reply: tx,
                written_on: None,
            },
        );
        // Removes the entry however this future ends (timeout, caller dropping it).
        let _guard = PendingGuard { peer: &peer, id };
        if self.shared.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        peer.enqueue_request(id, request);
        peer::ensure_running(&self.shared, &peer);
        peer.wake.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(TransportError::Shutdown),
            Err(_) => Err(TransportError::Timeout),
        }
    }

    /// Whether a connection to `node` is currently established and authenticated (for status output).
    pub fn is_connected(&self, node: NodeId) -> bool {
        shared::read(&self.shared.peers)
            .get(&node)
            .is_some_and(|p| p.connected.load(Ordering::Acquire))
    }

    /// Why the last outbound connection attempt to `node` failed, if it did (for status output);
    /// cleared when a connection is established.
    pub fn last_error(&self, node: NodeId) -> Option<String> {
        let peers = shared::read(&self.shared.peers);
        let peer = peers.get(&node)?;
        let last = shared::lock(&peer.last_error).clone();
        last
    }

    /// How many Raft messages for `node` were dropped because its queue was full or they could
    /// not be delivered.
    pub fn dropped(&self, node: NodeId) -> u64 {
        shared::read(&self.shared.peers)
            .get(&node)
            .map_or(0, |p| p.dropped.load(Ordering::Relaxed))
    }

    /// Stops accepting and drops connections (tasks end).
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// The peer entry for `to` unless it is this node: Raft never sends to itself, and dialing
    /// our own address would only fail the handshake.
    fn remote_peer(&self, to: NodeId) -> Option<Arc<Peer>> {
        if to == self.shared.node_id {
            return None;
        }
        shared::read(&self.shared.peers).get(&to).cloned()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

struct PendingGuard<'a> {
    peer: &'a Peer,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        shared::lock(&self.peer.pending).remove(&self.id);
    }
}

fn validate(config: &TransportConfig) -> Result<(), TransportError> {
    if config.node_id == 0 {
        return Err(TransportError::Config(
            "node id 0 is reserved for admin clients".into(),
        ));
    }
    if config.secret.is_empty() {
        return Err(TransportError::Config(
            "the cluster secret is empty: node-to-node traffic would be unauthenticated".into(),
        ));
    }
    if config.cluster_id.len() > handshake::MAX_CLUSTER_ID {
        return Err(TransportError::Config(format!(
            "the cluster id is {} bytes long, at most {} are allowed",
            config.cluster_id.len(),
            handshake::MAX_CLUSTER_ID
        )));
    }
    if config.peers.contains_key(&0) {
        return Err(TransportError::Config(
            "the peer list names node 0, which is reserved for admin clients".into(),
        ));
    }
    Ok(())
}
