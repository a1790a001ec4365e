//! Broker-wide settings. Per-topic overrides live in [`crate::topic::TopicConfig`].

use std::path::PathBuf;

/// When appended data is fsynced, and therefore when produce requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fsync before acknowledging (group commit). The default: no acknowledged write is lost on power loss.
    Always,
    /// fsync every N ms and acknowledge at once. Loses up to N ms of *acknowledged* writes on power loss.
    IntervalMs(u64),
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub node_id: i32,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    /// Defaults for topics that do not override them.
    pub topic_defaults: crate::TopicConfig,
    pub flush: FlushPolicy,
    /// How often retention runs over all partitions.
    pub retention_check_interval_ms: u64,
    /// The log cleaner (compacted topics).
    pub cleaner: crate::cleaner::CleanerConfig,
    /// Tiered storage; `None` without `--tier-url`.
    pub tier: Option<crate::tiering::TierConfig>,
    /// `group.initial.rebalance.delay.ms`: the first join into an empty consumer group waits
    /// this long for more members before forming a generation.
    pub group_initial_rebalance_delay_ms: u64,
    /// `offsets.retention.minutes`: committed offsets of a group Empty this long are deleted.
    pub offsets_retention_minutes: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("strom-data"),
            node_id: 0,
            default_partitions: 1,
            auto_create_topics: true,
            topic_defaults: crate::TopicConfig::default(),
            flush: FlushPolicy::Always,
            retention_check_interval_ms: 60_000,
            cleaner: crate::cleaner::CleanerConfig::default(),
            tier: None,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_minutes: 7 * 24 * 60,
        }
    }
}

impl BrokerConfig {
    /// The group coordinator's settings.
    pub fn coordinator(&self) -> crate::group::CoordinatorConfig {
        let defaults = crate::group::CoordinatorConfig::default();
        crate::group::CoordinatorConfig {
            group: crate::group::GroupConfig {
                initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
                ..defaults.group
            },
            offsets_retention_ms: i64::try_from(self.offsets_retention_minutes)
                .unwrap_or(i64::MAX)
                .saturating_mul(60_000),
            ..defaults
        }
    }
}
