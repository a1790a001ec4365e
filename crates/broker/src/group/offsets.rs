//! Committed offsets: their record layout in `__consumer_offsets` and the in-memory cache that
//! is rebuilt from those records on start.
//!
//! Record key (big-endian), version 1:
//!
//! ```text
//! u8   key version = 1
//! u8   kind        = 1 (committed offset; 2 is a group's membership, see `metadata_record`)
//! u16  group id length, then the group id (UTF-8)
//! u16  topic length, then the topic (UTF-8)
//! i32  partition
//! ```
//!
//! Record value, version 1; a null value is a tombstone (the offset was deleted or expired):
//!
//! ```text
//! u8   value version = 1
//! i64  committed offset
//! i32  leader epoch (-1 unknown)
//! i64  commit timestamp, ms since the UNIX epoch
//! u32  metadata length, then the metadata string (UTF-8)
//! ```
//!
//! All records of a group go to one partition (FNV-1a of the group id), so their log order is
//! their commit order, and the last record of a key wins on replay, as compaction will keep it.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::sync::watch;

use super::types::CommittedOffset;

pub(crate) const KEY_VERSION: u8 = 1;
pub(crate) const KIND_OFFSET: u8 = 1;
pub(crate) const VALUE_VERSION: u8 = 1;

/// (topic, partition).
pub(crate) type TopicPartition = (String, i32);

/// A decoded record key of the offsets topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

