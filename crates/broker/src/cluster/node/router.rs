//! Delivers what the node transport receives: Raft messages to their group's driver, RPCs
//! to the controller or to a front end's service.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use strom_consensus::raft::eraftpb::Message;
use strom_consensus::transport::Inbound;

use super::rpc::{self, Request, Response};
use super::{snapshots, Cluster, NodeService};
use crate::cluster::state::{GroupId, NodeId};
use crate::Partition;

/// Delivers inbound Raft messages to the group they are for.
#[derive(Default)]
pub(super) struct Router {
    pub(super) groups: RwLock<HashMap<GroupId, Arc<Partition>>>,
    /// Services of front ends that talk to their peers on other nodes (the etcd API forwards
    /// to its journal's leader), by id.
    pub(super) services: RwLock<HashMap<u8, Arc<dyn NodeService>>>,
    /// Groups of journals attached by front ends: not partitions of the controller's
    /// assignment, so the reconciler leaves them alone.
    /// By group, the front end whose endpoint a node registers to replicate it.
    pub(super) journals: RwLock<HashMap<GroupId, String>>,
    pub(super) snapshots: Arc<snapshots::SnapshotShare>,
    pub(super) cluster: std::sync::OnceLock<std::sync::Weak<Cluster>>,
    /// When each peer last sent anything (Raft messages, RPCs): the controller leader's view of
    /// which nodes are alive. Every node replicates the controller (as voter or learner), so
    /// its heartbeat responses keep it fresh here.
    pub(super) seen: std::sync::Mutex<HashMap<NodeId, Instant>>,
}

impl Router {
    pub(super) fn get(&self, group: GroupId) -> Option<Arc<Partition>> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    pub(super) fn all(&self) -> Vec<Arc<Partition>> {
        self.groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn insert(&self, group: GroupId, p: Arc<Partition>) {
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group, p);
    }

    pub(super) fn saw(&self, node: NodeId) {
        if node != 0 {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(node, Instant::now());
        }
    }

    pub(super) fn last_seen(&self, node: NodeId) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }

    pub(super) fn remove(&self, group: GroupId) -> Option<Arc<Partition>> {
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&group)
    }
}

impl Inbound for Router {
    fn on_raft(&self, from: NodeId, messages: Vec<(GroupId, Message)>) {
        self.saw(from);
        for (group, msg) in messages {
            let Some(p) = self.get(group) else {
                // Not opened here yet (the assignment is still on its way): Raft retransmits.
                continue;
            };
            if let Some(Err(e)) = p.with_driver(|d| d.step(msg)) {
                tracing::warn!(group, "raft step failed: {e}");
            }
        }
    }

    fn on_rpc(
        &self,
        from: NodeId,
        request: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>> {
        self.saw(from);
        // A front end's service call: a zero byte, the service id, its own payload (the
        // controller's requests are JSON and never start with a zero byte).
        if let [0, id, ..] = request[..] {
            let service = self
                .services
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            return match service {
                Some(svc) => svc.call(from, request.slice(2..)),
                None => Box::pin(async { Bytes::new() }),
            };
        }
        let cluster = self.cluster.get().and_then(std::sync::Weak::upgrade);
        Box::pin(async move {
            let Some(cluster) = cluster else {
                return rpc::encode(&Response {
                    error: Some("node is starting".into()),
                    status: None,
                });
            };
            let response = match rpc::decode::<Request>(&request) {
                Err(e) => Response {
                    error: Some(format!("bad request: {e}")),
                    status: None,
                },
                Ok(req) => cluster.serve_rpc(from, req).await,
            };
            rpc::encode(&response)
        })
    }
}
