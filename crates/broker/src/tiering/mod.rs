//! Tiered storage on the broker side (KIP-405's `remote.storage.enable`): which partitions have
//! a remote part, the manifest each holds, reads below the local log start served from the
//! object store, and where local deletion may go. The uploader (`task`) moves sealed segments
//! out; `strom_tier` knows the store and the object layout.
//!
//! The manifest is the record of what the store holds. On a single node it is the partition's
//! `tier-manifest.json`, replaced atomically; in a cluster it lives in the controller's state
//! (`PartitionAssignment::remote`), changed only by committed `TierManifest` commands, which
//! every node's reconciler hands to its replica. Either way, a local segment is deleted only
//! once the manifest that covers it is durable, so nothing acknowledged is ever only in flight.

pub mod task;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use strom_storage::FirstBatch;
use strom_tier::{Manifest, ManifestChange, RemoteSegment, Tier};

use crate::partition::{FetchData, Isolation};
use crate::{BrokerError, Partition};

pub use strom_tier::Tier as RemoteTier;

/// The single-node manifest file in a partition's directory.
const MANIFEST_FILE: &str = "tier-manifest.json";

/// Broker-wide tiered storage settings.
#[derive(Debug, Clone)]
pub struct TierConfig {
    /// `--tier-url`: `file:///dir` or `s3://bucket/prefix`.
    pub url: String,
    /// `--tier-cache-bytes`: the on-disk cache of remote chunks.
    pub cache_bytes: u64,
    /// How often the uploader looks for sealed segments to move.
    pub interval_ms: u64,
}

/// A partition's remote part: the store and the manifest of what it holds.
pub struct RemotePart {
    pub tier: Arc<Tier>,
    /// The partition's directory in the store.
    pub dir: strom_tier::store::ObjectPath,
    manifest: RwLock<Manifest>,
    /// Single node: where the manifest is persisted. `None` in a cluster (the controller's).
    file: Option<PathBuf>,
}

