//! Ending transactions: the coordinator writes a commit or abort marker on every partition of a
//! prepared transaction (each by that partition's leader: here, or on another node through
//! [`Service`]), retrying until each is committed, then stores the Complete state. The same
//! path finishes what a previous coordinator left prepared, and what the timer aborts.
//! Before a transaction's first batch on a partition, the partition's leader is told the
//! producer may write there ([`TxnCoordinator::allow`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strom_broker::{Broker, BrokerError};
use strom_storage::markers::Marker;

use crate::state::{TopicPartition, TxnState};
use crate::{TxnCoordinator, TxnError};

/// The node service id of the transaction coordinator's calls to partition leaders.
pub(crate) const SERVICE: u8 = 3;
const CALL_TIMEOUT: Duration = Duration::from_secs(12);
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize, Debug)]
enum Call {
    Allow {
        topic: String,
        partition: i32,
        producer_id: i64,
        epoch: i16,
    },
    Marker {
        topic: String,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    },
    /// To the coordinator: is the partition in the producer's ongoing transaction? With
    /// `add` (transaction version 2), make it so: the partition joins the transaction,
    /// starting it if none is ongoing.
    Verify {
        txn_id: String,
        topic: String,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        #[serde(default)]
        add: bool,
    },
}

/// Runs a [`Call`] on this node (the partition's leader, or for `Verify` the coordinator).
async fn run(c: &Arc<TxnCoordinator>, call: Call) -> Result<(), TxnError> {
    let broker = c.broker()?;
    match call {
        Call::Verify {
            txn_id,
            topic,
            partition,
            producer_id,
            epoch,
            add,
        } => {
            let tp = vec![(topic, partition)];
            let results = if add {
                c.add_to_transaction(&txn_id, producer_id, epoch, tp, false)
                    .await
            } else {
                c.verify_partitions(&txn_id, producer_id, epoch, tp).await
            };
            results.into_iter().next().map_or(
                Err(TxnError::InvalidRequest("no partition".into())),
                |(_, r)| r,
            )
        }
        other => run_on_leader(&broker, other)
            .await
            .map_err(crate::coordinator::unavailable),
    }
}

/// Runs a partition leader's [`Call`] on this node.
async fn run_on_leader(broker: &Broker, call: Call) -> Result<(), BrokerError> {
    match call {
        Call::Verify { .. } => Err(BrokerError::InvalidRequest(
            "verification is the coordinator's".into(),
        )),
        Call::Allow {
            topic,
            partition,
            producer_id,
            epoch,
        } => broker.allow_transaction(&topic, partition, producer_id, epoch),
        Call::Marker {
            topic,
            partition,
            producer_id,
            epoch,
            commit,
            coordinator_epoch,
        } => {
            let marker = Marker {
                producer_id,
                producer_epoch: epoch,
                commit,
                coordinator_epoch,
            };
            broker.write_txn_marker(&topic, partition, marker).await
        }
    }
}

/// Calls from the coordinators (and partition leaders) on other nodes.
pub(crate) struct Service(pub(crate) Weak<TxnCoordinator>);

impl strom_broker::cluster::NodeService for Service {
    fn call(
        &self,
        _from: strom_broker::cluster::NodeId,
        payload: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>> {
        let broker = self.0.clone();
        Box::pin(async move {
            let answer: Result<(), TxnError> =
                match (broker.upgrade(), serde_json::from_slice::<Call>(&payload)) {
                    (None, _) => Err(crate::coordinator::unavailable("shutting down")),
                    (_, Err(e)) => Err(TxnError::InvalidRequest(format!("bad call: {e}"))),
                    (Some(b), Ok(call)) => run(&b, call).await,
                };
            Bytes::from(serde_json::to_vec(&answer).unwrap_or_default())
        })
    }
}

impl TxnCoordinator {
    /// Runs `call` on the leader of `topic`/`partition`.
    async fn on_leader(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        call: Call,
    ) -> Result<(), TxnError> {
        let broker = self.broker()?;
        // Boxed: a coordinator's `Verify { add }` allows the partition on its leader, which
        // may be this node again.
        let Some(cluster) = broker.cluster() else {
            return Box::pin(run(self, call)).await;
        };
        let leader = cluster.with_state(|s| {
            s.topics
                .get(topic)
                .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                .and_then(|a| a.leader)
        });
        match leader {
            None => Err(crate::coordinator::unavailable(format!(
                "{topic}-{partition} has no leader"
            ))),
            Some(node) if node == cluster.node_id() => Box::pin(run(self, call)).await,
            Some(node) => {
                let payload = serde_json::to_vec(&call)
                    .map_err(|e| TxnError::InvalidRequest(e.to_string()))?;
                let answer = cluster
                    .call_service(node, SERVICE, &payload, CALL_TIMEOUT)
                    .await
                    .map_err(crate::coordinator::unavailable)?;
                serde_json::from_slice::<Result<(), TxnError>>(&answer).map_err(|e| {
                    crate::coordinator::unavailable(format!("bad answer from node {node}: {e}"))
                })?
            }
        }
    }

