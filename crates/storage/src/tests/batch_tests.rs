use bytes::Bytes;

use super::builder::{encode, BatchSpec};
use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::BatchError;

#[test]
fn parses_and_validates_a_good_batch() {
    let raw = encode(&BatchSpec {
        records: 5,
        base_timestamp: 10,
        max_timestamp: 20,
        attributes: 0b10_0011, // lz4 (3) + control bit
        payload_len: 100,
        seed: 1,
    });
    let header = batch::validate(&raw).unwrap();
    assert_eq!(header.total_len(), raw.len());
    assert_eq!(header.records_count, 5);
    assert_eq!(header.last_offset_delta, 4);
    assert_eq!(header.base_timestamp, 10);
    assert_eq!(header.max_timestamp, 20);
    assert_eq!(header.compression(), 3);
    assert!(header.is_control());
    assert!(!header.is_transactional());
    assert_eq!(header, BatchHeader::parse(&raw).unwrap());
    assert_eq!(header.last_offset(), 4);
}

#[test]
fn rejects_bad_crc_magic_and_lengths() {
    let raw = encode(&BatchSpec::default());
    let mut bad_crc = raw.clone();
    bad_crc[HEADER_LEN + 3] ^= 1;
    assert!(matches!(
        batch::validate(&bad_crc),
        Err(BatchError::CrcMismatch { .. })
    ));

    let mut bad_magic = raw.clone();
    bad_magic[16] = 1;
    assert_eq!(batch::validate(&bad_magic), Err(BatchError::BadMagic(1)));

    assert_eq!(batch::validate(&raw[..30]), Err(BatchError::TooShort));
    assert!(matches!(
        batch::validate(&raw[..raw.len() - 1]),
        Err(BatchError::BadLength { .. })
    ));
    let mut longer = raw.clone();
    longer.push(0);
    assert!(matches!(
        batch::validate(&longer),
        Err(BatchError::BadLength { .. })
    ));
    let mut negative = raw.clone();
    negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        batch::validate(&negative),
        Err(BatchError::BadLength { .. })
    ));
}

#[test]
fn rejects_bad_record_counts() {
    let zero = encode(&BatchSpec {
        records: 0,
        ..BatchSpec::default()
    });
    assert_eq!(batch::validate(&zero), Err(BatchError::BadRecordCount));

    // lastOffsetDelta is CRC'd, so recompute the CRC to reach the delta check.
    let mut gap = encode(&BatchSpec {
        records: 3,
        ..BatchSpec::default()
    });
    gap[23..27].copy_from_slice(&5i32.to_be_bytes());
    let crc = crc32c::crc32c(&gap[21..]);
    gap[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        batch::validate(&gap),
        Err(BatchError::BadOffsetDelta { .. })
    ));
}

#[test]
fn rewriting_offset_and_epoch_keeps_crc_valid() {
    let raw = encode(&BatchSpec::default());
    let prefix = batch::rewritten_prefix(&raw, 1234, 9);
    let mut stored = prefix.to_vec();
    stored.extend_from_slice(&raw[17..]);
    let header = batch::validate(&stored).unwrap();
    assert_eq!(header.base_offset, 1234);
    assert_eq!(header.partition_leader_epoch, 9);
    // Garbage in never panics.
    let _ = batch::rewritten_prefix(&raw[..3], 1, 1);
}

#[test]
fn splits_concatenated_batches() {
    let a = encode(&BatchSpec {
        payload_len: 10,
        ..BatchSpec::default()
    });
    let b = encode(&BatchSpec {
        records: 3,
        payload_len: 0,
        ..BatchSpec::default()
    });
    let c = encode(&BatchSpec {
        payload_len: 300,
        ..BatchSpec::default()
    });
    let all = Bytes::from([a.clone(), b.clone(), c.clone()].concat());
    let parts = batch::split(&all).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], a);
    assert_eq!(parts[1], b);
    assert_eq!(parts[2], c);
    for part in &parts {
        batch::validate(part).unwrap();
    }
    assert!(batch::split(&Bytes::new()).unwrap().is_empty());

    let truncated = all.slice(..all.len() - 7);
    assert!(matches!(
        batch::split(&truncated),
        Err(BatchError::BadLength { .. })
    ));
    let tiny_tail = Bytes::from([a.clone(), vec![0; 5]].concat());
    assert_eq!(batch::split(&tiny_tail), Err(BatchError::TooShort));
    let mut absurd = a.clone();
    absurd[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        batch::split(&Bytes::from(absurd)),
        Err(BatchError::BadLength { .. })
    ));
    let mut negative = a;
    negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        batch::split(&Bytes::from(negative)),
        Err(BatchError::BadLength { .. })
    ));
}

/// LogAppendTime stamping and recompression give a valid batch (new CRC) with the same records:
/// same offsets, the same timestamps (or the append time for all of them), the same count.
#[test]
fn rewrite_stamps_append_time_and_recompresses() {
    use super::builder::batch_of_records;
    use crate::records::record_times;
    let timestamps = [5_000, 4_000, 6_000, 5_500];
    for from in 0..=3u8 {
        let original = batch_of_records(&timestamps, from, 0);
        let want = record_times(&original).unwrap();
        for to in 0..=4u8 {
            let out = batch::rewrite(&original, None, Some(to)).unwrap();
            let header = batch::validate(&out).expect("a valid batch");
            assert_eq!(header.compression(), to);
            assert_eq!(record_times(&out).unwrap(), want, "{from} -> {to}");
        }
        let stamped = batch::rewrite(&original, Some(9_999), None).unwrap();
        let header = batch::validate(&stamped).expect("a valid batch");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 9_999);
        assert_eq!(header.compression(), from);
        let times = record_times(&stamped).unwrap();
        assert!(times.iter().all(|(_, ts)| *ts == 9_999), "{times:?}");
    }
    // Records that do not decompress are refused, not stored.
    let mut garbage = batch_of_records(&timestamps, 0, 0);
    garbage[21..23].copy_from_slice(&3i16.to_be_bytes()); // claims lz4
    assert!(batch::rewrite(&garbage, None, Some(1)).is_err());
}
