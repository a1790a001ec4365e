//! Kafka's transaction markers: the control batch a partition's leader writes when a
//! transaction commits or aborts. One record; key = version 0 (i16) + type (i16: 0 abort,
//! 1 commit); value = version 0 (i16) + the coordinator's epoch (i32). The batch carries the
//! producer's id and epoch, is transactional and control (consumers skip it; read_committed
//! ones use it to end the producer's transaction).

use bytes::Bytes;

use crate::batch::BatchHeader;
use crate::records::{self, KeyValue, ProducerFields, ATTR_CONTROL, ATTR_TRANSACTIONAL};

const TYPE_ABORT: i16 = 0;
const TYPE_COMMIT: i16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The marker's batch (baseOffset and leaderEpoch left for the log to assign).
pub fn encode(m: &Marker, timestamp_ms: i64) -> Bytes {
    let kind = if m.commit { TYPE_COMMIT } else { TYPE_ABORT };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&m.coordinator_epoch.to_be_bytes());
    let producer = ProducerFields {
        id: m.producer_id,
        epoch: m.producer_epoch,
        base_sequence: -1,
    };
    let record = KeyValue {
        key: Bytes::from(key),
        value: Some(Bytes::from(value)),
    };
    records::encode_batch_as(
        ATTR_CONTROL | ATTR_TRANSACTIONAL,
        producer,
        &[record],
        timestamp_ms,
    )
}

/// The marker a stored batch is, if it is one (any other batch, control or not: `None`).
pub fn decode(batch: &Bytes) -> Option<Marker> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || !header.is_transactional() || header.records_count != 1 {
        return None;
    }
    let (_, mut recs) = records::decode_any_batch(batch).ok()?;
    let rec = recs.pop()?;
    let key: [u8; 4] = rec.key.as_ref().try_into().ok()?;
    if key[..2] != [0, 0] {
        return None;
    }
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        TYPE_ABORT => false,
        TYPE_COMMIT => true,
        _ => return None,
    };
    // Kafka's value: version (i16), coordinator epoch (i32); later versions may add fields.
    let value = rec.value?;
    let epoch: [u8; 4] = value.get(2..6)?.try_into().ok()?;
    Some(Marker {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        commit,
        coordinator_epoch: i32::from_be_bytes(epoch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_nothing_else_is_one() {
        for commit in [false, true] {
            let m = Marker {
                producer_id: 4242,
                producer_epoch: 7,
                commit,
                coordinator_epoch: 3,
            };
            let b = encode(&m, 1_700_000_000_000);
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(crate::batch::validate(&b).unwrap(), h);
            assert_eq!(decode(&b), Some(m));
            // Every truncation is refused.
            for cut in 0..b.len() {
                assert_eq!(decode(&b.slice(..cut)), None);
            }
        }
        let data = records::encode_batch(
            &[KeyValue {
                key: Bytes::from_static(&[0, 0, 0, 1]),
                value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 3])),
            }],
            0,
        );
        assert_eq!(decode(&data), None, "a data batch is no marker");
        let not_txn = records::encode_batch_with(
            ATTR_CONTROL,
            &[KeyValue {
                key: Bytes::from_static(&[0, 0, 0, 1]),
                value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 3])),
            }],
            0,
        );
        assert_eq!(decode(&not_txn), None, "a marker is transactional");
    }
}
