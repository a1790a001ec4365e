//! A remote segment's sparse index, uploaded beside it as `<object>.index`: where to start
//! reading for an offset, and for a timestamp, with one ranged GET of the segment rather than
//! a scan of it.
//!
//! Layout (big-endian): `"STIX"`, entry count (u32), entries of (batch base offset u64, byte
//! position u64, largest maxTimestamp of the batches before it i64), CRC-32C of all before it.

use bytes::Bytes;
use strom_storage::batch::BatchHeader;

use crate::TierError;

const MAGIC: &[u8; 4] = b"STIX";
const ENTRY_LEN: usize = 24;
/// An entry at most this many bytes apart: a lookup reads at most this much before its batch.
pub const INTERVAL_BYTES: u64 = 64 << 10;
/// No segment has more entries than this (2 GiB / 64 KiB); a larger count is damage.
const MAX_ENTRIES: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub position: u64,
    /// The largest maxTimestamp among the batches before this one (-1 for none).
    pub max_timestamp_before: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteIndex {
    entries: Vec<IndexEntry>,
}

impl RemoteIndex {
    /// Where to start reading for `offset`: the last indexed batch starting at or before it.
    pub fn position_for(&self, offset: u64) -> u64 {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        i.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    /// Where to start looking for the first record at or after `timestamp_ms`: every batch
    /// before the returned position has only older records.
    pub fn position_for_time(&self, timestamp_ms: i64) -> u64 {
        let i = self
            .entries
            .partition_point(|e| e.max_timestamp_before < timestamp_ms);
        i.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(8 + self.entries.len() * ENTRY_LEN + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            b.extend_from_slice(&e.offset.to_be_bytes());
            b.extend_from_slice(&e.position.to_be_bytes());
            b.extend_from_slice(&e.max_timestamp_before.to_be_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b.into()
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<RemoteIndex, TierError> {
        let bad = |reason: &str| TierError::corrupt(key, reason);
        if bytes.len() < 12 || &bytes[..4] != MAGIC {
            return Err(bad("not a remote segment index"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err(bad("index checksum mismatch"));
        }
        let count = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
        if count > MAX_ENTRIES || body.len() != 8 + count * ENTRY_LEN {
            return Err(bad("index length does not match its count"));
        }
        let word = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&body[at..at + 8]);
            raw
        };
        let entries = (0..count)
            .map(|i| {
                let at = 8 + i * ENTRY_LEN;
                IndexEntry {
                    offset: u64::from_be_bytes(word(at)),
                    position: u64::from_be_bytes(word(at + 8)),
                    max_timestamp_before: i64::from_be_bytes(word(at + 16)),
                }
            })
            .collect();
        Ok(RemoteIndex { entries })
    }
}

/// Builds the index, and the segment's summary, from its batch headers in order.
#[derive(Debug)]
pub struct IndexBuilder {
    index: RemoteIndex,
    last_entry_position: Option<u64>,
    max_timestamp: i64,
    end_offset: Option<u64>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder {
            index: RemoteIndex::default(),
            last_entry_position: None,
            max_timestamp: -1,
            end_offset: None,
        }
    }
}

impl IndexBuilder {
    /// The batch `header` starts at byte `position` of the object.
    pub fn add(&mut self, header: &BatchHeader, position: u64) {
        let due = self
            .last_entry_position
            .is_none_or(|last| position - last >= INTERVAL_BYTES);
        if due {
            self.index.entries.push(IndexEntry {
                offset: header.base_offset as u64,
                position,
                max_timestamp_before: self.max_timestamp,
            });
            self.last_entry_position = Some(position);
        }
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.end_offset = Some(header.last_offset() as u64 + 1);
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The offset after the last batch added.
    pub fn end_offset(&self) -> Option<u64> {
        self.end_offset
    }

    pub fn finish(self) -> RemoteIndex {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(base: i64, count: i32, max_ts: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: max_ts,
            max_timestamp: max_ts,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        }
    }

    #[test]
    fn finds_offsets_and_times_and_round_trips() {
        let mut b = IndexBuilder::default();
        // Batches of 10 records, 40 KiB apart: every other one is indexed.
        for i in 0..10u64 {
            b.add(&header(i as i64 * 10, 10, 1000 + i as i64), i * 40 * 1024);
        }
        assert_eq!(b.end_offset(), Some(100));
        assert_eq!(b.max_timestamp(), 1009);
        let index = b.finish();
        assert_eq!(index.position_for(0), 0);
        assert_eq!(index.position_for(25), 2 * 40 * 1024);
        assert_eq!(index.position_for(1_000), 8 * 40 * 1024);
        // Timestamps: the batch with maxTimestamp 1005 is the 6th; the entry before it is the 5th.
        assert_eq!(index.position_for_time(1005), 4 * 40 * 1024);
        assert_eq!(index.position_for_time(0), 0);
        let bytes = index.encode();
        assert_eq!(RemoteIndex::decode("k", &bytes).unwrap(), index);
        for cut in 0..bytes.len() {
            assert!(RemoteIndex::decode("k", &bytes[..cut]).is_err());
        }
        let mut flipped = bytes.to_vec();
        flipped[9] ^= 1;
        assert!(RemoteIndex::decode("k", &flipped).is_err());
    }
}
