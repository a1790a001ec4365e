//! Topics: names, per-topic configuration and the partitions they own.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::partition::Partition;
pub use crate::topic_config::TopicConfig;
use crate::BrokerError;

pub use crate::internal::is_internal_topic;

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

/// A topic and its partitions. Partitions only ever grow (CreatePartitions).
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Changed by AlterConfigs while partitions serve: read it whole, through [`Topic::settings`].
    settings: RwLock<TopicSettings>,
    /// Index `i` is partition `i`; `None` where this node holds no replica (cluster mode).
    pub(crate) partitions: RwLock<Vec<Option<Arc<Partition>>>>,
}

/// A topic's configuration: the overrides as the user gave them, and the effective config
/// (broker defaults with the overrides applied).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub overrides: BTreeMap<String, String>,
    pub config: TopicConfig,
}

impl Topic {
    pub(crate) fn new(
        name: &str,
        id: Uuid,
        settings: TopicSettings,
        partitions: Vec<Option<Arc<Partition>>>,
    ) -> Topic {
        Topic {
            name: name.to_string(),
            id,
            settings: RwLock::new(settings),
            partitions: RwLock::new(partitions),
        }
    }

    pub fn settings(&self) -> TopicSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the configuration and hands it to every partition held here. The caller has
    /// made it durable first (the topic's metadata file, or the controller's log).
    pub(crate) fn set_settings(&self, settings: TopicSettings) {
        let mut current = self.settings.write().unwrap_or_else(|p| p.into_inner());
        if *current == settings {
            return;
        }
        for p in self.partitions() {
            p.set_config(&settings.config);
        }
        *current = settings;
    }

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
}
