//! A partition's transactions: which producers the coordinator let start one here, the
//! open and aborted ones (`txn_index`) kept with the producer state, the markers that end
//! them, and what read_committed consumers may see (the last stable offset).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use strom_storage::batch::BatchHeader;

use super::{AppendResult, Partition};
use crate::producer_snapshot;
use crate::producer_state::ProducerStateMap;
use crate::txn_index::TxnIndex;
use crate::BrokerError;

pub(crate) struct ProducerTracking {
    pub(crate) state: ProducerStateMap,
    /// Open and aborted transactions, derived from the same batches as `state`.
    pub(crate) txns: TxnIndex,
    /// Producers whose coordinator added this partition to their transaction, with the
    /// epoch (leader only, in memory; cleared by the transaction's marker).
    pub(crate) allowed: HashMap<i64, i16>,
    pub(crate) bytes_since_snapshot: u64,
}

/// Who appends, and so what is checked beyond the producer's epoch and sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writer<'a> {
    /// A client's produce: transactional batches need a transaction including the partition.
    Client,
    /// A client's produce appended again after the coordinator verified its transaction.
    Verified,
    /// A coordinator writing for a producer (transactional offset commits).
    Coordinator,
    /// A transaction coordinator's marker: refused from a deposed coordinator.
    Marker(&'a strom_storage::markers::Marker),
}

/// Transactions one partition keeps open at once; more are refused at AddPartitionsToTxn.
pub const MAX_OPEN_TRANSACTIONS: usize = 10_000;

impl ProducerTracking {
    pub(super) fn new(state: ProducerStateMap, txns: TxnIndex) -> ProducerTracking {
        ProducerTracking {
            state,
            txns,
            allowed: HashMap::new(),
            bytes_since_snapshot: 0,
        }
    }

    /// A client's transactional batch out of sequence is sent to the coordinator's
    /// verification instead of failing: the pipelined request before it may be waiting there
    /// with the batches that fill the gap (it lacked the permission, which may have arrived
    /// since, as with transaction version 2, where the first batch of every transaction on a
    /// partition is verified, under a new epoch). The produce handler appends it again after
    /// that request, as [`Writer::Verified`], and a real gap is answered then.
    pub(crate) fn unpermitted_first(
        &self,
        writer: Writer<'_>,
        headers: &[BatchHeader],
        verdict: Result<crate::producer_state::Verdict, BrokerError>,
    ) -> Result<crate::producer_state::Verdict, BrokerError> {
        match verdict {
            Err(BrokerError::OutOfOrderSequence(why))
                if matches!(writer, Writer::Client)
                    && headers.iter().any(|h| h.is_transactional()) =>
            {
                Err(BrokerError::InvalidTxnState(format!(
                    "{why}; verifying the transaction first"
                )))
            }
            other => other,
        }
    }

    /// The checks of an append that is not a duplicate. A verified produce gets its
    /// permission here, under the same lock as its append: a pipelined request behind it can
    /// find the permission only once the verified batches are in, never jump ahead of them.
    pub(crate) fn check_writer(
        &mut self,
        writer: Writer<'_>,
        headers: &[BatchHeader],
    ) -> Result<(), BrokerError> {
        match writer {
            Writer::Client => self.check_transactions(headers),
            Writer::Verified => {
                for h in headers.iter().filter(|h| h.is_transactional()) {
                    self.permit(h.producer_id, h.producer_epoch)?;
                }
                self.check_transactions(headers)
            }
            Writer::Coordinator => Ok(()),
            Writer::Marker(m) => self.check_marker(m),
        }
    }

    /// A marker from a coordinator older than the one that wrote the producer's last marker
    /// here is stale: that coordinator was deposed, and its successor may have finished the
    /// transaction and let the next one begin.
    fn check_marker(&self, marker: &strom_storage::markers::Marker) -> Result<(), BrokerError> {
        match self.state.get(marker.producer_id) {
            Some(e) if e.coordinator_epoch > marker.coordinator_epoch => {
                Err(BrokerError::CoordinatorFenced(format!(
                    "marker of producer {} from coordinator epoch {}, after one from epoch {}",
                    marker.producer_id, marker.coordinator_epoch, e.coordinator_epoch
                )))
            }
            _ => Ok(()),
        }
    }

    /// `producer_id` may take transactional batches here in `epoch`.
    fn permit(&mut self, producer_id: i64, epoch: i16) -> Result<(), BrokerError> {
        if !self.allowed.contains_key(&producer_id) && self.allowed.len() >= MAX_OPEN_TRANSACTIONS {
            return Err(BrokerError::InvalidTxnState(format!(
                "{MAX_OPEN_TRANSACTIONS} transactions are open on this partition already"
            )));
        }
        self.allowed.insert(producer_id, epoch);
        Ok(())
    }

