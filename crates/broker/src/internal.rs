//! The topics the broker writes itself: `__consumer_offsets` (the group coordinator's offsets
//! and memberships) and `__transaction_state` (the transaction coordinator's state). Clients
//! may read them but never produce to, grow or delete them: a stray record would corrupt a
//! coordinator's state, and a key's partition is its hash among all partitions.
//!
//! A single node creates one on first use; in a cluster the controller's leader creates both,
//! replicated, once enough nodes have registered (`cluster::heal`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Broker, BrokerError, Topic};

pub struct InternalTopic {
    pub name: &'static str,
    /// The partition count it is created with (Kafka's defaults are 50; a small cluster
    /// gains nothing from more Raft groups).
    pub partitions: i32,
}

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The internal topic holding the transaction coordinator's state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

pub const INTERNAL_TOPICS: [InternalTopic; 2] = [
    InternalTopic {
        name: OFFSETS_TOPIC,
        partitions: 8,
    },
    InternalTopic {
        name: TXN_STATE_TOPIC,
        partitions: 4,
    },
];

/// Kafka's `offsets.topic.segment.bytes` and `transaction.state.log.segment.bytes`.
const INTERNAL_SEGMENT_BYTES: u64 = 100 << 20;

/// Kafka's default; a coordinator's batch stays well below it.
const INTERNAL_MAX_MESSAGE_BYTES: u32 = 1_048_588;

pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.iter().any(|t| t.name == name)
}

/// Their config: compacted (a coordinator's state is the latest record of each key, so the
/// log and a new coordinator's replay stay bounded by the live state, not its history), with
/// Kafka's 100 MiB segments for them, no time retention (should the policy ever be set to
/// `compact,delete`), and their own batch limit, so a small `--max-message-bytes` cannot make
/// a coordinator's writes fail. All adjustable with AlterConfigs, as Kafka allows.
pub fn overrides() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            INTERNAL_SEGMENT_BYTES.to_string(),
        ),
        ("retention.ms".to_string(), "-1".to_string()),
        (
            "max.message.bytes".to_string(),
            INTERNAL_MAX_MESSAGE_BYTES.to_string(),
        ),
    ])
}

/// The overrides of an internal topic created before compaction existed (no `cleanup.policy`
/// of its own), upgraded to compaction with the settings [`overrides`] gives new ones; `None`
/// when the topic already says what its policy is (an operator's choice stays).
pub fn upgraded(current: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    if current.contains_key("cleanup.policy") {
        return None;
    }
    let mut upgraded = current.clone();
    for (name, value) in overrides() {
        upgraded.entry(name).or_insert(value);
    }
    Some(upgraded)
}

/// The partition of an internal topic that holds `key` (a group or transactional id).
pub fn partition_for(key: &str, partitions: usize) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize % partitions.max(1)
}

/// The internal topic `name`, created now on a single node. In a cluster the controller
/// creates it; until then this is `LeaderNotAvailable`.
pub fn ensure(broker: &Broker, name: &str) -> Result<Arc<Topic>, BrokerError> {
    if let Some(t) = broker.topic(name) {
        return Ok(t);
    }
    let spec = INTERNAL_TOPICS
        .iter()
        .find(|t| t.name == name)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    if broker.cluster().is_some() {
        return Err(BrokerError::LeaderNotAvailable(format!(
            "{name} does not exist yet"
        )));
    }
    match broker.create_topic(name, spec.partitions, -1, overrides(), false) {
        Ok(t) => Ok(t),
        Err(BrokerError::TopicExists(_)) => broker
            .topic(name)
            .ok_or(BrokerError::UnknownTopicOrPartition),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_from_before_compaction_are_upgraded_once() {
        let old = BTreeMap::from([
            ("retention.ms".to_string(), "-1".to_string()),
            ("max.message.bytes".to_string(), "2000000".to_string()),
        ]);
        let new = upgraded(&old).expect("upgraded");
        assert_eq!(new["cleanup.policy"], "compact");
        assert_eq!(
            new["max.message.bytes"], "2000000",
            "an operator's setting stays"
        );
        assert_eq!(upgraded(&new), None);
        let chosen = BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]);
        assert_eq!(upgraded(&chosen), None, "a policy someone chose stays");
    }
}
