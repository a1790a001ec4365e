//! The uploader: a task that, on every tiered partition this node leads (every one on a single
//! node), copies the sealed segments below the last stable offset to the store and records them
//! in the manifest, then applies `retention.ms` / `retention.bytes` to the remote part (the
//! manifest forgets the segments first, their objects go after). A failing store only delays
//! this: the partition backs off and retries, and its local segments stay until their upload is
//! recorded (local retention never passes the manifest's uploaded end).
//!
//! Each node also deletes, once per leadership, objects the manifest does not name that are
//! older than [`ORPHAN_AGE`]: uploads a crash cut short or a deposed leader had in flight.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;

use strom_tier::upload::object_key;
use strom_tier::{ManifestChange, RemoteSegment};

use super::RemotePart;
use crate::{Broker, BrokerError, Partition, TopicConfig};

/// An object the manifest does not name is garbage once it is this old (no upload takes longer).
pub const ORPHAN_AGE: Duration = Duration::from_secs(600);
/// Segments uploaded per partition per round, so one partition's backlog does not starve others.
const UPLOADS_PER_ROUND: usize = 4;
/// Partitions uploading at once: a node's uploads overlap, as its produces do.
const PARTITIONS_AT_ONCE: usize = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Starts the uploader on the current Tokio runtime; it ends with the broker.
pub fn spawn(broker: &Arc<Broker>) {
    let Some(config) = broker.config().tier.clone() else {
        return;
    };
    let weak = Arc::downgrade(broker);
    tokio::spawn(run(weak, Duration::from_millis(config.interval_ms.max(10))));
}

/// Per partition: when it may try again, and the pause after its next failure.
#[derive(Default)]
struct Backoff {
    until: HashMap<(uuid::Uuid, i32), (Instant, Duration)>,
    /// The leadership (leader epoch) in which each partition's orphans were last swept.
    swept: HashMap<(uuid::Uuid, i32), i32>,
}

async fn run(weak: Weak<Broker>, interval: Duration) {
    let mut state = Backoff::default();
    loop {
        tokio::time::sleep(interval).await;
        let Some(broker) = weak.upgrade() else { return };
        if broker.is_stopping() {
            return;
        }
        let mut due = Vec::new();
        for topic in broker.topics() {
            let config = topic.settings().config;
            if !config.remote_storage {
                continue;
            }
            for p in topic.partitions() {
                let key = (topic.id, p.index);
                let Some(remote) = p.remote_part() else {
                    continue;
                };
                let waiting = state
                    .until
                    .get(&key)
                    .is_some_and(|(t, _)| Instant::now() < *t);
                if p.ensure_leader().is_err() || waiting {
                    continue;
                }
                let swept = state.swept.get(&key).copied();
                due.push((key, p, remote, config.clone(), swept));
            }
        }
        let broker = &broker;
        let done: Vec<_> = futures::stream::iter(due.into_iter().map(
            |(key, p, remote, config, swept)| async move {
                let epoch = p.leader_epoch();
                let mut sweep = None;
                if swept != Some(epoch) {
                    match sweep_orphans(&p, &remote).await {
                        Ok(()) => sweep = Some(epoch),
                        Err(e) => tracing::debug!(partition = ?p, "orphan sweep failed: {e}"),
                    }
                }
                let result = round(broker, &p, &remote, &config).await;
                (key, p, sweep, result)
            },
        ))
        .buffer_unordered(PARTITIONS_AT_ONCE)
        .collect()
        .await;
        for (key, p, sweep, result) in done {
            if let Some(epoch) = sweep {
                state.swept.insert(key, epoch);
            }
            match result {
                Ok(()) => {
                    state.until.remove(&key);
                }
                Err(e) => {
                    let delay = state
                        .until
                        .get(&key)
                        .map_or(Duration::from_secs(1), |(_, d)| (*d * 2).min(MAX_BACKOFF));
                    tracing::warn!(
                        partition = ?p,
                        retry_in_ms = delay.as_millis() as u64,
                        local_bytes = p.size_bytes(),
                        "tiered storage upload failed; the data stays on local disk: {e}"
                    );
                    state.until.insert(key, (Instant::now() + delay, delay));
                }
            }
        }
    }
}

/// One partition's uploads and remote retention.
async fn round(
    broker: &Broker,
    p: &Arc<Partition>,
    remote: &Arc<RemotePart>,
    config: &TopicConfig,
) -> Result<(), BrokerError> {
    let from = remote.manifest().uploaded_end;
    let bound = p.last_stable_offset();
    let views = p.log_ref().sealed_segments(from, bound)?;
    for view in views.into_iter().take(UPLOADS_PER_ROUND) {
        let mut segment = strom_tier::upload_segment(&remote.tier.store, &remote.dir, &view)
            .await
            .map_err(|e| BrokerError::RemoteStorage(e.to_string()))?;
        segment.aborted = p
            .aborted_transactions(segment.base_offset, segment.end_offset)
            .into_iter()
            .map(|t| (t.producer_id, t.first_offset, t.last_offset))
            .collect();
        let taken = commit(broker, p, ManifestChange::Append(segment.clone())).await?;
        if !taken {
            // Another leader's upload of this range was recorded first.
            delete_objects(remote, std::slice::from_ref(&segment)).await;
            return Ok(());
        }
        let m = strom_metrics::global();
        m.tier_segments_uploaded.inc();
        m.tier_bytes_uploaded.inc_by(segment.size_bytes);
        tracing::info!(
            partition = ?p,
            base_offset = segment.base_offset,
            end_offset = segment.end_offset,
            bytes = segment.size_bytes,
            "uploaded segment to tiered storage"
        );
    }
    if let Some(below) = remote_retention_point(p, remote, config, crate::now_ms()) {
        let doomed = remote.manifest().trimmed_by(below).to_vec();
        if commit(broker, p, ManifestChange::Trim { below }).await? {
            tracing::info!(partition = ?p, below, segments = doomed.len(), "deleted remote segments by retention");
            delete_objects(remote, &doomed).await;
        }
    }
    Ok(())
}

