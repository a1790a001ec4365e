//! State shared by the `Transport` handle and its background tasks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};

use super::handshake::Identity;
use super::peer::Peer;
use super::ratelimit::LogLimiter;
use super::{Inbound, TransportConfig, TransportError};
use crate::NodeId;

/// Timeouts and backoff; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timing {
    pub handshake: Duration,
    pub connect: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub log_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            handshake: Duration::from_secs(5),
            connect: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            log_every: Duration::from_secs(30),
        }
    }
}

pub(super) struct Shared {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub secret: Vec<u8>,
    pub tls: Option<super::RaftTls>,
    pub local_addr: SocketAddr,
    pub inbound: Arc<dyn Inbound>,
    pub peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    /// Captured at start so `send`, which may run on a plain thread, can spawn writer tasks.
    pub runtime: Handle,
    pub timing: Timing,
    pub log_limiter: LogLimiter,
    pub next_request_id: AtomicU64,
    pub next_conn_id: AtomicU64,
    /// The current inbound connection of each node; a newer one closes the older, which can only
    /// be a half-open leftover since a node keeps one outbound connection per peer.
    pub inbound_conns: Mutex<HashMap<NodeId, (u64, Arc<Notify>)>>,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    pub fn new(
        config: TransportConfig,
        local_addr: SocketAddr,
        inbound: Arc<dyn Inbound>,
        timing: Timing,
    ) -> Shared {
        let peers = config
            .peers
            .iter()
            .map(|(&id, &addr)| (id, Arc::new(Peer::new(id, addr))))
            .collect();
        Shared {
            node_id: config.node_id,
            cluster_id: config.cluster_id,
            secret: config.secret,
            tls: config.tls,
            local_addr,
            inbound,
            peers: RwLock::new(peers),
            runtime: Handle::current(),
            timing,
            log_limiter: LogLimiter::new(timing.log_every),
            next_request_id: AtomicU64::new(1),
            next_conn_id: AtomicU64::new(1),
            inbound_conns: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
        }
    }

    pub fn identity(&self) -> Identity<'_> {
        Identity {
            node_id: self.node_id,
            cluster_id: &self.cluster_id,
            secret: &self.secret,
        }
    }

    pub fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves once `shutdown` was called.
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the sender is gone, which also means shut down.
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }

    pub fn shutdown(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        tracing::info!(node = self.node_id, "node-to-node transport shutting down");
        for peer in read(&self.peers).values() {
            peer.connected.store(false, Ordering::Release);
            peer.fail_pending(|| TransportError::Shutdown);
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the maps behind these
/// locks stay consistent between statements, so carry on rather than spread the panic.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
