//! Cluster mode: which groups this node coordinates. A group's offsets live in one partition of
//! the replicated `__consumer_offsets`; the leader of that partition is the group's coordinator,
//! as in Kafka. When a node becomes that leader it first waits until everything earlier leaders
//! wrote is committed, then rebuilds the partition's groups from the log
//! (`COORDINATOR_LOAD_IN_PROGRESS` meanwhile), memberships included; when it stops leading, it
//! forgets them and answers `NOT_COORDINATOR`, so members find the new coordinator and go on
//! there in the generation they know.
//!
//! A single node coordinates every group, so none of this applies without a cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::coordinator::{Coordinator, GroupEntry};
use super::replay::{register_loaded, replay_partition};
use super::types::GroupError;
use super::{offsets, OFFSETS_PARTITIONS};
use crate::partition::Partition;
use crate::BrokerError;

/// An offsets partition this node leads: the leader epoch it was taken over in, and whether its
/// groups are loaded yet.
pub(crate) struct Owned {
    epoch: i32,
    partition: Arc<Partition>,
    loaded: bool,
}

/// The `__consumer_offsets` partition holding `group_id`'s offsets.
pub fn offsets_partition(group_id: &str) -> usize {
    offsets::partition_for(group_id, OFFSETS_PARTITIONS as usize)
}

impl Coordinator {
    /// From now on this node coordinates only the groups of offsets partitions it leads.
    pub(crate) fn enable_cluster_mode(&self) {
        *self.owned.write().unwrap_or_else(|p| p.into_inner()) = Some(HashMap::new());
        // Offsets a former single-node life left behind are not the cluster's.
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// `Ok` if this node coordinates `group_id` now.
    pub fn check_owner(&self, group_id: &str) -> Result<(), GroupError> {
        let owned = self.owned.read().unwrap_or_else(|p| p.into_inner());
        let Some(owned) = owned.as_ref() else {
            return Ok(());
        };
        match owned.get(&offsets_partition(group_id)) {
            Some(o)
                if o.partition.ensure_leader().is_ok() && o.partition.leader_epoch() == o.epoch =>
            {
                if o.loaded {
                    Ok(())
                } else {
                    Err(GroupError::LoadInProgress)
                }
            }
            _ => Err(GroupError::NotCoordinator),
        }
    }

    /// This node leads offsets partition `index` in `epoch`, and every entry of earlier leaders
    /// is committed: rebuild its groups from the log, then serve them.
    pub fn take_over(
        &self,
        index: usize,
        p: Arc<Partition>,
        epoch: i32,
    ) -> Result<(), BrokerError> {
        self.owned_mut(|owned| {
            owned.insert(
                index,
                Owned {
                    epoch,
                    partition: Arc::clone(&p),
                    loaded: false,
                },
            );
        });
        let mut groups: BTreeMap<String, GroupEntry> = BTreeMap::new();
        let records = replay_partition(&p, &mut groups, self.config.group, self.now())?;
        let mut registry = self.groups.write().unwrap_or_else(|e| e.into_inner());
        if p.leader_epoch() != epoch {
            // Leadership moved on while loading; the next take-over reloads.
            return Ok(());
        }
        registry.retain(|id, _| offsets_partition(id) != index);
        register_loaded(&mut registry, groups);
        drop(registry);
        self.owned_mut(|owned| {
            if let Some(o) = owned.get_mut(&index).filter(|o| o.epoch == epoch) {
                o.loaded = true;
            }
        });
        tracing::info!(partition = ?p, epoch, records, "coordinating the groups of this offsets partition");
        Ok(())
    }

    /// This node no longer leads offsets partition `index`: forget its groups (their members
    /// are told NOT_COORDINATOR and move to the new leader).
    pub fn give_up(&self, index: usize) {
        let had = self.owned_mut(|owned| owned.remove(&index).is_some());
        if had {
            self.groups
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|id, _| offsets_partition(id) != index);
            tracing::info!(
                index,
                "no longer coordinating the groups of this offsets partition"
            );
        }
    }

    fn owned_mut<R>(&self, f: impl FnOnce(&mut HashMap<usize, Owned>) -> R) -> R
    where
        R: Default,
    {
        match self
            .owned
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(owned) => f(owned),
            None => R::default(),
        }
    }
}

/// The group coordinator as the cluster sees it: served where `__consumer_offsets` is led.
pub(crate) struct GroupsOnOffsets(pub(crate) std::sync::Weak<crate::Broker>);

impl crate::cluster::PartitionCoordinator for GroupsOnOffsets {
    fn take_over(&self, index: usize, p: Arc<Partition>, epoch: i32) -> Result<(), BrokerError> {
        match self.0.upgrade() {
            Some(broker) => broker.groups().take_over(index, p, epoch),
            None => Ok(()),
        }
    }

    fn give_up(&self, index: usize) {
        if let Some(broker) = self.0.upgrade() {
            broker.groups().give_up(index);
        }
    }
}
