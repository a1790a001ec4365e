//! One member of a group: what it joined with, its assignment, when it was last heard from, and
//! the answers it is waiting for.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::types::{GroupError, JoinRequest, JoinResponse, Protocol, SyncResponse};

pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// Coordinator clock (ms) of the last join, sync, heartbeat or commit.
    pub last_seen: u64,
    /// Join order; the earliest joined member becomes leader when the leader is gone.
    pub seq: u64,
    pub join_waiter: Option<oneshot::Sender<JoinResponse>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    pub fn new(id: String, req: &JoinRequest, now: u64, seq: u64) -> Member {
        let mut m = Member {
            id,
            instance_id: req.instance_id.clone(),
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            last_seen: now,
            seq,
            join_waiter: None,
            sync_waiter: None,
        };
        m.update(req, now);
        m
    }

    /// Takes what a (re)join says about the member.
    pub fn update(&mut self, req: &JoinRequest, now: u64) {
        self.client_id = req.client_id.clone();
        self.client_host = req.client_host.clone();
        self.session_timeout_ms = u64::try_from(req.session_timeout_ms).unwrap_or(0);
        // JoinGroup v0 has no rebalance timeout; Kafka uses the session timeout then.
        self.rebalance_timeout_ms = u64::try_from(req.rebalance_timeout_ms)
            .ok()
            .filter(|t| *t > 0)
            .unwrap_or(self.session_timeout_ms);
        self.protocols = req.protocols.clone();
        self.last_seen = now;
    }

    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata_for(protocol).is_some()
    }

    pub fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// When the member expires if not heard from again. A member waiting for a join or sync
    /// answer is kept alive: the rebalance's own deadlines bound that wait.
    pub fn session_deadline(&self) -> Option<u64> {
        if self.join_waiter.is_some() || self.sync_waiter.is_some() {
            return None;
        }
        Some(self.last_seen.saturating_add(self.session_timeout_ms))
    }

    /// Answers a waiting join, if any. A receiver that is gone (client disconnected) is fine.
    pub fn answer_join(&mut self, resp: JoinResponse) {
        if let Some(w) = self.join_waiter.take() {
            let _ = w.send(resp);
        }
    }

    pub fn answer_sync(&mut self, resp: SyncResponse) {
        if let Some(w) = self.sync_waiter.take() {
            let _ = w.send(resp);
        }
    }

    /// Fails whatever the member waits for with `err`.
    pub fn fail_waiters(&mut self, err: &GroupError) {
        let id = self.id.clone();
        self.answer_join(JoinResponse::failed(err.clone(), id));
        self.answer_sync(SyncResponse::failed(err.clone()));
    }
}

/// Total bytes of protocol names and metadata, the part of a join the group keeps in memory.
pub(crate) fn protocols_bytes(protocols: &[Protocol]) -> usize {
    protocols
        .iter()
        .map(|p| p.name.len() + p.metadata.len())
        .sum()
}
