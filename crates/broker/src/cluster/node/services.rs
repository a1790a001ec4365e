//! What front ends get from the node beyond the controller: their journals' Raft groups
//! routed and ticked with the partitions, and calls to their peers on other nodes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Cluster;
use crate::cluster::state::{GroupId, NodeId};
use crate::{BrokerError, Partition};

/// A front end's handler of calls from its peers on other nodes.
pub trait NodeService: Send + Sync + 'static {
    /// Answers a call; an empty answer means the service could not (e.g. not registered yet).
    fn call(
        &self,
        from: NodeId,
        payload: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>>;
}

impl super::Router {
    /// The node's own services: journal snapshots for peers behind a journal's log start.
    pub(super) fn register_builtin_services(&self) {
        let snapshots = Arc::clone(&self.snapshots) as Arc<dyn NodeService>;
        self.services
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(super::snapshots::SERVICE, snapshots);
    }
}

impl Cluster {
    /// Registers a front end's service under `id` (calls from other nodes reach it).
    pub fn register_service(&self, id: u8, service: Arc<dyn NodeService>) {
        self.router
            .services
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, service);
    }

    /// Calls service `id` on `node`.
    pub async fn call_service(
        &self,
        node: NodeId,
        id: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, BrokerError> {
        // A node we are not connected to is probably down: fail at once, so the caller
        // tries the next leader instead of waiting out the timeout.
        if !self.transport.is_connected(node) {
            return Err(BrokerError::LeaderNotAvailable(format!(
                "node {node} is unreachable"
            )));
        }
        let mut frame = Vec::with_capacity(2 + payload.len());
        frame.extend_from_slice(&[0, id]);
        frame.extend_from_slice(payload);
        let answer = self
            .transport
            .call(node, Bytes::from(frame), timeout)
            .await
            .map_err(|e| BrokerError::LeaderNotAvailable(format!("node {node}: {e}")))?;
        if answer.is_empty() {
            return Err(BrokerError::LeaderNotAvailable(format!(
                "node {node} does not serve this yet"
            )));
        }
        Ok(answer)
    }

    /// A journal's Raft group joins the node: its messages are routed to it and the node's
    /// ticker drives its clock. Nodes that register an endpoint named `front_end` (see
    /// `NodeInfo::endpoints`) replicate it.
    pub fn attach_group(&self, group: GroupId, partition: Arc<Partition>, front_end: &str) {
        self.router
            .journals
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, front_end.to_string());
        self.router.insert(group, partition);
    }

    /// The front ends' journals this node leads: every registered node that serves the front
    /// end replicates them (nodes that joined later as learners), so each can serve its reads.
    pub(in crate::cluster) fn journal_duties(&self) {
        let state = self.state();
        let me = self.node_id();
        let groups: Vec<(GroupId, String)> = self
            .router
            .journals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(g, f)| (*g, f.clone()))
            .collect();
        for (group, front_end) in groups {
            let Some(p) = self.router.get(group) else {
                continue;
            };
            let serves = |n: NodeId| {
                state
                    .nodes
                    .get(&n)
                    .is_some_and(|i| i.endpoints.contains_key(&front_end))
            };
            let change = p.with_driver(|d| {
                let leads = d.role().is_leader && !d.has_pending_conf();
                leads
                    .then(|| {
                        crate::cluster::heal::journal_membership(
                            &state,
                            &d.conf_state(),
                            me,
                            &serves,
                        )
                    })
                    .flatten()
            });
            if let Some(Some(cc)) = change {
                crate::cluster::heal::propose_conf(&p, cc, "journal membership");
            }
        }
    }

    /// The founding voters (`--peers`); empty on a node that joined later.
    pub fn founding_voters(&self) -> Vec<NodeId> {
        if self.config.join {
            Vec::new()
        } else {
            self.config.peers.keys().copied().collect()
        }
    }

    /// Where Raft messages go (for a journal's group on this node).
    pub fn outbox(&self) -> Arc<dyn strom_consensus::driver::Outbox> {
        Arc::clone(&self.transport) as Arc<dyn strom_consensus::driver::Outbox>
    }
}
