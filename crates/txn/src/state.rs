//! One transactional id's state and the rules that move it, as Kafka's transaction coordinator
//! has them (`TransactionMetadata`): pure functions of the current state, the request and an
//! explicit clock, so every transition is unit-tested without a broker.
//!
//! ```text
//!   Empty ──AddPartitions──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//!     ▲                        │  │                                             │
//!     │                        │  └──EndTxn(abort), timeout, fencing──▶ PrepareAbort ──▶ CompleteAbort
//!     └──InitProducerId (epoch bump)◀──────────────────────────────────────────┘
//! ```
//!
//! With transaction version 2 (KIP-890 part 2: EndTxn v5+, Java clients 4.x) every EndTxn also
//! bumps the epoch, and the client goes on with the new one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::TxnError;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
}

impl TxnState {
    /// Kafka's name (DescribeTransactions, ListTransactions' state filter).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    /// Markers are being written: the next request waits (CONCURRENT_TRANSACTIONS).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A partition as (topic, index).
pub type TopicPartition = (String, i32);

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the ongoing (or ending) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the ongoing transaction began (wall clock ms); -1 when none is.
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
    /// Transaction version 2 (KIP-890 part 2) bumps the epoch at every EndTxn: the epoch the
    /// last ended transaction ran under (-1: none), so a retried EndTxn is told the outcome
    /// instead of being fenced.
    #[serde(default = "unset_epoch")]
    pub last_producer_epoch: i16,
    /// The producer id an exhausted epoch moved the id away from (-1: none): a retried EndTxn
    /// still carries it.
    #[serde(default = "unset_id")]
    pub prev_producer_id: i64,
    /// While a version 2 transaction with an exhausted epoch is being ended: the producer id
    /// the Complete state moves to (-1: none).
    #[serde(default = "unset_id")]
    pub next_producer_id: i64,
}

fn unset_epoch() -> i16 {
    -1
}

fn unset_id() -> i64 {
    -1
}

/// Epochs stop one short of `i16::MAX`, as in Kafka; then the id gets a new producer id.
const LAST_EPOCH: i16 = i16::MAX - 1;

/// What InitProducerId leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Init {
    /// Store this and answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// An ongoing transaction must be aborted first (its producer is fenced by the epoch
    /// bump): store this, finish it, and answer CONCURRENT_TRANSACTIONS so the client retries.
    AbortFirst(TxnMetadata),
}

/// What EndTxn leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Store this, answer, then write the markers.
    Prepare(TxnMetadata),
    /// A retry of an EndTxn that already took effect.
    Done,
}

