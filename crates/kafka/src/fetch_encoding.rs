//! FetchResponse written by hand for the versions Strom serves, so that record bytes reach the
//! socket as chunks of their own (one vectored write) instead of being copied into one response
//! buffer: that copy was an eighth of the broker's CPU in a catch-up read. The byte layout is
//! Kafka's FetchResponse v4..=12; a test checks it against kafka-protocol's encoder byte for byte.
//! Anything this writer does not cover (other versions, tagged fields) returns `None`, and the
//! caller uses kafka-protocol's encoder instead.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, LeaderIdAndEpoch, SnapshotId};
use kafka_protocol::messages::FetchResponse;

/// Record sets smaller than this are copied into the surrounding chunk; a separate iovec per
/// tiny record set would cost more than the copy.
const PASS_THROUGH_MIN_BYTES: usize = 4096;

/// A response being built as a list of chunks, written with one vectored write.
#[derive(Default)]
pub struct Chunks {
    done: Vec<Bytes>,
    cur: BytesMut,
}

impl Chunks {
    fn bytes(&mut self, b: &Bytes) {
        if b.len() < PASS_THROUGH_MIN_BYTES {
            self.cur.extend_from_slice(b);
        } else {
            if !self.cur.is_empty() {
                self.done.push(self.cur.split().freeze());
            }
            self.done.push(b.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.done.iter().map(Bytes::len).sum::<usize>() + self.cur.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_vec(mut self) -> Vec<Bytes> {
        if !self.cur.is_empty() {
            self.done.push(self.cur.freeze());
        }
        self.done
    }
}

fn uvarint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Array or string length prefix: compact (unsigned varint of len + 1) in flexible versions.
fn len_prefix(out: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        uvarint(out, len as u64 + 1);
    } else {
        out.put_i32(len as i32);
    }
}

/// String length prefix: i16 before flexible versions, compact after.
fn str_prefix(out: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        uvarint(out, len as u64 + 1);
    } else {
        out.put_i16(len as i16);
    }
}

fn null_prefix(out: &mut BytesMut, flexible: bool) {
    if flexible {
        uvarint(out, 0);
    } else {
        out.put_i32(-1);
    }
}

fn no_tags(out: &mut BytesMut, flexible: bool) {
    if flexible {
        uvarint(out, 0);
    }
}

/// True if `resp` carries nothing this writer leaves out.
fn covered(resp: &FetchResponse) -> bool {
    resp.unknown_tagged_fields.is_empty()
        && resp.node_endpoints.is_empty()
        && resp.responses.iter().all(|t| {
            t.unknown_tagged_fields.is_empty()
                && t.partitions.iter().all(|p| {
                    p.unknown_tagged_fields.is_empty()
                        && p.diverging_epoch == EpochEndOffset::default()
                        && p.current_leader == LeaderIdAndEpoch::default()
                        && p.snapshot_id == SnapshotId::default()
                        && p.aborted_transactions
                            .iter()
                            .flatten()
                            .all(|a| a.unknown_tagged_fields.is_empty())
                })
        })
}

/// The response body as chunks, or `None` where kafka-protocol's encoder must be used.
pub fn encode(resp: &FetchResponse, version: i16) -> Option<Chunks> {
    if !(4..=12).contains(&version) || !covered(resp) {
        return None;
    }
    let flex = version >= 12;
    let mut out = Chunks::default();
    out.cur.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        out.cur.put_i16(resp.error_code);
        out.cur.put_i32(resp.session_id);
    }
    len_prefix(&mut out.cur, flex, resp.responses.len());
    for t in &resp.responses {
        str_prefix(&mut out.cur, flex, t.topic.0.len());
        out.cur.extend_from_slice(t.topic.0.as_bytes());
        len_prefix(&mut out.cur, flex, t.partitions.len());
        for p in &t.partitions {
            let o = &mut out.cur;
            o.put_i32(p.partition_index);
            o.put_i16(p.error_code);
            o.put_i64(p.high_watermark);
            o.put_i64(p.last_stable_offset);
            if version >= 5 {
                o.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None => null_prefix(o, flex),
                Some(list) => {
                    len_prefix(o, flex, list.len());
                    for a in list {
                        o.put_i64(a.producer_id.0);
                        o.put_i64(a.first_offset);
                        no_tags(o, flex);
                    }
                }
            }
            if version >= 11 {
                o.put_i32(p.preferred_read_replica.0);
            }
            match &p.records {
                None => null_prefix(o, flex),
                Some(records) => {
                    len_prefix(o, flex, records.len());
                    out.bytes(records);
                }
            }
            no_tags(&mut out.cur, flex);
        }
        no_tags(&mut out.cur, flex);
    }
    no_tags(&mut out.cur, flex);
    Some(out)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    fn sample(records_len: &[Option<usize>], aborted: bool) -> FetchResponse {
        let partitions = records_len
            .iter()
            .enumerate()
            .map(|(i, len)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_error_code(if i == 2 { 1 } else { 0 })
                    .with_high_watermark(1000 + i as i64)
                    .with_last_stable_offset(900)
                    .with_log_start_offset(7)
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_aborted_transactions(aborted.then(|| {
                        vec![AbortedTransaction::default()
                            .with_producer_id(ProducerId(42))
                            .with_first_offset(5)]
                    }))
                    .with_records(
                        len.map(|n| Bytes::from((0..n).map(|b| b as u8).collect::<Vec<_>>())),
                    )
            })
            .collect();
        FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_session_id(0)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_partitions(partitions),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("empty"))),
            ])
    }

    #[test]
    fn matches_kafka_protocol_byte_for_byte() {
        let cases = [
            sample(&[Some(10), Some(5000), None, Some(0), Some(70_000)], true),
            sample(&[Some(4096), Some(4095)], false),
            sample(&[], false),
            FetchResponse::default(),
        ];
        for version in 4..=12 {
            for resp in &cases {
                let mut expected = BytesMut::new();
                resp.encode(&mut expected, version).unwrap();
                let chunks = encode(resp, version).expect("covered").into_vec();
                let got: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
                assert_eq!(got, expected.to_vec(), "version {version}");
            }
        }
    }

    #[test]
    fn large_record_sets_are_passed_through_not_copied() {
        let resp = sample(&[Some(70_000)], false);
        let records = resp.responses[0].partitions[0].records.clone().unwrap();
        let chunks = encode(&resp, 12).unwrap().into_vec();
        assert!(chunks
            .iter()
            .any(|c| c.as_ptr() == records.as_ptr() && c.len() == records.len()));
    }

    #[test]
    fn tagged_fields_fall_back_to_the_library() {
        let mut resp = sample(&[Some(1)], false);
        resp.responses[0].partitions[0].current_leader =
            LeaderIdAndEpoch::default().with_leader_id(BrokerId(3));
        assert!(encode(&resp, 12).is_none());
        assert!(encode(&sample(&[Some(1)], false), 13).is_none());
    }
}
