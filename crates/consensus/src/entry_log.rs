//! The Raft view of a partition's segment log: one entry is one stored RecordBatch.
//!
//! Raft indexes are dense; Kafka offsets count records. [`EntryIndex`] keeps, for every entry
//! from the log start on, the offset its batch starts at, and the term runs (the stored batch's
//! `partitionLeaderEpoch` *is* the entry's term, so recovery rebuilds both from batch headers
//! alone). Every replica appends the same entry sequence, so offsets agree across replicas.
//! The index lives beside the `Log` under the owner's lock; methods take the log as an argument.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use raft::eraftpb::{Entry, EntryType};
use strom_storage::batch::{self, BatchHeader};
use strom_storage::{Log, StorageError};

use crate::control;
use crate::raft_state::LogStart;
use crate::ConsensusError;

/// Bytes of not-yet-applied entries a group keeps in memory; beyond this, reads go to the log.
const RECENT_MAX_BYTES: usize = 4 << 20;
/// What an entry costs in memory besides its data (the `Entry` and its queue slot).
const RECENT_ENTRY_OVERHEAD: usize = 128;

#[derive(Debug)]
pub struct EntryIndex {
    /// Raft index of the batch at the log start offset.
    first_index: u64,
    /// Term of `first_index - 1` (kept for Raft's log matching after the log start moved).
    prev_term: u64,
    /// Base offset of each entry, from `first_index` on.
    starts: Vec<u64>,
    /// `(first index, term)` of each run of equal terms, ascending.
    terms: Vec<(u64, u64)>,
    recent: Mutex<Recent>,
}

/// The entries appended and not yet applied, as Raft handed them over. Raft reads every entry
/// back once to apply it, and again to send it to a follower outside its in-memory window;
/// from here that read is a reference count instead of a `pread`, a parse and a copy of bytes
/// the process held a moment ago. The log stays the only durable copy: an entry leaves this
/// cache when it is applied or cut, everything leaves when the replica stops leading (a leader
/// cut off from its quorum must not hold its last proposals for as long as that lasts), and
/// the cache is rebuilt empty whenever the index is.
/// Always a suffix of the index (`[first, last_index]`) or empty. The bytes of a data batch are
/// the ones Raft appended, before the log wrote its offset and epoch into the header; every
/// reader re-stamps those (a follower's append does), so both forms are the same entry.
#[derive(Debug, Default)]
struct Recent {
    entries: VecDeque<Entry>,
    bytes: usize,
}

fn cost(e: &Entry) -> usize {
    e.data.len() + RECENT_ENTRY_OVERHEAD
}

impl Recent {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn push(&mut self, e: &Entry) {
        if self.entries.back().is_some_and(|b| b.index + 1 != e.index) {
            self.clear();
        }
        let mut kept = Entry {
            index: e.index,
            term: e.term,
            data: e.data.clone(),
            ..Entry::default()
        };
        kept.set_entry_type(e.get_entry_type());
        self.bytes += cost(&kept);
        self.entries.push_back(kept);
        while self.bytes > RECENT_MAX_BYTES {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= cost(&e);
        }
    }

    /// Drops the entries at `idx` and above.
    fn cut(&mut self, idx: u64) {
        while self.entries.back().is_some_and(|e| e.index >= idx) {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= cost(&e);
            }
        }
    }

    /// Drops the entries up to and including `idx`.
    fn release(&mut self, idx: u64) {
        while self.entries.front().is_some_and(|e| e.index <= idx) {
            self.pop_front();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// `[low, high)` within the budget (at least one entry), if `low` is here.
    fn get(&self, low: u64, high: u64, budget: u64) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        if low < first || high > first + self.entries.len() as u64 {
            return None;
        }
        let mut out = Vec::new();
        let mut size = 0u64;
        for e in self
            .entries
            .range((low - first) as usize..(high - first) as usize)
        {
            let len = e.data.len() as u64;
            if !out.is_empty() && size + len > budget {
                break;
            }
            size += len;
            out.push(e.clone());
        }
        Some(out)
    }
}

impl EntryIndex {
    /// Rebuilds the index from the batch headers of `log`, whose first batch is entry
    /// `start.first_index`. The log is first brought to start at `start.start_offset`:
    /// the state file is written before segments are deleted (retention) and after a log is
    /// reset (snapshot install), so a crash in between leaves one of two recognisable shapes.
    pub fn open(log: &mut Log, start: LogStart) -> Result<EntryIndex, ConsensusError> {
        align_log_start(log, &start)?;
        EntryIndex::scan(log, start)
    }