/// Where retention (`retention.ms`, `retention.bytes` over the whole log, DeleteRecords) cuts
/// the remote part: the end of the last remote segment to remove, if any.
fn remote_retention_point(
    p: &Partition,
    remote: &RemotePart,
    config: &TopicConfig,
    now_ms: i64,
) -> Option<u64> {
    let manifest = remote.manifest();
    let retention_ms = Some(config.retention_ms).filter(|ms| config.delete && *ms >= 0);
    let retention_bytes = u64::try_from(config.retention_bytes)
        .ok()
        .filter(|_| config.delete);
    let deleted_below = p.deleted_below();
    let mut total = manifest.size_bytes() + p.log_ref().bytes_from(manifest.uploaded_end);
    let mut below = None;
    for s in &manifest.segments {
        let expired = retention_ms.is_some_and(|ms| s.max_timestamp < now_ms.saturating_sub(ms));
        let oversized = retention_bytes.is_some_and(|limit| total > limit);
        let deleted = s.end_offset <= deleted_below;
        if !(expired || oversized || deleted) {
            break;
        }
        total = total.saturating_sub(s.size_bytes);
        below = Some(s.end_offset);
    }
    below
}

/// Makes a manifest change durable: on a single node the partition's file; in a cluster a
/// committed controller command, applied here before this returns. Returns whether it was taken.
async fn commit(
    broker: &Broker,
    p: &Arc<Partition>,
    change: ManifestChange,
) -> Result<bool, BrokerError> {
    let Some(cluster) = broker.cluster() else {
        return p.apply_manifest_change(&change);
    };
    let group = p.group().ok_or(BrokerError::NotLeader)?;
    cluster
        .propose(crate::cluster::Command::TierManifest {
            group,
            change: change.clone(),
        })
        .await?;
    // The reconciler hands the applied manifest to this replica.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let applied = cluster.with_state(|s| {
            s.partition_by_group(group).map(|(_, _, pa)| match &change {
                ManifestChange::Append(seg) => (
                    pa.remote.uploaded_end >= seg.end_offset,
                    pa.remote.segments.iter().any(|s| s.object == seg.object),
                ),
                ManifestChange::Trim { below } => {
                    let done = pa
                        .remote
                        .segments
                        .first()
                        .is_none_or(|s| s.end_offset > *below);
                    (done, done)
                }
            })
        });
        match applied {
            Some((true, taken)) => {
                if let Some(manifest) = cluster.with_state(|s| {
                    s.partition_by_group(group)
                        .map(|(_, _, pa)| pa.remote.clone())
                }) {
                    p.set_manifest(&manifest);
                }
                return Ok(taken);
            }
            None => return Err(BrokerError::UnknownTopicOrPartition),
            Some((false, _)) if Instant::now() >= deadline => return Err(BrokerError::Timeout),
            Some((false, _)) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn delete_objects(remote: &RemotePart, segments: &[RemoteSegment]) {
    for s in segments {
        for kind in ["log", "index"] {
            let key = object_key(&remote.dir, &s.object, kind);
            if let Err(e) = remote.tier.store.delete(&key).await {
                tracing::warn!(%key, "cannot delete a remote object (swept later): {e}");
            }
        }
    }
}

/// Deletes the partition's objects that its manifest does not name and that are older than
/// [`ORPHAN_AGE`].
async fn sweep_orphans(p: &Partition, remote: &RemotePart) -> Result<(), BrokerError> {
    let listed = remote
        .tier
        .store
        .list(&remote.dir)
        .await
        .map_err(|e| BrokerError::RemoteStorage(e.to_string()))?;
    let manifest = remote.manifest();
    let cutoff = chrono_cutoff();
    for meta in listed {
        let name = meta.location.filename().unwrap_or_default();
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        let named = manifest.segments.iter().any(|s| s.object == stem);
        if named || meta.last_modified.timestamp_millis() > cutoff {
            continue;
        }
        tracing::info!(partition = ?p, key = %meta.location, "deleting an orphaned remote object");
        if let Err(e) = remote.tier.store.delete(&meta.location).await {
            tracing::warn!(key = %meta.location, "cannot delete an orphaned remote object: {e}");
        }
    }
    Ok(())
}

/// Milliseconds since the epoch before which an unnamed object is an orphan.
fn chrono_cutoff() -> i64 {
    crate::now_ms().saturating_sub(ORPHAN_AGE.as_millis() as i64)
}
