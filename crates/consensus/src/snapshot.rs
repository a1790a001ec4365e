//! A partition's Raft snapshot. The state machine of a partition *is* its log, so a snapshot
//! carries no records: it says where the leader's log now starts (retention removed what came
//! before) and which configuration is in force. A replica that installs one throws its own log
//! away and starts empty at that offset; the retained entries then reach it as ordinary appends.
//!
//! The metadata's index and term are those of the entry before the leader's log start. Its
//! configuration is the leader's *applied* one, which may come from an entry after that index
//! (a new replica must find itself in it, or raft-rs refuses the snapshot); `conf_index` names
//! that entry, and the receiver skips configuration entries up to it when they arrive.
//!
//! Data layout (big-endian): `"SSN1"`, start offset (u64), conf index (u64), CRC-32C.

use bytes::Bytes;

use crate::ConsensusError;

const MAGIC: &[u8; 4] = b"SSN1";
const LEN: usize = 4 + 8 + 8 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotData {
    /// Kafka offset of the entry after the snapshot's index.
    pub start_offset: u64,
    /// The configuration change the snapshot's configuration reflects.
    pub conf_index: u64,
}

impl SnapshotData {
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.start_offset.to_be_bytes());
        b.extend_from_slice(&self.conf_index.to_be_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b.into()
    }

    pub fn decode(index: u64, bytes: &[u8]) -> Result<SnapshotData, ConsensusError> {
        let bad = |reason: &str| ConsensusError::BadEntry {
            index,
            reason: format!("snapshot data: {reason}"),
        };
        if bytes.len() != LEN || &bytes[..4] != MAGIC {
            return Err(bad("not a partition snapshot"));
        }
        let (body, crc) = bytes.split_at(LEN - 4);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err(bad("checksum mismatch"));
        }
        let u64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&body[at..at + 8]);
            u64::from_be_bytes(raw)
        };
        Ok(SnapshotData {
            start_offset: u64_at(4),
            conf_index: u64_at(12),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let d = SnapshotData {
            start_offset: 123_456,
            conf_index: 42,
        };
        let bytes = d.encode();
        assert_eq!(SnapshotData::decode(7, &bytes).unwrap(), d);
        for cut in 0..bytes.len() {
            assert!(SnapshotData::decode(7, &bytes[..cut]).is_err());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 1;
            assert!(SnapshotData::decode(7, &b).is_err(), "flip {i}");
        }
    }
}