impl TxnMetadata {
    /// A transactional id seen for the first time.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: now_ms,
            last_producer_epoch: -1,
            prev_producer_id: -1,
            next_producer_id: -1,
        }
    }

    /// The request's producer must be this id's current one.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch < self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if epoch > self.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch);
        }
        Ok(())
    }

    /// InitProducerId for an id already known. `expected` is the (producer id, epoch) the
    /// client says it has (KIP-360, v3+); `fresh_id` hands out a new producer id when the
    /// epochs are exhausted.
    pub fn init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_id: impl FnOnce() -> Result<i64, TxnError>,
        now_ms: i64,
    ) -> Result<Init, TxnError> {
        if let Some((pid, epoch)) = expected {
            if pid != self.producer_id || epoch != self.producer_epoch {
                return Err(TxnError::ProducerFenced);
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => Ok(Init::AbortFirst(self.fence_and_abort(now_ms)?)),
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {
                let (producer_id, producer_epoch) = if self.producer_epoch >= LAST_EPOCH {
                    (fresh_id()?, 0)
                } else {
                    (self.producer_id, self.producer_epoch + 1)
                };
                Ok(Init::Ready(TxnMetadata {
                    producer_id,
                    producer_epoch,
                    timeout_ms,
                    ..TxnMetadata::new(producer_id, timeout_ms, now_ms)
                }))
            }
        }
    }

    /// The ongoing transaction is aborted under a bumped epoch, so its producer's later
    /// requests and batches are refused (InitProducerId of a new instance, or a timeout).
    pub fn fence_and_abort(&self, now_ms: i64) -> Result<TxnMetadata, TxnError> {
        if self.state != TxnState::Ongoing {
            return Err(TxnError::InvalidTxnState(format!(
                "cannot abort a transaction in state {}",
                self.state.name()
            )));
        }
        // An exhausted epoch keeps its value: the abort still ends the transaction, and the
        // next InitProducerId moves the id to a new producer id.
        let epoch = if self.producer_epoch >= LAST_EPOCH {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        Ok(TxnMetadata {
            producer_epoch: epoch,
            state: TxnState::PrepareAbort,
            last_update_ms: now_ms,
            // No client asked for this end, so no request can be a retry of it.
            last_producer_epoch: -1,
            ..self.clone()
        })
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `None` when every partition is in already.
    pub fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        max_partitions: usize,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Dead => {
                return Err(TxnError::InvalidTxnState(
                    "the transactional id is dead".into(),
                ))
            }
            _ => {}
        }
        let ongoing = self.state == TxnState::Ongoing;
        if ongoing && partitions.iter().all(|p| self.partitions.contains(p)) {
            return Ok(None);
        }
        let mut next = self.clone();
        if !ongoing {
            next.partitions.clear();
            next.txn_start_ms = now_ms;
            next.state = TxnState::Ongoing;
        }
        next.partitions.extend(partitions.iter().cloned());
        if next.partitions.len() > max_partitions {
            return Err(TxnError::InvalidTxnState(format!(
                "a transaction may span at most {max_partitions} partitions"
            )));
        }
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn.
    pub fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<End, TxnError> {
        self.check_producer(producer_id, epoch)?;
        let wrong = || {
            Err(TxnError::InvalidTxnState(format!(
                "cannot {} a transaction in state {}",
                if commit { "commit" } else { "abort" },
                self.state.name()
            )))
        };
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Ok(End::Prepare(TxnMetadata {
                state: if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                },
                last_update_ms: now_ms,
                ..self.clone()
            })),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(End::Done),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => wrong(),
        }
    }

    /// EndTxn v5+ (transaction version 2, KIP-890 part 2): ending a transaction bumps the
    /// producer's epoch, which the markers carry, so nothing sent under the old epoch (a
    /// delayed batch, a late EndTxn) can join the next transaction. An abort needs no ongoing
    /// transaction (a client may abort one none of whose requests arrived). A retry of the
    /// last EndTxn is answered with its outcome. `fresh_id` hands out a new producer id when
    /// the epochs are exhausted.
    pub fn end_v2(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fresh_id: impl FnOnce() -> Result<i64, TxnError>,
        now_ms: i64,
    ) -> Result<End, TxnError> {
        let retry = self.last_producer_epoch >= 0
            && epoch == self.last_producer_epoch
            && (producer_id == self.producer_id || producer_id == self.prev_producer_id);
        if retry && self.state != TxnState::Ongoing {
            let ended_so = match self.state {
                TxnState::PrepareCommit | TxnState::CompleteCommit => Some(true),
                TxnState::PrepareAbort | TxnState::CompleteAbort => Some(false),
                _ => None,
            };
            return match (ended_so, self.state.is_preparing()) {
                (Some(c), true) if c == commit => Err(TxnError::ConcurrentTransactions),
                (Some(c), false) if c == commit => Ok(End::Done),
                _ => Err(TxnError::InvalidTxnState(format!(
                    "the transaction ended otherwise ({})",
                    self.state.name()
                ))),
            };
        }
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _)
            | (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) => {}
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                return Err(TxnError::ConcurrentTransactions)
            }
            _ => {
                return Err(TxnError::InvalidTxnState(format!(
                    "cannot {} a transaction in state {}",
                    if commit { "commit" } else { "abort" },
                    self.state.name()
                )))
            }
        }
        let next_producer_id = if self.producer_epoch >= LAST_EPOCH {
            fresh_id()?
        } else {
            -1
        };
        let ongoing = self.state == TxnState::Ongoing;
        Ok(End::Prepare(TxnMetadata {
            state: if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            },
            // At an exhausted epoch the markers still need one the partitions have not seen;
            // the Complete state then moves to `next_producer_id`.
            producer_epoch: self.producer_epoch.saturating_add(1),
            last_producer_epoch: epoch,
            next_producer_id,
            partitions: if ongoing {
                self.partitions.clone()
            } else {
                BTreeSet::new()
            },
            txn_start_ms: if ongoing { self.txn_start_ms } else { -1 },
            last_update_ms: now_ms,
            ..self.clone()
        }))
    }

    /// The producer id and epoch a client goes on with once this (prepared or complete)
    /// transaction has ended.
    pub fn continues_as(&self) -> (i64, i16) {
        if self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }

    /// The markers are all written.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        let (producer_id, producer_epoch) = self.continues_as();
        TxnMetadata {
            state: if self.state == TxnState::PrepareCommit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            },
            producer_id,
            producer_epoch,
            prev_producer_id: if producer_id != self.producer_id {
                self.producer_id
            } else {
                self.prev_producer_id
            },
            next_producer_id: -1,
            partitions: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// Whether the id may be forgotten: no transaction running or ending, no change for
    /// `expiration_ms`.
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead
        ) && now_ms.saturating_sub(self.last_update_ms) > expiration_ms
    }

    /// Whether the ongoing transaction has run past its timeout.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && now_ms.saturating_sub(self.txn_start_ms) > i64::from(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn no_id() -> Result<i64, TxnError> {
        panic!("no fresh id expected")
    }

    fn ongoing() -> TxnMetadata {
        let m = TxnMetadata::new(7, 60_000, NOW);
        m.add_partitions(7, 0, &[tp("a", 0)], 100, NOW)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_transaction_runs_from_empty_to_complete() {
        let m = ongoing();
        assert_eq!(m.state, TxnState::Ongoing);
        assert_eq!(m.txn_start_ms, NOW);
        assert_eq!(
            m.add_partitions(7, 0, &[tp("a", 0)], 100, NOW + 1).unwrap(),
            None
        );
        let m = m
            .add_partitions(7, 0, &[tp("b", 3)], 100, NOW + 1)
            .unwrap()
            .unwrap();
        assert_eq!(m.partitions.len(), 2);
        assert_eq!(m.txn_start_ms, NOW, "adding keeps the start");
        let End::Prepare(p) = m.end(7, 0, true, NOW + 2).unwrap() else {
            panic!("expected prepare")
        };
        assert_eq!(p.state, TxnState::PrepareCommit);
        assert_eq!(
            p.add_partitions(7, 0, &[tp("c", 0)], 100, NOW),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            p.end(7, 0, true, NOW),
            Err(TxnError::ConcurrentTransactions)
        );
        let done = p.complete(NOW + 3);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(done.end(7, 0, true, NOW), Ok(End::Done), "a retried commit");
        assert!(matches!(
            done.end(7, 0, false, NOW),
            Err(TxnError::InvalidTxnState(_))
        ));
        // The next transaction starts afresh.
        let next = done
            .add_partitions(7, 0, &[tp("z", 1)], 100, NOW + 9)
            .unwrap()
            .unwrap();
        assert_eq!(next.partitions.len(), 1);
        assert_eq!(next.txn_start_ms, NOW + 9);
    }

    #[test]
    fn init_bumps_the_epoch_and_fences_an_ongoing_transaction() {
        let m = ongoing();
        let Init::AbortFirst(a) = m.init(60_000, None, no_id, NOW).unwrap() else {
            panic!("expected an abort first")
        };
        assert_eq!((a.state, a.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(a.partitions, m.partitions, "markers go to every partition");
        // The old producer is fenced everywhere.
        assert_eq!(
            a.add_partitions(7, 0, &[tp("a", 0)], 100, NOW),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            a.init(60_000, None, no_id, NOW),
            Err(TxnError::ConcurrentTransactions)
        );
        let Init::Ready(r) = a.complete(NOW).init(30_000, None, no_id, NOW).unwrap() else {
            panic!("expected ready")
        };
        assert_eq!(
            (r.producer_id, r.producer_epoch, r.state, r.timeout_ms),
            (7, 2, TxnState::Empty, 30_000)
        );
    }

    #[test]
    fn an_exhausted_epoch_moves_to_a_new_producer_id() {
        let mut m = TxnMetadata::new(7, 1000, NOW);
        m.producer_epoch = LAST_EPOCH;
        let Init::Ready(r) = m.init(1000, None, || Ok(99), NOW).unwrap() else {
            panic!("expected ready")
        };
        assert_eq!((r.producer_id, r.producer_epoch), (99, 0));
    }

    #[test]
    fn a_stale_or_foreign_producer_is_refused() {
        let m = ongoing();
        assert_eq!(
            m.end(8, 0, true, NOW),
            Err(TxnError::InvalidProducerIdMapping)
        );
        let bumped = TxnMetadata {
            producer_epoch: 3,
            ..m.clone()
        };
        assert_eq!(bumped.end(7, 2, true, NOW), Err(TxnError::ProducerFenced));
        assert_eq!(
            bumped.end(7, 4, true, NOW),
            Err(TxnError::InvalidProducerEpoch)
        );
        // KIP-360: a client naming an epoch that is not the current one is fenced.
        assert_eq!(
            bumped.init(1000, Some((7, 2)), no_id, NOW),
            Err(TxnError::ProducerFenced)
        );
        let empty = TxnMetadata::new(7, 1000, NOW);
        assert!(matches!(
            empty.end(7, 0, true, NOW),
            Err(TxnError::InvalidTxnState(_))
        ));
    }

    #[test]
    fn timeouts_and_limits() {
        let m = ongoing();
        assert!(!m.timed_out(NOW + 60_000));
        assert!(m.timed_out(NOW + 60_001));
        assert!(!m.complete(NOW).timed_out(NOW + 1_000_000));
        assert!(
            !m.expired(NOW + 1_000_000, 1000),
            "an ongoing transaction never expires"
        );
        assert!(!m.complete(NOW).expired(NOW + 1000, 1000));
        assert!(m.complete(NOW).expired(NOW + 1001, 1000));
        let many: Vec<TopicPartition> = (0..5).map(|i| tp("t", i)).collect();
        assert!(matches!(
            m.add_partitions(7, 0, &many, 5, NOW),
            Err(TxnError::InvalidTxnState(_))
        ));
    }

    #[test]
    fn version_2_bumps_the_epoch_at_every_end() {
        let m = ongoing();
        let End::Prepare(p) = m.end_v2(7, 0, true, no_id, NOW).unwrap() else {
            panic!("expected prepare")
        };
        assert_eq!((p.state, p.producer_epoch), (TxnState::PrepareCommit, 1));
        assert_eq!(p.partitions, m.partitions, "markers go to every partition");
        assert_eq!(p.continues_as(), (7, 1));
        // A retry while the markers are written waits; the other outcome is refused.
        assert_eq!(
            p.end_v2(7, 0, true, no_id, NOW),
            Err(TxnError::ConcurrentTransactions)
        );
        assert!(matches!(
            p.end_v2(7, 0, false, no_id, NOW),
            Err(TxnError::InvalidTxnState(_))
        ));
        let done = p.complete(NOW);
        assert_eq!((done.producer_id, done.producer_epoch), (7, 1));
        assert_eq!(done.end_v2(7, 0, true, no_id, NOW), Ok(End::Done));
        // The next transaction runs under epoch 1: the old epoch is fenced everywhere.
        let next = done
            .add_partitions(7, 1, &[tp("b", 0)], 100, NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            next.end_v2(7, 0, true, no_id, NOW),
            Err(TxnError::ProducerFenced),
            "a late EndTxn of the previous transaction"
        );
        assert_eq!(
            next.add_partitions(7, 0, &[tp("c", 0)], 100, NOW),
            Err(TxnError::ProducerFenced)
        );
        // A commit needs a transaction; an abort does not (nothing reached the broker).
        assert!(matches!(
            done.end_v2(7, 1, true, no_id, NOW),
            Err(TxnError::InvalidTxnState(_))
        ));
        let End::Prepare(a) = done.end_v2(7, 1, false, no_id, NOW).unwrap() else {
            panic!("expected prepare")
        };
        assert_eq!(
            (a.state, a.producer_epoch, a.partitions.len()),
            (TxnState::PrepareAbort, 2, 0)
        );
    }

    #[test]
    fn version_2_moves_an_exhausted_epoch_to_a_new_producer_id() {
        let mut m = ongoing();
        m.producer_epoch = LAST_EPOCH;
        let End::Prepare(p) = m.end_v2(7, LAST_EPOCH, false, || Ok(99), NOW).unwrap() else {
            panic!("expected prepare")
        };
        assert_eq!(
            (p.producer_id, p.producer_epoch),
            (7, i16::MAX),
            "markers carry an epoch the partitions have not seen"
        );
        assert_eq!(p.continues_as(), (99, 0));
        let done = p.complete(NOW);
        assert_eq!((done.producer_id, done.producer_epoch), (99, 0));
        assert_eq!(
            done.end_v2(7, LAST_EPOCH, false, no_id, NOW),
            Ok(End::Done),
            "a retry under the old producer id"
        );
        assert_eq!(
            done.end_v2(7, LAST_EPOCH - 1, false, no_id, NOW),
            Err(TxnError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn a_timeout_abort_is_no_request_to_retry() {
        let m = ongoing();
        let End::Prepare(p) = m.end_v2(7, 0, true, no_id, NOW).unwrap() else {
            panic!("expected prepare")
        };
        let next = p
            .complete(NOW)
            .add_partitions(7, 1, &[tp("a", 0)], 100, NOW)
            .unwrap()
            .unwrap();
        let fenced = next.fence_and_abort(NOW).unwrap().complete(NOW);
        assert_eq!(fenced.producer_epoch, 2);
        assert_eq!(
            fenced.end_v2(7, 1, false, no_id, NOW),
            Err(TxnError::ProducerFenced)
        );
    }
}
