//! The registry of topics and the operations that change it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use uuid::Uuid;

use crate::flusher::Flusher;
use crate::metadata::{MetadataStore, TopicRecord};
use crate::partition::Partition;
use crate::producer_ids::ProducerIds;
use crate::topic::{validate_topic_name, Topic, TopicSettings};
use crate::{BrokerConfig, BrokerError};

/// Low bits of a cluster-wide producer id that name the node that issued it (node ids < 1024).
const PRODUCER_ID_NODE_BITS: u32 = 10;
const NODE_MASK: i64 = (1 << PRODUCER_ID_NODE_BITS) - 1;

/// Partitions one topic may have on this node; each costs open files and memory.
pub const PARTITIONS_MAX: i32 = 10_000;

pub struct Broker {
    config: BrokerConfig,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    meta: MetadataStore,
    flusher: Arc<Flusher>,
    flusher_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Serialises topic creation, deletion and growth; reads of the registry never wait on it.
    admin: Mutex<()>,
    stopping: AtomicBool,
    /// Consumer groups and their committed offsets (in the `__consumer_offsets` topic).
    groups: crate::group::Coordinator,
    producer_ids: ProducerIds,
    /// Cluster mode: the controller, the transport and the replicas this node holds.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Tiered storage (`--tier-url`): the object store and its read cache.
    tier: Option<Arc<strom_tier::Tier>>,
}

impl Broker {
    /// Opens the data directory, recovers every partition and starts the flusher.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        let meta = MetadataStore::open(&config.data_dir)?;
        let cluster_id = meta.cluster_id()?;
        let producer_ids = ProducerIds::open(&config.data_dir.join("meta"))?;
        let (flusher, flusher_threads) = Flusher::start(config.flush).map_err(|e| {
            BrokerError::Storage(strom_storage::StorageError::Io {
                path: config.data_dir.clone(),
                source: e,
            })
        })?;
        let groups = crate::group::Coordinator::new(config.coordinator());
        let tier = crate::tiering::open_tier(&config)?;
        let broker = Broker {
            config,
            cluster_id,
            topics: RwLock::new(BTreeMap::new()),
            meta,
            flusher,
            flusher_threads: Mutex::new(flusher_threads),
            admin: Mutex::new(()),
            stopping: AtomicBool::new(false),
            groups,
            producer_ids,
            cluster: std::sync::OnceLock::new(),
            tier,
        };
        for (name, rec) in broker.meta.load_all()? {
            let topic = broker.open_topic(&name, &rec)?;
            tracing::info!(topic = %name, partitions = rec.partitions, "recovered topic");
            broker.topics_mut().insert(name.clone(), topic);
            if crate::internal::is_internal_topic(&name) {
                if let Some(config) = crate::internal::upgraded(&rec.config) {
                    tracing::info!(topic = %name, "internal topic from before compaction: now compacted");
                    broker.alter_topic_config(&name, config, false)?;
                }
            }
        }
        broker.groups.load(&broker)?;
        Ok(Arc::new(broker))
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Joins (or forms) the cluster described by `config`: from now on topics come from the
    /// controller and every partition is a Raft group.
    pub async fn start_cluster(
        self: &Arc<Self>,
        config: crate::cluster::ClusterConfig,
    ) -> Result<Arc<crate::cluster::Cluster>, BrokerError> {
        self.groups.enable_cluster_mode();
        let cluster = crate::cluster::Cluster::start(self, config).await?;
        cluster.register_coordinator(
            crate::group::OFFSETS_TOPIC,
            Arc::new(crate::group::GroupsOnOffsets(Arc::downgrade(self))),
        );
        let _ = self.cluster.set(Arc::clone(&cluster));
        Ok(cluster)
    }

