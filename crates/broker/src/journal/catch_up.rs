//! A replica whose machine is behind its log start: it installed a Raft snapshot (its leader
//! had compacted the entries it lacked), or it restarted with a machine snapshot older than
//! the log it kept. A partition's Raft snapshot carries no state, so the entries after the
//! log start cannot be applied until the machine's state at the log start or later is
//! fetched from a peer's snapshot file.
//!
//! Until then the commit hook applies nothing and remembers how far the skipped entries
//! reach (`Gap`); the applied index stands still, so this replica answers no read that needs
//! the newer state. Once the state is fetched it is restored, written as this replica's own
//! snapshot (a restart does not fetch it again), and the skipped entries after it are
//! applied from the local log, all under the machine's lock, so the hook's next entries
//! follow on without a hole.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use strom_consensus::driver::ReplicaLog;
use strom_consensus::NodeId;
use tokio::sync::Notify;

use super::{apply_entries, Journal, StateMachine};
use crate::BrokerError;

/// Entries read from the log per step of a catch-up, bounding its memory.
const READ_BYTES: u64 = 16 << 20;

/// The committed entries a replica behind its log start has skipped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gap {
    /// The machine needs the state at this index or later (the entry before the log start).
    pub need: u64,
    /// The last committed entry skipped.
    pub skipped_to: u64,
}

/// Where a replica behind its log start gets a machine's state: a peer's snapshot file.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The snapshot file of journal `name` from one of `nodes` (tried in order) whose index
    /// is at least `min_index`.
    fn fetch<'a>(
        &'a self,
        name: &'a str,
        min_index: u64,
        nodes: Vec<NodeId>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, BrokerError>> + Send + 'a>>;
}

/// A journal's snapshot file, as peers fetch it.
pub trait SharedSnapshot: Send + Sync + 'static {
    /// A lower bound of the file's index (the file only ever moves forward), and its path.
    fn snapshot_file(&self) -> (u64, PathBuf);
}

impl<M: StateMachine> SharedSnapshot for Journal<M> {
    fn snapshot_file(&self) -> (u64, PathBuf) {
        (
            self.snapshot_index
                .load(std::sync::atomic::Ordering::Acquire),
            self.snapshot_path.clone(),
        )
    }
}

impl<M: StateMachine> Journal<M> {
    /// Restores a fetched snapshot and applies the skipped entries after it. Returns false
    /// if the snapshot does not reach the log start (another Raft snapshot moved it on).
    fn fill_gap(&self, snapshot: &[u8]) -> Result<bool, BrokerError> {
        let mut m = self.machine.write().unwrap_or_else(|p| p.into_inner());
        let Some(gap) = *self.gap.lock().unwrap_or_else(|p| p.into_inner()) else {
            return Ok(true);
        };
        // The log may have restarted further on meanwhile (another Raft snapshot): then this
        // snapshot may not reach it, and the next fetch must ask for more.
        let start = ReplicaLog::log_start(&*self.partition).first_index;
        if start > gap.need + 1 {
            if let Some(g) = self.gap.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                g.need = g.need.max(start - 1);
            }
            return Ok(false);
        }
        m.restore(snapshot)
            .map_err(|e| BrokerError::LeaderNotAvailable(format!("fetched snapshot: {e}")))?;
        let restored = m.applied();
        if restored < gap.need {
            return Ok(false);
        }
        let mut next = restored + 1;
        while next <= gap.skipped_to {
            let entries =
                ReplicaLog::entries(&*self.partition, next, gap.skipped_to + 1, Some(READ_BYTES))
                    .map_err(|e| {
                    BrokerError::LeaderNotAvailable(format!("reading the journal: {e}"))
                })?;
            let Some(last) = entries.last().map(|e| e.index) else {
                return Err(BrokerError::LeaderNotAvailable(format!(
                    "the journal holds no entry at {next}"
                )));
            };
            apply_entries(&mut *m, &entries, &self.waiters);
            next = last + 1;
        }
        *self.gap.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.applied.send_replace(restored.max(gap.skipped_to));
        drop(m);
        self.write_snapshot(restored, |out| out.write_all(snapshot))?;
        tracing::info!(
            journal = %self.name,
            restored,
            applied = restored.max(gap.skipped_to),
            "journal caught up from a peer's snapshot"
        );
        Ok(true)
    }
}

/// Fetches and restores whenever the hook finds a gap; retries until a peer has a snapshot
/// that covers it.
pub(super) async fn catch_up_loop<M: StateMachine>(
    journal: Weak<Journal<M>>,
    behind: Arc<Notify>,
    source: Arc<dyn SnapshotSource>,
) {
    loop {
        behind.notified().await;
        loop {
            let Some(j) = journal.upgrade() else {
                return;
            };
            let Some(gap) = *j.gap.lock().unwrap_or_else(|p| p.into_inner()) else {
                break;
            };
            // After a failed attempt the machine may be past `need` already (restored, some
            // entries applied): never restore anything older than what it shows.
            let need = gap.need.max(j.read().applied());
            let leader = j.role().and_then(|r| r.leader);
            let mut nodes: Vec<NodeId> = leader.into_iter().collect();
            if let Some(status) = j.raft_status() {
                nodes.extend(status.voters.iter().chain(&status.learners));
            }
            let mut seen = std::collections::HashSet::from([j.node]);
            nodes.retain(|n| seen.insert(*n));
            tracing::info!(journal = %j.name, need, ?nodes, "journal behind its log start: fetching a snapshot");
            let result = match source.fetch(&j.name, need, nodes).await {
                Ok(bytes) => {
                    let j = Arc::clone(&j);
                    tokio::task::spawn_blocking(move || j.fill_gap(&bytes))
                        .await
                        .unwrap_or_else(|e| Err(BrokerError::LeaderNotAvailable(e.to_string())))
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(true) => break,
                Ok(false) => tracing::warn!(journal = %j.name, "fetched snapshot is too old"),
                Err(e) => tracing::warn!(journal = %j.name, "snapshot fetch failed: {e}"),
            }
            drop(j);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
