//! Committed offsets through the log: every OffsetCommit (and every deletion, as tombstones) is
//! a record batch appended to the group's partition of `__consumer_offsets` with the ordinary
//! `Partition::append`, acknowledged after `wait_durable`, so it is fsynced like any produce
//! and replicated later by the same mechanism. On start, `Coordinator::load` (`replay.rs`)
//! replays the topic to rebuild the offset cache.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::coordinator::{lock, Coordinator, EntryRef, GroupEntry};
use super::metadata_record::{self, StoredGroup};
use super::offsets::{self, TopicPartition};
use super::types::{CommittedOffset, GroupError, OffsetCommit};
use super::{OFFSETS_TOPIC, OFFSET_METADATA_MAX_BYTES};
use crate::partition::{AppendResult, Partition};
use crate::{Broker, BrokerError, Topic};
use strom_storage::records::{self, KeyValue};

/// A result that is ready once the records it wrote are durable.
pub type Durable<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Per-partition results, in request order.
pub type PartitionResults = Vec<Result<(), GroupError>>;

/// OffsetFetch's answer: per topic, each partition's committed offset (`None`: nothing committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// Records per batch are capped so a batch stays well under the topic's `max.message.bytes`.
const BATCH_BYTES_TARGET: usize = 512 * 1024;
/// How long a commit waits for its records to be committed in a cluster (Kafka's
/// `offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `__consumer_offsets`, created on first use (see [`crate::internal`]).
pub fn offsets_topic(broker: &Broker) -> Result<Arc<Topic>, BrokerError> {
    crate::internal::ensure(broker, OFFSETS_TOPIC)
}

fn unavailable(e: impl std::fmt::Display) -> GroupError {
    GroupError::CoordinatorNotAvailable(e.to_string())
}

/// Appends `records` for `group_id` as one all-or-nothing append; returns the partition and
/// what to wait for.
fn append(
    broker: &Broker,
    group_id: &str,
    records: &[KeyValue],
) -> Result<(Arc<Partition>, AppendResult), GroupError> {
    append_as(broker, group_id, records, None)
}

/// [`append`]; with `txn` = (producer id, epoch), as that producer's transactional batch
/// (TxnOffsetCommit: visible once its commit marker is written).
pub(super) fn append_as(
    broker: &Broker,
    group_id: &str,
    records: &[KeyValue],
    txn: Option<(i64, i16)>,
) -> Result<(Arc<Partition>, AppendResult), GroupError> {
    let topic = offsets_topic(broker).map_err(unavailable)?;
    let index = offsets::partition_for(group_id, topic.partition_count());
    let p = topic
        .partition(index as i32)
        .ok_or(GroupError::NotCoordinator)?;
    let now = crate::now_ms();
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, r) in records.iter().enumerate() {
        size += r.key.len() + r.value.as_ref().map_or(0, Bytes::len) + 32;
        if size >= BATCH_BYTES_TARGET || i + 1 == records.len() {
            batches.push(match txn {
                None => records::encode_batch(&records[start..=i], now),
                Some((id, epoch)) => records::encode_batch_as(
                    records::ATTR_TRANSACTIONAL,
                    records::ProducerFields {
                        id,
                        epoch,
                        base_sequence: -1,
                    },
                    &records[start..=i],
                    now,
                ),
            });
            start = i + 1;
            size = 0;
        }
    }
    let appended = match txn {
        None => p.append(&batches),
        Some(_) => p.append_internal(&batches, crate::partition::Writer::Coordinator),
    };
    let r = appended.map_err(|e| {
        tracing::warn!(group = group_id, partition = ?p, "offsets append failed: {e}");
        match e {
            BrokerError::NotLeader => GroupError::NotCoordinator,
            BrokerError::InvalidProducerEpoch(why) => GroupError::ProducerFenced(why),
            e => unavailable(e),
        }
    })?;
    Ok((p, r))
}