    /// `Some` in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    pub(crate) fn flusher(&self) -> Arc<Flusher> {
        Arc::clone(&self.flusher)
    }

    /// The registry entry for a topic the controller knows, created on first sight and grown
    /// with its partition count. Partitions are filled in as this node opens its replicas.
    pub(crate) fn register_cluster_topic(
        &self,
        t: &crate::cluster::TopicState,
        config: &crate::TopicConfig,
    ) -> Arc<Topic> {
        let settings = TopicSettings {
            overrides: t.config.clone(),
            config: config.clone(),
        };
        let existing = self.topic(&t.name).filter(|e| e.id == t.id);
        let topic = match existing {
            Some(e) => {
                // AlterConfigs went through the controller: every node takes the new settings.
                e.set_settings(settings);
                e
            }
            None => {
                let topic = Arc::new(Topic::new(&t.name, t.id, settings, Vec::new()));
                self.topics_mut().insert(t.name.clone(), Arc::clone(&topic));
                topic
            }
        };
        {
            let mut parts = topic.partitions.write().unwrap_or_else(|p| p.into_inner());
            while parts.len() < t.partitions.len() {
                parts.push(None);
            }
        }
        topic
    }

    /// A replica moved away or its topic is gone: unlist it and delete its data.
    pub(crate) fn forget_cluster_partition(&self, p: &Arc<Partition>) {
        if let Some(topic) = self.topic(&p.topic) {
            topic.clear_partition(p);
        }
        remove_partition_dir(p, "moved");
    }

    /// Unlists topics the controller no longer has (their replicas were stopped already).
    pub(crate) fn drop_deleted_cluster_topics(&self, state: &crate::cluster::ClusterState) {
        let gone: Vec<Arc<Topic>> = self
            .topics()
            .into_iter()
            .filter(|t| !crate::topic::is_internal_topic(&t.name))
            .filter(|t| state.topics.get(&t.name).is_none_or(|s| s.id != t.id))
            .collect();
        let mut topics = self.topics_mut();
        for topic in gone {
            topics.remove(&topic.name);
            if !state.topics.contains_key(&topic.name) {
                strom_metrics::global().forget_topic(&topic.name);
            }
            if topic.settings().config.remote_storage {
                self.delete_remote_topic(&topic.name, topic.id);
            }
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn groups(&self) -> &crate::group::Coordinator {
        &self.groups
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().ok()?.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .ok()?
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The topic, auto-creating it with the default partition count when that is enabled.
    pub fn topic_or_auto_create(&self, name: &str) -> Result<Option<Arc<Topic>>, BrokerError> {
        if let Some(t) = self.topic(name) {
            return Ok(Some(t));
        }
        if crate::internal::is_internal_topic(name) {
            // Created with its own settings (no time retention), never with the defaults.
            return crate::internal::ensure(self, name).map(Some);
        }
        if !self.config.auto_create_topics {
            return Ok(None);
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(t) => Ok(Some(t)),
            // Another connection created it first.
            Err(BrokerError::TopicExists(_)) => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// Creates a topic. `partitions`/`replication_factor` of -1 mean the broker default.
    /// With `validate_only`, checks everything and returns the topic it would create, unregistered.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(BrokerError::InvalidPartitions(format!(
                "{partitions} (must be between 1 and {PARTITIONS_MAX})"
            )));
        }
        if replication_factor != -1 && replication_factor != 1 {
            return Err(BrokerError::InvalidReplicationFactor(replication_factor));
        }
        let config = self.checked_topic_config(None, &overrides)?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        if self.topic(name).is_some() {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        let rec = TopicRecord {
            id: Uuid::new_v4(),
            partitions: partitions as u32,
            config: overrides.clone(),
        };
        if validate_only {
            let settings = TopicSettings { overrides, config };
            return Ok(Arc::new(Topic::new(name, rec.id, settings, Vec::new())));
        }
        // Metadata first: a crash after it leaves a topic whose partitions are created on the
        // next start; the other order would leave orphan directories nobody knows about.
        self.meta.save(name, &rec)?;
        let topic = self.open_topic(name, &rec)?;
        self.topics_mut()
            .insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data; returns its id.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        if crate::topic::is_internal_topic(name) {
            return Err(BrokerError::InvalidTopicName(format!(
                "{name} is internal and cannot be deleted"
            )));
        }
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.meta.remove(name)?;
        self.topics_mut().remove(name);
        strom_metrics::global().forget_topic(name);
        for p in topic.partitions() {
            remove_partition_dir(&p, &topic.id.simple().to_string());
        }
        self.delete_remote_topic(name, topic.id);
        let _ = crate::metadata::sync_dir(&self.config.data_dir);
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let current = topic.partition_count() as i32;
        if crate::internal::is_internal_topic(name) {
            // A coordinator's key lives in the partition it hashes to among all partitions.
            return Err(BrokerError::InvalidPartitions(format!(
                "{name} cannot grow: its coordinator would lose track of its state"
            )));
        }
        if count <= current {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count must be larger, not {count}"
            )));
        }
        if count > PARTITIONS_MAX {
            return Err(BrokerError::InvalidPartitions(format!(
                "{count} exceeds {PARTITIONS_MAX}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let settings = topic.settings();
        let rec = TopicRecord {
            id: topic.id,
            partitions: count as u32,
            config: settings.overrides,
        };
        self.meta.save(name, &rec)?;
        let mut parts = topic.partitions.write().unwrap_or_else(|p| p.into_inner());
        for index in current..count {
            parts.push(Some(self.open_partition(
                &topic.name,
                topic.id,
                index,
                &settings.config,
            )?));
        }
        Ok(())
    }

    /// Replaces a topic's config overrides as a whole (AlterConfigs; IncrementalAlterConfigs
    /// computes the whole set first). Single node: validated, written to the topic's metadata
    /// file, then taken by every partition. Cluster mode goes through the controller instead.
    pub fn alter_topic_config(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let config = self.checked_topic_config(Some(name), &overrides)?;
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if validate_only {
            return Ok(());
        }
        for p in topic.partitions() {
            self.attach_tier(&p, topic.id, &config);
        }
        let rec = TopicRecord {
            id: topic.id,
            partitions: topic.partition_count() as u32,
            config: overrides.clone(),
        };
        self.meta.save(name, &rec)?;
        topic.set_settings(TopicSettings { overrides, config });
        tracing::info!(topic = name, "altered topic config");
        Ok(())
    }

    /// InitProducerId for an idempotent (non-transactional) producer: a fresh producer id with
    /// epoch 0, or, when the producer names its current id and epoch (KIP-360, after an error
    /// that left its sequences unknown), the same id with the next epoch. The epoch is taken
    /// on trust: there is no global producer registry, and each partition fences batches of
    /// older epochs. An id this node never issued, or an exhausted epoch, gets a fresh id.
    pub fn init_producer_id(&self, current: Option<(i64, i16)>) -> Result<(i64, i16), BrokerError> {
        if let Some((id, epoch)) = current {
            // Kafka stops one short of i16::MAX, keeping the last epoch for fencing.
            let issued = self
                .local_producer_id(id)
                .is_some_and(|raw| self.producer_ids.issued(raw));
            if issued && (0..i16::MAX - 1).contains(&epoch) {
                return Ok((id, epoch + 1));
            }
        }
        let raw = self.producer_ids.allocate()?;
        Ok((self.global_producer_id(raw), 0))
    }

    /// In a cluster every node allocates from its own counter, so the node id goes into the low
    /// bits: two nodes never hand out the same producer id.
    fn global_producer_id(&self, raw: i64) -> i64 {
        match self.cluster() {
            Some(c) => (raw << PRODUCER_ID_NODE_BITS) | (c.node_id() as i64 & NODE_MASK),
            None => raw,
        }
    }

    /// The local counter value behind `id`, if this node issued it.
    fn local_producer_id(&self, id: i64) -> Option<i64> {
        match self.cluster() {
            Some(c) if id & NODE_MASK == c.node_id() as i64 & NODE_MASK => {
                Some(id >> PRODUCER_ID_NODE_BITS)
            }
            Some(_) => None,
            None => Some(id),
        }
    }

    /// Flushes and checkpoints every partition and stops the flusher. Idempotent.
    pub fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(c) = self.cluster.get() {
            c.shutdown();
        }
        self.flusher.stop();
        let threads = std::mem::take(
            &mut *self
                .flusher_threads
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
        for topic in self.topics() {
            for p in topic.partitions() {
                if let Err(e) = p.close() {
                    tracing::warn!(partition = ?p, "checkpoint on shutdown failed: {e}");
                }
            }
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn open_topic(&self, name: &str, rec: &TopicRecord) -> Result<Arc<Topic>, BrokerError> {
        let config = self.config.topic_defaults.with_overrides(&rec.config)?;
        let mut parts = Vec::with_capacity(rec.partitions as usize);
        for index in 0..rec.partitions as i32 {
            parts.push(Some(self.open_partition(name, rec.id, index, &config)?));
        }
        let settings = TopicSettings {
            overrides: rec.config.clone(),
            config,
        };
        Ok(Arc::new(Topic::new(name, rec.id, settings, parts)))
    }

    fn open_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        config: &crate::TopicConfig,
    ) -> Result<Arc<Partition>, BrokerError> {
        let dir = self.config.data_dir.join(format!("{topic}-{index}"));
        let p = Partition::open(
            topic,
            index,
            dir,
            config,
            Arc::clone(&self.flusher),
            self.config.flush,
        )?;
        // Before the partition serves: a read below its local start must find the remote part.
        if let Some(tier) = &self.tier {
            if config.remote_storage || p.has_manifest_file() {
                p.attach_remote(tier, topic_id, false)?;
            }
        }
        Ok(p)
    }

    /// Tiered storage, when the broker has a store.
    pub fn tier(&self) -> Option<&Arc<strom_tier::Tier>> {
        self.tier.as_ref()
    }

    fn topics_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Deletes a partition's directory. Renamed first so a crash mid-delete never leaves a
/// half-deleted partition that a later topic of the same name would recover as its own.
fn remove_partition_dir(p: &Partition, tag: &str) {
    let doomed = p.dir().with_extension(format!("{tag}.deleted"));
    if let Err(e) = std::fs::rename(p.dir(), &doomed).and_then(|_| std::fs::remove_dir_all(&doomed))
    {
        tracing::warn!(dir = %p.dir().display(), "could not remove partition data: {e}");
    }
}
