//! Rewriting one stored batch without some of its records. The batch keeps its place: base
//! offset, lastOffsetDelta, leader epoch (the Raft term), producer fields and attributes stay,
//! so offsets never move and a Raft entry stays an entry. Kept records are copied byte for byte
//! (their offset and timestamp deltas still hold against the unchanged base); a compressed
//! batch is recompressed with its codec. A batch that loses every record becomes Kafka's empty
//! batch: the 61-byte header, no compression, `recordsCount` 0.

use bytes::Bytes;

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::codec;
use crate::records::{records_section, walk_records, RecordSpan, RecordsError};

const CRC_START: usize = 21;
const ATTR_COMPRESSION_MASK: i16 = 0b111;

/// What the cleaner decided about one record.
pub(crate) struct RecordView<'a> {
    pub offset: u64,
    /// `None` for a null key (only batches stored before the topic was compacted have one).
    pub key: Option<&'a [u8]>,
    pub tombstone: bool,
}

/// `batch` without the records `keep` refuses; `None` when it keeps them all.
pub(crate) fn filter_batch(
    batch: &[u8],
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> Result<Option<Bytes>, RecordsError> {
    let (header, records) = records_section(batch)?;
    let spans = walk_records(&header, &records)?;
    let kept: Vec<&RecordSpan> = spans
        .iter()
        .filter(|span| {
            keep(&RecordView {
                offset: header.base_offset as u64 + span.offset_delta as u64,
                key: span.key.clone().map(|k| &records[k]),
                tombstone: span.tombstone,
            })
        })
        .collect();
    if kept.len() == spans.len() {
        return Ok(None);
    }
    if kept.is_empty() {
        return Ok(Some(empty_batch(batch, &header)));
    }
    let mut section = Vec::with_capacity(records.len());
    for span in &kept {
        section.extend_from_slice(&records[span.bytes.clone()]);
    }
    let section = match header.compression() {
        0 => section,
        codec_id => codec::compress(codec_id, &section)?,
    };
    let max_timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        kept.iter()
            .map(|s| header.base_timestamp.saturating_add(s.timestamp_delta))
            .max()
            .unwrap_or(header.max_timestamp)
    };
    let mut out = Vec::with_capacity(HEADER_LEN + section.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&section);
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    Ok(Some(finish(out)))
}

/// The header alone, as Kafka writes an empty batch: no compression, the original maxTimestamp.
fn empty_batch(batch: &[u8], header: &BatchHeader) -> Bytes {
    let mut out = batch[..HEADER_LEN].to_vec();
    let attributes = header.attributes & !ATTR_COMPRESSION_MASK;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&0i32.to_be_bytes());
    if header.producer_id == -1 {
        // Without a producer the sequence means nothing; -1 keeps it from reading as the
        // entry count of a merged run (`batch::entry_count`).
        out[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    }
    finish(out)
}

/// Sets batchLength and the CRC.
fn finish(mut out: Vec<u8>) -> Bytes {
    // At most the 64 MiB decompression cap (recompressed) plus a header: fits an i32.
    let length = i32::try_from(out.len() - 12).unwrap_or(i32::MAX);
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}
