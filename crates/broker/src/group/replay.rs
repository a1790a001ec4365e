//! Rebuilding the offset cache on start: every batch of every `__consumer_offsets` partition in
//! log order, the last record of each key winning (as compaction will keep it). Records this
//! build cannot decode (a newer version, a client's stray produce) are skipped with a warning.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::coordinator::{Coordinator, GroupEntry};
use super::state::{Group, GroupConfig};
use super::{offsets, OFFSETS_TOPIC};
use crate::partition::Partition;
use crate::{Broker, BrokerError};
use strom_storage::records;

/// Bytes read per step of the replay.
const REPLAY_READ_BYTES: usize = 1 << 20;

impl Coordinator {
    /// Rebuilds the offset cache from `__consumer_offsets` (if it exists): every batch of every
    /// partition in log order, the last record of each key winning. Records this build cannot
    /// decode (a newer version, a client's stray produce) are skipped with a warning.
    pub fn load(&self, broker: &Broker) -> Result<(), BrokerError> {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let mut groups: BTreeMap<String, GroupEntry> = BTreeMap::new();
        let mut records = 0usize;
        for p in topic.partitions() {
            records += replay_partition(&p, &mut groups, self.config.group)?;
        }
        let mut registry = self.groups.write().unwrap_or_else(|p| p.into_inner());
        for (id, mut e) in groups {
            if !e.offsets.is_empty() {
                e.empty_since_ms = 0;
                registry.insert(id, Arc::new(Mutex::new(e)));
            }
        }
        tracing::info!(
            groups = registry.len(),
            records,
            "rebuilt committed offsets from {OFFSETS_TOPIC}"
        );
        Ok(())
    }
}
pub(super) fn replay_partition(
    p: &Partition,
    groups: &mut BTreeMap<String, GroupEntry>,
    config: GroupConfig,
) -> Result<usize, BrokerError> {
    let mut offset = p.log_start_offset();
    let end = p.high_watermark();
    let mut applied = 0;
    while offset < end {
        let data = match p.read(offset, REPLAY_READ_BYTES) {
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
            // A replicated partition's log also holds Raft's own entries (control batches).
            if strom_storage::batch::BatchHeader::parse(b).is_ok_and(|h| h.is_control()) {
                continue;
            }
            let kvs = match records::decode_batch(b) {
                Ok((_, kvs)) => kvs,
                Err(e) => {
                    tracing::warn!(partition = ?p, "skipping a batch in {OFFSETS_TOPIC}: {e}");
                    continue;
                }
            };
            for kv in kvs {
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
                entry.offsets.apply((key.topic, key.partition), value);
                applied += 1;
            }
        }
    }
    Ok(applied)
}
