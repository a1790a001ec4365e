//! `<partition dir>/producer-state.snapshot`: the partition's producer state as of a log offset,
//! so that opening a partition replays only the batches after that offset instead of the whole
//! log. It is a cache: a missing, damaged or implausible snapshot (one claiming an offset beyond
//! the log end) is ignored and the state is rebuilt from the whole log.
//!
//! Layout, all integers big-endian:
//!
//! ```text
//! offset  size  field
//!  0      4     magic          b"SPST"
//!  4      1     version        2 (1: no transaction section; still read)
//!  5      8     offset         u64  the state covers every batch below this log offset
//! 13      4     count          u32  number of producer entries that follow
//! 17      ...   count entries, ordered by producer id:
//!                 0   8   producer_id        i64  >= 0
//!                 8   2   epoch              i16  >= 0
//!                10   8   last_timestamp_ms  i64  broker time of the last append
//!                18   4   coordinator_epoch  i32  of its last marker, -1 none (version 2)
//!                22   1   batch_count        u8   0..=5
//!                23  24×n batches, oldest first:
//!                         0  4  first_seq    i32
//!                         4  4  last_seq     i32
//!                         8  8  base_offset  u64
//!                        16  8  last_offset  u64  < snapshot offset
//! (version 2) the partition's transactions (`txn_index`):
//!         4     open_count     u32, then open transactions ordered by producer id:
//!                 0   8   producer_id        i64
//!                 8   8   first_offset       u64  < snapshot offset
//!         4     ended_count    u32, then transactions ended by a marker, ordered by marker:
//!                 0   8   marker_offset      u64  < snapshot offset
//!                 8   8   producer_id        i64
//!                16   8   first_offset       u64  <= marker_offset
//!                24   1   aborted            u8   0 or 1
//! end-4   4     crc            u32  CRC-32C of every byte before it
//! ```
//!
//! Written atomically: a temp file is written and fsynced, renamed over the old snapshot, and the
//! directory is fsynced, so a crash leaves the old or the new snapshot, never a torn one.
//!
//! A snapshot may describe batches that were not yet fsynced when it was written. If a crash
//! then loses them, the snapshot claims an offset beyond the recovered log end: [`restore`]
//! discards *and deletes* it, because once new appends move the log end past that offset again
//! it would look valid while describing batches that no longer exist.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use strom_storage::{Log, StorageError};

use crate::producer_state::{
    BatchMeta, ProducerEntry, ProducerStateMap, BATCH_WINDOW, PRODUCER_EXPIRATION_MS,
};
use crate::txn_index::{EndedTxn, TxnIndex};

pub(crate) const FILE_NAME: &str = "producer-state.snapshot";
const TEMP_NAME: &str = "producer-state.snapshot.tmp";
const MAGIC: &[u8; 4] = b"SPST";
const VERSION: u8 = 2;
const HEADER_LEN: usize = 17;
const CRC_LEN: usize = 4;
const ENTRY_FIXED_LEN: usize = 23;
const ENTRY_FIXED_LEN_V1: usize = 19;
const BATCH_LEN: usize = 24;

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

pub(crate) fn temp_path(dir: &Path) -> PathBuf {
    dir.join(TEMP_NAME)
}

pub(crate) fn encode(offset: u64, state: &ProducerStateMap, txns: &TxnIndex) -> Vec<u8> {
    let entries = state.sorted();
    let mut out = Vec::with_capacity(
        HEADER_LEN + CRC_LEN + entries.len() * (ENTRY_FIXED_LEN + BATCH_WINDOW * BATCH_LEN),
    );
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&offset.to_be_bytes());
    // A partition cannot hold 2^32 producers in memory; saturate rather than wrap regardless.
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (id, entry) in entries.into_iter().take(count as usize) {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        let batches: Vec<&BatchMeta> = entry.batches.iter().take(BATCH_WINDOW).collect();
        out.push(batches.len() as u8);
        for b in batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    let open = txns.open_list();
    out.extend_from_slice(&(open.len() as u32).to_be_bytes());
    for (pid, first) in open {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&first.to_be_bytes());
    }
    let ended = txns.ended_list();
    out.extend_from_slice(&(ended.len() as u32).to_be_bytes());
    for e in ended {
        out.extend_from_slice(&e.marker_offset.to_be_bytes());
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.first_offset.to_be_bytes());
        out.push(u8::from(e.aborted));
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Bounds-checked big-endian reads over the snapshot body.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.at.checked_add(N).ok_or("length overflow")?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }
}

