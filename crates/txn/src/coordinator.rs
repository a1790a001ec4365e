//! The transactional ids this node coordinates, and how their state gets to and from
//! `__transaction_state`.
//!
//! Every change is one record appended to the id's partition and acknowledged once committed
//! (fsynced on a majority); memory changes only after that, under the id's lock, so requests
//! of one id are applied one at a time in log order. A single node coordinates every id and
//! loads the whole topic on start; in a cluster the leader of an id's partition coordinates
//! it, loading the partition when it takes over (`PartitionCoordinator`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use strom_broker::internal::{self, TXN_STATE_TOPIC};
use strom_broker::{Broker, BrokerError, Partition};
use strom_storage::{records, FirstBatch};

use crate::record;
use crate::state::TxnMetadata;
use crate::TxnError;

#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest timeout a producer may ask for.
    pub max_timeout_ms: i32,
    /// Transactional ids one coordinator holds at most; a new id beyond it is refused.
    pub max_ids: usize,
    /// Partitions one transaction may span at most.
    pub max_partitions: usize,
    /// How often ongoing transactions are checked against their timeout (Kafka's
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, 10 s there).
    pub abort_check_interval: Duration,
    /// `transactional.id.expiration.ms`: an id with no transaction running and no request for
    /// this long is forgotten (a tombstone in `__transaction_state`).
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 15 * 60 * 1000,
            max_ids: 100_000,
            max_partitions: 10_000,
            abort_check_interval: Duration::from_secs(1),
            id_expiration_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// How long an append to `__transaction_state` may take to commit.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per step of a replay.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// One id's metadata (`None` until its first InitProducerId is stored), under an async lock
/// held across the append that changes it.
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<TxnMetadata>>>;

/// A `__transaction_state` partition this node leads: the epoch it took over in, and whether
/// its ids are loaded yet.
struct Owned {
    epoch: i32,
    partition: Arc<Partition>,
    loaded: bool,
}

pub struct TxnCoordinator {
    pub(crate) broker: Weak<Broker>,
    pub(crate) config: TxnConfig,
    pub(crate) ids: RwLock<HashMap<String, Slot>>,
    /// Cluster mode: the partitions this node leads. `None`: a single node, which owns all.
    owned: RwLock<Option<HashMap<usize, Owned>>>,
    /// Ids whose markers are being written right now (one writer per id).
    pub(crate) completing: Mutex<HashSet<String>>,
    /// Woken whenever a transaction completes: a request that finds its id's previous
    /// transaction still ending waits for this a little before answering
    /// CONCURRENT_TRANSACTIONS (librdkafka retries that only after 20 ms).
    pub(crate) completed: tokio::sync::Notify,
}

impl TxnCoordinator {
    /// A coordinator for `broker`. On a single node it loads `__transaction_state` now; in a
    /// cluster it serves the partitions this node leads, from now on.
    pub fn start(
        broker: &Arc<Broker>,
        config: TxnConfig,
    ) -> Result<Arc<TxnCoordinator>, BrokerError> {
        let c = Arc::new(TxnCoordinator {
            broker: Arc::downgrade(broker),
            config,
            ids: RwLock::new(HashMap::new()),
            owned: RwLock::new(None),
            completing: Mutex::new(HashSet::new()),
            completed: tokio::sync::Notify::new(),
        });
        match broker.cluster() {
            Some(cluster) => {
                *c.owned.write().unwrap_or_else(|p| p.into_inner()) = Some(HashMap::new());
                cluster.register_service(
                    crate::markers::SERVICE,
                    Arc::new(crate::markers::Service(Arc::downgrade(&c))),
                );
                cluster.register_coordinator(
                    TXN_STATE_TOPIC,
                    Arc::new(OnTxnState(Arc::downgrade(&c))),
                );
            }
            None => {
                if let Some(topic) = broker.topic(TXN_STATE_TOPIC) {
                    let mut loaded = BTreeMap::new();
                    for p in topic.partitions() {
                        replay(&p, &mut loaded)?;
                    }
                    c.register(loaded, |_| true);
                }
            }
        }
        crate::markers::start_timer(&c);
        Ok(c)
    }

    pub(crate) fn broker(&self) -> Result<Arc<Broker>, TxnError> {
        self.broker
            .upgrade()
            .ok_or_else(|| TxnError::CoordinatorNotAvailable("shutting down".into()))
    }

