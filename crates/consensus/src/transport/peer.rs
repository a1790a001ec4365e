//! One remote node as seen by the sender: its address, its send queue, the calls waiting for an
//! answer, and the task that keeps an outbound connection to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strom_tls::Conn;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use super::conn::{self, Side};
use super::handshake::{handshake, HandshakeError, Role};
use super::ratelimit::LogKey;
use super::shared::{lock, Shared};
use super::TransportError;
use crate::{GroupId, NodeId};

/// Past this many queued bytes for one peer, further Raft messages are dropped.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Past this many queued messages for one peer, further Raft messages are dropped.
pub const MAX_QUEUED_MESSAGES: usize = 100_000;

pub(super) struct Pending {
    pub reply: oneshot::Sender<Result<Bytes, TransportError>>,
    /// The connection the request was written on: if that connection breaks, the answer will
    /// never come. Resending instead could run a non-idempotent request twice.
    pub written_on: Option<u64>,
}

#[derive(Default)]
struct Queue {
    raft: Vec<(GroupId, Bytes)>,
    raft_bytes: usize,
    requests: Vec<(u64, Bytes)>,
}

/// What a writer takes from the queue in one go.
#[derive(Default)]
pub(super) struct Work {
    pub requests: Vec<(u64, Bytes)>,
    pub raft: Vec<(GroupId, Bytes)>,
}