    /// Rebuilds the index from the batch headers of a log already starting at `start`. A run
    /// of entries the cleaner emptied and merged into one batch (`batch::entry_count`) gives
    /// its entries back, each starting at the next offset of the run: they hold no record, so
    /// only their number and term matter.
    pub fn scan(log: &Log, start: LogStart) -> Result<EntryIndex, ConsensusError> {
        let mut index = EntryIndex::empty(start);
        let mut headers = Vec::new();
        log.scan_headers(log.log_start_offset(), |h| {
            headers.push((
                h.base_offset as u64,
                h.partition_leader_epoch.max(0) as u64,
                batch::entry_count(h),
            ))
        })?;
        for (offset, term, count) in headers {
            for i in 0..count {
                index.push(offset + i, term);
            }
        }
        Ok(index)
    }

    /// An index with no entries after `start` (a log just reset to `start.start_offset`).
    pub fn empty(start: LogStart) -> EntryIndex {
        EntryIndex {
            first_index: start.first_index,
            prev_term: start.prev_term,
            starts: Vec::new(),
            terms: Vec::new(),
            recent: Mutex::default(),
        }
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        // The cache is consistent between its statements; a panic elsewhere leaves it usable.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries up to `idx` are applied: nothing reads them from memory any more.
    pub fn release_applied(&self, idx: u64) {
        self.recent().release(idx);
    }

    /// Drops every entry kept in memory (the replica stopped leading); reads go to the log.
    pub fn release_all(&self) {
        self.recent().clear();
    }

    /// Where the log would start if everything below `offset` were removed; `None` unless
    /// an entry starts exactly there, or `offset` is the log end (every entry removed: the log
    /// restarts empty at the next index).
    pub fn start_at(&self, offset: u64, log: &Log) -> Option<LogStart> {
        // The log end counts as an entry boundary. A log can end at an empty active segment
        // (a suffix truncated to exactly a segment's base), and once everything in it is
        // applied, `Log::retention_point` names that segment's base, the log end: refusing it
        // made retention fail on that replica until the next append. (Found by the seeded
        // simulation, seed 31 at 12,000 steps.)
        let idx = if offset == log.next_offset() {
            self.last_index() + 1
        } else {
            self.index_of_offset(offset, log)?
        };
        if self.start_offset(idx, log)? != offset {
            return None;
        }
        Some(LogStart {
            first_index: idx,
            prev_term: self.term(idx - 1).ok()?,
            start_offset: offset,
        })
    }

    /// Forgets the entries below `start.first_index`, whose batches the owner removed.
    pub fn compact(&mut self, start: LogStart) {
        if start.first_index <= self.first_index || start.first_index > self.last_index() + 1 {
            return;
        }
        let drop = (start.first_index - self.first_index) as usize;
        self.starts.drain(..drop);
        let keep_from = self
            .terms
            .partition_point(|(first, _)| *first <= start.first_index)
            .saturating_sub(1);
        self.terms.drain(..keep_from);
        if let Some(run) = self.terms.first_mut() {
            run.0 = run.0.max(start.first_index);
        }
        if self.starts.is_empty() {
            self.terms.clear();
        }
        self.first_index = start.first_index;
        self.prev_term = start.prev_term;
        self.recent().release(start.first_index - 1);
    }

    fn push(&mut self, offset: u64, term: u64) {
        let index = self.first_index + self.starts.len() as u64;
        self.starts.push(offset);
        if self.terms.last().is_none_or(|(_, t)| *t != term) {
            self.terms.push((index, term));
        }
    }

    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// `first_index - 1` when empty.
    pub fn last_index(&self) -> u64 {
        self.first_index + self.starts.len() as u64 - 1
    }

    pub fn last_term(&self) -> u64 {
        self.terms.last().map_or(self.prev_term, |(_, t)| *t)
    }

    /// Raft's `Storage::term`: `Compacted` below the log start, `Unavailable` past the end.
    pub fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx + 1 == self.first_index {
            return Ok(self.prev_term);
        }
        if idx < self.first_index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let run = self.terms.partition_point(|(start, _)| *start <= idx);
        Ok(self.terms[run - 1].1)
    }

