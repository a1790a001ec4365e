//! Idempotent-producer state of one partition: for every producer id, its current epoch and the
//! sequence ranges and offsets of its last [`BATCH_WINDOW`] batches.
//!
//! [`ProducerStateMap::check`] decides, for the batches of one append, whether they continue each
//! producer's sequence (append), repeat a recent batch (a duplicate: answer with its original
//! offsets, append nothing) or break the rules (an error). It runs under the partition's write
//! lock, so two connections can never both append the same sequence. The rules are Kafka's
//! (`ProducerAppendInfo` / `UnifiedLog.analyzeAndValidateProducerState` as of Kafka 3.x):
//!
//! - a batch is idempotent when its header carries a producer id (>= 0) and it is not a control
//!   batch; other batches are never checked;
//! - epoch older than the producer's current one: `InvalidProducerEpoch`;
//! - epoch newer: a new epoch must start at sequence 0, else `OutOfOrderSequence`;
//! - same epoch: a batch whose (first, last) sequence equals one of the last five is a duplicate;
//!   otherwise its first sequence must follow the last one (after `i32::MAX` comes 0), else
//!   `OutOfOrderSequence`;
//! - an unknown producer id (never seen, or its state expired or was evicted) is accepted with any
//!   sequence and tracked from then on. Kafka >= 2.5 (KIP-360) does the same instead of answering
//!   `UNKNOWN_PRODUCER_ID`: the client cannot tell "expired" from "lost", and rejecting would make
//!   every producer idle past retention fail.
//!
//! The state is derived from the log only: [`ProducerStateMap::replay`] rebuilds it from stored
//! batch headers, and the snapshot (`producer_snapshot`) is a cache of it at some offset.

use std::collections::{HashMap, VecDeque};

use strom_storage::batch::BatchHeader;

use crate::BrokerError;

/// How many recent batches per producer are remembered for duplicate detection. Kafka keeps 5
/// because producers allow at most 5 in-flight requests with idempotence on.
pub const BATCH_WINDOW: usize = 5;

/// A producer with no append for this long is forgotten (Kafka's `producer.id.expiration.ms`).
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub last_offset: u64,
}

/// What the partition knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCH_WINDOW`], all of `epoch`.
    pub batches: VecDeque<BatchMeta>,
    /// Broker time (ms) of the last append, for expiry.
    pub last_timestamp_ms: i64,
    /// The coordinator epoch of the producer's last marker here (-1: none): a marker from an
    /// older coordinator (one deposed while it was still writing markers) is refused.
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCH_WINDOW),
            last_timestamp_ms: 0,
            coordinator_epoch: -1,
        }
    }

    fn last_offset(&self) -> Option<u64> {
        self.batches.back().map(|b| b.last_offset)
    }

    /// A marker at `epoch`: a newer epoch forgets the old epoch's batches (its first batch
    /// starts at sequence 0).
    fn bump(&mut self, epoch: i16, now_ms: i64) {
        if epoch > self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        self.last_timestamp_ms = now_ms;
    }

    /// Records a batch; a new epoch forgets the old epoch's batches.
    fn push(&mut self, epoch: i16, batch: BatchMeta, now_ms: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCH_WINDOW {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp_ms = now_ms;
    }
}

/// The outcome of [`ProducerStateMap::check`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append the batches, then [`ProducerStateMap::commit`] this.
    Append(Pending),
    /// Every batch was already appended: answer with these offsets and append nothing.
    Duplicate { base_offset: u64, last_offset: u64 },
}

/// Producer entries as they will be once the checked batches are in the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pending {
    updated: HashMap<i64, ProducerEntry>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
}

/// The sequence `delta` after `seq`, wrapping from `i32::MAX` to 0 as Kafka producers do.
pub fn seq_add(seq: i32, delta: i32) -> i32 {
    let wrapped = (i64::from(seq) + i64::from(delta)).rem_euclid(i64::from(i32::MAX) + 1);
    // rem_euclid keeps it within 0..=i32::MAX.
    wrapped as i32
}

/// A transaction marker (a control batch of a transactional producer).
pub fn is_marker(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && h.is_control() && h.is_transactional()
}

/// A transactional batch without a sequence: a coordinator writes it for the producer
/// (transactional offset commits); clients' transactional batches always carry one.
fn is_coordinator_write(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && h.is_transactional() && !h.is_control() && h.base_sequence < 0
}

