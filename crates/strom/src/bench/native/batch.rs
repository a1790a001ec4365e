//! RecordBatch v2 for the native client: encoding a produce batch with kafka-protocol, and
//! walking fetched batches by their headers, which is all `bench consume` needs.
//!
//! Header layout (bytes): base offset 0..8, batch length 8..12 (counts the bytes after it),
//! partition leader epoch 12..16, magic 16, CRC 17..21, attributes 21..23, last offset delta
//! 23..27, timestamps 27..43, producer id/epoch 43..53, base sequence 53..57, record count
//! 57..61, then the records.

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Bytes of the batch header, records excluded.
pub const HEADER_LEN: usize = 61;

/// Upper bound of a record's framing around its value (length, attributes, timestamp and
/// offset deltas, key and value lengths, header count: all varints), used to keep a batch
/// within `--batch-size` without encoding it first.
pub const RECORD_OVERHEAD: usize = 28;

/// Smallest possible encoded record (all varints one byte, no key, empty value): a batch
/// claiming more records than `len / MIN_RECORD_LEN` is corrupt.
const MIN_RECORD_LEN: usize = 7;

/// Attribute bit of control batches (transaction markers), which carry no user records.
const CONTROL_BIT: i16 = 1 << 5;

/// Encodes `values` as one uncompressed batch, appended to `buf`. `timestamp_ms` is each
/// record's create time. No producer id or sequence: the bench producer is not idempotent.
pub fn encode(
    buf: &mut BytesMut,
    values: impl Iterator<Item = (Bytes, i64)>,
    records: &mut Vec<Record>,
) -> anyhow::Result<()> {
    records.clear();
    for (i, (value, timestamp_ms)) in values.enumerate() {
        let i = i32::try_from(i).context("too many records for one batch")?;
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // The encoder starts a new batch where `offset - sequence` changes, and writes
            // the first record's sequence as the batch's base sequence: counting up from
            // NO_SEQUENCE keeps one batch whose base sequence is "none".
            sequence: NO_SEQUENCE.wrapping_add(i),
            timestamp: timestamp_ms,
            key: None,
            value: Some(value),
            headers: Default::default(),
        });
    }
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(buf, records.iter(), &options)
        .map_err(|err| anyhow!("encoding a record batch: {err:#}"))?;
    // The values are referenced by the records; let them go with the batch.
    records.clear();
    Ok(())
}

/// A whole batch from a fetch response, its header parsed.
pub struct Batch {
    pub base_offset: i64,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// Records the header claims (checked against the batch length).
    pub records: u32,
    /// Control batches carry no user records.
    pub control: bool,
    /// Compression codec (attribute bits 0..3).
    pub compression: i16,
    /// The whole batch, header included.
    pub bytes: Bytes,
}

/// The whole batches at the start of a partition's `records`, in order. A trailing partial
/// batch (a broker may cut the last batch at the partition's byte limit) is left out; the next
/// fetch starts at it again.
pub fn split(mut records: Bytes, out: &mut Vec<Batch>) -> anyhow::Result<()> {
    while records.len() >= HEADER_LEN {
        let batch_len = i32::from_be_bytes(array(&records, 8)?);
        let total = usize::try_from(batch_len)
            .ok()
            .filter(|len| *len >= HEADER_LEN - 12)
            .map(|len| len + 12)
            .ok_or_else(|| anyhow!("record batch with length {batch_len}"))?;
        if records.len() < total {
            break;
        }
        let bytes = records.split_to(total);
        let magic = bytes[16];
        if magic != 2 {
            bail!("record batch with magic {magic} (only v2 is supported)");
        }
        let base_offset = i64::from_be_bytes(array(&bytes, 0)?);
        let attributes = i16::from_be_bytes(array(&bytes, 21)?);
        let last_delta = i32::from_be_bytes(array(&bytes, 23)?);
        let count = i32::from_be_bytes(array(&bytes, 57)?);
        let records_count = u32::try_from(count)
            .ok()
            .filter(|n| *n as usize <= (total - HEADER_LEN) / MIN_RECORD_LEN)
            .ok_or_else(|| anyhow!("record batch of {total} bytes claims {count} records"))?;
        if last_delta < 0 {
            bail!("record batch with last offset delta {last_delta}");
        }
        out.push(Batch {
            base_offset,
            last_offset: base_offset.saturating_add(i64::from(last_delta)),
            records: records_count,
            control: attributes & CONTROL_BIT != 0,
            compression: attributes & 0x7,
            bytes,
        });
    }
    Ok(())
}

