//! The transaction coordinator's requests. Each takes the id's lock, checks the request
//! against the stored state (`state`), stores the new state and only then changes memory and
//! answers.

use std::sync::Arc;

use strom_broker::internal::OFFSETS_TOPIC;

use crate::state::{End, Init, TopicPartition, TxnMetadata, TxnState};
use crate::{TxnCoordinator, TxnError};

/// DescribeTransactions' answer for one id.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    pub txn_id: String,
    pub result: Result<TxnMetadata, TxnError>,
}

/// ListTransactions' answer for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub txn_id: String,
    pub producer_id: i64,
    pub state: TxnState,
    /// When the ongoing transaction began; -1 when none is.
    pub txn_start_ms: i64,
}

/// How long a request waits for its id's previous transaction to finish ending.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Per partition of AddPartitionsToTxn, in request order.
pub type AddResults = Vec<(TopicPartition, Result<(), TxnError>)>;

impl TxnCoordinator {
    /// InitProducerId with a transactional id: the id's producer id and a new epoch, fencing
    /// every older one. An ongoing transaction is aborted first (CONCURRENT_TRANSACTIONS: the
    /// client retries once the markers are written).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        txn_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if txn_id.is_empty() {
            return Err(TxnError::InvalidRequest("empty transactional id".into()));
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout(timeout_ms));
        }
        self.check_owner(txn_id)?;
        let slot = self.slot_or_create(txn_id)?;
        let mut guard = self.lock_settled(&slot).await;
        self.check_owner(txn_id)?;
        let fresh_id = || self.fresh_producer_id();
        let now = strom_broker::now_ms();
        let (next, abort_first) = match guard.as_ref() {
            None => (TxnMetadata::new(fresh_id()?, timeout_ms, now), false),
            Some(m) => match m.init(timeout_ms, expected, fresh_id, now)? {
                Init::Ready(next) => (next, false),
                Init::AbortFirst(next) => (next, true),
            },
        };
        self.persist(txn_id, &next).await?;
        let answer = (next.producer_id, next.producer_epoch);
        tracing::debug!(
            txn_id,
            producer_id = answer.0,
            epoch = answer.1,
            abort_first,
            "InitProducerId"
        );
        *guard = Some(next);
        drop(guard);
        if abort_first {
            crate::markers::spawn_completion(self, txn_id.to_string());
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(answer)
    }

    /// AddPartitionsToTxn: the partitions join the producer's transaction (starting it), and
    /// each partition's leader learns it may take the producer's transactional batches.
    pub async fn add_partitions(
        self: &Arc<Self>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> AddResults {
        self.add_to_transaction(txn_id, producer_id, epoch, partitions, true)
            .await
    }

    /// The partitions join the producer's transaction; with `allow_leaders` (the client's
    /// request, whose batches follow its answer) their leaders are told first. A leader or
    /// group coordinator asking for itself (transaction version 2) is not: the leader takes
    /// the permission with the batches it asked for.
    pub(crate) async fn add_to_transaction(
        self: &Arc<Self>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
        allow_leaders: bool,
    ) -> AddResults {
        let all = |e: TxnError, parts: Vec<TopicPartition>| -> AddResults {
            parts.into_iter().map(|p| (p, Err(e.clone()))).collect()
        };
        if let Err(e) = self.check_owner(txn_id) {
            return all(e, partitions);
        }
        let Some(slot) = self.slot(txn_id) else {
            return all(TxnError::InvalidProducerIdMapping, partitions);
        };
        let mut guard = self.lock_settled(&slot).await;
        let Some(meta) = guard.clone() else {
            return all(TxnError::InvalidProducerIdMapping, partitions);
        };
        if let Err(e) = self.check_owner(txn_id) {
            return all(e, partitions);
        }
        let broker = match self.broker() {
            Ok(b) => b,
            Err(e) => return all(e, partitions),
        };
        let unknown: Vec<bool> = partitions
            .iter()
            .map(|(t, p)| broker.topic(t).and_then(|t| t.partition(*p)).is_none())
            .collect();
        if unknown.iter().any(|u| *u) {
            // As Kafka: the unknown ones fail, the others were not attempted.
            return partitions
                .into_iter()
                .zip(unknown)
                .map(|(p, u)| {
                    let e = if u {
                        TxnError::UnknownTopicOrPartition
                    } else {
                        TxnError::OperationNotAttempted
                    };
                    (p, Err(e))
                })
                .collect();
        }
        let now = strom_broker::now_ms();
        let next = match meta.add_partitions(
            producer_id,
            epoch,
            &partitions,
            self.config.max_partitions,
            now,
        ) {
            Ok(None) => return partitions.into_iter().map(|p| (p, Ok(()))).collect(),
            Ok(Some(next)) => next,
            Err(e) => return all(e, partitions),
        };
        // The leaders first: a batch may arrive as soon as the client has its answer.
        let new: Vec<&TopicPartition> = partitions
            .iter()
            .filter(|_| allow_leaders)
            .filter(|p| meta.state != TxnState::Ongoing || !meta.partitions.contains(*p))
            .collect();
        let allowed =
            futures::future::join_all(new.iter().map(|tp| self.allow(tp, producer_id, epoch)))
                .await;
        if let Some(e) = allowed.iter().find_map(|r| r.as_ref().err()) {
            tracing::debug!(
                txn_id,
                "a partition leader cannot take the transaction yet: {e}"
            );
            // Retriable for the client: the partition's leader is moving or not known yet.
            return all(TxnError::UnknownTopicOrPartition, partitions);
        }
        if let Err(e) = self.persist(txn_id, &next).await {
            return all(e, partitions);
        }
        *guard = Some(next);
        partitions.into_iter().map(|p| (p, Ok(()))).collect()
    }

    /// The id's lock, once its previous transaction finished ending (or after `SETTLE_WAIT`:
    /// then the caller answers CONCURRENT_TRANSACTIONS and the client retries). The next
    /// transaction's first AddPartitionsToTxn usually arrives while the markers of the last one
    /// are being written.
    async fn lock_settled<'a>(
        &self,
        slot: &'a crate::coordinator::Slot,
    ) -> tokio::sync::MutexGuard<'a, Option<TxnMetadata>> {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let completed = self.completed.notified();
            tokio::pin!(completed);
            // Registered before the state is looked at, so a completion in between wakes us.
            completed.as_mut().enable();
            let guard = slot.lock().await;
            let preparing = guard.as_ref().is_some_and(|m| m.state.is_preparing());
            if !preparing || tokio::time::Instant::now() >= deadline {
                return guard;
            }
            drop(guard);
            if tokio::time::timeout_at(deadline, completed).await.is_err() {
                return slot.lock().await;
            }
        }
    }

    /// AddPartitionsToTxn v4+ with `verify_only` (KIP-890): whether each partition is in the
    /// producer's ongoing transaction, changing nothing.
    pub async fn verify_partitions(
        &self,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> AddResults {
        let meta = match self.check_owner(txn_id) {
            Err(e) => Err(e),
            Ok(()) => match self.slot(txn_id) {
                None => Err(TxnError::InvalidProducerIdMapping),
                Some(slot) => slot
                    .lock()
                    .await
                    .clone()
                    .ok_or(TxnError::InvalidProducerIdMapping),
            },
        };
        let meta = meta.and_then(|m| m.check_producer(producer_id, epoch).map(|()| m));
        partitions
            .into_iter()
            .map(|p| {
                let r = match &meta {
                    Err(e) => Err(e.clone()),
                    Ok(m) if m.state == TxnState::Ongoing && m.partitions.contains(&p) => Ok(()),
                    Ok(_) => Err(TxnError::InvalidTxnState(
                        "the partition is not in the ongoing transaction".into(),
                    )),
                };
                (p, r)
            })
            .collect()
    }

    /// AddOffsetsToTxn: the group's partition of `__consumer_offsets` joins the transaction,
    /// so its commit marker makes the group's transactional offsets visible.
    pub async fn add_offsets(
        self: &Arc<Self>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
    ) -> Result<(), TxnError> {
        // The client's request: only the id's coordinator answers it (NOT_COORDINATOR sends
        // the client to look again), which then adds the partition as a group coordinator's
        // request would.
        self.check_owner(txn_id)?;
        self.join_offsets_partition(txn_id, producer_id, epoch, group_id)
            .await
    }

    /// The partition of `__consumer_offsets` holding `group_id`'s offsets (created if need be).
    fn offsets_partition(&self, group_id: &str) -> Result<TopicPartition, TxnError> {
        let broker = self.broker()?;
        strom_broker::group::offsets_topic(&broker).map_err(crate::coordinator::unavailable)?;
        Ok((
            OFFSETS_TOPIC.to_string(),
            strom_broker::group::offsets_partition(group_id) as i32,
        ))
    }

    /// TxnOffsetCommit v5+ (transaction version 2) at the group coordinator, which may be on
    /// another node than the transaction's: the group's partition of `__consumer_offsets` joins
    /// the producer's transaction, as AddOffsetsToTxn would have made it.
    pub async fn join_offsets_partition(
        self: &Arc<Self>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        group_id: &str,
    ) -> Result<(), TxnError> {
        let tp = self.offsets_partition(group_id)?;
        self.verify_for_partition(txn_id, &tp, producer_id, epoch, true)
            .await
    }

    /// EndTxn: the transaction is prepared (stored) before the answer; its markers follow.
    /// `bump_epoch` is transaction version 2 (EndTxn v5+): the answer is the producer id and
    /// epoch the client goes on with.
    pub async fn end_txn(
        self: &Arc<Self>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        bump_epoch: bool,
    ) -> Result<(i64, i16), TxnError> {
        self.check_owner(txn_id)?;
        let slot = self
            .slot(txn_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        let mut guard = slot.lock().await;
        let meta = guard.clone().ok_or(TxnError::InvalidProducerIdMapping)?;
        self.check_owner(txn_id)?;
        let now = strom_broker::now_ms();
        let end = if bump_epoch {
            meta.end_v2(producer_id, epoch, commit, || self.fresh_producer_id(), now)?
        } else {
            meta.end(producer_id, epoch, commit, now)?
        };
        match end {
            End::Done => Ok(meta.continues_as()),
            End::Prepare(next) => {
                self.persist(txn_id, &next).await?;
                let answer = next.continues_as();
                *guard = Some(next);
                drop(guard);
                crate::markers::spawn_completion(self, txn_id.to_string());
                Ok(answer)
            }
        }
    }

    /// A producer id never handed out before.
    fn fresh_producer_id(&self) -> Result<i64, TxnError> {
        self.broker()?
            .init_producer_id(None)
            .map(|(id, _)| id)
            .map_err(crate::coordinator::unavailable)
    }

    /// DescribeTransactions.
    pub async fn describe(&self, ids: &[String]) -> Vec<TxnDescription> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let result = match self.check_owner(id) {
                Err(e) => Err(e),
                Ok(()) => match self.slot(id) {
                    None => Err(TxnError::TransactionalIdNotFound),
                    Some(slot) => slot
                        .lock()
                        .await
                        .clone()
                        .ok_or(TxnError::TransactionalIdNotFound),
                },
            };
            out.push(TxnDescription {
                txn_id: id.clone(),
                result,
            });
        }
        out
    }

    /// ListTransactions: the ids this node coordinates, filtered by state names and producer
    /// ids (an empty filter passes everything).
    pub async fn list(&self, states: &[String], producer_ids: &[i64]) -> Vec<TxnListing> {
        let mut out = Vec::new();
        for (id, slot) in self.slots() {
            let Some(meta) = slot.lock().await.clone() else {
                continue;
            };
            if !states.is_empty() && !states.iter().any(|s| s == meta.state.name()) {
                continue;
            }
            if !producer_ids.is_empty() && !producer_ids.contains(&meta.producer_id) {
                continue;
            }
            out.push(TxnListing {
                txn_id: id,
                producer_id: meta.producer_id,
                state: meta.state,
                txn_start_ms: meta.txn_start_ms,
            });
        }
        out
    }
}