fn is_idempotent(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && !h.is_control()
}

enum Class {
    Append,
    Duplicate(BatchMeta),
}

/// Kafka's rules for one batch against the producer's current entry.
fn classify(current: Option<&ProducerEntry>, h: &BatchHeader) -> Result<Class, BrokerError> {
    let (pid, epoch, first) = (h.producer_id, h.producer_epoch, h.base_sequence);
    if epoch < 0 {
        return Err(BrokerError::InvalidProducerEpoch(format!(
            "producer {pid} sent epoch {epoch}"
        )));
    }
    if first < 0 {
        return Err(BrokerError::OutOfOrderSequence(format!(
            "producer {pid} sent base sequence {first}"
        )));
    }
    let Some(entry) = current else {
        return Ok(Class::Append);
    };
    if epoch < entry.epoch {
        return Err(BrokerError::InvalidProducerEpoch(format!(
            "producer {pid} epoch {epoch} is older than the current epoch {}",
            entry.epoch
        )));
    }
    if epoch > entry.epoch {
        return if first == 0 {
            Ok(Class::Append)
        } else {
            Err(BrokerError::OutOfOrderSequence(format!(
                "producer {pid} new epoch {epoch} must start at sequence 0, not {first}"
            )))
        };
    }
    let last = seq_add(first, h.last_offset_delta);
    if let Some(dup) = entry
        .batches
        .iter()
        .find(|b| b.first_seq == first && b.last_seq == last)
    {
        return Ok(Class::Duplicate(*dup));
    }
    match entry.batches.back() {
        // An entry without batches (never written by this broker, but a snapshot could hold
        // one) has no sequence to continue.
        None => Ok(Class::Append),
        Some(prev) if first == seq_add(prev.last_seq, 1) => Ok(Class::Append),
        Some(prev) => Err(BrokerError::OutOfOrderSequence(format!(
            "producer {pid} epoch {epoch}: expected sequence {}, got {first}",
            seq_add(prev.last_seq, 1)
        ))),
    }
}

impl ProducerStateMap {
    pub fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        ProducerStateMap {
            producers: entries.into_iter().collect(),
        }
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every entry, ordered by producer id (a deterministic snapshot).
    pub fn sorted(&self) -> Vec<(i64, &ProducerEntry)> {
        let mut out: Vec<_> = self.producers.iter().map(|(id, e)| (*id, e)).collect();
        out.sort_unstable_by_key(|(id, _)| *id);
        out
    }

    /// Checks the batches of one append, in order, as if appended from `next_offset` on (the
    /// log assigns offsets contiguously, so each batch's offsets are known before appending).
    /// A request that repeats some batches and adds new ones is refused: answering it as a
    /// duplicate would drop the new batches, and appending would store the repeats twice.
    pub fn check(
        &self,
        batches: &[BatchHeader],
        next_offset: u64,
        now_ms: i64,
    ) -> Result<Verdict, BrokerError> {
        let mut pending = Pending::default();
        let mut duplicates: Vec<BatchMeta> = Vec::new();
        let mut appended = 0usize;
        let mut offset = next_offset;
        for h in batches {
            let base_offset = offset;
            let last_offset = base_offset + u64::try_from(h.last_offset_delta).unwrap_or(0);
            offset = last_offset + 1;
            if is_marker(h) || is_coordinator_write(h) {
                // A transaction marker moves its producer to the marker's epoch (the coordinator
                // bumps it when it fences a producer); one from an older epoch is stale. So does
                // a coordinator's write on the producer's behalf (TxnOffsetCommit), which
                // carries no sequence.
                let current = pending
                    .updated
                    .get(&h.producer_id)
                    .or_else(|| self.producers.get(&h.producer_id));
                if let Some(c) = current.filter(|c| c.epoch > h.producer_epoch) {
                    return Err(BrokerError::InvalidProducerEpoch(format!(
                        "marker of producer {} has epoch {}, older than the current {}",
                        h.producer_id, h.producer_epoch, c.epoch
                    )));
                }
                let mut entry = current
                    .cloned()
                    .unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
                entry.bump(h.producer_epoch, now_ms);
                pending.updated.insert(h.producer_id, entry);
                appended += 1;
                continue;
            }
            if !is_idempotent(h) {
                appended += 1;
                continue;
            }
            let current = pending
                .updated
                .get(&h.producer_id)
                .or_else(|| self.producers.get(&h.producer_id));
            match classify(current, h)? {
                Class::Duplicate(meta) => duplicates.push(meta),
                Class::Append => {
                    appended += 1;
                    let mut entry = current
                        .cloned()
                        .unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
                    let meta = BatchMeta {
                        first_seq: h.base_sequence,
                        last_seq: seq_add(h.base_sequence, h.last_offset_delta),
                        base_offset,
                        last_offset,
                    };
                    entry.push(h.producer_epoch, meta, now_ms);
                    pending.updated.insert(h.producer_id, entry);
                }
            }
        }
        match (duplicates.first(), appended) {
            (None, _) => Ok(Verdict::Append(pending)),
            (Some(first), 0) => Ok(Verdict::Duplicate {
                base_offset: first.base_offset,
                last_offset: duplicates
                    .iter()
                    .map(|d| d.last_offset)
                    .max()
                    .unwrap_or(first.last_offset),
            }),
            (Some(first), _) => Err(BrokerError::OutOfOrderSequence(format!(
                "request repeats the batch of sequences {}..={} and also carries new batches",
                first.first_seq, first.last_seq
            ))),
        }
    }

