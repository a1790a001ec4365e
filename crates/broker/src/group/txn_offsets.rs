//! Offsets committed inside a transaction (TxnOffsetCommit): appended to the group's offsets
//! partition as the producer's transactional batch, held apart from the group's committed
//! offsets, and applied when the transaction's commit marker reaches that partition (dropped at
//! an abort marker). A coordinator that takes the partition over finds the same state in the
//! log: the batch, then (or not yet) its marker.

use std::collections::BTreeMap;

use super::coordinator::{lock, Coordinator, GroupEntry};
use super::offsets;
use super::store::{
    accepted, answer, append_as, check_commits, durable, Durable, PartitionResults,
};
use super::types::{GroupError, OffsetCommit};
use crate::Broker;
use strom_storage::records::KeyValue;

/// Who commits inside a transaction: the producer, and (TxnOffsetCommit v3+) the consumer's
/// group membership, checked as for OffsetCommit.
pub struct TxnCommitter<'a> {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// -1: not given (older clients), no membership check.
    pub generation: i32,
}

impl Coordinator {
    /// TxnOffsetCommit: the offsets are durable when this resolves, and visible to OffsetFetch
    /// once the producer's transaction commits.
    pub fn txn_commit(
        &self,
        broker: &Broker,
        group_id: &str,
        who: TxnCommitter<'_>,
        commits: Vec<OffsetCommit>,
    ) -> Durable<PartitionResults> {
        let n = commits.len();
        let all = |e: GroupError| -> Durable<PartitionResults> {
            Box::pin(async move { vec![Err(e); n] })
        };
        if let Err(e) = self.check_owner(group_id) {
            return all(e);
        }
        if group_id.is_empty() {
            return all(GroupError::InvalidGroupId);
        }
        let entry = match self.entry_or_create(group_id) {
            Ok(e) => e,
            Err(e) => return all(e),
        };
        let results = check_commits(broker, &commits);
        let now_ms = crate::now_ms();
        let now = self.now();
        let written = (|| -> Result<Durable<Result<(), GroupError>>, GroupError> {
            let mut e = lock(&entry);
            if who.generation >= 0 || !who.member_id.is_empty() {
                e.group
                    .check_commit(who.member_id, who.instance_id, who.generation, now)?;
            }
            let changes = accepted(commits, &results, now_ms);
            if changes.is_empty() {
                return Ok(Box::pin(async { Ok(()) }) as Durable<Result<(), GroupError>>);
            }
            let records: Vec<KeyValue> = changes
                .iter()
                .map(|((topic, partition), c)| KeyValue {
                    key: offsets::encode_key(group_id, topic, *partition),
                    value: Some(offsets::encode_value(c)),
                })
                .collect();
            let txn = Some((who.producer_id, who.producer_epoch));
            let (p, r) = append_as(broker, group_id, &records, txn)?;
            // In the log now, in log order: the marker that ends the transaction comes later.
            e.txn_offsets
                .entry(who.producer_id)
                .or_default()
                .extend(changes);
            Ok(durable(p, r))
        })();
        answer(results, written)
    }

    /// A marker of `producer_id` is durable in offsets partition `index`: its transactional
    /// offsets there are applied (commit) or dropped (abort).
    pub fn on_txn_marker(&self, index: usize, producer_id: i64, commit: bool) {
        for entry in self.all_entries() {
            let mut e = lock(&entry);
            if offsets::partition_for(e.group.id(), super::OFFSETS_PARTITIONS as usize) != index {
                continue;
            }
            end_txn(&mut e, producer_id, commit);
        }
    }

    /// Whether `group_id` has a transactional commit of `topic`/`partition` that is neither
    /// committed nor aborted yet (OffsetFetch with `require_stable` answers
    /// UNSTABLE_OFFSET_COMMIT then).
    pub fn has_unstable_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.entry(group_id).is_some_and(|entry| {
            lock(&entry)
                .txn_offsets
                .values()
                .flatten()
                .any(|((t, p), _)| t == topic && *p == partition)
        })
    }
}

/// Applies or drops `producer_id`'s transactional offsets of one group.
pub(super) fn end_txn(e: &mut GroupEntry, producer_id: i64, commit: bool) {
    if let Some(changes) = e.txn_offsets.remove(&producer_id) {
        if commit {
            for (tp, c) in changes {
                e.offsets.apply(tp, Some(c));
            }
        }
    }
}

/// Replay: a marker in offsets partition `index` ends the producer's transaction for every
/// group stored there.
pub(super) fn replay_marker(
    groups: &mut BTreeMap<String, GroupEntry>,
    index: usize,
    producer_id: i64,
    commit: bool,
) {
    for (id, e) in groups.iter_mut() {
        if offsets::partition_for(id, super::OFFSETS_PARTITIONS as usize) == index {
            end_txn(e, producer_id, commit);
        }
    }
}
