//! Non-data Raft entries as Kafka control batches.
//!
//! The log stores only RecordBatches, and a consumer must never see a leader's no-op or a
//! configuration change as a record. Kafka consumers skip control batches (attribute bit 5) and
//! ignore control types they do not know, so each non-data entry becomes a one-record control
//! batch: key = version 0 (i16) + a Strom control type (i16, far from Kafka's 0..=6), value =
//! the entry's data. It takes one offset, like a transaction marker.

use bytes::Bytes;
use raft::eraftpb::EntryType;
use strom_storage::records::{self, KeyValue, ATTR_CONTROL};

const TYPE_NOOP: i16 = 0x5301;
const TYPE_CONF_CHANGE: i16 = 0x5302;
const TYPE_CONF_CHANGE_V2: i16 = 0x5303;

/// A stored control batch for a non-data entry (`Normal` with empty data is the leader's no-op).
pub fn encode(entry_type: EntryType, data: &[u8], timestamp_ms: i64) -> Bytes {
    let kind = match entry_type {
        EntryType::EntryNormal => TYPE_NOOP,
        EntryType::EntryConfChange => TYPE_CONF_CHANGE,
        EntryType::EntryConfChangeV2 => TYPE_CONF_CHANGE_V2,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let record = KeyValue {
        key: Bytes::from(key),
        value: Some(Bytes::copy_from_slice(data)),
    };
    records::encode_batch_with(ATTR_CONTROL, &[record], timestamp_ms)
}

/// The entry a stored batch stands for: `None` for a data batch (the batch itself is the entry's
/// data), otherwise the control entry's type and data. A control batch that is not Strom's
/// (a transaction marker) is also `None`: it replicates as data.
pub fn decode(batch: &Bytes) -> Option<(EntryType, Bytes)> {
    let header = strom_storage::batch::BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.records_count != 1 {
        return None;
    }
    let (_, mut recs) = records::decode_any_batch(batch).ok()?;
    let rec = recs.pop()?;
    if rec.key.len() != 4 || rec.key[..2] != [0, 0] {
        return None;
    }
    let kind = i16::from_be_bytes([rec.key[2], rec.key[3]]);
    let entry_type = match kind {
        TYPE_NOOP => EntryType::EntryNormal,
        TYPE_CONF_CHANGE => EntryType::EntryConfChange,
        TYPE_CONF_CHANGE_V2 => EntryType::EntryConfChangeV2,
        _ => return None,
    };
    Some((entry_type, rec.value.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_is_a_valid_control_batch() {
        for (t, data) in [
            (EntryType::EntryNormal, &b""[..]),
            (EntryType::EntryConfChange, b"cc"),
            (EntryType::EntryConfChangeV2, b"ccv2 bytes"),
        ] {
            let b = encode(t, data, 5);
            let h = strom_storage::batch::validate(&b).unwrap();
            assert!(h.is_control());
            let (back, d) = decode(&b).unwrap();
            assert_eq!(back, t);
            assert_eq!(&d[..], data);
        }
    }

    #[test]
    fn data_batches_are_not_control_entries() {
        let b = records::encode_batch(
            &[KeyValue {
                key: Bytes::from_static(b"k"),
                value: None,
            }],
            0,
        );
        assert!(decode(&b).is_none());
        assert!(decode(&Bytes::from_static(b"short")).is_none());
    }
}
