//! Consumer group failover, as MirrorMaker 2 does it. The mirror learns, from every committed
//! transaction, which target offset each source offset became (offset syncs); from them it
//! translates the offsets the source's consumer groups committed, writes them as checkpoints
//! to `<alias>.checkpoints.internal` here (MirrorMaker 2's record format, so its tools read
//! them) and, with `sync.group.offsets.enabled`, commits them for the same groups here while
//! those are idle, so a consumer moved to this cluster goes on near where it stopped.
//!
//! A translation is exact at batch boundaries and otherwise rounds down to the last one, so a
//! moved consumer re-reads at most one batch (what was in flight) and never skips a record.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

/// Pairs kept per partition; older ones are thinned out beyond it.
const SYNCS_PER_PARTITION: usize = 4096;

/// (source offset, target offset) pairs per source partition, each meaning "reading the
/// source from the first is reading the target from the second".
#[derive(Debug, Default)]
pub struct OffsetSyncs {
    by_partition: BTreeMap<(String, i32), VecDeque<(i64, i64)>>,
    /// The latest pair of each partition changed since the last [`OffsetSyncs::take_changed`].
    changed: BTreeMap<(String, i32), (i64, i64)>,
}

impl OffsetSyncs {
    /// Records that reading the source partition from `source` is reading the target from
    /// `target`. Pairs arrive in increasing source order.
    pub fn record(&mut self, topic: &str, partition: i32, source: i64, target: i64) {
        let key = (topic.to_string(), partition);
        let syncs = self.by_partition.entry(key.clone()).or_default();
        if syncs.back().is_some_and(|&(s, _)| s >= source) {
            return;
        }
        syncs.push_back((source, target));
        if syncs.len() > SYNCS_PER_PARTITION {
            // Keep the recent half whole and every other pair of the older half: old
            // offsets translate a little less closely, never wrongly.
            let old: Vec<(i64, i64)> = syncs.drain(..SYNCS_PER_PARTITION / 2).collect();
            for (i, pair) in old.into_iter().enumerate().rev() {
                if i % 2 == 0 {
                    syncs.push_front(pair);
                }
            }
        }
        self.changed.insert(key, (source, target));
    }

    /// The target offset to resume at for a consumer that committed `source` (the next
    /// offset it would read): the pair at or below it. `None` when it is older than every
    /// pair known.
    pub fn translate(&self, topic: &str, partition: i32, source: i64) -> Option<i64> {
        let syncs = self.by_partition.get(&(topic.to_string(), partition))?;
        let at = syncs.partition_point(|&(s, _)| s <= source);
        at.checked_sub(1).map(|i| syncs[i].1)
    }

    /// The latest pairs changed since the last call, as the connector's durable state (so a
    /// restarted mirror translates offsets near the head at once).
    pub fn take_changed(&mut self) -> Vec<(String, Option<Value>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|((topic, p), (s, t))| (state_key(&topic, p), Some(json!([s, t]))))
            .collect()
    }

    /// Loads the pairs stored by [`OffsetSyncs::take_changed`].
    pub fn load<'a>(&mut self, state: impl IntoIterator<Item = (&'a String, &'a Value)>) {
        for (key, value) in state {
            let Some(rest) = key.strip_prefix("sync/") else {
                continue;
            };
            let Some((topic, p)) = rest.rsplit_once('/') else {
                continue;
            };
            let (Ok(p), Some(s), Some(t)) =
                (p.parse::<i32>(), value[0].as_i64(), value[1].as_i64())
            else {
                continue;
            };
            self.record(topic, p, s, t);
        }
        self.changed.clear();
    }
}

fn state_key(topic: &str, partition: i32) -> String {
    format!("sync/{topic}/{partition}")
}