    /// A partition's leader that has no permission for a transactional batch asks the
    /// coordinator (KIP-890's verification): `Ok` if the partition is in the producer's
    /// ongoing transaction in `epoch`. Covers a leader that changed, or restarted, after the
    /// coordinator told its predecessor. With `add` (transaction version 2, whose clients
    /// send no AddPartitionsToTxn) the coordinator adds the partition to the transaction.
    pub async fn verify_for_partition(
        self: &Arc<Self>,
        txn_id: &str,
        tp: &TopicPartition,
        producer_id: i64,
        epoch: i16,
        add: bool,
    ) -> Result<(), TxnError> {
        let call = Call::Verify {
            txn_id: txn_id.to_string(),
            topic: tp.0.clone(),
            partition: tp.1,
            producer_id,
            epoch,
            add,
        };
        let state_partition = Self::partition_of(txn_id) as i32;
        self.on_leader(
            strom_broker::internal::TXN_STATE_TOPIC,
            state_partition,
            call,
        )
        .await
    }

    /// Lets the leader of `tp` take `producer_id`'s transactional batches in `epoch`.
    pub(crate) async fn allow(
        self: &Arc<Self>,
        tp: &TopicPartition,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(), TxnError> {
        let call = Call::Allow {
            topic: tp.0.clone(),
            partition: tp.1,
            producer_id,
            epoch,
        };
        self.on_leader(&tp.0, tp.1, call).await
    }
}

/// Finishes `txn_id`'s prepared transaction in the background (once per id at a time).
pub(crate) fn spawn_completion(c: &Arc<TxnCoordinator>, txn_id: String) {
    if !c
        .completing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(txn_id.clone())
    {
        return;
    }
    let c = Arc::clone(c);
    tokio::spawn(async move {
        complete(&c, &txn_id).await;
        c.completing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&txn_id);
    });
}

async fn complete(c: &Arc<TxnCoordinator>, txn_id: &str) {
    let mut backoff = RETRY_MIN;
    let mut written: BTreeSet<TopicPartition> = BTreeSet::new();
    loop {
        if c.check_owner(txn_id).is_err() {
            // The next coordinator finishes it.
            return;
        }
        let Some(slot) = c.slot(txn_id) else {
            return;
        };
        let Some(meta) = slot.lock().await.clone().filter(|m| m.state.is_preparing()) else {
            return;
        };
        let marker = Marker {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            commit: meta.state == TxnState::PrepareCommit,
            coordinator_epoch: c.coordinator_epoch(txn_id),
        };
        let pending: Vec<&TopicPartition> = meta
            .partitions
            .iter()
            .filter(|tp| !written.contains(*tp))
            .collect();
        let results = futures::future::join_all(pending.iter().map(|tp| {
            let call = Call::Marker {
                topic: tp.0.clone(),
                partition: tp.1,
                producer_id: marker.producer_id,
                epoch: marker.producer_epoch,
                commit: marker.commit,
                coordinator_epoch: marker.coordinator_epoch,
            };
            c.on_leader(&tp.0, tp.1, call)
        }))
        .await;
        let mut failed = 0;
        for (tp, result) in pending.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    written.insert(tp.clone());
                }
                // A deleted topic has nothing left to mark.
                Err(_) if c.broker.upgrade().is_some_and(|b| b.topic(&tp.0).is_none()) => {
                    written.insert(tp.clone());
                }
                Err(e) => {
                    failed += 1;
                    tracing::debug!(txn_id, topic = %tp.0, partition = tp.1, "marker not written yet: {e}");
                }
            }
        }
        if failed == 0 {
            let mut guard = slot.lock().await;
            if guard.as_ref() != Some(&meta) {
                return;
            }
            let done = meta.complete(strom_broker::now_ms());
            match c.persist(txn_id, &done).await {
                Ok(()) => {
                    tracing::debug!(txn_id, state = done.state.name(), "transaction completed");
                    *guard = Some(done);
                    drop(guard);
                    c.completed.notify_waiters();
                    return;
                }
                Err(e) => tracing::debug!(txn_id, "could not store the completion yet: {e}"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// Aborts ongoing transactions past their timeout (fencing their producers), finishes
/// prepared ones nobody is completing (after a take-over), and forgets ids idle past
/// `transactional.id.expiration.ms`.
pub(crate) fn start_timer(c: &Arc<TxnCoordinator>) {
    let weak = Arc::downgrade(c);
    let every = c.config.abort_check_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(c) = weak.upgrade() else {
                return;
            };
            abort_timed_out(&c).await;
        }
    });
}

async fn abort_timed_out(c: &Arc<TxnCoordinator>) {
    let now = strom_broker::now_ms();
    for (id, slot) in c.slots() {
        // A busy id is being changed by a request right now; the next round looks again.
        let Ok(mut guard) = Arc::clone(&slot).try_lock_owned() else {
            continue;
        };
        let Some(meta) = guard.clone() else {
            continue;
        };
        if meta.state.is_preparing() {
            drop(guard);
            spawn_completion(c, id);
            continue;
        }
        if meta.expired(now, c.config.id_expiration_ms) {
            match c.expire(&id, &slot).await {
                Ok(()) => {
                    *guard = None;
                    tracing::info!(txn_id = %id, "transactional id expired");
                }
                Err(e) => tracing::debug!(txn_id = %id, "could not expire the id yet: {e}"),
            }
            continue;
        }
        if !meta.timed_out(now) {
            continue;
        }
        let Ok(aborting) = meta.fence_and_abort(now) else {
            continue;
        };
        match c.persist(&id, &aborting).await {
            Ok(()) => {
                tracing::info!(txn_id = %id, producer_id = meta.producer_id, timeout_ms = meta.timeout_ms, "aborting a transaction past its timeout");
                *guard = Some(aborting);
                drop(guard);
                spawn_completion(c, id);
            }
            Err(e) => {
                tracing::debug!(txn_id = %id, "could not abort a timed-out transaction yet: {e}")
            }
        }
    }
}