impl Batch {
    /// Key plus value bytes of every record (what the rdkafka consumer counts as payload),
    /// found by skipping through the records' framing without decoding or copying them.
    pub fn payload_bytes(&self) -> anyhow::Result<u64> {
        if self.compression != 0 {
            bail!(
                "the native client reads uncompressed batches only (codec {})",
                self.compression
            );
        }
        let mut rest = &self.bytes[HEADER_LEN..];
        let mut total = 0u64;
        for _ in 0..self.records {
            let len = varint(&mut rest)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= rest.len())
                .ok_or_else(|| anyhow!("record of length {len} in a batch"))?;
            let (mut record, next) = rest.split_at(len);
            rest = next;
            skip(&mut record, 1)?; // attributes
            varint(&mut record)?; // timestamp delta
            varint(&mut record)?; // offset delta
            for _ in 0..2 {
                // key, then value; -1 is null
                let field = varint(&mut record)?;
                if field > 0 {
                    let field = usize::try_from(field).context("record field length")?;
                    skip(&mut record, field)?;
                    total += field as u64;
                }
            }
        }
        Ok(total)
    }
}

/// `N` bytes of `buf` at `at`.
fn array<const N: usize>(buf: &[u8], at: usize) -> anyhow::Result<[u8; N]> {
    buf.get(at..at + N)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| anyhow!("record batch header cut short"))
}

fn skip(buf: &mut &[u8], n: usize) -> anyhow::Result<()> {
    *buf = buf.get(n..).ok_or_else(|| anyhow!("record cut short"))?;
    Ok(())
}

/// A zigzag-encoded variable-length integer (the record format's varint and varlong).
fn varint(buf: &mut &[u8]) -> anyhow::Result<i64> {
    let mut raw = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    bail!("malformed varint in a record")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn encoded_batches_split_and_count() -> anyhow::Result<()> {
        let mut buf = BytesMut::new();
        let mut scratch = Vec::new();
        let values = |n: usize, len: usize| {
            (0..n).map(move |i| {
                (
                    Bytes::from(vec![i as u8; len]),
                    1_700_000_000_000 + i as i64,
                )
            })
        };
        encode(&mut buf, values(3, 100), &mut scratch)?;
        encode(&mut buf, values(200, 1024), &mut scratch)?;
        let mut all = buf.freeze();
        let mut batches = Vec::new();
        split(all.clone(), &mut batches)?;
        assert_eq!(batches.len(), 2, "one batch per encode call");
        assert_eq!(batches[0].records, 3);
        assert_eq!(batches[0].last_offset, 2);
        assert_eq!(batches[0].payload_bytes()?, 300);
        assert_eq!(batches[1].records, 200);
        assert_eq!(batches[1].payload_bytes()?, 200 * 1024);
        assert!(!batches[1].control);
        // Base sequence "none", as for any non-idempotent producer.
        assert_eq!(&batches[1].bytes[53..57], &NO_SEQUENCE.to_be_bytes());

        // The library decodes what we encoded.
        let decoded = RecordBatchDecoder::decode(&mut batches[1].bytes.clone())?;
        assert_eq!(decoded.records.len(), 200);
        assert_eq!(decoded.records[5].value.as_deref(), Some(&[5u8; 1024][..]));

        // A partial trailing batch is left for the next fetch.
        let cut = all.split_to(all.len() - 10);
        batches.clear();
        split(cut, &mut batches)?;
        assert_eq!(batches.len(), 1);
        Ok(())
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let mut batch = vec![0u8; HEADER_LEN];
        batch[8..12].copy_from_slice(&49i32.to_be_bytes());
        batch[16] = 2;
        batch[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
        let mut out = Vec::new();
        assert!(split(Bytes::from(batch.clone()), &mut out).is_err());
        batch[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split(Bytes::from(batch.clone()), &mut out).is_err());
        batch[8..12].copy_from_slice(&49i32.to_be_bytes());
        batch[16] = 1;
        batch[57..61].copy_from_slice(&0i32.to_be_bytes());
        assert!(split(Bytes::from(batch), &mut out).is_err());
    }

    #[test]
    fn varints() -> anyhow::Result<()> {
        for (bytes, value) in [
            (&[0x00][..], 0),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0xac, 0x02], 150),
        ] {
            let mut buf = bytes;
            assert_eq!(varint(&mut buf)?, value);
            assert!(buf.is_empty());
        }
        assert!(varint(&mut &[0x80u8][..]).is_err());
        Ok(())
    }
}