/// Appends `changes` of `entry`'s group and stages them in its cache; the future resolves once
/// they are durable and applied (in a cluster: committed by a majority, still in this leader's
/// term), or with the error that makes the client retry elsewhere.
fn write_changes(
    broker: &Broker,
    entry: &EntryRef,
    e: &mut GroupEntry,
    changes: Vec<(TopicPartition, Option<CommittedOffset>)>,
) -> Result<Durable<Result<(), GroupError>>, GroupError> {
    write_changes_with(broker, entry, e, changes, None)
}

/// [`write_changes`], plus `also` (a membership tombstone) in the same all-or-nothing append.
/// The record that removes a group's stored membership.
fn membership_tombstone(group_id: &str) -> KeyValue {
    KeyValue {
        key: metadata_record::encode_key(group_id),
        value: None,
    }
}

fn write_changes_with(
    broker: &Broker,
    entry: &EntryRef,
    e: &mut GroupEntry,
    changes: Vec<(TopicPartition, Option<CommittedOffset>)>,
    also: Option<KeyValue>,
) -> Result<Durable<Result<(), GroupError>>, GroupError> {
    if changes.is_empty() && also.is_none() {
        return Ok(Box::pin(async { Ok(()) }));
    }
    let group_id = e.group.id().to_string();
    let mut records: Vec<KeyValue> = changes
        .iter()
        .map(|((topic, partition), c)| KeyValue {
            key: offsets::encode_key(&group_id, topic, *partition),
            value: c.as_ref().map(offsets::encode_value),
        })
        .collect();
    records.extend(also);
    let (p, r) = append(broker, &group_id, &records)?;
    e.offsets
        .stage(p.watch_high_watermark(), r.end_offset, changes);
    let entry = Arc::clone(entry);
    let written = durable(p, r);
    Ok(Box::pin(async move {
        written.await?;
        lock(&entry).offsets.apply_durable();
        Ok(())
    }))
}

/// Resolves once an append to the offsets topic is durable: fsynced here, or in a cluster
/// committed by a majority while this node still leads in the term it appended in.
pub(super) fn durable(p: Arc<Partition>, r: AppendResult) -> Durable<Result<(), GroupError>> {
    // From now, not from the first poll (replies are awaited in request order).
    let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
    Box::pin(async move {
        if p.group().is_some() {
            // A leader cut off from its quorum never commits; Kafka's offsets.commit.timeout.ms.
            match tokio::time::timeout_at(deadline, p.wait_ack(&r, -1)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(GroupError::NotCoordinator),
            }
        } else {
            p.wait_durable(r.end_offset).await;
        }
        Ok(())
    })
}

/// Appends a group's membership record (see `metadata_record`). One too large for a batch of
/// the offsets topic is stored as a tombstone instead: a coordinator taking over then knows no
/// members, and they rejoin, rather than finding an older generation.
pub(super) fn write_membership(
    broker: &Broker,
    group_id: &str,
    stored: &StoredGroup,
) -> Result<Durable<Result<(), GroupError>>, GroupError> {
    let value = metadata_record::encode_value(stored);
    let value = if value.len() > BATCH_BYTES_TARGET {
        tracing::warn!(
            group = group_id,
            bytes = value.len(),
            "group membership too large to store; members will rejoin after a coordinator change"
        );
        None
    } else {
        Some(value)
    };
    let record = KeyValue {
        key: metadata_record::encode_key(group_id),
        value,
    };
    let (p, r) = append(broker, group_id, &[record])?;
    Ok(durable(p, r))
}

/// Each commit's own check: partitions of unknown topics or with oversized metadata fail alone.
pub(super) fn check_commits(broker: &Broker, commits: &[OffsetCommit]) -> PartitionResults {
    commits
        .iter()
        .map(|c| {
            let exists = broker
                .topic(&c.topic)
                .is_some_and(|t| t.partition(c.partition).is_some());
            if !exists {
                Err(GroupError::UnknownTopicOrPartition)
            } else if c.metadata.as_deref().map_or(0, str::len) > OFFSET_METADATA_MAX_BYTES {
                Err(GroupError::OffsetMetadataTooLarge(
                    OFFSET_METADATA_MAX_BYTES,
                ))
            } else {
                Ok(())
            }
        })
        .collect()
}

