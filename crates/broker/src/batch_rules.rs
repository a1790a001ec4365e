//! What a topic's configuration demands of each produced batch before it is stored: its size
//! (`max.message.bytes`), its CRC, the range of its timestamps (`message.timestamp.before.max.ms`,
//! `message.timestamp.after.max.ms`), and the rewrites Kafka's LogValidator makes
//! (`message.timestamp.type=LogAppendTime`, a `compression.type` other than `producer`).
//!
//! A batch is rewritten only where the topic asks for it: with the defaults the client's bytes
//! are stored untouched and no record is looked at. A compacted topic looks at every record's
//! key: one without a key could never be compacted, so Kafka refuses it (INVALID_RECORD).

use bytes::Bytes;
use strom_storage::batch::{self, BatchHeader};
use strom_storage::records;

use crate::topic_config::{TimestampType, TopicCompression, TopicConfig};
use crate::BrokerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchRules {
    max_message_bytes: u32,
    timestamp_type: TimestampType,
    timestamp_before_max_ms: i64,
    timestamp_after_max_ms: i64,
    compression: TopicCompression,
    compacted: bool,
}

impl BatchRules {
    pub(crate) fn new(config: &TopicConfig) -> BatchRules {
        BatchRules {
            max_message_bytes: config.max_message_bytes,
            timestamp_type: config.timestamp_type,
            timestamp_before_max_ms: config.timestamp_before_max_ms,
            timestamp_after_max_ms: config.timestamp_after_max_ms,
            compression: config.compression,
            compacted: config.compact,
        }
    }

    /// Checks every batch (size, CRC and framing, timestamps), then rewrites those the topic
    /// wants rewritten. Returns the batches to store with their headers; all or nothing.
    pub(crate) fn apply(
        &self,
        batches: &[Bytes],
        now_ms: i64,
    ) -> Result<(Vec<Bytes>, Vec<BatchHeader>), BrokerError> {
        let mut headers = Vec::with_capacity(batches.len());
        for b in batches {
            if b.len() > self.max_message_bytes as usize {
                return Err(BrokerError::MessageTooLarge {
                    size: b.len(),
                    max: self.max_message_bytes,
                });
            }
            let header = batch::validate(b)?;
            self.check_timestamps(&header, now_ms)?;
            if self.compacted && !header.is_control() {
                check_keys(b)?;
            }
            headers.push(header);
        }
        let append_time = (self.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let codec = match self.compression {
            TopicCompression::Producer => None,
            TopicCompression::Codec(c) => Some(c),
        };
        let rewrite = |h: &BatchHeader| {
            append_time.is_some() || codec.is_some_and(|c| c != h.compression() && !h.is_control())
        };
        if !headers.iter().any(rewrite) {
            return Ok((batches.to_vec(), headers));
        }
        let mut out = Vec::with_capacity(batches.len());
        let mut out_headers = Vec::with_capacity(batches.len());
        for (b, h) in batches.iter().zip(&headers) {
            if !rewrite(h) {
                out.push(b.clone());
                out_headers.push(*h);
                continue;
            }
            let rewritten = batch::rewrite(b, append_time, codec)?;
            out_headers.push(batch::validate(&rewritten)?);
            out.push(rewritten);
        }
        Ok((out, out_headers))
    }

    /// Kafka's `message.timestamp.{before,after}.max.ms` for CreateTime topics, checked on the
    /// header: the first record's timestamp against the past bound and the batch's largest
    /// against the future bound (Kafka looks at every record; records are not parsed here).
    fn check_timestamps(&self, h: &BatchHeader, now_ms: i64) -> Result<(), BrokerError> {
        if self.timestamp_type != TimestampType::CreateTime || h.base_timestamp < 0 {
            return Ok(());
        }
        let earliest = now_ms.saturating_sub(self.timestamp_before_max_ms);
        let latest = now_ms.saturating_add(self.timestamp_after_max_ms);
        if h.base_timestamp < earliest {
            return Err(BrokerError::InvalidTimestamp(format!(
                "timestamp {} is more than message.timestamp.before.max.ms={} in the past",
                h.base_timestamp, self.timestamp_before_max_ms
            )));
        }
        if h.max_timestamp > latest {
            return Err(BrokerError::InvalidTimestamp(format!(
                "timestamp {} is more than message.timestamp.after.max.ms={} in the future",
                h.max_timestamp, self.timestamp_after_max_ms
            )));
        }
        Ok(())
    }
}

/// Every record of `batch` has a key (a compacted topic's rule).
fn check_keys(batch: &[u8]) -> Result<(), BrokerError> {
    let malformed = |e: strom_storage::records::RecordsError| {
        BrokerError::InvalidRecord(format!("the batch's records cannot be read: {e}"))
    };
    let (header, records) = records::records_section(batch).map_err(malformed)?;
    let spans = records::walk_records(&header, &records).map_err(malformed)?;
    if spans.iter().any(|r| r.key.is_none()) {
        return Err(BrokerError::InvalidRecord(
            "Compacted topic cannot accept message without key".into(),
        ));
    }
    Ok(())
}
