//! Kafka RecordBatch v2 framing: header parsing, validation of client batches,
//! splitting a Produce `records` field, and the offset/epoch rewrite.
//!
//! RecordBatch v2 header layout (all big-endian), 61 bytes:
//!
//! ```text
//! offset  size  field
//!  0      8     baseOffset            i64   assigned by the log
//!  8      4     batchLength           i32   total bytes - 12
//! 12      4     partitionLeaderEpoch  i32   assigned by the log
//! 16      1     magic                 i8    = 2
//! 17      4     crc                   u32   CRC-32C over bytes [21..end]
//! 21      2     attributes            i16   bits 0-2 compression, 3 timestampType,
//!                                           4 isTransactional, 5 isControl
//! 23      4     lastOffsetDelta       i32
//! 27      8     baseTimestamp         i64
//! 35      8     maxTimestamp          i64
//! 43      8     producerId            i64
//! 51      2     producerEpoch         i16
//! 53      4     baseSequence          i32
//! 57      4     recordsCount          i32
//! 61      ...   records
//! ```
//!
//! Because baseOffset and partitionLeaderEpoch precede the CRC'd range, the log can
//! rewrite them without touching the client's CRC.

use bytes::Bytes;

use crate::error::BatchError;

pub const HEADER_LEN: usize = 61;
pub const MAGIC_V2: i8 = 2;

/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub(crate) const LOG_OVERHEAD: usize = 12;
/// First byte covered by the CRC.
const CRC_START: usize = 21;
/// Length of the prefix the log rewrites (everything before the CRC field).
pub(crate) const REWRITTEN_PREFIX_LEN: usize = 17;

const ATTR_COMPRESSION_MASK: i16 = 0b111;
const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Decodes the header fields only; no consistency checks beyond the length.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::TooShort);
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic: bytes[16] as i8,
            crc: be_i32(bytes, 17) as u32,
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            records_count: be_i32(bytes, 57),
        })
    }

    /// Total bytes of the batch on the wire. A negative `batch_length` yields a value
    /// below `HEADER_LEN`, which every caller rejects.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length)
            .unwrap_or(0)
            .saturating_add(LOG_OVERHEAD)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// timestampType bit: true when the topic asked for LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
}

/// Checks that `batch` is exactly one structurally sound v2 batch whose CRC matches.
/// Shared by client validation and by the read paths (stored batches, local and remote).
pub fn check_frame_and_crc(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let declared = i64::from(header.batch_length) + LOG_OVERHEAD as i64;
    if declared < HEADER_LEN as i64 || declared != batch.len() as i64 {
        return Err(BatchError::BadLength {
            declared,
            actual: batch.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Full validation of one client batch: length consistent with `batch.len()`,
/// magic 2, CRC-32C, at least one record, and `lastOffsetDelta == recordsCount - 1`
/// (clients never send compacted batches, so any gap is a malformed batch).
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    if batch.len().saturating_sub(LOG_OVERHEAD) > i32::MAX as usize {
        return Err(BatchError::BadLength {
            declared: i64::from(i32::MAX),
            actual: batch.len(),
        });
    }
    let header = check_frame_and_crc(batch)?;
    if header.records_count < 1 {
        return Err(BatchError::BadRecordCount);
    }
    if i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
        return Err(BatchError::BadOffsetDelta {
            last_offset_delta: header.last_offset_delta,
            records_count: header.records_count,
        });
    }
    Ok(header)
}

/// What the broker changes in a client's batch before storing it, as Kafka's LogValidator does:
/// `log_append_time_ms` marks the batch LogAppendTime (attributes bit 3) with that maxTimestamp;
/// `codec` recompresses its records with that codec (control batches keep theirs). Both fields
/// lie inside the CRC'd range, so the result is a new batch with a new CRC. The caller has
/// validated `batch` (its CRC included); its producer fields and record count stay as they are.
pub fn rewrite(
    batch: &[u8],
    log_append_time_ms: Option<i64>,
    codec: Option<u8>,
) -> Result<Bytes, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let section = batch.get(HEADER_LEN..).ok_or(BatchError::TooShort)?;
    let recompressed = match codec {
        Some(codec) if codec != header.compression() && !header.is_control() => {
            let records = crate::codec::decompress(
                header.compression(),
                section,
                crate::codec::DECOMPRESSED_BYTES_MAX,
            )?;
            Some((codec, crate::codec::compress(codec, &records)?))
        }
        _ => None,
    };
    let records: &[u8] = recompressed.as_ref().map_or(section, |(_, r)| r);
    let total = HEADER_LEN + records.len();
    let batch_length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| BatchError::BadLength {
        declared: total as i64,
        actual: total,
    })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(records);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let mut attributes = header.attributes;
    if let Some((codec, _)) = recompressed {
        attributes = (attributes & !ATTR_COMPRESSION_MASK) | i16::from(codec);
    }
    if let Some(now) = log_append_time_ms {
        attributes |= ATTR_TIMESTAMP_TYPE;
        out[35..43].copy_from_slice(&now.to_be_bytes());
    }
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Bytes::from(out))
}

