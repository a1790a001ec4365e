//! The simulator's `ReplicaLog`: a real segment log plus `EntryIndex`, exactly what a broker
//! partition holds, with the driver's callbacks recorded as events. The driver calls these
//! while it is borrowed, so nothing here may call back into it; the simulator drains the events
//! after each driver call and checks them then.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strom_consensus::driver::{ReplicaLog, RoleState};
use strom_consensus::entry_log::EntryIndex;
use strom_consensus::raft::eraftpb::{ConfState, Entry, EntryType};
use strom_consensus::raft_state::LogStart;
use strom_consensus::ConsensusError;
use strom_storage::{Log, LogConfig, StorageError, SyncPoint};

/// Bytes before the CRC'd part of a RecordBatch: base offset, length, leader epoch, magic. The
/// log rewrites them, so a data entry is compared on what follows.
const REWRITTEN_PREFIX: usize = 17;

/// What identifies an entry's content independently of where a log stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub kind: EntryType,
    pub body: Bytes,
}

impl Content {
    pub fn of(e: &Entry) -> Content {
        let kind = e.get_entry_type();
        let body = if kind == EntryType::EntryNormal && e.data.len() > REWRITTEN_PREFIX {
            e.data.slice(REWRITTEN_PREFIX..)
        } else {
            e.data.clone()
        };
        Content { kind, body }
    }
}

#[derive(Debug, Clone)]
pub struct Appended {
    pub index: u64,
    pub term: u64,
    pub content: Content,
    /// Term of the entry before it in this log: with the unique `(index, term) -> content` map
    /// this makes equal `(index, term)` imply equal prefixes (log matching, by induction).
    pub prev_term: u64,
    /// Kafka offset the entry's batch starts at: replicas must agree on it.
    pub offset: u64,
}

pub enum Event {
    Appended {
        /// Set when the append first cut a conflicting suffix from this index.
        truncated_from: Option<u64>,
        entries: Vec<Appended>,
    },
    /// The owner's flusher takes the sync point now, under the log's lock, and fsyncs it
    /// later: what it covers is fixed at request time, as in the broker's group commit.
    SyncRequested {
        token: u64,
        /// Taken before a later truncation or reset, it marks nothing durable
        /// (`Log::mark_synced`), as in the broker.
        point: SyncPoint,
    },
    Committed {
        index: u64,
        entries: Vec<Entry>,
    },
    Role(RoleState),
    Conf {
        conf: ConfState,
        index: u64,
    },
    /// The driver installed a leader's snapshot: the whole log was thrown away and restarts
    /// empty at `start` (entries up to `start.first_index - 1` are the leader's compacted,
    /// committed prefix).
    Snapshot {
        start: LogStart,
    },
}

pub struct Inner {
    pub log: Log,
    pub index: EntryIndex,
    events: Vec<Event>,
}

pub struct SimLog {
    inner: Mutex<Inner>,
    /// The simulated clock (the step counter), so stored timestamps do not depend on when the
    /// test runs.
    clock: Arc<AtomicU64>,
}

