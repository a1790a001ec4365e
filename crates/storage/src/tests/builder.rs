//! Test helpers: an encoder for valid v2 batches (records are opaque bytes; the
//! log never parses them) and small log utilities.

use std::path::Path;

use crate::batch::{self, HEADER_LEN};
use crate::log::{Log, LogConfig};

pub(crate) struct BatchSpec {
    pub records: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub attributes: i16,
    pub payload_len: usize,
    pub seed: u8,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            records: 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            attributes: 0,
            payload_len: 40,
            seed: 7,
        }
    }
}

pub(crate) fn encode(spec: &BatchSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + spec.payload_len);
    out.extend_from_slice(&0i64.to_be_bytes()); // baseOffset: the log assigns it
    let batch_length = (HEADER_LEN + spec.payload_len - 12) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    out.push(batch::MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // crc, filled below
    out.extend_from_slice(&spec.attributes.to_be_bytes());
    out.extend_from_slice(&(spec.records - 1).to_be_bytes());
    out.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.max_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    out.extend_from_slice(&spec.records.to_be_bytes());
    out.extend((0..spec.payload_len).map(|i| spec.seed.wrapping_add(i as u8)));
    if spec.payload_len > 0 {
        // Opaque payload: a first record length of -1 (zigzag 0x01), so it never parses as
        // records and timestamp lookups answer at batch granularity.
        out[HEADER_LEN] = 0x01;
    }
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A batch with `records` records, a payload of `payload_len` bytes and the
/// given maxTimestamp.
pub(crate) fn batch_with(records: i32, payload_len: usize, max_timestamp: i64) -> Vec<u8> {
    encode(&BatchSpec {
        records,
        payload_len,
        base_timestamp: max_timestamp,
        max_timestamp,
        seed: (payload_len as u8)
            .wrapping_mul(31)
            .wrapping_add(records as u8),
        ..BatchSpec::default()
    })
}

/// A batch of real records, one per timestamp (each with a 30-byte value), compressed with
/// `codec` (0 none, 1 gzip, 2 raw snappy, 3 lz4), with attributes `extra_attributes` added
/// (e.g. the LogAppendTime bit). Header timestamps are the records' first and largest.
pub(crate) fn batch_of_records(timestamps: &[i64], codec: u8, extra_attributes: i16) -> Vec<u8> {
    use std::io::Write;
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let base_timestamp = timestamps[0];
    let max_timestamp = *timestamps.iter().max().unwrap();
    let mut records = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        let mut rec = vec![0u8]; // attributes
        varint(&mut rec, ts - base_timestamp);
        varint(&mut rec, i as i64);
        varint(&mut rec, -1); // null key
        varint(&mut rec, 30);
        rec.extend((0..30).map(|j| (i + j) as u8));
        varint(&mut rec, 0); // no headers
        varint(&mut records, rec.len() as i64);
        records.extend_from_slice(&rec);
    }
    let records = match codec {
        0 => records,
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&records).unwrap();
            gz.finish().unwrap()
        }
        2 => snap::raw::Encoder::new().compress_vec(&records).unwrap(),
        3 => {
            let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
            lz4.write_all(&records).unwrap();
            lz4.finish().unwrap()
        }
        other => panic!("codec {other}"),
    };
    let mut out = encode(&BatchSpec {
        records: timestamps.len() as i32,
        base_timestamp,
        max_timestamp,
        attributes: i16::from(codec) | extra_attributes,
        payload_len: records.len(),
        seed: 0,
    });
    out[HEADER_LEN..].copy_from_slice(&records);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The bytes the log stores for `batch` appended at `base_offset`.
pub(crate) fn stored(batch: &[u8], base_offset: u64, leader_epoch: i32) -> Vec<u8> {
    let mut out = batch::rewritten_prefix(batch, base_offset as i64, leader_epoch).to_vec();
    out.extend_from_slice(&batch[17..]);
    out
}

pub(crate) fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: u64::MAX / 2,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 256,
    }
}

pub(crate) fn open(dir: &Path, config: &LogConfig) -> Log {
    Log::open(dir, config.clone()).unwrap()
}

/// Reads everything from `offset` to the end, following segment boundaries.
pub(crate) fn read_all(log: &Log, mut offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while offset < log.next_offset() {
        let result = log.read(offset, 1 << 20, u64::MAX).unwrap();
        assert!(!result.bytes.is_empty(), "no progress at offset {offset}");
        let mut pos = 0;
        while pos < result.bytes.len() {
            let header = batch::BatchHeader::parse(&result.bytes[pos..]).unwrap();
            offset = header.last_offset() as u64 + 1;
            pos += header.total_len();
        }
        out.extend_from_slice(&result.bytes);
    }
    out
}

/// Files in `dir` with the given extension, sorted.
pub(crate) fn files_with_ext(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}
