//! Coordinators that live where an internal topic's partitions are led: the group coordinator
//! on `__consumer_offsets`, the transaction coordinator on `__transaction_state`. When this
//! node becomes a partition's leader, the coordinator first waits until everything earlier
//! leaders wrote is committed, then loads the partition's state from the log; when it stops
//! leading, the coordinator forgets that state and answers `NOT_COORDINATOR`.

use std::sync::Arc;
use std::time::Duration;

use super::Cluster;
use crate::replica::ReplicaEvent;
use crate::{BrokerError, Partition};

/// A coordinator keyed by the partitions of one internal topic.
pub trait PartitionCoordinator: Send + Sync + 'static {
    /// This node leads partition `index` in `epoch` and every earlier entry is committed:
    /// load its state from the log and serve it. Runs on a blocking thread.
    fn take_over(&self, index: usize, p: Arc<Partition>, epoch: i32) -> Result<(), BrokerError>;
    /// This node no longer leads partition `index`.
    fn give_up(&self, index: usize);
}

impl Cluster {
    /// Serves `coordinator` on the partitions of `topic` this node leads, now and from now on.
    pub fn register_coordinator(&self, topic: &str, coordinator: Arc<dyn PartitionCoordinator>) {
        self.coordinators
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), Arc::clone(&coordinator));
        // Leaderships won before the registration.
        let groups: Vec<(usize, u64)> = self.with_state(|s| {
            s.topics.get(topic).map_or_else(Vec::new, |t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (i, a.group))
                    .collect()
            })
        });
        for (index, group) in groups {
            let Some(p) = self.router.get(group) else {
                continue;
            };
            if let Some(role) = p.raft_role().filter(|r| r.is_leader) {
                let epoch = i32::try_from(role.term).unwrap_or(i32::MAX);
                take_over_when_caught_up(Arc::clone(&coordinator), index, p, epoch);
            }
        }
    }

    /// A partition's leadership changed: the coordinator of its topic, if any, takes over or
    /// gives up.
    pub(super) fn on_replica_event(&self, event: ReplicaEvent) {
        let ReplicaEvent::Role { group, role } = event else {
            return;
        };
        let found = self.with_state(|s| {
            s.partition_by_group(group)
                .map(|(topic, index, _)| (topic.to_string(), index as usize))
        });
        let Some((topic, index)) = found else {
            return;
        };
        let coordinator = self
            .coordinators
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&topic)
            .cloned();
        let Some(coordinator) = coordinator else {
            return;
        };
        if !role.is_leader {
            coordinator.give_up(index);
            return;
        }
        let Some(p) = self.router.get(group) else {
            return;
        };
        let epoch = i32::try_from(role.term).unwrap_or(i32::MAX);
        take_over_when_caught_up(coordinator, index, p, epoch);
    }
}

fn take_over_when_caught_up(
    coordinator: Arc<dyn PartitionCoordinator>,
    index: usize,
    p: Arc<Partition>,
    epoch: i32,
) {
    tokio::spawn(async move {
        // Entries of earlier terms are committed once this leader's first entry is:
        // everything in the log now.
        let end = p.log_end_offset();
        let mut hw = p.watch_high_watermark();
        loop {
            if p.leader_epoch() != epoch || p.ensure_leader().is_err() {
                return;
            }
            if *hw.borrow_and_update() >= end {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), hw.changed()).await;
        }
        let topic = p.topic.clone();
        let result =
            tokio::task::spawn_blocking(move || coordinator.take_over(index, p, epoch)).await;
        if let Ok(Err(e)) = result {
            tracing::error!(%topic, index, "could not load a coordinator's partition: {e}");
        }
    });
}