    /// Applies a checked append once its batches are in the log.
    pub fn commit(&mut self, pending: Pending) {
        self.producers.extend(pending.updated);
    }

    /// Records a batch read back from the log, without checks: the log is the truth.
    /// `now_ms` stands in for its append time, so a restart never expires a producer early.
    pub fn replay(&mut self, h: &BatchHeader, now_ms: i64) {
        if is_marker(h) || is_coordinator_write(h) {
            self.producers
                .entry(h.producer_id)
                .or_insert_with(|| ProducerEntry::new(h.producer_epoch))
                .bump(h.producer_epoch, now_ms);
            return;
        }
        if !is_idempotent(h) || h.base_offset < 0 {
            return;
        }
        let base_offset = h.base_offset as u64;
        let meta = BatchMeta {
            first_seq: h.base_sequence,
            last_seq: seq_add(h.base_sequence.max(0), h.last_offset_delta),
            base_offset,
            last_offset: base_offset + u64::try_from(h.last_offset_delta).unwrap_or(0),
        };
        self.producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch))
            .push(h.producer_epoch, meta, now_ms);
    }

    /// A marker of `producer_id` from coordinator epoch `epoch` is in the log.
    pub fn note_coordinator_epoch(&mut self, producer_id: i64, epoch: i32) {
        if let Some(e) = self.producers.get_mut(&producer_id) {
            e.coordinator_epoch = e.coordinator_epoch.max(epoch);
        }
    }

    /// Forgets producers idle for longer than `max_idle_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp_ms) <= max_idle_ms);
        before - self.producers.len()
    }

    /// Forgets producers whose every batch lies below `log_start_offset` (deleted by retention),
    /// as Kafka does when the log start moves; returns how many.
    pub fn evict_below(&mut self, log_start_offset: u64) -> usize {
        let before = self.producers.len();
        self.producers
            // One known only from a marker (fenced by a coordinator) keeps its epoch until it
            // expires: forgetting it would let the fenced producer in again.
            .retain(|_, e| e.last_offset().is_none_or(|last| last >= log_start_offset));
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    /// A header of `records` records from `pid`/`epoch` starting at sequence `seq`.
    fn h(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    /// The log's end offset in these tests: appends accumulate like a real log.
    struct Harness {
        map: ProducerStateMap,
        next: u64,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                map: ProducerStateMap::default(),
                next: 0,
            }
        }

        /// Runs check + commit like `Partition::append`; returns the base offset answered.
        fn append(&mut self, batches: &[BatchHeader]) -> Result<u64, BrokerError> {
            match self.map.check(batches, self.next, NOW)? {
                Verdict::Append(p) => {
                    let base = self.next;
                    for b in batches {
                        self.next += b.last_offset_delta as u64 + 1;
                    }
                    self.map.commit(p);
                    Ok(base)
                }
                Verdict::Duplicate { base_offset, .. } => Ok(base_offset),
            }
        }
    }

    fn out_of_order(r: Result<u64, BrokerError>) -> bool {
        matches!(r, Err(BrokerError::OutOfOrderSequence(_)))
    }

    #[test]
    fn in_sequence_batches_append_and_retries_are_duplicates() {
        let mut t = Harness::new();
        assert_eq!(t.append(&[h(1, 0, 0, 3)]).unwrap(), 0);
        assert_eq!(t.append(&[h(1, 0, 3, 2)]).unwrap(), 3);
        assert_eq!(t.append(&[h(1, 0, 5, 1)]).unwrap(), 5);
        // A retry of any remembered batch answers its original offset, appending nothing.
        assert_eq!(t.append(&[h(1, 0, 3, 2)]).unwrap(), 3);
        assert_eq!(t.append(&[h(1, 0, 0, 3)]).unwrap(), 0);
        assert_eq!(t.next, 6);
        // Same first sequence but a different length is not the same batch.
        assert!(out_of_order(t.append(&[h(1, 0, 3, 1)])));
        let entry = t.map.get(1).unwrap();
        assert_eq!(entry.batches.len(), 3);
        assert_eq!(entry.last_timestamp_ms, NOW);
    }

    #[test]
    fn gaps_and_rewinds_are_out_of_order() {
        let mut t = Harness::new();
        t.append(&[h(1, 0, 0, 2)]).unwrap();
        assert!(out_of_order(t.append(&[h(1, 0, 3, 1)])), "gap");
        assert!(out_of_order(t.append(&[h(1, 0, 1, 1)])), "overlap");
        assert!(out_of_order(t.append(&[h(1, 0, -1, 1)])), "negative");
        assert_eq!(t.next, 2, "nothing appended");
        assert_eq!(t.append(&[h(1, 0, 2, 1)]).unwrap(), 2);
    }

    #[test]
    fn epochs_fence_old_producers_and_new_epochs_start_at_zero() {
        let mut t = Harness::new();
        t.append(&[h(1, 3, 0, 2)]).unwrap();
        assert!(matches!(
            t.append(&[h(1, 2, 2, 1)]),
            Err(BrokerError::InvalidProducerEpoch(_))
        ));
        // A retry of a batch under an older epoch is fenced too, not a duplicate.
        t.append(&[h(1, 4, 0, 1)]).unwrap();
        assert!(matches!(
            t.append(&[h(1, 3, 0, 2)]),
            Err(BrokerError::InvalidProducerEpoch(_))
        ));
        assert!(out_of_order(t.append(&[h(1, 5, 7, 1)])), "new epoch at 7");
        // The bump forgets the old epoch's batches: sequence 0 of epoch 5 is new.
        let base = t.next;
        assert_eq!(t.append(&[h(1, 5, 0, 1)]).unwrap(), base);
        assert_eq!(t.map.get(1).unwrap().epoch, 5);
        assert_eq!(t.map.get(1).unwrap().batches.len(), 1);
        assert!(matches!(
            t.append(&[h(1, -1, 1, 1)]),
            Err(BrokerError::InvalidProducerEpoch(_))
        ));
    }

    #[test]
    fn unknown_producers_are_accepted_at_any_sequence() {
        let mut t = Harness::new();
        assert_eq!(t.append(&[h(9, 2, 500, 2)]).unwrap(), 0);
        assert!(out_of_order(t.append(&[h(9, 2, 505, 1)])));
        assert_eq!(t.append(&[h(9, 2, 502, 1)]).unwrap(), 2);
        // Producers are independent.
        assert_eq!(t.append(&[h(10, 0, 0, 1)]).unwrap(), 3);
    }

    #[test]
    fn sequence_wraps_after_i32_max() {
        assert_eq!(seq_add(i32::MAX, 1), 0);
        assert_eq!(seq_add(i32::MAX - 1, 3), 1);
        assert_eq!(seq_add(5, 0), 5);
        let mut t = Harness::new();
        t.append(&[h(1, 0, i32::MAX - 2, 2)]).unwrap();
        // The next batch holds MAX and 0, 1 after the wrap.
        t.append(&[h(1, 0, i32::MAX, 3)]).unwrap();
        let last = *t.map.get(1).unwrap().batches.back().unwrap();
        assert_eq!((last.first_seq, last.last_seq), (i32::MAX, 1));
        assert_eq!(t.append(&[h(1, 0, i32::MAX, 3)]).unwrap(), 2, "duplicate");
        assert!(out_of_order(t.append(&[h(1, 0, 3, 1)])));
        assert_eq!(t.append(&[h(1, 0, 2, 1)]).unwrap(), 5);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut t = Harness::new();
        for seq in 0..7 {
            t.append(&[h(1, 0, seq, 1)]).unwrap();
        }
        let entry = t.map.get(1).unwrap();
        assert_eq!(entry.batches.len(), BATCH_WINDOW);
        assert_eq!(entry.batches[0].first_seq, 2);
        for seq in 2..7 {
            assert_eq!(t.append(&[h(1, 0, seq, 1)]).unwrap(), seq as u64);
        }
        // Evicted from the window: no longer recognisable, and it does not continue the sequence.
        assert!(out_of_order(t.append(&[h(1, 0, 1, 1)])));
        assert_eq!(t.next, 7);
    }

    #[test]
    fn several_batches_in_one_append_chain_in_order() {
        let mut t = Harness::new();
        let plain = h(-1, -1, -1, 2);
        let batches = [h(1, 0, 0, 2), plain, h(1, 0, 2, 1), h(2, 0, 0, 1)];
        assert_eq!(t.append(&batches).unwrap(), 0);
        assert_eq!(t.next, 6);
        let b = t.map.get(1).unwrap().batches.clone();
        assert_eq!((b[1].base_offset, b[1].last_offset), (4, 4));
        assert_eq!(t.map.get(2).unwrap().batches[0].base_offset, 5);
        // All repeated: a duplicate spanning them; repeats mixed with news: refused.
        let repeat = [h(1, 0, 0, 2), h(1, 0, 2, 1)];
        assert_eq!(
            t.map.check(&repeat, t.next, NOW).unwrap(),
            Verdict::Duplicate {
                base_offset: 0,
                last_offset: 4
            }
        );
        assert!(out_of_order(t.append(&[h(1, 0, 2, 1), h(1, 0, 3, 1)])));
        assert!(out_of_order(t.append(&[h(1, 0, 2, 1), plain])));
        // One bad batch refuses the whole append, with no state change.
        let before = t.map.clone();
        assert!(out_of_order(t.append(&[h(1, 0, 3, 1), h(1, 0, 9, 1)])));
        assert_eq!(t.map, before);
    }

    #[test]
    fn plain_and_control_batches_are_not_checked() {
        let mut t = Harness::new();
        t.append(&[h(-1, -1, -1, 1)]).unwrap();
        t.append(&[h(-1, -1, -1, 1)]).unwrap();
        let mut control = h(1, 0, -1, 1);
        control.attributes = 1 << 5;
        t.append(&[control]).unwrap();
        assert!(t.map.is_empty());
        assert_eq!(t.next, 3);
    }

    #[test]
    fn replay_rebuilds_what_appends_built() {
        let mut t = Harness::new();
        let mut log = Vec::new();
        for (pid, epoch, seq, n) in [(1, 0, 0, 2), (2, 0, 0, 1), (1, 0, 2, 3), (1, 1, 0, 1)] {
            let mut header = h(pid, epoch, seq, n);
            header.base_offset = t.append(&[header]).unwrap() as i64;
            log.push(header);
        }
        for seq in 0..8 {
            let mut header = h(3, 0, seq, 1);
            header.base_offset = t.append(&[header]).unwrap() as i64;
            log.push(header);
        }
        let mut rebuilt = ProducerStateMap::default();
        for header in &log {
            rebuilt.replay(header, NOW);
        }
        assert_eq!(rebuilt, t.map);
    }

    #[test]
    fn expiry_and_eviction() {
        let mut map = ProducerStateMap::default();
        let mut a = h(1, 0, 0, 1);
        a.base_offset = 10;
        map.replay(&a, 1_000);
        let mut b = h(2, 0, 0, 1);
        b.base_offset = 20;
        map.replay(&b, 5_000);
        assert_eq!(map.evict_below(11), 1);
        assert!(map.get(1).is_none() && map.get(2).is_some());
        assert_eq!(
            map.expire(5_000 + PRODUCER_EXPIRATION_MS, PRODUCER_EXPIRATION_MS),
            0
        );
        assert_eq!(
            map.expire(5_001 + PRODUCER_EXPIRATION_MS, PRODUCER_EXPIRATION_MS),
            1
        );
        assert!(map.is_empty());
    }
}
