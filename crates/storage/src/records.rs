//! Writing and reading small uncompressed RecordBatch v2 batches that Strom writes itself: the
//! group coordinator's offset records and the Raft control entries (header layout in
//! [`crate::batch`]). Each record is
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      i8       0
//! timestampDelta  varlong  0 (every record of a batch shares the batch timestamp)
//! offsetDelta     varint   index in the batch
//! keyLength       varint   then key bytes
//! valueLength     varint   -1 for null (a tombstone), then value bytes
//! headersCount    varint   0
//! ```
//!
//! varints are zigzag-encoded, as in Kafka. Reading accepts only what this module writes
//! (uncompressed, no headers needed); anything else is refused, never a panic.

use crate::batch::{BatchHeader, HEADER_LEN, MAGIC_V2};
use crate::codec::{self, CodecError, DECOMPRESSED_BYTES_MAX};
use bytes::{BufMut, Bytes, BytesMut};

/// First byte covered by the batch CRC (after baseOffset, batchLength, leaderEpoch, magic, crc).
const CRC_START: usize = 21;

/// A record as Strom writes it: key and optional value (none = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    #[error("batch is compressed (codec {0}); the coordinator writes uncompressed batches")]
    Compressed(u8),
    #[error("record bytes end early or are malformed at byte {0}")]
    Malformed(usize),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Batch attribute bit 5: a control batch, which consumers skip.
pub const ATTR_CONTROL: i16 = 1 << 5;

/// One uncompressed batch holding `records` (at least one), all stamped `timestamp_ms`.
/// baseOffset and leaderEpoch are left 0: the log assigns them.
pub fn encode_batch(records: &[KeyValue], timestamp_ms: i64) -> Bytes {
    encode_batch_with(0, records, timestamp_ms)
}

/// Batch attribute bit 4: a transaction's data or marker.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;

/// The producer fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    /// Not idempotent, not transactional.
    pub const NONE: ProducerFields = ProducerFields {
        id: -1,
        epoch: -1,
        base_sequence: -1,
    };
}

/// [`encode_batch`] with the given batch attributes (e.g. [`ATTR_CONTROL`]).
pub fn encode_batch_with(attributes: i16, records: &[KeyValue], timestamp_ms: i64) -> Bytes {
    encode_batch_as(attributes, ProducerFields::NONE, records, timestamp_ms)
}

/// [`encode_batch_with`] on behalf of a producer (a transaction marker carries its id).
pub fn encode_batch_as(
    attributes: i16,
    producer: ProducerFields,
    records: &[KeyValue],
    timestamp_ms: i64,
) -> Bytes {
    let mut body = BytesMut::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = BytesMut::new();
        rec.put_i8(0);
        put_varint(&mut rec, 0);
        put_varint(&mut rec, i as i64);
        put_varint(&mut rec, r.key.len() as i64);
        rec.put_slice(&r.key);
        match &r.value {
            Some(v) => {
                put_varint(&mut rec, v.len() as i64);
                rec.put_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0);
        put_varint(&mut body, rec.len() as i64);
        body.put_slice(&rec);
    }
    let count = records.len() as i32;
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_i64(0);
    b.put_i32((HEADER_LEN - 12 + body.len()) as i32);
    b.put_i32(0);
    b.put_i8(MAGIC_V2);
    b.put_u32(0); // CRC, filled in below
    b.put_i16(attributes);
    b.put_i32(count - 1);
    b.put_i64(timestamp_ms);
    b.put_i64(timestamp_ms);
    b.put_i64(producer.id);
    b.put_i16(producer.epoch);
    b.put_i32(producer.base_sequence);
    b.put_i32(count);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// The records of one stored batch (already CRC-checked by the read path).
/// Control batches are not data and yield none; see [`decode_any_batch`].
pub fn decode_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<KeyValue>), RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::Malformed(0))?;
    if header.is_control() {
        return Ok((header, Vec::new()));
    }
    decode_any_batch(batch)
}

/// The records of one uncompressed batch, control batches included.
pub fn decode_any_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<KeyValue>), RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::Malformed(0))?;
    if header.compression() != 0 {
        return Err(RecordsError::Compressed(header.compression()));
    }
    let end = header.total_len().min(batch.len());
    let mut r = Reader {
        buf: &batch[..],
        pos: HEADER_LEN,
        end,
    };
    // Each record takes at least 7 bytes, which bounds the allocation by the batch size.
    let count = usize::try_from(header.records_count).unwrap_or(0);
    let mut out = Vec::with_capacity(count.min(end / 7));
    for _ in 0..count {
        let (start, rec_end) = r.record()?;
        let mut rec = Reader {
            buf: &batch[..],
            pos: start,
            end: rec_end,
        };
        rec.skip(1)?; // attributes
        rec.varint()?; // timestamp delta
        rec.varint()?; // offset delta
        let key = rec.bytes()?.map(|r| batch.slice(r)).unwrap_or_default();
        let value = rec.bytes()?.map(|r| batch.slice(r));
        // Headers are ignored: the coordinator writes none.
        out.push(KeyValue { key, value });
        r.pos = rec_end;
    }
    Ok((header, out))
}

fn put_varint(b: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        b.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    b.put_u8(z as u8);
}

