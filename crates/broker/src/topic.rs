//! Topics: names, per-topic configuration and the partitions they own.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use strom_storage::LogConfig;
use uuid::Uuid;

use crate::partition::Partition;
use crate::BrokerError;

/// Topics the broker writes itself. Clients may read them but never produce to or delete them:
/// a stray record or a deletion would corrupt committed offsets.
pub fn is_internal_topic(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC
}

/// Kafka's limit: a topic name becomes a directory name plus a partition suffix.
pub const TOPIC_NAME_MAX_LEN: usize = 249;

/// Checks a topic name the way Kafka does: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let bad = |why: &str| Err(BrokerError::InvalidTopicName(format!("{name:?}: {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_MAX_LEN {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The per-topic settings Strom honours, under their Kafka names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// `retention.ms`; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes` per partition; -1 = unlimited.
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: u64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: u32,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
        }
    }
}

/// The config names Strom knows; anything else is refused with INVALID_CONFIG, as Kafka does.
pub const CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "index.interval.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
];

impl TopicConfig {
    /// Applies `name=value` overrides on top of `self`, validating each.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, BrokerError> {
        let mut c = self.clone();
        for (name, value) in overrides {
            c.set(name, value)?;
        }
        Ok(c)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), BrokerError> {
        let invalid = || BrokerError::InvalidConfig(format!("invalid value {value:?} for {name}"));
        let int = |min: i64, max: i64| -> Result<i64, BrokerError> {
            value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(invalid)
        };
        match name {
            "retention.ms" => self.retention_ms = int(-1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = int(-1, i64::MAX)?,
            // Segment positions are u32 in the index; 14 bytes is Kafka's floor.
            "segment.bytes" => self.segment_bytes = int(14, i32::MAX as i64)? as u64,
            "segment.ms" => self.segment_ms = int(1, i64::MAX)? as u64,
            "max.message.bytes" => self.max_message_bytes = int(0, i32::MAX as i64)? as u32,
            "index.interval.bytes" => self.index_interval_bytes = int(0, i32::MAX as i64)? as u32,
            "cleanup.policy" if value == "delete" => {}
            "message.timestamp.type" if value == "CreateTime" => {}
            "min.insync.replicas" => {
                int(1, 1)?;
            }
            "cleanup.policy" | "message.timestamp.type" => {
                return Err(BrokerError::InvalidConfig(format!(
                    "{name}={value} is not supported yet"
                )))
            }
            _ => {
                return Err(BrokerError::InvalidConfig(format!(
                    "unknown topic config {name}"
                )))
            }
        }
        Ok(())
    }

    /// The value of a named config as Kafka would print it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "cleanup.policy" => "delete".into(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "message.timestamp.type" => "CreateTime".into(),
            "min.insync.replicas" => "1".into(),
            _ => return None,
        })
    }

    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            retention_ms: u64::try_from(self.retention_ms).ok(),
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
            index_interval_bytes: self.index_interval_bytes,
        }
    }
}

/// A topic and its partitions. Partitions only ever grow (CreatePartitions).
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// The overrides as the user gave them; the effective config is `config`.
    pub overrides: BTreeMap<String, String>,
    pub config: TopicConfig,
    /// Index `i` is partition `i`; `None` where this node holds no replica (cluster mode).
    pub(crate) partitions: RwLock<Vec<Option<Arc<Partition>>>>,
}

impl Topic {
    /// The partition if this node holds a replica of it.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let index = usize::try_from(index).ok()?;
        self.partitions.read().ok()?.get(index).cloned().flatten()
    }

    /// The partitions this node holds.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .map(|p| p.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn set_partition(&self, index: usize, p: Arc<Partition>) {
        let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        while parts.len() <= index {
            parts.push(None);
        }
        parts[index] = Some(p);
    }

    pub(crate) fn clear_partition(&self, p: &Arc<Partition>) {
        let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        for slot in parts.iter_mut() {
            if slot.as_ref().is_some_and(|x| Arc::ptr_eq(x, p)) {
                *slot = None;
            }
        }
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.read().map(|p| p.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_EU-2").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn config_overrides_are_validated() {
        let base = TopicConfig::default();
        let ok: BTreeMap<_, _> = [("retention.ms".to_string(), "1000".to_string())].into();
        assert_eq!(base.with_overrides(&ok).unwrap().retention_ms, 1000);
        for (k, v) in [
            ("retention.ms", "abc"),
            ("segment.bytes", "1"),
            ("nope", "1"),
            ("cleanup.policy", "compact"),
        ] {
            let o: BTreeMap<_, _> = [(k.to_string(), v.to_string())].into();
            assert!(base.with_overrides(&o).is_err(), "{k}={v} accepted");
        }
    }
}
