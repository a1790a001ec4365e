//! A partition's transactions, as read_committed consumers need them: which are open (their
//! first offset holds back the last stable offset), and which were aborted (a fetch lists
//! those overlapping what it returns, so the client drops their records).
//!
//! Pure bookkeeping over what the log holds, in offset order: a transactional data batch opens
//! its producer's transaction (if not open already), a marker ends it. A transaction stays
//! unstable until its marker is below the high watermark: before that a new leader may cut
//! the marker away and the transaction is open again (Kafka's "unreplicated" transactions).
//! The same state results from replaying the log from any point where it was saved, and a log
//! cut (`truncate_from`) gives what a replay of the shorter log would.

use std::collections::{BTreeMap, BTreeSet};

/// An aborted transaction: a fetch over `[first, last]` must name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// The offset of its abort marker.
    pub last_offset: u64,
}

/// A transaction ended by a marker, as a snapshot stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedTxn {
    pub marker_offset: u64,
    pub producer_id: i64,
    pub first_offset: u64,
    pub aborted: bool,
}

/// Transactions ended by a marker: (marker offset, producer id) → (first offset, aborted).
type Ended = BTreeMap<(u64, i64), (u64, bool)>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxnIndex {
    /// Open transactions: producer id → first offset.
    open: BTreeMap<i64, u64>,
    /// The same, by first offset (the earliest bounds the last stable offset).
    open_by_first: BTreeSet<(u64, i64)>,
    /// Ended transactions whose marker is at or above the last high watermark seen: a log
    /// cut may still remove their markers, and they are unstable until the high watermark
    /// passes them.
    ended: Ended,
    /// Aborted transactions whose marker is below it, for fetches to list until the log start
    /// passes them. (Committed ones below it are stable for good and forgotten.)
    aborted: Ended,
}

impl TxnIndex {
    /// Open transactions as (producer id, first offset), by producer id.
    pub fn open_list(&self) -> Vec<(i64, u64)> {
        self.open.iter().map(|(p, f)| (*p, *f)).collect()
    }

    /// Every ended transaction still remembered (settled aborts and unsettled ends), by
    /// marker offset.
    pub fn ended_list(&self) -> Vec<EndedTxn> {
        let mut all: Vec<EndedTxn> = self
            .aborted
            .iter()
            .chain(self.ended.iter())
            .map(|((marker, pid), (first, aborted))| EndedTxn {
                marker_offset: *marker,
                producer_id: *pid,
                first_offset: *first,
                aborted: *aborted,
            })
            .collect();
        all.sort_by_key(|e| (e.marker_offset, e.producer_id));
        all
    }

    /// The index a snapshot describes. Every ended transaction counts as unsettled until the
    /// next [`TxnIndex::on_high_watermark`]: the high watermark at snapshot time is unknown.
    pub fn from_lists(open: Vec<(i64, u64)>, ended: Vec<EndedTxn>) -> TxnIndex {
        let mut t = TxnIndex::default();
        for (pid, first) in open {
            t.on_data(pid, first);
        }
        for e in ended {
            t.ended.insert(
                (e.marker_offset, e.producer_id),
                (e.first_offset, e.aborted),
            );
        }
        t
    }

    /// A transactional data batch of `producer_id` at `base_offset`.
    pub fn on_data(&mut self, producer_id: i64, base_offset: u64) {
        if let std::collections::btree_map::Entry::Vacant(v) = self.open.entry(producer_id) {
            v.insert(base_offset);
            self.open_by_first.insert((base_offset, producer_id));
        }
    }

    /// A marker of `producer_id` at `offset`. A marker with no open transaction (the
    /// coordinator writes markers again after a failover) changes nothing.
    pub fn on_marker(&mut self, producer_id: i64, offset: u64, commit: bool) {
        if let Some(first) = self.open.remove(&producer_id) {
            self.open_by_first.remove(&(first, producer_id));
            self.ended.insert((offset, producer_id), (first, !commit));
        }
    }