pub(super) struct Peer {
    pub id: NodeId,
    addr: Mutex<SocketAddr>,
    pub addr_changed: Notify,
    queue: Mutex<Queue>,
    /// Signalled whenever something is queued; holds a permit if the writer is busy.
    pub wake: Notify,
    pub pending: Mutex<HashMap<u64, Pending>>,
    pub connected: AtomicBool,
    started: AtomicBool,
    pub dropped: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Peer {
    pub fn new(id: NodeId, addr: SocketAddr) -> Peer {
        Peer {
            id,
            addr: Mutex::new(addr),
            addr_changed: Notify::new(),
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            started: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        *lock(&self.addr)
    }

    /// Returns whether the address changed.
    pub fn set_addr(&self, addr: SocketAddr) -> bool {
        let mut current = lock(&self.addr);
        let changed = *current != addr;
        *current = addr;
        changed
    }

    /// Queues an encoded Raft message; `false` (and counted) if the queue is full. A single
    /// message larger than the byte limit still goes through an empty queue: it could never be
    /// sent otherwise.
    pub fn enqueue_raft(&self, group: GroupId, msg: Bytes) -> bool {
        let mut q = lock(&self.queue);
        if q.raft.len() >= MAX_QUEUED_MESSAGES
            || (!q.raft.is_empty() && q.raft_bytes + msg.len() > MAX_QUEUED_BYTES)
        {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.raft_bytes += msg.len();
        q.raft.push((group, msg));
        true
    }

    pub fn enqueue_request(&self, id: u64, request: Bytes) {
        lock(&self.queue).requests.push((id, request));
    }

    /// Everything queued, for connection `conn_id` to write. Requests whose caller gave up are
    /// left out; the others are marked as written on that connection.
    pub fn take_work(&self, conn_id: u64) -> Work {
        let (raft, requests) = {
            let mut q = lock(&self.queue);
            q.raft_bytes = 0;
            (std::mem::take(&mut q.raft), std::mem::take(&mut q.requests))
        };
        let requests = if requests.is_empty() {
            requests
        } else {
            let mut pending = lock(&self.pending);
            requests
                .into_iter()
                .filter(|(id, _)| match pending.get_mut(id) {
                    Some(p) => {
                        p.written_on = Some(conn_id);
                        true
                    }
                    None => false,
                })
                .collect()
        };
        Work { requests, raft }
    }

    /// Drops the queued Raft messages after a failed connection attempt: Raft retransmits, and
    /// a peer that stays down must not make us replay a backlog of stale heartbeats later.
    fn drop_queued_raft(&self) -> usize {
        let mut q = lock(&self.queue);
        let n = q.raft.len();
        q.raft.clear();
        q.raft_bytes = 0;
        drop(q);
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    pub fn complete(&self, id: u64, result: Result<Bytes, TransportError>) {
        // None: the caller timed out already and nobody is waiting.
        if let Some(p) = lock(&self.pending).remove(&id) {
            let _ = p.reply.send(result);
        }
    }

    pub fn fail_pending(&self, error: impl Fn() -> TransportError) {
        let drained: Vec<_> = lock(&self.pending).drain().collect();
        for (_, p) in drained {
            let _ = p.reply.send(Err(error()));
        }
    }

    fn fail_written_on(&self, conn_id: u64) {
        let lost: Vec<_> = {
            let mut pending = lock(&self.pending);
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.written_on == Some(conn_id))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id))
                .collect()
        };
        for p in lost {
            let _ = p.reply.send(Err(TransportError::ConnectionLost(self.id)));
        }
    }
}

/// Starts the peer's connection task on first use: a peer nobody sends to costs no connection.
pub(super) fn ensure_running(shared: &Arc<Shared>, peer: &Arc<Peer>) {
    if shared.is_shut_down() || peer.started.swap(true, Ordering::AcqRel) {
        return;
    }
    shared.runtime.spawn(run(shared.clone(), peer.clone()));
}

enum End {
    Conn(Result<(), TransportError>),
    AddrChanged,
    Shutdown,
}

/// Keeps one outbound connection to `peer` until shutdown, re-dialing with backoff.
async fn run(shared: Arc<Shared>, peer: Arc<Peer>) {
    let shutdown = shared.shutdown_signal();
    tokio::pin!(shutdown);
    let timing = shared.timing;
    let mut backoff = timing.backoff_min;
    loop {
        let addr = peer.addr();
        let dialed = tokio::select! {
            _ = &mut shutdown => break,
            _ = peer.addr_changed.notified() => continue,
            r = dial(&shared, &peer, addr) => r,
        };
        match dialed {
            Ok(stream) => {
                backoff = timing.backoff_min;
                shared.log_limiter.reset(LogKey::Outbound(peer.id));
                *lock(&peer.last_error) = None;
                peer.connected.store(true, Ordering::Release);
                tracing::info!(
                    node = shared.node_id,
                    peer = peer.id,
                    %addr,
                    "connected to node {} at {addr}",
                    peer.id
                );
                let conn_id = shared.next_conn_id();
                let end = tokio::select! {
                    r = conn::run(&shared, stream, peer.id, Side::Outbound { peer: &peer, conn_id }) => End::Conn(r),
                    _ = peer.addr_changed.notified() => End::AddrChanged,
                    _ = &mut shutdown => End::Shutdown,
                };
                peer.connected.store(false, Ordering::Release);
                peer.fail_written_on(conn_id);
                match end {
                    End::Shutdown => break,
                    End::AddrChanged => {
                        tracing::info!(
                            peer = peer.id,
                            old = %addr,
                            new = %peer.addr(),
                            "node {} moved; reconnecting",
                            peer.id
                        );
                        continue;
                    }
                    End::Conn(r) => {
                        let reason = match r {
                            Ok(()) => "closed by the peer".to_owned(),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(
                            node = shared.node_id,
                            peer = peer.id,
                            %addr,
                            "lost connection to node {} at {addr}: {reason}",
                            peer.id
                        );
                    }
                }
            }
            Err(err) => {
                let dropped = peer.drop_queued_raft();
                log_dial_failure(&shared, peer.id, addr, &err, dropped);
                *lock(&peer.last_error) = Some(err.to_string());
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = peer.addr_changed.notified() => {
                backoff = timing.backoff_min;
                continue;
            }
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(timing.backoff_max);
    }
    peer.connected.store(false, Ordering::Release);
    peer.fail_pending(|| TransportError::Shutdown);
}

async fn dial(shared: &Shared, peer: &Peer, addr: SocketAddr) -> Result<Conn, TransportError> {
    let connect = tokio::time::timeout(shared.timing.connect, TcpStream::connect(addr));
    let stream = match connect.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(TransportError::Connect { addr, source }),
        Err(_) => {
            return Err(TransportError::Connect {
                addr,
                source: std::io::ErrorKind::TimedOut.into(),
            })
        }
    };
    // Raft heartbeats and votes are small and latency-bound; batching is done by the writer.
    stream
        .set_nodelay(true)
        .map_err(|source| TransportError::Connect { addr, source })?;
    let mut stream = match &shared.tls {
        None => Conn::Plain(stream),
        Some(tls) => Conn::Client(Box::new(
            strom_tls::connect(tls.client.current(), addr, stream)
                .await
                .map_err(|source| TransportError::Connect { addr, source })?,
        )),
    };
    let identity = shared.identity();
    let mut announced = None;
    let hs = handshake(
        &mut stream,
        Role::Dialer,
        &identity,
        Some(peer.id),
        &mut announced,
    );
    match tokio::time::timeout(shared.timing.handshake, hs).await {
        Ok(Ok(_)) => Ok(stream),
        Ok(Err(source)) => Err(TransportError::Handshake { addr, source }),
        Err(_) => Err(TransportError::Handshake {
            addr,
            source: HandshakeError::Timeout,
        }),
    }
}

fn log_dial_failure(
    shared: &Shared,
    peer: NodeId,
    addr: SocketAddr,
    err: &TransportError,
    dropped: usize,
) {
    let Some(suppressed) = shared.log_limiter.allow(LogKey::Outbound(peer)) else {
        tracing::debug!(peer, %addr, %err, dropped, "connection attempt failed");
        return;
    };
    let me = shared.node_id;
    let local = shared.local_addr;
    let more = if suppressed > 0 {
        format!(" ({suppressed} similar failures since the last report)")
    } else {
        String::new()
    };
    match err {
        TransportError::Handshake {
            source:
                HandshakeError::WrongNode {
                    expected,
                    announced,
                },
            ..
        } => tracing::error!(
            node = me,
            peer,
            %addr,
            "peer at {addr} says it is node {announced}, but --peers names node {expected} there \
             (this is node {me} at {local}){more}"
        ),
        TransportError::Handshake { source, .. } if source.is_misconfiguration() => {
            tracing::error!(
                node = me,
                peer,
                %addr,
                "node {me} at {local} cannot authenticate with node {peer} at {addr}: {source}{more}"
            )
        }
        _ => tracing::warn!(
            node = me,
            peer,
            %addr,
            "node {me} at {local} cannot reach node {peer}: {err}; retrying{more}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer::new(2, "127.0.0.1:1".parse().unwrap())
    }

    #[test]
    fn queue_drops_past_the_message_limit_and_counts() {
        let p = peer();
        for i in 0..MAX_QUEUED_MESSAGES {
            assert!(p.enqueue_raft(i as u64, Bytes::from_static(b"x")));
        }
        assert!(!p.enqueue_raft(0, Bytes::from_static(b"x")));
        assert_eq!(p.dropped.load(Ordering::Relaxed), 1);
        let work = p.take_work(1);
        assert_eq!(work.raft.len(), MAX_QUEUED_MESSAGES);
        // Taken in the order queued, and the queue is empty again.
        assert!(work
            .raft
            .iter()
            .enumerate()
            .all(|(i, (g, _))| *g == i as u64));
        assert!(p.enqueue_raft(0, Bytes::from_static(b"x")));
    }

    #[test]
    fn queue_drops_past_the_byte_limit_but_takes_one_huge_message() {
        let p = peer();
        let big = Bytes::from(vec![0u8; MAX_QUEUED_BYTES / 2]);
        assert!(p.enqueue_raft(1, big.clone()));
        assert!(p.enqueue_raft(1, big.clone()));
        assert!(!p.enqueue_raft(1, Bytes::from_static(b"x")));
        assert_eq!(p.dropped.load(Ordering::Relaxed), 1);
        p.take_work(1);
        assert!(p.enqueue_raft(1, Bytes::from(vec![0u8; MAX_QUEUED_BYTES + 1])));
        assert!(!p.enqueue_raft(1, Bytes::from_static(b"x")));
    }

    #[test]
    fn abandoned_requests_are_not_written_and_lost_ones_fail() {
        let p = peer();
        let (tx1, mut rx1) = oneshot::channel();
        lock(&p.pending).insert(
            1,
            Pending {
                reply: tx1,
                written_on: None,
            },
        );
        p.enqueue_request(1, Bytes::from_static(b"a"));
        // Request 2's caller already gave up: no pending entry.
        p.enqueue_request(2, Bytes::from_static(b"b"));
        let work = p.take_work(7);
        assert_eq!(work.requests.len(), 1);
        assert_eq!(work.requests[0].0, 1);
        p.fail_written_on(8);
        assert!(
            rx1.try_recv().is_err(),
            "another connection's loss must not fail it"
        );
        p.fail_written_on(7);
        assert!(matches!(
            rx1.try_recv(),
            Ok(Err(TransportError::ConnectionLost(2)))
        ));
    }
}