    /// The state a restore rebuilt from the log (after a cut or a Raft snapshot). Permissions
    /// to start transactions survive: they are the leader's, not the log's.
    pub(crate) fn reset(&mut self, restored: producer_snapshot::Restored) {
        self.state = restored.state;
        self.txns = restored.txns;
    }

    /// A client's transactional batches must belong to a transaction open here, or one the
    /// coordinator added this partition to, in the same epoch (KIP-890's verification):
    /// a late batch of an ended transaction cannot start a new one on its own. With
    /// transaction version 2 every transaction has an epoch of its own, and the next one may
    /// begin before the last one's marker is here: a batch of a newer epoch than the open
    /// transaction's must wait for the coordinator, which adds the partition only once that
    /// marker is written, instead of joining the transaction before it.
    fn check_transactions(&self, headers: &[BatchHeader]) -> Result<(), BrokerError> {
        for h in headers
            .iter()
            .filter(|h| h.is_transactional() && !h.is_control())
        {
            let pid = h.producer_id;
            let open_in_epoch = self.txns.is_open(pid)
                && self
                    .state
                    .get(pid)
                    .is_some_and(|e| e.epoch == h.producer_epoch);
            if open_in_epoch {
                continue;
            }
            match self.allowed.get(&pid) {
                Some(epoch) if *epoch == h.producer_epoch => {}
                _ => {
                    return Err(BrokerError::InvalidTxnState(format!(
                        "producer {pid} epoch {} has no transaction including this partition",
                        h.producer_epoch
                    )))
                }
            }
        }
        Ok(())
    }

    /// A stored batch at `base_offset`: transactional data opens its producer's transaction,
    /// a marker ends it.
    pub(crate) fn track_transaction(&mut self, h: &BatchHeader, base_offset: u64, batch: &[u8]) {
        if !h.is_transactional() || h.producer_id < 0 {
            return;
        }
        if !h.is_control() {
            self.txns.on_data(h.producer_id, base_offset);
            return;
        }
        let marker = Bytes::copy_from_slice(batch);
        match strom_storage::markers::decode(&marker) {
            Some(m) => {
                self.txns.on_marker(h.producer_id, base_offset, m.commit);
                self.state
                    .note_coordinator_epoch(h.producer_id, m.coordinator_epoch);
                self.allowed.remove(&h.producer_id);
            }
            None => tracing::warn!(
                offset = base_offset,
                "a transactional control batch that is no marker"
            ),
        }
    }
}

impl Partition {
    /// The transaction coordinator added this partition to `producer_id`'s transaction in
    /// `epoch`: its transactional batches are taken until a marker ends the transaction.
    /// Only the leader holds this, in memory: a leader that changed or restarted since asks the
    /// coordinator when the batch arrives (the produce handler's verification).
    pub fn allow_transaction(&self, producer_id: i64, epoch: i16) -> Result<(), BrokerError> {
        self.ensure_leader()?;
        self.producers_mut().permit(producer_id, epoch)
    }

    /// Writes a commit or abort marker for `marker.producer_id` (the coordinator's
    /// WriteTxnMarkers); wait for it with [`Partition::wait_ack`] (acks=all).
    pub fn write_marker(
        self: &Arc<Self>,
        marker: &strom_storage::markers::Marker,
    ) -> Result<AppendResult, BrokerError> {
        self.ensure_leader()?;
        let batch = strom_storage::markers::encode(marker, crate::now_ms());
        self.append_internal(&[batch], Writer::Marker(marker))
    }

    /// The last stable offset: read_committed consumers read below it (never above the high
    /// watermark, never below the log start).
    pub fn last_stable_offset(&self) -> u64 {
        let hw = self.high_watermark();
        let lso = self.producers_mut().txns.last_stable_offset(hw);
        lso.max(self.log_start_offset()).min(hw)
    }

    /// The aborted transactions a read_committed fetch of `[from, to)` must list.
    pub fn aborted_transactions(&self, from: u64, to: u64) -> Vec<crate::txn_index::AbortedTxn> {
        self.producers_mut().txns.aborted_between(from, to)
    }

    /// Transactions open on this partition: (producer id, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, u64)> {
        self.producers_mut().txns.open_list()
    }
}

#[cfg(test)]
#[path = "partition_txn_tests.rs"]
mod tests;