/// How many Raft entries a stored batch stands for: one, except a run of batches the cleaner
/// emptied and merged (no producer, no records, not a control batch, the count in
/// baseSequence), which stands for that many (never more than it has offsets).
pub fn entry_count(h: &BatchHeader) -> u64 {
    if h.producer_id == -1 && h.records_count == 0 && !h.is_control() && h.base_sequence > 1 {
        let offsets = u64::try_from(h.last_offset_delta).unwrap_or(0) + 1;
        (h.base_sequence as u64).min(offsets)
    } else {
        1
    }
}

/// An empty batch (no producer, no records) covering offsets `base..=last` in `epoch`, standing
/// for `entries` Raft entries ([`entry_count`]): a run the cleaner merged, or one entry of it as
/// a leader sends it to a follower.
pub fn empty_batch_at(base: u64, last: u64, epoch: i32, max_timestamp: i64, entries: u64) -> Bytes {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&(base as i64).to_be_bytes());
    out.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0i16.to_be_bytes());
    let delta = i32::try_from(last.saturating_sub(base)).unwrap_or(i32::MAX);
    out.extend_from_slice(&delta.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    let count = if entries > 1 {
        i32::try_from(entries).unwrap_or(i32::MAX)
    } else {
        -1
    };
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// Splits the concatenated batches of a Produce request's `records` field into
/// zero-copy slices. Only the framing is checked; run [`validate`] on each batch.
pub fn split(records: &Bytes) -> Result<Vec<Bytes>, BatchError> {
    let mut batches = Vec::new();
    let mut position = 0usize;
    while position < records.len() {
        let remaining = records.len() - position;
        if remaining < LOG_OVERHEAD {
            return Err(BatchError::TooShort);
        }
        let declared = i64::from(be_i32(records, position + 8)) + LOG_OVERHEAD as i64;
        if declared < HEADER_LEN as i64 || declared > remaining as i64 {
            return Err(BatchError::BadLength {
                declared,
                actual: remaining,
            });
        }
        // `declared` is within 61..=remaining, so the cast is lossless.
        let end = position + declared as usize;
        batches.push(records.slice(position..end));
        position = end;
    }
    Ok(batches)
}

/// Bytes 0..17 of a stored batch: the client's prefix with baseOffset and
/// partitionLeaderEpoch replaced. Written with `batch[17..]` in one vectored write.
/// Bytes missing from a too-short `batch` are left zero (callers validate first).
pub fn rewritten_prefix(batch: &[u8], base_offset: i64, leader_epoch: i32) -> [u8; 17] {
    let mut prefix = [0u8; REWRITTEN_PREFIX_LEN];
    let copy = batch.len().min(REWRITTEN_PREFIX_LEN);
    prefix[..copy].copy_from_slice(&batch[..copy]);
    prefix[0..8].copy_from_slice(&base_offset.to_be_bytes());
    prefix[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    prefix
}

/// The records in the whole batches at the start of `buf` (a fetch response's record set,
/// whose last batch may be cut short); control batches' markers are not counted.
pub fn count_records(buf: &[u8]) -> u64 {
    let mut at = 0;
    let mut records = 0u64;
    while let Some(rest) = buf.get(at..) {
        let Ok(h) = BatchHeader::parse(rest) else {
            break;
        };
        let len = h.total_len();
        if len < HEADER_LEN || len > rest.len() {
            break;
        }
        if !h.is_control() {
            records += u64::try_from(h.records_count).unwrap_or(0);
        }
        at += len;
    }
    records
}