    /// The partition of `__transaction_state` holding `txn_id`.
    pub fn partition_of(txn_id: &str) -> usize {
        internal::partition_for(txn_id, txn_state_partitions())
    }

    /// `Ok` if this node coordinates `txn_id` now.
    pub fn check_owner(&self, txn_id: &str) -> Result<(), TxnError> {
        let owned = self.owned.read().unwrap_or_else(|p| p.into_inner());
        let Some(owned) = owned.as_ref() else {
            return Ok(());
        };
        match owned.get(&Self::partition_of(txn_id)) {
            Some(o)
                if o.partition.ensure_leader().is_ok() && o.partition.leader_epoch() == o.epoch =>
            {
                if o.loaded {
                    Ok(())
                } else {
                    Err(TxnError::LoadInProgress)
                }
            }
            _ => Err(TxnError::NotCoordinator),
        }
    }

    /// The epoch markers carry: the leader epoch of the id's partition (0 on a single node).
    pub(crate) fn coordinator_epoch(&self, txn_id: &str) -> i32 {
        let owned = self.owned.read().unwrap_or_else(|p| p.into_inner());
        owned
            .as_ref()
            .and_then(|o| o.get(&Self::partition_of(txn_id)))
            .map_or(0, |o| o.epoch)
    }

    pub(crate) fn slot(&self, txn_id: &str) -> Option<Slot> {
        self.ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(txn_id)
            .cloned()
    }

    /// The id's slot, created empty for a new id (within `max_ids`).
    pub(crate) fn slot_or_create(&self, txn_id: &str) -> Result<Slot, TxnError> {
        if let Some(s) = self.slot(txn_id) {
            return Ok(s);
        }
        let mut ids = self.ids.write().unwrap_or_else(|p| p.into_inner());
        if !ids.contains_key(txn_id) && ids.len() >= self.config.max_ids {
            return Err(TxnError::InvalidRequest(format!(
                "this coordinator holds {} transactional ids already",
                self.config.max_ids
            )));
        }
        Ok(Arc::clone(ids.entry(txn_id.to_string()).or_default()))
    }