pub(crate) fn encode_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(10 + group.len() + topic.len());
    b.put_u8(KEY_VERSION);
    b.put_u8(KIND_OFFSET);
    put_str16(&mut b, group);
    put_str16(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

/// The key, or `None` for a version or kind this build does not know (skipped on replay).
pub(crate) fn decode_key(mut b: &[u8]) -> Option<OffsetKey> {
    if b.len() < 2 || b.get_u8() != KEY_VERSION || b.get_u8() != KIND_OFFSET {
        return None;
    }
    let group = take_str16(&mut b)?;
    let topic = take_str16(&mut b)?;
    if b.len() < 4 {
        return None;
    }
    let partition = b.get_i32();
    Some(OffsetKey {
        group,
        topic,
        partition,
    })
}

pub(crate) fn encode_value(c: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::with_capacity(25 + c.metadata.len());
    b.put_u8(VALUE_VERSION);
    b.put_i64(c.offset);
    b.put_i32(c.leader_epoch);
    b.put_i64(c.commit_timestamp_ms);
    b.put_u32(c.metadata.len() as u32);
    b.put_slice(c.metadata.as_bytes());
    b.freeze()
}

pub(crate) fn decode_value(mut b: &[u8]) -> Option<CommittedOffset> {
    if b.len() < 25 || b.get_u8() != VALUE_VERSION {
        return None;
    }
    let offset = b.get_i64();
    let leader_epoch = b.get_i32();
    let commit_timestamp_ms = b.get_i64();
    let len = b.get_u32() as usize;
    let metadata = std::str::from_utf8(b.get(..len)?).ok()?.to_string();
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// A u16 length, then the bytes. Group ids arrive as Kafka strings (i16 length) and topic
/// names are at most 249 bytes, so the cut never happens to a valid name.
pub(crate) fn put_str16(b: &mut BytesMut, s: &str) {
    let len = s.len().min(u16::MAX as usize);
    b.put_u16(len as u16);
    b.put_slice(&s.as_bytes()[..len]);
}

pub(crate) fn take_str16(b: &mut &[u8]) -> Option<String> {
    if b.len() < 2 {
        return None;
    }
    let len = b.get_u16() as usize;
    let s = std::str::from_utf8(b.get(..len)?).ok()?.to_string();
    b.advance(len);
    Some(s)
}

/// FNV-1a, so a group's partition never depends on the process (unlike `DefaultHasher`).
pub(crate) use crate::internal::partition_for;

/// Changes appended to the log but not yet durable: applied once the partition's high
/// watermark passes `end_offset`, in log order.
struct Staged {
    high_watermark: watch::Receiver<u64>,
    end_offset: u64,
    changes: Vec<(TopicPartition, Option<CommittedOffset>)>,
}

/// One group's committed offsets. Readers see only durable commits: a commit is staged when
/// appended and applied when fsynced, strictly in append order (appends happen under the
/// group's lock), so a slow waiter can never apply an older commit over a newer one.
#[derive(Default)]
pub(crate) struct OffsetCache {
    committed: BTreeMap<TopicPartition, CommittedOffset>,
    staged: VecDeque<Staged>,
}

impl OffsetCache {
    pub fn stage(
        &mut self,
        high_watermark: watch::Receiver<u64>,
        end_offset: u64,
        changes: Vec<(TopicPartition, Option<CommittedOffset>)>,
    ) {
        self.staged.push_back(Staged {
            high_watermark,
            end_offset,
            changes,
        });
    }

    /// Applies every staged change that is durable now, oldest first.
    pub fn apply_durable(&mut self) {
        while let Some(front) = self.staged.front() {
            if *front.high_watermark.borrow() < front.end_offset {
                break;
            }
            if let Some(s) = self.staged.pop_front() {
                for (tp, c) in s.changes {
                    self.apply(tp, c);
                }
            }
        }
    }

    /// Sets (or with `None` deletes) one offset; also how replay feeds records in.
    pub fn apply(&mut self, tp: TopicPartition, c: Option<CommittedOffset>) {
        match c {
            Some(c) => {
                self.committed.insert(tp, c);
            }
            None => {
                self.committed.remove(&tp);
            }
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.committed.get(&(topic.to_string(), partition))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &CommittedOffset)> {
        self.committed.iter()
    }

    /// Keys with an offset now or in a staged change (what a full delete must tombstone).
    pub fn keys(&self) -> Vec<TopicPartition> {
        let mut keys: Vec<TopicPartition> = self.committed.keys().cloned().collect();
        for s in &self.staged {
            keys.extend(s.changes.iter().map(|(tp, _)| tp.clone()));
        }
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.staged.is_empty()
    }

    pub fn newest_commit_ms(&self) -> Option<i64> {
        self.committed.values().map(|c| c.commit_timestamp_ms).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 0,
            metadata: "meta".into(),
            commit_timestamp_ms: 1000 + offset,
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        let k = encode_key("group-ü", "orders", 7);
        assert_eq!(
            decode_key(&k),
            Some(OffsetKey {
                group: "group-ü".into(),
                topic: "orders".into(),
                partition: 7
            })
        );
        let v = committed(42);
        assert_eq!(decode_value(&encode_value(&v)), Some(v));
        // Truncations and unknown versions are skipped, never a panic.
        for cut in 0..k.len() {
            assert_eq!(decode_key(&k[..cut]), None);
        }
        let v = encode_value(&committed(1));
        for cut in 0..v.len() {
            assert_eq!(decode_value(&v[..cut]), None);
        }
        assert_eq!(decode_key(&[2, 1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        assert_eq!(partition_for("g", 8), partition_for("g", 8));
        for g in ["a", "b", "group-1", ""] {
            assert!(partition_for(g, 8) < 8);
        }
        assert_eq!(partition_for("x", 0), 0);
    }

    #[test]
    fn staged_changes_apply_in_order_once_durable() {
        let (hw, rx) = watch::channel(0u64);
        let mut cache = OffsetCache::default();
        let tp = ("t".to_string(), 0);
        cache.stage(rx.clone(), 5, vec![(tp.clone(), Some(committed(1)))]);
        cache.stage(rx.clone(), 6, vec![(tp.clone(), Some(committed(2)))]);
        cache.stage(rx, 7, vec![(tp.clone(), None)]);
        cache.apply_durable();
        assert!(cache.get("t", 0).is_none(), "nothing durable yet");
        hw.send_replace(6);
        cache.apply_durable();
        assert_eq!(cache.get("t", 0), Some(&committed(2)));
        assert_eq!(cache.keys(), vec![tp.clone()]);
        hw.send_replace(7);
        cache.apply_durable();
        assert!(cache.get("t", 0).is_none());
        assert!(cache.is_empty());
    }
}