    /// The entry holding Kafka offset `offset`, if it is in the log.
    pub fn index_of_offset(&self, offset: u64, log: &Log) -> Option<u64> {
        if offset >= log.next_offset() {
            return None;
        }
        let after = self.starts.partition_point(|&s| s <= offset);
        let rel = after.checked_sub(1)?;
        Some(self.first_index + rel as u64)
    }

    /// The offset entry `idx` starts at; `idx == last_index() + 1` gives the log end.
    pub fn start_offset(&self, idx: u64, log: &Log) -> Option<u64> {
        if idx < self.first_index {
            return None;
        }
        let rel = (idx - self.first_index) as usize;
        match rel.cmp(&self.starts.len()) {
            std::cmp::Ordering::Less => Some(self.starts[rel]),
            std::cmp::Ordering::Equal => Some(log.next_offset()),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// One past the last offset of entry `idx` (the high watermark once `idx` commits).
    /// `first_index - 1` maps to the log start offset.
    pub fn end_offset(&self, idx: u64, log: &Log) -> Option<u64> {
        if idx + 1 == self.first_index {
            return Some(log.log_start_offset());
        }
        self.start_offset(idx + 1, log)
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch <= `epoch` with entries, and the offset
    /// where the next epoch starts (the log end for the current one).
    pub fn epoch_end(&self, epoch: u64, log: &Log) -> Option<(u64, u64)> {
        let run = self.terms.partition_point(|(_, t)| *t <= epoch);
        if run == 0 {
            return None;
        }
        let term = self.terms[run - 1].1;
        let end = match self.terms.get(run) {
            Some((next_start, _)) => self.start_offset(*next_start, log)?,
            None => log.next_offset(),
        };
        Some((term, end))
    }

    /// Entries `[low, high)`, at least one, then while the data stays within `max_size`.
    pub fn entries(
        &self,
        log: &Log,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let (Some(mut offset), Some(end)) =
            (self.start_offset(low, log), self.start_offset(high, log))
        else {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        };
        let budget = max_size.unwrap_or(u64::MAX);
        if let Some(recent) = self.recent().get(low, high, budget) {
            return Ok(recent);
        }
        let mut out = Vec::new();
        let mut size = 0u64;
        let mut idx = low;
        while offset < end {
            let want = budget.saturating_sub(size).clamp(1, 8 << 20) as usize;
            let read = log.read(offset, want, end).map_err(storage_err)?;
            let batches = batch::split(&read.bytes).map_err(|e| storage_err(e.into()))?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                let header = BatchHeader::parse(&b).map_err(|e| storage_err(e.into()))?;
                offset = (header.base_offset + i64::from(header.last_offset_delta) + 1) as u64;
                // A merged run of emptied entries goes out as the entries it stands for, each
                // an empty batch over this index's own offsets for it.
                let count = batch::entry_count(&header);
                let first = if count > 1 {
                    self.index_of_offset(header.base_offset as u64, log)
                        .ok_or(raft::Error::Store(raft::StorageError::Unavailable))?
                } else {
                    idx
                };
                while idx < high && idx < first + count {
                    let one = if count > 1 {
                        let (Some(start), Some(next)) =
                            (self.start_offset(idx, log), self.start_offset(idx + 1, log))
                        else {
                            return Err(raft::Error::Store(raft::StorageError::Unavailable));
                        };
                        batch::empty_batch_at(
                            start,
                            next.saturating_sub(1).max(start),
                            header.partition_leader_epoch,
                            header.max_timestamp,
                            1,
                        )
                    } else {
                        b.clone()
                    };
                    let len = one.len() as u64;
                    if !out.is_empty() && size + len > budget {
                        return Ok(out);
                    }
                    size += len;
                    out.push(to_entry(idx, self.term(idx)?, one));
                    idx += 1;
                }
                if idx >= high || offset >= end {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Appends Raft entries to the log (not synced), first cutting any conflicting suffix.
    /// Returns the headers of the batches written, with their assigned base offsets, so the
    /// owner can update state derived from the log (producer state). `applied` guards the
    /// committed prefix: Raft never asks to rewrite it, and a bug that did must not succeed.
    pub fn append(
        &mut self,
        log: &mut Log,
        entries: &[Entry],
        applied: u64,
        now_ms: i64,
    ) -> Result<Vec<BatchHeader>, ConsensusError> {
        let Some(first) = entries.first() else {
            return Ok(Vec::new());
        };
        let idx = first.index;
        if idx < self.first_index || idx > self.last_index() + 1 {
            return Err(ConsensusError::NotContiguous {
                index: idx,
                first: self.first_index,
                last: self.last_index(),
            });
        }
        if idx <= self.last_index() {
            if idx <= applied {
                return Err(ConsensusError::RewritesCommitted {
                    index: idx,
                    applied,
                });
            }
            self.truncate_from(log, idx)?;
        }
        let mut headers = Vec::with_capacity(entries.len());
        for e in entries {
            let stored = stored_batch(e, now_ms)?;
            let term = i32::try_from(e.term).unwrap_or(i32::MAX);
            let info = log.append(&stored, term, now_ms)?;
            let mut h = BatchHeader::parse(&stored).map_err(StorageError::from)?;
            h.base_offset = info.base_offset as i64;
            h.partition_leader_epoch = term;
            self.push(info.base_offset, e.term);
            self.recent().push(e);
            headers.push(h);
        }
        Ok(headers)
    }

    /// Removes entries `idx..` from the log and the index.
    pub fn truncate_from(&mut self, log: &mut Log, idx: u64) -> Result<(), ConsensusError> {
        let Some(offset) = self.start_offset(idx, log) else {
            return Ok(());
        };
        self.recent().cut(idx);
        log.truncate_suffix(offset)?;
        self.starts.truncate((idx - self.first_index) as usize);
        let keep = self.terms.partition_point(|(start, _)| *start < idx);
        self.terms.truncate(keep);
        Ok(())
    }

    /// Where the log starts, for the state file.
    pub fn log_start(&self, log: &Log) -> LogStart {
        LogStart {
            first_index: self.first_index,
            prev_term: self.prev_term,
            start_offset: log.log_start_offset(),
        }
    }
}

/// Makes `log` start where the state file says. A log that starts earlier lost a race with a
/// crash during retention (the state already names the new start): finish the deletion. An
/// empty log that starts elsewhere was being reset for a snapshot: reset it to the recorded
/// start, and the leader sends the snapshot again.
fn align_log_start(log: &mut Log, start: &LogStart) -> Result<(), ConsensusError> {
    let (first, end) = (log.log_start_offset(), log.next_offset());
    if first == start.start_offset {
        return Ok(());
    }
    if first == end {
        log.reset(start.start_offset)?;
        return Ok(());
    }
    if first < start.start_offset {
        log.remove_segments_below(start.start_offset)?;
        if log.log_start_offset() == start.start_offset {
            return Ok(());
        }
    }
    Err(ConsensusError::BadEntry {
        index: start.first_index,
        reason: format!(
            "the raft state says the log starts at offset {}, but it starts at {} and no \
             segment begins there",
            start.start_offset,
            log.log_start_offset()
        ),
    })
}

fn storage_err(e: StorageError) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(Box::new(e)))
}

/// The batch an entry is stored as: its data for a data entry, a control batch otherwise.
fn stored_batch(e: &Entry, now_ms: i64) -> Result<Bytes, ConsensusError> {
    match e.get_entry_type() {
        EntryType::EntryNormal if !e.data.is_empty() => {
            // Data entries are client batches the leader validated, or the transaction markers
            // a partition leader writes (Kafka's control batches); check the framing again so
            // a bad entry from a peer is refused, never half-written. A batch that would read
            // back as one of Strom's own control entries is refused too.
            let h = BatchHeader::parse(&e.data).map_err(|err| ConsensusError::BadEntry {
                index: e.index,
                reason: err.to_string(),
            })?;
            if h.total_len() != e.data.len()
                || (h.is_control() && control::decode(&e.data).is_some())
                || batch::entry_count(&h) != 1
            {
                return Err(ConsensusError::BadEntry {
                    index: e.index,
                    reason: "length mismatch, a Strom control batch or a merged run as data".into(),
                });
            }
            Ok(e.data.clone())
        }
        t => Ok(control::encode(t, &e.data, now_ms)),
    }
}

fn to_entry(index: u64, term: u64, batch: Bytes) -> Entry {
    let mut e = Entry {
        index,
        term,
        ..Entry::default()
    };
    match control::decode(&batch) {
        Some((t, data)) => {
            e.set_entry_type(t);
            e.data = data;
        }
        None => e.data = batch,
    }
    e
}

#[cfg(test)]
#[path = "entry_log_tests.rs"]
mod tests;