/// One record of a batch's (decompressed) records section, as positions into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpan {
    /// The whole record, its length prefix included: what a rewrite copies.
    pub bytes: std::ops::Range<usize>,
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    /// `None` for a null key.
    pub key: Option<std::ops::Range<usize>>,
    /// A null value: a tombstone.
    pub tombstone: bool,
}

/// Walks the `header.records_count` records of a decompressed records section. A batch is only
/// trusted as far as it is consistent: offset deltas strictly increase within
/// `0..=lastOffsetDelta` (a compacted batch has gaps) and the records fill the section exactly.
pub fn walk_records(header: &BatchHeader, records: &[u8]) -> Result<Vec<RecordSpan>, RecordsError> {
    let count = usize::try_from(header.records_count).map_err(|_| RecordsError::Malformed(57))?;
    if count > usize::try_from(header.last_offset_delta).unwrap_or(0) + 1 {
        return Err(RecordsError::Malformed(57));
    }
    let mut r = Reader {
        buf: records,
        pos: 0,
        end: records.len(),
    };
    // Each record takes at least 7 bytes, which bounds the allocation by the records' size.
    let mut out = Vec::with_capacity(count.min(records.len() / 7));
    let mut previous_delta = -1i64;
    for _ in 0..count {
        let length_at = r.pos;
        let (start, rec_end) = r.record()?;
        let mut rec = Reader {
            buf: records,
            pos: start,
            end: rec_end,
        };
        rec.skip(1)?; // attributes
        let timestamp_delta = rec.varint()?;
        let offset_delta = rec.varint()?;
        if offset_delta <= previous_delta || offset_delta > i64::from(header.last_offset_delta) {
            return Err(RecordsError::Malformed(start));
        }
        previous_delta = offset_delta;
        let key = rec.bytes()?;
        let tombstone = rec.bytes()?.is_none();
        out.push(RecordSpan {
            bytes: length_at..rec_end,
            timestamp_delta,
            offset_delta,
            key,
            tombstone,
        });
        r.pos = rec_end;
    }
    if r.pos != r.end {
        return Err(RecordsError::Malformed(r.pos));
    }
    Ok(out)
}

/// The records section of one stored batch, decompressed if need be (at most
/// [`DECOMPRESSED_BYTES_MAX`]).
pub fn records_section(
    batch: &[u8],
) -> Result<(BatchHeader, std::borrow::Cow<'_, [u8]>), RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordsError::Malformed(0))?;
    let section = batch
        .get(HEADER_LEN..header.total_len())
        .ok_or(RecordsError::Malformed(HEADER_LEN))?;
    let records = codec::decompress(header.compression(), section, DECOMPRESSED_BYTES_MAX)?;
    Ok((header, records))
}

/// (offset, timestamp) of every record of one stored batch, in order. In a LogAppendTime batch
/// every record has the batch's maxTimestamp, as Kafka's consumers read it. Control batches
/// yield their one record.
pub fn record_times(batch: &[u8]) -> Result<Vec<(i64, i64)>, RecordsError> {
    let (header, records) = records_section(batch)?;
    Ok(walk_records(&header, &records)?
        .into_iter()
        .map(|r| {
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                header.base_timestamp.saturating_add(r.timestamp_delta)
            };
            (header.base_offset.saturating_add(r.offset_delta), timestamp)
        })
        .collect())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> Result<(), RecordsError> {
        if n > self.end - self.pos {
            return Err(RecordsError::Malformed(self.pos));
        }
        self.pos += n;
        Ok(())
    }

    /// A record's length prefix: (where the record starts, where it ends), within bounds.
    fn record(&mut self) -> Result<(usize, usize), RecordsError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|e| *e <= self.end)
            .ok_or(RecordsError::Malformed(start))?;
        Ok((start, end))
    }

    /// A zigzag varint of at most 10 bytes.
    fn varint(&mut self) -> Result<i64, RecordsError> {
        let at = self.pos;
        let mut z: u64 = 0;
        for i in 0..10 {
            if self.pos >= self.end {
                return Err(RecordsError::Malformed(at));
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(RecordsError::Malformed(at))
    }

    /// The range of length-prefixed bytes; length -1 is null.
    fn bytes(&mut self) -> Result<Option<std::ops::Range<usize>>, RecordsError> {
        let at = self.pos;
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| RecordsError::Malformed(at))?;
        let start = self.pos;
        self.skip(n)?;
        Ok(Some(start..start + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_validate() {
        let records = vec![
            KeyValue {
                key: Bytes::from_static(b"k1"),
                value: Some(Bytes::from(vec![7u8; 300])),
            },
            KeyValue {
                key: Bytes::from_static(b"k2"),
                value: None,
            },
        ];
        let batch = encode_batch(&records, 1_700_000_000_000);
        crate::batch::validate(&batch).expect("a valid batch");
        let (header, decoded) = decode_batch(&batch).unwrap();
        assert_eq!(header.records_count, 2);
        assert_eq!(decoded, records);
    }

    #[test]
    fn truncated_records_are_refused_not_panicking() {
        let batch = encode_batch(
            &[KeyValue {
                key: Bytes::from_static(b"key"),
                value: Some(Bytes::from_static(b"value")),
            }],
            0,
        );
        for cut in HEADER_LEN..batch.len() {
            let mut b = BytesMut::from(&batch[..cut]);
            let len = (cut - 12) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            assert!(decode_batch(&b.freeze()).is_err(), "cut at {cut}");
        }
    }
}