/// Parses and checks a snapshot; `Err` says why it is unusable.
/// What a snapshot holds: its offset, the producers, the transactions.
pub(crate) type Decoded = (u64, ProducerStateMap, TxnIndex);

pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(format!("{} bytes is shorter than a header", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    let mut c = Cursor { bytes: body, at: 0 };
    if &c.take::<4>()? != MAGIC {
        return Err("bad magic".into());
    }
    let version = c.u8()?;
    if version != VERSION && version != 1 {
        return Err(format!("unknown version {version}"));
    }
    let offset = c.u64()?;
    let count = c.u32()? as usize;
    // Checked before allocating anything sized by `count`.
    let entry_len = if version == 1 {
        ENTRY_FIXED_LEN_V1
    } else {
        ENTRY_FIXED_LEN
    };
    if count > c.remaining() / entry_len {
        return Err(format!(
            "{count} entries cannot fit in {} bytes",
            c.remaining()
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut previous_id = -1i64;
    for _ in 0..count {
        let id = c.i64()?;
        let epoch = c.i16()?;
        let last_timestamp_ms = c.i64()?;
        let coordinator_epoch = if version == 1 { -1 } else { c.i32()? };
        let n = c.u8()? as usize;
        if id <= previous_id || epoch < 0 || n > BATCH_WINDOW {
            return Err(format!("implausible entry for producer {id}"));
        }
        previous_id = id;
        let mut batches = VecDeque::with_capacity(n);
        for _ in 0..n {
            let b = BatchMeta {
                first_seq: c.i32()?,
                last_seq: c.i32()?,
                base_offset: c.u64()?,
                last_offset: c.u64()?,
            };
            if b.first_seq < 0 || b.last_seq < 0 || b.base_offset > b.last_offset {
                return Err(format!("implausible batch of producer {id}"));
            }
            if b.last_offset >= offset {
                return Err(format!(
                    "batch of producer {id} at {} lies beyond the snapshot offset {offset}",
                    b.last_offset
                ));
            }
            batches.push_back(b);
        }
        entries.push((
            id,
            ProducerEntry {
                epoch,
                batches,
                last_timestamp_ms,
                coordinator_epoch,
            },
        ));
    }
    let txns = if version >= 2 {
        decode_txns(&mut c, offset)?
    } else {
        TxnIndex::default()
    };
    if c.remaining() != 0 {
        return Err(format!("{} trailing bytes", c.remaining()));
    }
    Ok((offset, ProducerStateMap::from_entries(entries), txns))
}

fn decode_txns(c: &mut Cursor<'_>, offset: u64) -> Result<TxnIndex, String> {
    let open_count = c.u32()? as usize;
    if open_count > c.remaining() / 16 {
        return Err(format!("{open_count} open transactions cannot fit"));
    }
    let mut open = Vec::with_capacity(open_count);
    for _ in 0..open_count {
        let (pid, first) = (c.i64()?, c.u64()?);
        if first >= offset || open.last().is_some_and(|(p, _)| *p >= pid) {
            return Err(format!("implausible open transaction of producer {pid}"));
        }
        open.push((pid, first));
    }
    let ended_count = c.u32()? as usize;
    if ended_count > c.remaining() / 25 {
        return Err(format!("{ended_count} ended transactions cannot fit"));
    }
    let mut ended = Vec::with_capacity(ended_count);
    for _ in 0..ended_count {
        let e = EndedTxn {
            marker_offset: c.u64()?,
            producer_id: c.i64()?,
            first_offset: c.u64()?,
            aborted: match c.u8()? {
                0 => false,
                1 => true,
                other => return Err(format!("bad aborted flag {other}")),
            },
        };
        if e.marker_offset >= offset || e.first_offset > e.marker_offset {
            return Err(format!(
                "implausible ended transaction of producer {}",
                e.producer_id
            ));
        }
        ended.push(e);
    }
    Ok(TxnIndex::from_lists(open, ended))
}

/// The stored snapshot. `Ok(None)` when there is none; `Err` (to be logged) when it is unusable.
pub(crate) fn read(dir: &Path) -> Result<Option<Decoded>, String> {
    let path = path(dir);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the snapshot atomically and durably (see the module docs).
pub(crate) fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(dir);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path(dir))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The producer state of a freshly opened log.
pub(crate) struct Restored {
    pub state: ProducerStateMap,
    pub txns: TxnIndex,
    /// The offset of the snapshot used, if one was.
    pub snapshot_offset: Option<u64>,
    /// Batches from here to the log end were replayed.
    pub scanned_from: u64,
}

fn discard(dir: &Path, reason: &str) -> Result<(), StorageError> {
    tracing::warn!(dir = %dir.display(), %reason, "discarding the producer-state snapshot; replaying the whole log");
    let path = path(dir);
    fs::remove_file(&path)
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|e| StorageError::Io { path, source: e })
}

/// The log was cut at `offset` (a Raft follower losing an uncommitted tail): a snapshot taken
/// beyond it describes batches that are gone, even once the log grows past it again.
pub(crate) fn discard_beyond(dir: &Path, offset: u64) -> Result<(), StorageError> {
    match read(dir) {
        Ok(Some((at, _, _))) if at > offset => discard(
            dir,
            &format!("it covers up to offset {at}, beyond a cut at {offset}"),
        ),
        // Missing or unreadable: `restore` deals with it.
        _ => Ok(()),
    }
}

/// Loads the snapshot if it is usable, then replays the batch headers after it (all of them
/// without a usable snapshot).
pub(crate) fn restore(dir: &Path, log: &Log, now_ms: i64) -> Result<Restored, StorageError> {
    // A leftover of a crash mid-write; never read.
    let tmp = temp_path(dir);
    if tmp.exists() {
        fs::remove_file(&tmp).map_err(|e| StorageError::Io {
            path: tmp.clone(),
            source: e,
        })?;
    }
    let end = log.next_offset();
    let unusable = |reason: String| discard(dir, &reason);
    let (mut state, mut txns, snapshot_offset) = match read(dir) {
        Ok(Some((offset, state, txns))) if offset <= end => (state, txns, Some(offset)),
        Ok(Some((offset, _, _))) => {
            unusable(format!(
                "it covers up to offset {offset}, beyond the log end {end}"
            ))?;
            Default::default()
        }
        Ok(None) => Default::default(),
        Err(reason) => {
            unusable(reason)?;
            Default::default()
        }
    };
    // Retention may have removed segments since the snapshot was written.
    state.evict_below(log.log_start_offset());
    txns.remove_below(log.log_start_offset());
    let scanned_from = snapshot_offset.unwrap_or(0).max(log.log_start_offset());
    // Transactional batches in log order; a marker's kind (commit or abort) is in its record,
    // read once the scan is done.
    let mut txn_batches: Vec<(i64, u64, bool)> = Vec::new();
    log.scan_headers(scanned_from, |h| {
        state.replay(h, now_ms);
        if h.is_transactional() && h.producer_id >= 0 && h.base_offset >= 0 {
            txn_batches.push((h.producer_id, h.base_offset as u64, h.is_control()));
        }
    })?;
    for (pid, offset, control) in txn_batches {
        if !control {
            txns.on_data(pid, offset);
            continue;
        }
        let read = log.read_with(offset, 1, end, strom_storage::FirstBatch::Whole)?;
        let marker = strom_storage::batch::split(&read.bytes)
            .ok()
            .and_then(|b| b.first().and_then(strom_storage::markers::decode));
        match marker {
            Some(m) => {
                txns.on_marker(pid, offset, m.commit);
                state.note_coordinator_epoch(pid, m.coordinator_epoch);
            }
            None => {
                tracing::warn!(dir = %dir.display(), offset, "skipping a transactional control batch that is no marker")
            }
        }
    }
    state.expire(now_ms, PRODUCER_EXPIRATION_MS);
    Ok(Restored {
        state,
        txns,
        snapshot_offset,
        scanned_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_storage::batch::BatchHeader;

    fn sample() -> ProducerStateMap {
        let mut map = ProducerStateMap::default();
        let mut offset = 0i64;
        for (pid, epoch, batches) in [(4i64, 0i16, 7), (1, 3, 2), (900, 1, 1)] {
            for seq in 0..batches {
                let h = BatchHeader {
                    base_offset: offset,
                    batch_length: 100,
                    partition_leader_epoch: 0,
                    magic: 2,
                    crc: 0,
                    attributes: 0,
                    last_offset_delta: 1,
                    base_timestamp: 0,
                    max_timestamp: 0,
                    producer_id: pid,
                    producer_epoch: epoch,
                    base_sequence: seq * 2,
                    records_count: 2,
                };
                map.replay(&h, 77 + offset);
                offset += 2;
            }
        }
        map
    }

    fn sample_txns() -> TxnIndex {
        let mut t = TxnIndex::default();
        t.on_data(4, 2);
        t.on_data(1, 5);
        t.on_marker(4, 9, false);
        t.on_data(900, 11);
        t.on_marker(900, 12, true);
        t.on_high_watermark(10);
        t
    }

    #[test]
    fn round_trips_transactions() {
        let (map, txns) = (sample(), sample_txns());
        let bytes = encode(20, &map, &txns);
        let (offset, back, restored) = decode(&bytes).unwrap();
        assert_eq!((offset, &back), (20, &map));
        assert_eq!(restored.last_stable_offset(20), txns.last_stable_offset(20));
        assert_eq!(restored.aborted_between(0, 20), txns.aborted_between(0, 20));
        assert_eq!(restored.open_list(), txns.open_list());
    }

    #[test]
    fn round_trips() {
        let map = sample();
        let bytes = encode(20, &map, &TxnIndex::default());
        assert_eq!(decode(&bytes), Ok((20, map, TxnIndex::default())));
        let empty = encode(0, &ProducerStateMap::default(), &TxnIndex::default());
        assert_eq!(empty.len(), HEADER_LEN + 8 + CRC_LEN);
        assert_eq!(
            decode(&empty),
            Ok((0, ProducerStateMap::default(), TxnIndex::default()))
        );
    }

    #[test]
    fn rejects_every_damage() {
        let bytes = encode(20, &sample(), &sample_txns());
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert!(decode(&damaged).is_err(), "flipped byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    /// Re-seals `body` with a valid CRC, so the semantic checks are what rejects it.
    fn sealed(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        body
    }

    #[test]
    fn rejects_implausible_contents_with_a_valid_crc() {
        let good = encode(20, &sample(), &sample_txns());
        let body = &good[..good.len() - CRC_LEN];
        // Snapshot offset below the batches it holds.
        let mut low = body.to_vec();
        low[5..13].copy_from_slice(&10u64.to_be_bytes());
        assert!(decode(&sealed(low)).unwrap_err().contains("beyond"));
        // A huge count must not allocate.
        let mut huge = body.to_vec();
        huge[13..17].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&sealed(huge)).is_err());
        // Too many batches for one producer.
        let mut many = body.to_vec();
        many[HEADER_LEN + 22] = 6;
        assert!(decode(&sealed(many)).is_err());
        let mut version = body.to_vec();
        version[4] = 3;
        assert!(decode(&sealed(version)).is_err());
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        let map = sample();
        write(dir.path(), &encode(20, &map, &TxnIndex::default())).unwrap();
        write(dir.path(), &encode(24, &map, &TxnIndex::default())).unwrap();
        assert_eq!(read(dir.path()), Ok(Some((24, map, TxnIndex::default()))));
        assert!(!temp_path(dir.path()).exists());
        fs::write(path(dir.path()), b"junk").unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[test]
    fn a_cut_below_the_snapshot_discards_it() {
        let dir = tempfile::tempdir().unwrap();
        let map = sample();
        write(dir.path(), &encode(24, &map, &TxnIndex::default())).unwrap();
        discard_beyond(dir.path(), 24).unwrap();
        assert_eq!(
            read(dir.path()),
            Ok(Some((24, map, TxnIndex::default()))),
            "a cut at its end keeps it"
        );
        discard_beyond(dir.path(), 23).unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        discard_beyond(dir.path(), 0).unwrap();
    }
}