    /// Every id this node coordinates now.
    pub(crate) fn slots(&self) -> Vec<(String, Slot)> {
        let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(String, Slot)> = ids
            .iter()
            .filter(|(id, _)| self.check_owner(id).is_ok())
            .map(|(id, s)| (id.clone(), Arc::clone(s)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Appends `meta` for `txn_id` and waits until it is committed. The caller holds the id's
    /// lock and updates memory only after this succeeds.
    pub(crate) async fn persist(&self, txn_id: &str, meta: &TxnMetadata) -> Result<(), TxnError> {
        self.append(txn_id, Some(meta)).await
    }

    /// Forgets `txn_id` (its lock held): a tombstone, then memory.
    pub(crate) async fn expire(&self, txn_id: &str, slot: &Slot) -> Result<(), TxnError> {
        self.append(txn_id, None).await?;
        let mut ids = self.ids.write().unwrap_or_else(|p| p.into_inner());
        if ids.get(txn_id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            ids.remove(txn_id);
        }
        Ok(())
    }

    async fn append(&self, txn_id: &str, meta: Option<&TxnMetadata>) -> Result<(), TxnError> {
        self.check_owner(txn_id)?;
        let broker = self.broker()?;
        let topic = internal::ensure(&broker, TXN_STATE_TOPIC).map_err(unavailable)?;
        let p = topic
            .partition(Self::partition_of(txn_id) as i32)
            .ok_or(TxnError::NotCoordinator)?;
        let batch = records::encode_batch(&[record::encode(txn_id, meta)], strom_broker::now_ms());
        let r = p.append(&[batch]).map_err(|e| match e {
            BrokerError::NotLeader => TxnError::NotCoordinator,
            e => unavailable(e),
        })?;
        match tokio::time::timeout(WRITE_TIMEOUT, p.wait_ack(&r, -1)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(TxnError::NotCoordinator),
            Err(_) => Err(TxnError::CoordinatorNotAvailable(
                "the transaction log did not commit in time".into(),
            )),
        }
    }

    /// Puts what a replay found in place of the ids of the partitions `mine` accepts, and
    /// finishes the transactions it left prepared.
    fn register(
        self: &Arc<Self>,
        loaded: BTreeMap<String, TxnMetadata>,
        mine: impl Fn(usize) -> bool,
    ) {
        let mut ids = self.ids.write().unwrap_or_else(|p| p.into_inner());
        ids.retain(|id, _| !mine(Self::partition_of(id)));
        let mut prepared = Vec::new();
        for (id, meta) in loaded {
            if meta.state.is_preparing() {
                prepared.push(id.clone());
            }
            ids.insert(id, Arc::new(tokio::sync::Mutex::new(Some(meta))));
        }
        drop(ids);
        for id in prepared {
            crate::markers::spawn_completion(self, id);
        }
    }

    fn take_over(
        self: &Arc<Self>,
        index: usize,
        p: Arc<Partition>,
        epoch: i32,
    ) -> Result<(), BrokerError> {
        self.owned_mut(|o| {
            o.insert(
                index,
                Owned {
                    epoch,
                    partition: Arc::clone(&p),
                    loaded: false,
                },
            );
        });
        let mut loaded = BTreeMap::new();
        let records = replay(&p, &mut loaded)?;
        if p.leader_epoch() != epoch {
            return Ok(());
        }
        // Memory of the ids is set before they are served: `loaded` flips last.
        self.register(loaded, |i| i == index);
        self.owned_mut(|o| {
            if let Some(owned) = o.get_mut(&index).filter(|o| o.epoch == epoch) {
                owned.loaded = true;
            }
        });
        tracing::info!(partition = ?p, epoch, records, "coordinating the transactions of this partition");
        Ok(())
    }

    fn give_up(&self, index: usize) {
        if self.owned_mut(|o| o.remove(&index).is_some()) {
            self.ids
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|id, _| Self::partition_of(id) != index);
            tracing::info!(
                index,
                "no longer coordinating the transactions of this partition"
            );
        }
    }

    fn owned_mut<R: Default>(&self, f: impl FnOnce(&mut HashMap<usize, Owned>) -> R) -> R {
        match self
            .owned
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(o) => f(o),
            None => R::default(),
        }
    }
}

fn txn_state_partitions() -> usize {
    internal::INTERNAL_TOPICS
        .iter()
        .find(|t| t.name == TXN_STATE_TOPIC)
        .map_or(1, |t| t.partitions as usize)
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> TxnError {
    TxnError::CoordinatorNotAvailable(e.to_string())
}

/// The coordinator as the cluster sees it: served where `__transaction_state` is led.
struct OnTxnState(Weak<TxnCoordinator>);

impl strom_broker::cluster::PartitionCoordinator for OnTxnState {
    fn take_over(&self, index: usize, p: Arc<Partition>, epoch: i32) -> Result<(), BrokerError> {
        match self.0.upgrade() {
            Some(c) => c.take_over(index, p, epoch),
            None => Ok(()),
        }
    }

    fn give_up(&self, index: usize) {
        if let Some(c) = self.0.upgrade() {
            c.give_up(index);
        }
    }
}

/// Replays one partition of `__transaction_state` into `ids`, the last record of an id
/// winning; returns how many records were applied. Records this build cannot read are
/// skipped with a warning.
fn replay(p: &Partition, ids: &mut BTreeMap<String, TxnMetadata>) -> Result<usize, BrokerError> {
    let mut offset = p.log_start_offset();
    let end = p.high_watermark();
    let mut applied = 0;
    while offset < end {
        let data = p.read(offset, REPLAY_READ_BYTES, FirstBatch::Whole)?;
        let batches = strom_storage::batch::split(&data.records)?;
        let Some(last) = batches.last() else {
            break;
        };
        offset = strom_storage::batch::BatchHeader::parse(last)?.last_offset() as u64 + 1;
        for b in &batches {
            if strom_storage::batch::BatchHeader::parse(b).is_ok_and(|h| h.is_control()) {
                continue;
            }
            let kvs = match records::decode_batch(b) {
                Ok((_, kvs)) => kvs,
                Err(e) => {
                    tracing::warn!(partition = ?p, "skipping a batch of {TXN_STATE_TOPIC}: {e}");
                    continue;
                }
            };
            for kv in kvs {
                match record::decode(&kv) {
                    Some((id, Some(meta))) => {
                        ids.insert(id, meta);
                    }
                    Some((id, None)) => {
                        ids.remove(&id);
                    }
                    None => {
                        tracing::warn!(partition = ?p, "skipping a record of {TXN_STATE_TOPIC} it cannot read");
                        continue;
                    }
                }
                applied += 1;
            }
        }
    }
    Ok(applied)
}