/// The commits that passed [`check_commits`], as the offsets to store.
pub(super) fn accepted(
    commits: Vec<OffsetCommit>,
    results: &PartitionResults,
    now_ms: i64,
) -> Vec<(TopicPartition, CommittedOffset)> {
    commits
        .into_iter()
        .zip(results)
        .filter(|(_, r)| r.is_ok())
        .map(|(c, _)| {
            let value = CommittedOffset {
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.unwrap_or_default(),
                commit_timestamp_ms: now_ms,
            };
            ((c.topic, c.partition), value)
        })
        .collect()
}

/// The per-partition answer once the write is durable: the write's error replaces every
/// success.
pub(super) fn answer(
    mut results: PartitionResults,
    written: Result<Durable<Result<(), GroupError>>, GroupError>,
) -> Durable<PartitionResults> {
    Box::pin(async move {
        let outcome = match written {
            Ok(durable) => durable.await,
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(err.clone());
            }
        }
        results
    })
}

impl Coordinator {
    /// OffsetCommit. Partitions of unknown topics or with oversized metadata fail alone; a
    /// membership error fails them all; nothing is acknowledged before it is durable.
    pub fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: Vec<OffsetCommit>,
    ) -> Durable<PartitionResults> {
        let all = |e: GroupError| -> Durable<PartitionResults> {
            let n = commits.len();
            Box::pin(async move { vec![Err(e); n] })
        };
        if let Err(e) = self.check_owner(group_id) {
            return all(e);
        }
        let entry = match self.entry(group_id) {
            Some(e) => e,
            // Kafka creates the group only for commits outside group management.
            None if generation < 0 => match self.entry_or_create(group_id) {
                Ok(e) => e,
                Err(e) => return all(e),
            },
            None if group_id.is_empty() => return all(GroupError::InvalidGroupId),
            None => return all(GroupError::IllegalGeneration),
        };
        let results = check_commits(broker, &commits);
        let now_ms = crate::now_ms();
        let now = self.now();
        let written = self.with_entry(broker, &entry, |e| {
            e.group
                .check_commit(member_id, instance_id, generation, now)?;
            let changes = accepted(commits, &results, now_ms)
                .into_iter()
                .map(|(tp, c)| (tp, Some(c)))
                .collect();
            write_changes(broker, &entry, e, changes)
        });
        answer(results, written)
    }

    /// OffsetFetch: the durable committed offset of each wanted partition (`None`: all the group
    /// has), `None` where nothing is committed.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<&[(String, Vec<i32>)]>,
    ) -> FetchedOffsets {
        let entry = self.entry(group_id);
        let mut guard = entry.as_ref().map(lock);
        if let Some(e) = guard.as_mut() {
            e.offsets.apply_durable();
        }
        let offsets = guard.as_ref().map(|e| &e.offsets);
        match wanted {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, parts)| {
                    let found = parts
                        .iter()
                        .map(|p| (*p, offsets.and_then(|o| o.get(topic, *p)).cloned()))
                        .collect();
                    (topic.clone(), found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((topic, p), c) in offsets.into_iter().flat_map(|o| o.iter()) {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*p, Some(c.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// DeleteGroups: each group must be Empty; its offsets are deleted with tombstones.
    pub fn delete_groups(
        &self,
        broker: &Broker,
        group_ids: &[String],
    ) -> Durable<PartitionResults> {
        let mut waits = Vec::new();
        let results: PartitionResults = group_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                self.check_owner(id)?;
                let entry = self.entry(id).ok_or(GroupError::GroupIdNotFound)?;
                let durable = self.with_entry(broker, &entry, |e| {
                    match e.group.state() {
                        super::GroupState::Dead => return Err(GroupError::GroupIdNotFound),
                        super::GroupState::Empty if e.group.is_idle() => {}
                        _ => return Err(GroupError::NonEmptyGroup),
                    }
                    e.offsets.apply_durable();
                    let tombstones = e.offsets.keys().into_iter().map(|k| (k, None)).collect();
                    // The membership goes too: a lost Empty record must not bring the group
                    // back with members after a takeover.
                    let membership = membership_tombstone(id);
                    let durable =
                        write_changes_with(broker, &entry, e, tombstones, Some(membership))?;
                    e.group.mark_dead();
                    Ok(durable)
                })?;
                self.forget(id, &entry);
                tracing::info!(group = %id, "deleted group");
                waits.push((i, durable));
                Ok(())
            })
            .collect();
        Box::pin(async move {
            let mut results = results;
            for (i, w) in waits {
                if let Err(e) = w.await {
                    results[i] = Err(e);
                }
            }
            results
        })
    }

    /// OffsetDelete. `subscriptions` reads the topics a member's metadata subscribes to (`None`
    /// if it cannot tell, which counts as subscribed to everything, as in Kafka).
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
        subscriptions: &dyn Fn(&Bytes) -> Option<Vec<String>>,
    ) -> Result<Durable<PartitionResults>, GroupError> {
        self.check_owner(group_id)?;
        let entry = self.entry(group_id).ok_or(GroupError::GroupIdNotFound)?;
        self.with_entry(broker, &entry, |e| {
            let group = &e.group;
            if group.state() == super::GroupState::Dead {
                return Err(GroupError::GroupIdNotFound);
            }
            // None: every topic counts as subscribed.
            let subscribed: Option<HashSet<String>> = if group.member_count() == 0 {
                Some(HashSet::new())
            } else if group.protocol_type() != Some("consumer") {
                return Err(GroupError::NonEmptyGroup);
            } else {
                group
                    .member_metadata()
                    .iter()
                    .map(subscriptions)
                    .collect::<Option<Vec<Vec<String>>>>()
                    .map(|v| v.into_iter().flatten().collect())
            };
            e.offsets.apply_durable();
            let mut results = Vec::with_capacity(partitions.len());
            let mut tombstones = Vec::new();
            for (topic, p) in partitions {
                let exists = broker
                    .topic(topic)
                    .is_some_and(|t| t.partition(*p).is_some());
                let in_use = subscribed.as_ref().is_none_or(|s| s.contains(topic));
                results.push(if !exists {
                    Err(GroupError::UnknownTopicOrPartition)
                } else if in_use {
                    Err(GroupError::GroupSubscribedToTopic)
                } else {
                    if e.offsets.get(topic, *p).is_some() {
                        tombstones.push(((topic.clone(), *p), None));
                    }
                    Ok(())
                });
            }
            let durable = write_changes(broker, &entry, e, tombstones)?;
            Ok(Box::pin(async move {
                match durable.await {
                    Ok(()) => results,
                    Err(err) => results.into_iter().map(|_| Err(err.clone())).collect(),
                }
            }) as Durable<PartitionResults>)
        })
    }

    /// Removes idle groups without offsets, and deletes (with tombstones) the offsets of groups
    /// that have been Empty for longer than the retention.
    pub fn expire(&self, broker: &Broker, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        for entry in self.all_entries() {
            let forget = self.with_entry(broker, &entry, |e| {
                e.offsets.apply_durable();
                if !e.group.is_idle() || e.offsets.has_staged() {
                    return false;
                }
                if e.offsets.is_empty() {
                    e.group.mark_dead();
                    return true;
                }
                let newest = e.offsets.newest_commit_ms().unwrap_or(0);
                if now_ms - e.empty_since_ms.max(newest) < retention {
                    return false;
                }
                tracing::info!(
                    group = e.group.id(),
                    "expiring the offsets of an empty group"
                );
                let tombstones = e.offsets.keys().into_iter().map(|k| (k, None)).collect();
                // The group is gone as a whole, as Kafka removes it: its stored membership
                // (the Empty record) would otherwise stay in the offsets log for good.
                let membership = membership_tombstone(e.group.id());
                if let Err(err) =
                    write_changes_with(broker, &entry, e, tombstones, Some(membership))
                {
                    tracing::warn!(group = e.group.id(), "could not expire offsets: {err}");
                }
                // The tombstones apply once durable; the next round removes the group.
                false
            });
            if forget {
                let id = lock(&entry).group.id().to_string();
                self.forget(&id, &entry);
            }
        }
    }
}