impl SimLog {
    pub fn open(
        dir: &Path,
        config: LogConfig,
        start: LogStart,
        clock: Arc<AtomicU64>,
    ) -> Result<SimLog, String> {
        let mut log = Log::open(dir, config).map_err(|e| format!("open {}: {e}", dir.display()))?;
        let index = EntryIndex::open(&mut log, start)
            .map_err(|e| format!("index {}: {e}", dir.display()))?;
        Ok(SimLog {
            inner: Mutex::new(Inner {
                log,
                index,
                events: Vec::new(),
            }),
            clock,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while locked already fails the test; the data is still worth reading.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// Completes a group commit fsync the driver asked for.
    pub fn sync(&self, point: &SyncPoint) -> Result<(), StorageError> {
        point.sync()?;
        self.lock().log.mark_synced(point);
        Ok(())
    }

    pub fn into_log(self) -> Log {
        self.inner
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .log
    }
}

impl Inner {
    pub fn term(&self, idx: u64) -> Option<u64> {
        self.index.term(idx).ok()
    }

    pub fn entry(&self, idx: u64) -> Result<Entry, String> {
        let mut got = self
            .index
            .entries(&self.log, idx, idx + 1, None)
            .map_err(|e| format!("reading entry {idx}: {e}"))?;
        match got.pop() {
            Some(e) if got.is_empty() && e.index == idx => Ok(e),
            other => Err(format!("reading entry {idx} returned {other:?}")),
        }
    }

    /// Every entry in the log, read back through the storage path.
    pub fn all_entries(&self) -> Result<Vec<Entry>, String> {
        let (first, last) = (self.index.first_index(), self.index.last_index());
        let mut out = Vec::new();
        let mut low = first;
        while low <= last {
            let got = self
                .index
                .entries(&self.log, low, last + 1, Some(64 << 10))
                .map_err(|e| format!("reading entries {low}..={last}: {e}"))?;
            for (i, e) in got.iter().enumerate() {
                if e.index != low + i as u64 {
                    return Err(format!(
                        "entry {} read back as index {}",
                        low + i as u64,
                        e.index
                    ));
                }
            }
            if got.is_empty() {
                return Err(format!("reading entries from {low} returned nothing"));
            }
            low += got.len() as u64;
            out.extend(got);
        }
        Ok(out)
    }

    pub fn end_offset(&self, idx: u64) -> Option<u64> {
        self.index.end_offset(idx, &self.log)
    }
}

impl ReplicaLog for SimLog {
    fn first_index(&self) -> u64 {
        self.lock().index.first_index()
    }

    fn last_index(&self) -> u64 {
        self.lock().index.last_index()
    }

    fn term(&self, idx: u64) -> strom_consensus::raft::Result<u64> {
        self.lock().index.term(idx)
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> strom_consensus::raft::Result<Vec<Entry>> {
        let inner = self.lock();
        inner.index.entries(&inner.log, low, high, max_size)
    }

    fn log_start(&self) -> LogStart {
        let inner = self.lock();
        inner.index.log_start(&inner.log)
    }

    /// As the broker's partition does: the log restarts empty at the leader's log start.
    fn install_snapshot(&self, start: LogStart) -> Result<(), ConsensusError> {
        let mut guard = self.lock();
        let Inner { log, index, events } = &mut *guard;
        // Sync points taken before the reset mark nothing of the new log durable: the reset
        // starts a new log generation, as a truncation does.
        log.reset(start.start_offset)?;
        *index = EntryIndex::empty(start);
        events.push(Event::Snapshot { start });
        Ok(())
    }

    fn append(&self, entries: &[Entry], applied: u64) -> Result<(), ConsensusError> {
        let now = self.clock.load(Ordering::Relaxed) as i64;
        let mut guard = self.lock();
        let Inner { log, index, events } = &mut *guard;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let truncated_from = (first.index <= index.last_index()).then_some(first.index);
        index.append(log, entries, applied, now)?;
        let mut appended = Vec::with_capacity(entries.len());
        for e in entries {
            let describe = |what: &str| ConsensusError::BadEntry {
                index: e.index,
                reason: format!("appended, but its {what} is unknown"),
            };
            appended.push(Appended {
                index: e.index,
                term: e.term,
                content: Content::of(e),
                prev_term: index.term(e.index - 1).map_err(|_| describe("prev term"))?,
                offset: index
                    .start_offset(e.index, log)
                    .ok_or_else(|| describe("offset"))?,
            });
        }
        events.push(Event::Appended {
            truncated_from,
            entries: appended,
        });
        Ok(())
    }

    fn request_sync(&self, token: u64) {
        let mut inner = self.lock();
        let point = inner.log.sync_point();
        inner.events.push(Event::SyncRequested { token, point });
    }

    fn on_commit(&self, index: u64, entries: &[Entry]) {
        let mut inner = self.lock();
        inner.index.release_applied(index);
        inner.events.push(Event::Committed {
            index,
            entries: entries.to_vec(),
        });
    }

    fn on_role(&self, role: &RoleState) {
        let mut inner = self.lock();
        if !role.is_leader {
            inner.index.release_all();
        }
        inner.events.push(Event::Role(role.clone()));
    }

    fn on_conf_change(&self, conf: &ConfState, index: u64) {
        self.lock().events.push(Event::Conf {
            conf: conf.clone(),
            index,
        });
    }
}
