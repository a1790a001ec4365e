//! Rebuilding the offset cache and group memberships on start: every batch of every
//! `__consumer_offsets` partition in log order, the last record of each key winning (as
//! compaction will keep it). Records this build cannot decode (a newer version, a client's stray
//! produce) are skipped with a warning.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::coordinator::{Coordinator, EntryRef, GroupEntry};
use super::state::{Group, GroupConfig};
use super::{metadata_record, offsets, OFFSETS_TOPIC};
use crate::partition::Partition;
use crate::{Broker, BrokerError};
use strom_storage::{records, FirstBatch};

/// Bytes read per step of the replay.
const REPLAY_READ_BYTES: usize = 1 << 20;

impl Coordinator {
    /// Rebuilds offsets and memberships from `__consumer_offsets` (if it exists): every batch of every
    /// partition in log order, the last record of each key winning. Records this build cannot
    /// decode (a newer version, a client's stray produce) are skipped with a warning.
    pub fn load(&self, broker: &Broker) -> Result<(), BrokerError> {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let mut groups: BTreeMap<String, GroupEntry> = BTreeMap::new();
        let mut records = 0usize;
        for p in topic.partitions() {
            records += replay_partition(&p, &mut groups, self.config.group, self.now())?;
        }
        let mut registry = self.groups.write().unwrap_or_else(|p| p.into_inner());
        register_loaded(&mut registry, groups);
        tracing::info!(
            groups = registry.len(),
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rebuilt committed offsets from {OFFSETS_TOPIC}"
        );
        Ok(())
    }
}
/// Registers what a replay rebuilt: groups with offsets or members. One with neither would
/// only be expired again.
pub(super) fn register_loaded(
    registry: &mut HashMap<String, EntryRef>,
    groups: BTreeMap<String, GroupEntry>,
) {
    for (id, mut e) in groups {
        if !e.offsets.is_empty() || !e.group.is_idle() || !e.txn_offsets.is_empty() {
            e.empty_since_ms = 0;
            registry.insert(id, Arc::new(Mutex::new(e)));
        }
    }
}

/// Replays one partition into `groups`; a membership restored here has its sessions start at
/// `now` (the coordinator's clock).
pub(super) fn replay_partition(
    p: &Partition,
    groups: &mut BTreeMap<String, GroupEntry>,
    config: GroupConfig,
    now: u64,
) -> Result<usize, BrokerError> {
    let mut offset = p.log_start_offset();
    let end = p.high_watermark();
    let mut applied = 0;
    while offset < end {
        let data = match p.read(offset, REPLAY_READ_BYTES, FirstBatch::Whole) {
            Ok(d) => d,
            Err(e) => {
                // Recovery already cut torn tails; this is damage inside the log. Starting
                // without some offsets (consumers fall back to auto.offset.reset) beats not
                // starting at all.
                tracing::error!(partition = ?p, offset, "stopping offsets replay here: {e}");
                break;
            }
        };
        let batches = strom_storage::batch::split(&data.records)?;
        let Some(last) = batches.last() else {
            tracing::warn!(partition = ?p, offset, "no batch at offset; replay stops here");
            break;
        };
        offset = strom_storage::batch::BatchHeader::parse(last)?.last_offset() as u64 + 1;
        for b in &batches {
            let Ok(header) = strom_storage::batch::BatchHeader::parse(b) else {
                continue;
            };
            if header.is_control() {
                // A transaction's marker ends its offsets; Raft's own entries are skipped.
                if let Some(m) = strom_storage::markers::decode(b) {
                    super::txn_offsets::replay_marker(
                        groups,
                        p.index as usize,
                        m.producer_id,
                        m.commit,
                    );
                }
                continue;
            }
            let txn = (header.is_transactional() && header.producer_id >= 0)
                .then_some(header.producer_id);
            let kvs = match records::decode_batch(b) {
                Ok((_, kvs)) => kvs,
                Err(e) => {
                    tracing::warn!(partition = ?p, "skipping a batch in {OFFSETS_TOPIC}: {e}");
                    continue;
                }
            };
            for kv in kvs {
                if let Some(group) = metadata_record::decode_key(&kv.key) {
                    let restored = match kv.value.as_deref().map(metadata_record::decode_value) {
                        None => Group::new(&group, config),
                        Some(Some(stored)) => Group::restore(&group, config, stored, now),
                        Some(None) => {
                            tracing::warn!(partition = ?p, %group, "skipping a membership record with an unknown value");
                            continue;
                        }
                    };
                    groups
                        .entry(group.clone())
                        .or_insert_with(|| GroupEntry::new(Group::new(&group, config), 0))
                        .group = restored;
                    applied += 1;
                    continue;
                }
                let Some(key) = offsets::decode_key(&kv.key) else {
                    tracing::warn!(partition = ?p, "skipping a record with an unknown key");
                    continue;
                };
                let value = match &kv.value {
                    None => None,
                    Some(v) => match offsets::decode_value(v) {
                        Some(c) => Some(c),
                        None => {
                            tracing::warn!(partition = ?p, "skipping a record with an unknown value");
                            continue;
                        }
                    },
                };
                let entry = groups
                    .entry(key.group.clone())
                    .or_insert_with(|| GroupEntry::new(Group::new(&key.group, config), 0));
                match (txn, value) {
                    (Some(pid), Some(c)) => entry
                        .txn_offsets
                        .entry(pid)
                        .or_default()
                        .push(((key.topic, key.partition), c)),
                    (Some(_), None) => {}
                    (None, value) => entry.offsets.apply((key.topic, key.partition), value),
                }
                applied += 1;
            }
        }
    }
    Ok(applied)
}