    /// The last stable offset: below it every transaction has ended with a marker below the
    /// high watermark. Never above the high watermark.
    pub fn last_stable_offset(&self, high_watermark: u64) -> u64 {
        let open = self.open_by_first.first().map(|(first, _)| *first);
        let unstable = self
            .ended
            .range((high_watermark, i64::MIN)..)
            .map(|(_, (first, _))| *first)
            .min();
        [open, unstable]
            .into_iter()
            .flatten()
            .fold(high_watermark, u64::min)
    }

    /// Whether `producer_id` has a transaction open here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// The first offset of `producer_id`'s open transaction.
    pub fn open_first_offset(&self, producer_id: i64) -> Option<u64> {
        self.open.get(&producer_id).copied()
    }

    /// Open transactions.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The high watermark reached `high_watermark`: Raft never cuts the log below it, so the
    /// transactions ended before it are settled; only the aborted ones are kept.
    pub fn on_high_watermark(&mut self, high_watermark: u64) {
        let unsettled = self.ended.split_off(&(high_watermark, i64::MIN));
        let settled = std::mem::replace(&mut self.ended, unsettled);
        self.aborted
            .extend(settled.into_iter().filter(|(_, (_, aborted))| *aborted));
    }

    /// The aborted transactions a fetch of `[from, to)` must list: those with records in it
    /// (first offset below `to`) whose marker is not before it. Ordered by marker offset.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        self.aborted
            .range((from, i64::MIN)..)
            .chain(self.ended.range((from, i64::MIN)..))
            .filter(|(_, (first, aborted))| *aborted && *first < to)
            .map(|((last, pid), (first, _))| AbortedTxn {
                producer_id: *pid,
                first_offset: *first,
                last_offset: *last,
            })
            .collect()
    }

    /// The log now ends before `offset` (never below a high watermark already reported):
    /// what began there is forgotten, and a transaction whose marker is gone is open again.
    pub fn truncate_from(&mut self, offset: u64) {
        // Transactions that began at or after the cut first: a producer's transaction whose
        // marker is cut is its latest one, so it reopens without a clash.
        let gone: Vec<(u64, i64)> = self
            .open_by_first
            .range((offset, i64::MIN)..)
            .copied()
            .collect();
        for (first, pid) in gone {
            self.open_by_first.remove(&(first, pid));
            self.open.remove(&pid);
        }
        let cut = self.ended.split_off(&(offset, i64::MIN));
        for ((_, pid), (first, _)) in cut {
            if first < offset {
                self.open.insert(pid, first);
                self.open_by_first.insert((first, pid));
            }
        }
    }

    /// The log now starts at `log_start`: ended transactions whose marker went with it are
    /// forgotten (nothing of them is left to fetch). Open ones stay: they still hold back the
    /// last stable offset, clamped to the log start by the caller.
    pub fn remove_below(&mut self, log_start: u64) {
        self.ended = self.ended.split_off(&(log_start, i64::MIN));
        self.aborted = self.aborted.split_off(&(log_start, i64::MIN));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the log holds, in offset order.
    #[derive(Debug, Clone, Copy)]
    enum Item {
        Data(i64),
        Marker(i64, bool),
        Other,
    }

    /// The model: replay the whole log prefix from scratch.
    fn replay(log: &[Item]) -> TxnIndex {
        let mut t = TxnIndex::default();
        for (offset, item) in log.iter().enumerate() {
            match *item {
                Item::Data(pid) => t.on_data(pid, offset as u64),
                Item::Marker(pid, commit) => t.on_marker(pid, offset as u64, commit),
                Item::Other => {}
            }
        }
        t
    }

    /// The stable offset by definition: the first offset of a transaction that is open, or
    /// whose marker is at or above the high watermark.
    fn model_lso(log: &[Item], hw: u64) -> u64 {
        let mut open: BTreeMap<i64, u64> = BTreeMap::new();
        let mut lso = hw;
        for (offset, item) in log.iter().enumerate() {
            let offset = offset as u64;
            match *item {
                Item::Data(pid) => {
                    open.entry(pid).or_insert(offset);
                }
                Item::Marker(pid, _) => {
                    if let Some(first) = open.remove(&pid) {
                        if offset >= hw {
                            lso = lso.min(first);
                        }
                    }
                }
                Item::Other => {}
            }
        }
        open.values().fold(lso, |a, b| a.min(*b))
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            3 => (0i64..4).prop_map(Item::Data),
            1 => (0i64..4, any::<bool>()).prop_map(|(p, c)| Item::Marker(p, c)),
            1 => Just(Item::Other),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Built incrementally with cuts and high watermarks in between, the index answers
        /// as a replay of the log that results, and its answers match the definitions.
        #[test]
        fn incremental_equals_replay(
            steps in prop::collection::vec((prop::collection::vec(item(), 0..12), 0usize..16, 0usize..12), 1..8),
            hw_back in 0u64..10,
        ) {
            let mut log: Vec<Item> = Vec::new();
            let mut t = TxnIndex::default();
            let mut hw = 0usize;
            for (items, cut_back, hw_lag) in steps {
                for item in items {
                    let offset = log.len() as u64;
                    match item {
                        Item::Data(pid) => t.on_data(pid, offset),
                        Item::Marker(pid, commit) => t.on_marker(pid, offset, commit),
                        Item::Other => {}
                    }
                    log.push(item);
                }
                // A cut never goes below the high watermark, which never goes back.
                let cut = log.len().saturating_sub(cut_back).max(hw);
                log.truncate(cut);
                t.truncate_from(cut as u64);
                hw = hw.max(log.len().saturating_sub(hw_lag));
                t.on_high_watermark(hw as u64);
                let r = replay(&log);
                prop_assert_eq!(&t.open, &r.open);
                prop_assert_eq!(t.last_stable_offset(hw as u64), r.last_stable_offset(hw as u64));
            }
            let hw = (log.len() as u64).saturating_sub(hw_back).max(hw as u64);
            prop_assert_eq!(t.last_stable_offset(hw), model_lso(&log, hw));
            // Every aborted transaction overlapping a range is listed, and nothing else.
            for from in 0..=log.len() as u64 {
                for to in from..=log.len() as u64 {
                    let got = t.aborted_between(from, to);
                    let mut want = Vec::new();
                    let mut open: BTreeMap<i64, u64> = BTreeMap::new();
                    for (offset, item) in log.iter().enumerate() {
                        let offset = offset as u64;
                        match *item {
                            Item::Data(pid) => { open.entry(pid).or_insert(offset); }
                            Item::Marker(pid, commit) => {
                                if let Some(first) = open.remove(&pid) {
                                    if !commit && offset >= from && first < to {
                                        want.push(AbortedTxn { producer_id: pid, first_offset: first, last_offset: offset });
                                    }
                                }
                            }
                            Item::Other => {}
                        }
                    }
                    prop_assert_eq!(got, want);
                }
            }
        }
    }

    #[test]
    fn an_open_transaction_holds_back_the_stable_offset_until_its_marker_is_replicated() {
        let mut t = TxnIndex::default();
        t.on_data(7, 10);
        t.on_data(7, 12);
        t.on_data(8, 11);
        assert_eq!(t.last_stable_offset(20), 10);
        t.on_marker(7, 13, false);
        // The abort marker is not below the high watermark yet: still unstable.
        assert_eq!(t.last_stable_offset(13), 10);
        assert_eq!(t.last_stable_offset(14), 11);
        t.on_marker(8, 14, true);
        assert_eq!(t.last_stable_offset(15), 15);
        assert_eq!(
            t.aborted_between(0, 15),
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: 10,
                last_offset: 13
            }]
        );
        assert!(t.aborted_between(14, 20).is_empty());
        t.remove_below(14);
        assert!(t.aborted_between(0, 20).is_empty());
        // A marker for no open transaction (sent again after a failover) changes nothing.
        let before = t.clone();
        t.on_marker(7, 16, true);
        assert_eq!(t, before);
    }
}