impl RemotePart {
    pub fn manifest(&self) -> Manifest {
        self.manifest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn with_manifest<R>(&self, f: impl FnOnce(&Manifest) -> R) -> R {
        f(&self.manifest.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Partition {
    /// Gives the partition its remote part (at open, or when its topic turns tiering on). On a
    /// single node the manifest comes from the partition's file; a damaged file is an error,
    /// never an empty manifest, which would hide what the store holds.
    pub(crate) fn attach_remote(
        &self,
        tier: &Arc<Tier>,
        topic_id: uuid::Uuid,
        cluster: bool,
    ) -> Result<(), BrokerError> {
        let mut slot = self.remote.write().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Ok(());
        }
        let file = (!cluster).then(|| self.dir().join(MANIFEST_FILE));
        let manifest = match &file {
            Some(path) => read_manifest(path)?,
            None => Manifest::default(),
        };
        *slot = Some(Arc::new(RemotePart {
            tier: Arc::clone(tier),
            dir: tier.store.partition_dir(&self.topic, topic_id, self.index),
            manifest: RwLock::new(manifest),
            file,
        }));
        Ok(())
    }

    pub fn remote_part(&self) -> Option<Arc<RemotePart>> {
        self.remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a manifest is on disk here (a single node that tiered this partition before).
    pub(crate) fn has_manifest_file(&self) -> bool {
        self.dir().join(MANIFEST_FILE).exists()
    }

    /// The first remote offset, when the remote part holds anything.
    fn remote_start(&self) -> Option<u64> {
        self.remote_part()
            .and_then(|r| r.with_manifest(Manifest::start))
    }

    /// The first offset served, given the local log's start: the store's part comes first,
    /// and nothing below a DeleteRecords point counts.
    pub(crate) fn whole_log_start(&self, local_start: u64) -> u64 {
        let physical = self
            .remote_start()
            .map_or(local_start, |remote| remote.min(local_start));
        physical.max(self.deleted_below())
    }

    /// Where local deletion may go: nothing that is not in the store yet.
    pub(crate) fn local_deletion_limit(&self) -> u64 {
        match self.remote_part() {
            Some(r) => r.with_manifest(|m| m.uploaded_end),
            None if self.tiered.load(std::sync::atomic::Ordering::Acquire) => 0,
            None => u64::MAX,
        }
    }

    /// Single node: applies a manifest change, durably (the file first, then memory). Returns
    /// whether the change was taken.
    pub fn apply_manifest_change(&self, change: &ManifestChange) -> Result<bool, BrokerError> {
        let remote = self
            .remote_part()
            .ok_or_else(|| BrokerError::InvalidRequest("the partition is not tiered".into()))?;
        let mut manifest = remote.manifest.write().unwrap_or_else(|p| p.into_inner());
        let mut next = manifest.clone();
        if !next.apply(change) {
            return Ok(false);
        }
        if let Some(path) = &remote.file {
            let json = serde_json::to_vec(&next)
                .map_err(|e| BrokerError::InvalidRequest(e.to_string()))?;
            crate::metadata::write_atomic(path, json)?;
        }
        *manifest = next;
        Ok(true)
    }

    /// Cluster: takes the controller's manifest for this partition.
    pub(crate) fn set_manifest(&self, manifest: &Manifest) {
        if let Some(remote) = self.remote_part() {
            let mut current = remote.manifest.write().unwrap_or_else(|p| p.into_inner());
            if *current != *manifest {
                *current = manifest.clone();
            }
        }
    }

    /// Fetch: below the local log start, from the store; otherwise as [`Partition::read_isolated`].
    pub async fn fetch(
        &self,
        offset: u64,
        max_bytes: usize,
        first: FirstBatch,
        isolation: Isolation,
    ) -> Result<FetchData, BrokerError> {
        if let Some((remote, segment)) = self.remote_segment_for(offset) {
            return self
                .read_remote(&remote, &segment, offset, max_bytes, first, isolation)
                .await;
        }
        self.read_isolated(offset, max_bytes, first, isolation)
    }

    /// The remote segment to serve `offset` from, if it lies below the local log and above
    /// everything deleted.
    fn remote_segment_for(&self, offset: u64) -> Option<(Arc<RemotePart>, RemoteSegment)> {
        let remote = self.remote_part()?;
        let local_start = self.log_ref().log_start_offset();
        if offset >= local_start || offset < self.deleted_below() {
            return None;
        }
        let segment = remote.with_manifest(|m| m.find(offset).cloned())?;
        (segment.base_offset < local_start).then_some((remote, segment))
    }

    async fn read_remote(
        &self,
        remote: &RemotePart,
        segment: &RemoteSegment,
        offset: u64,
        max_bytes: usize,
        first: FirstBatch,
        isolation: Isolation,
    ) -> Result<FetchData, BrokerError> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let bound = isolation.bound(high_watermark, last_stable_offset);
        let records = remote
            .tier
            .read(&remote.dir, segment, offset, max_bytes, bound, first)
            .await
            .map_err(|e| {
                tracing::warn!(partition = ?self, offset, "remote read failed: {e}");
                BrokerError::RemoteStorage(e.to_string())
            })?;
        let aborted = match isolation {
            Isolation::ReadCommitted if !records.is_empty() => remote
                .with_manifest(|m| m.aborted_between(offset, bound))
                .into_iter()
                .map(
                    |(producer_id, first_offset, last_offset)| crate::txn_index::AbortedTxn {
                        producer_id,
                        first_offset,
                        last_offset,
                    },
                )
                .collect(),
            _ => Vec::new(),
        };
        Ok(FetchData {
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset: self.log_start_offset(),
            aborted,
        })
    }

    /// ListOffsets by time over the whole log: the remote segments first, then the local log.
    pub async fn offset_for_time(&self, ts_ms: i64) -> Result<Option<(u64, i64)>, BrokerError> {
        if let Some(remote) = self.remote_part() {
            let from = self.deleted_below();
            let local_start = self.log_ref().log_start_offset();
            let candidates: Vec<RemoteSegment> = remote.with_manifest(|m| {
                m.segments
                    .iter()
                    .filter(|s| s.end_offset > from && s.base_offset < local_start)
                    .filter(|s| s.max_timestamp >= ts_ms)
                    .cloned()
                    .collect()
            });
            for segment in candidates {
                let found = remote
                    .tier
                    .find_timestamp(&remote.dir, &segment, ts_ms, from)
                    .await
                    .map_err(|e| BrokerError::RemoteStorage(e.to_string()))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        self.offset_for_timestamp(ts_ms)
    }

    /// ListOffsets MAX_TIMESTAMP over the whole log.
    pub async fn max_timestamp_all(&self) -> Result<Option<(u64, i64)>, BrokerError> {
        let local = self.max_timestamp()?;
        let remote_max = self.remote_part().and_then(|r| {
            let local_start = self.log_ref().log_start_offset();
            r.with_manifest(|m| {
                m.segments
                    .iter()
                    .filter(|s| s.base_offset < local_start)
                    .map(|s| s.max_timestamp)
                    .max()
            })
        });
        match (remote_max, local) {
            (Some(r), Some((_, l))) if r < l => Ok(local),
            (Some(r), _) if r >= 0 => self.offset_for_time(r).await,
            _ => Ok(local),
        }
    }
}

fn read_manifest(path: &std::path::Path) -> Result<Manifest, BrokerError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            BrokerError::Storage(strom_storage::StorageError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(BrokerError::Storage(strom_storage::StorageError::Io {
            path: path.to_path_buf(),
            source: e,
        })),
    }
}

/// The broker's store, if `--tier-url` was given; its read cache lives in `<data>/tier-cache`.
pub(crate) fn open_tier(config: &crate::BrokerConfig) -> Result<Option<Arc<Tier>>, BrokerError> {
    let Some(tier) = &config.tier else {
        return Ok(None);
    };
    let cache = config.data_dir.join("tier-cache");
    Tier::open(&tier.url, cache, tier.cache_bytes)
        .map(Some)
        .map_err(|e| BrokerError::InvalidConfig(format!("tiered storage: {e}")))
}

impl crate::Broker {
    /// A topic's effective config for `overrides`, refused where Kafka refuses it: tiering on a
    /// broker without a store (Kafka: its remote log manager is off), and tiering turned off on
    /// a topic that has it (its remote data would vanish from its consumers' view).
    pub fn checked_topic_config(
        &self,
        existing: Option<&str>,
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<crate::TopicConfig, BrokerError> {
        let config = self.config().topic_defaults.with_overrides(overrides)?;
        if config.remote_storage && self.tier().is_none() {
            return Err(BrokerError::InvalidConfig(
                "remote.storage.enable=true needs tiered storage on the broker (--tier-url)".into(),
            ));
        }
        let was_tiered = existing
            .and_then(|name| self.topic(name))
            .is_some_and(|t| t.settings().config.remote_storage);
        if was_tiered && !config.remote_storage {
            return Err(BrokerError::InvalidConfig(
                "remote.storage.enable cannot be turned off: delete the topic to drop its remote data".into(),
            ));
        }
        Ok(config)
    }

    /// Gives a partition of a tiered topic its remote part (cluster replicas, altered topics).
    pub(crate) fn attach_tier(
        &self,
        p: &Arc<Partition>,
        topic_id: uuid::Uuid,
        config: &crate::TopicConfig,
    ) {
        let Some(tier) = self.tier() else { return };
        if !config.remote_storage {
            return;
        }
        if let Err(e) = p.attach_remote(tier, topic_id, self.cluster().is_some()) {
            tracing::error!(partition = ?p, "cannot open the tiered part: {e}");
        }
    }

    /// Deletes a deleted topic's objects in the background. A store that is down then leaves
    /// them behind (logged).
    pub(crate) fn delete_remote_topic(&self, name: &str, topic_id: uuid::Uuid) {
        let Some(tier) = self.tier().cloned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let dir = tier.store.topic_dir(name, topic_id);
        let name = name.to_string();
        runtime.spawn(async move {
            match tier.store.delete_prefix(&dir).await {
                Ok(n) => tracing::info!(topic = %name, objects = n, "deleted the topic's remote data"),
                Err(e) => tracing::error!(topic = %name, %dir, "cannot delete the topic's remote data: {e}"),
            }
        });
    }
}

impl Partition {
    /// ListOffsets EARLIEST_LOCAL (KIP-405): the first offset on local disk, past DeleteRecords.
    pub fn local_log_start_offset(&self) -> u64 {
        self.log_ref().log_start_offset().max(self.deleted_below())
    }

    /// ListOffsets LATEST_TIERED (KIP-1005): the last offset in the store, if any.
    pub fn latest_tiered_offset(&self) -> Option<u64> {
        let remote = self.remote_part()?;
        remote.with_manifest(|m| m.segments.last().map(|s| s.end_offset - 1))
    }
}

impl Partition {
    /// Bytes of this partition in the object store (0 when it is not tiered).
    pub fn remote_size_bytes(&self) -> u64 {
        self.remote_part()
            .map_or(0, |r| r.with_manifest(Manifest::size_bytes))
    }
}