/// MirrorMaker 2's checkpoint key: group, (target) topic and partition in Kafka's struct
/// encoding (strings as a 16-bit length and UTF-8, integers big-endian).
pub fn checkpoint_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group.len() + topic.len());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// MirrorMaker 2's checkpoint value: version 0, the upstream (source) offset, the
/// downstream (target) offset and the commit's metadata.
pub fn checkpoint_value(upstream: i64, downstream: i64, metadata: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + metadata.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&upstream.to_be_bytes());
    out.extend_from_slice(&downstream.to_be_bytes());
    put_str(&mut out, metadata);
    out
}

/// MirrorMaker 2's heartbeat key: the source and target cluster aliases.
pub fn heartbeat_key(source_alias: &str, target_alias: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + source_alias.len() + target_alias.len());
    put_str(&mut out, source_alias);
    put_str(&mut out, target_alias);
    out
}

/// MirrorMaker 2's heartbeat value: version 0 and the time in milliseconds.
pub fn heartbeat_value(timestamp_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names and metadata are far below 32 KiB; a longer one is cut rather than wrapped.
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_rounds_down_to_a_known_pair() {
        let mut s = OffsetSyncs::default();
        s.record("t", 0, 10, 100);
        s.record("t", 0, 20, 112);
        assert_eq!(s.translate("t", 0, 9), None, "older than anything known");
        assert_eq!(s.translate("t", 0, 10), Some(100));
        assert_eq!(s.translate("t", 0, 15), Some(100), "re-reads, never skips");
        assert_eq!(s.translate("t", 0, 20), Some(112));
        assert_eq!(s.translate("t", 0, 99), Some(112));
        assert_eq!(s.translate("t", 1, 20), None);
        s.record("t", 0, 20, 500);
        assert_eq!(
            s.translate("t", 0, 20),
            Some(112),
            "pairs only move forward"
        );
    }

    #[test]
    fn thinning_keeps_order_and_the_recent_pairs() {
        let mut s = OffsetSyncs::default();
        for i in 0..(SYNCS_PER_PARTITION as i64 * 3) {
            s.record("t", 0, i * 10, i * 10 + 5);
        }
        let syncs = &s.by_partition[&("t".to_string(), 0)];
        assert!(syncs.len() <= SYNCS_PER_PARTITION);
        assert!(syncs
            .iter()
            .zip(syncs.iter().skip(1))
            .all(|(a, b)| a.0 < b.0));
        let last = SYNCS_PER_PARTITION as i64 * 3 - 1;
        assert_eq!(s.translate("t", 0, last * 10), Some(last * 10 + 5));
        assert_eq!(
            s.translate("t", 0, last * 10 - 3),
            Some((last - 1) * 10 + 5)
        );
    }

    #[test]
    fn state_round_trips() {
        let mut s = OffsetSyncs::default();
        s.record("a.b", 3, 7, 9);
        let state: Vec<(String, Value)> = s
            .take_changed()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap()))
            .collect();
        assert!(s.take_changed().is_empty());
        let mut loaded = OffsetSyncs::default();
        loaded.load(state.iter().map(|(k, v)| (k, v)));
        assert_eq!(loaded.translate("a.b", 3, 7), Some(9));
    }

    #[test]
    fn checkpoint_records_in_mirrormaker_format() {
        assert_eq!(
            checkpoint_key("g", "us.t", 2),
            [0, 1, b'g', 0, 4, b'u', b's', b'.', b't', 0, 0, 0, 2]
        );
        let v = checkpoint_value(5, 7, "");
        assert_eq!(v.len(), 2 + 8 + 8 + 2);
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(&v[2..10], &5i64.to_be_bytes());
        assert_eq!(&v[10..18], &7i64.to_be_bytes());
    }

    #[test]
    fn heartbeat_records_in_mirrormaker_format() {
        assert_eq!(heartbeat_key("ab", "c"), [0, 2, b'a', b'b', 0, 1, b'c']);
        let v = heartbeat_value(1_700_000_000_123);
        assert_eq!(&v[..2], &[0, 0], "version 0");
        assert_eq!(&v[2..], &1_700_000_000_123i64.to_be_bytes());
    }
}
