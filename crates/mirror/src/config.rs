//! The connector's properties, by MirrorMaker 2's names.

use std::time::Duration;

use strom_connect::props::{Filter, Props};
use strom_connect::{Config, ConfigDef, ConfigIssue};

use crate::policy::Policy;

#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub source_alias: String,
    pub target_alias: String,
    pub source_bootstrap: String,
    /// librdkafka properties for the source cluster's clients (`source.cluster.*`: security).
    pub source_properties: Vec<(String, String)>,
    pub topics: Filter,
    pub policy: Policy,
    pub sync_topic_configs: bool,
    pub refresh_topics_interval: Duration,
    pub sync_topic_configs_interval: Duration,
    /// Most records in one batch (one transaction).
    pub max_batch_records: usize,
    /// Source consumer groups whose offsets are checkpointed.
    pub groups: Filter,
    pub emit_checkpoints: bool,
    pub emit_checkpoints_interval: Duration,
    pub sync_group_offsets: bool,
    pub sync_group_offsets_interval: Duration,
    /// Write a heartbeat to `heartbeats` here (MirrorMaker 2's heartbeat connector).
    pub emit_heartbeats: bool,
    pub emit_heartbeats_interval: Duration,
}

/// MirrorMaker 2's default exclusions: internal topics and replicas of them.
const TOPICS_EXCLUDE_DEFAULT: &str = r".*[\-\.]internal, .*\.replica, __.*, _schemas";
/// MirrorMaker 2's default group exclusions (and Strom's own mirrors' handles).
const GROUPS_EXCLUDE_DEFAULT: &str = "console-consumer-.*, connect-.*, __.*, strom-mirror-.*";

pub fn defs() -> Vec<ConfigDef> {
    let d = ConfigDef::new;
    vec![
        d("source.cluster.alias", true, None, "The source cluster's name; the default replication policy prefixes remote topics with it."),
        d("target.cluster.alias", false, Some("target"), "This cluster's name, as other mirrors call it (so a topic that came from here is not mirrored back)."),
        d("source.bootstrap.servers", true, None, "The source cluster's bootstrap servers (also accepted as source.cluster.bootstrap.servers)."),
        d("topics", false, Some(".*"), "Regular expressions of source topics to mirror, comma-separated."),
        d("topics.exclude", false, Some(TOPICS_EXCLUDE_DEFAULT), "Regular expressions of source topics never mirrored."),
        d("replication.policy.class", false, Some("default"), "default (remote topics named ALIAS.TOPIC) or identity (the same names)."),
        d("replication.policy.separator", false, Some("."), "Between the alias and the topic name."),
        d("sync.topic.configs.enabled", false, Some("true"), "Copy the source topics' configs (retention, cleanup policy, ...)."),
        d("refresh.topics.interval.seconds", false, Some("600"), "How often new source topics and partitions are looked for."),
        d("sync.topic.configs.interval.seconds", false, Some("600"), "How often topic configs are copied."),
        d("max.batch.records", false, Some("10000"), "Most records written in one transaction."),
        d("groups", false, Some(".*"), "Regular expressions of source consumer groups to checkpoint."),
        d("groups.exclude", false, Some(GROUPS_EXCLUDE_DEFAULT), "Regular expressions of groups never checkpointed."),
        d("emit.checkpoints.enabled", false, Some("true"), "Write translated group offsets to <alias>.checkpoints.internal."),
        d("emit.checkpoints.interval.seconds", false, Some("60"), "How often checkpoints are written."),
        d("sync.group.offsets.enabled", false, Some("false"), "Commit translated offsets for the same groups here while they are idle."),
        d("sync.group.offsets.interval.seconds", false, Some("60"), "How often group offsets are committed here."),
        d("emit.heartbeats.enabled", false, Some("true"), "Write a heartbeat (source and target alias, time) to the heartbeats topic here; the source's heartbeats topics are mirrored whatever the topic filter says."),
        d("emit.heartbeats.interval.seconds", false, Some("1"), "How often heartbeats are written."),
        d("source.cluster.*", false, None, "Other librdkafka properties of the source clients, e.g. source.cluster.security.protocol, source.cluster.sasl.mechanism."),
    ]
}

pub fn parse(config: &Config) -> Result<MirrorConfig, Vec<ConfigIssue>> {
    // MirrorMaker 2 names it source.cluster.bootstrap.servers; the issue's shorter name too.
    let mut config = config.clone();
    if let Some(b) = config.get("source.cluster.bootstrap.servers").cloned() {
        config.entry("source.bootstrap.servers".into()).or_insert(b);
    }
    let mut p = Props::new(&config, &defs());
    let source_alias = p.string("source.cluster.alias");
    let target_alias = p
        .get("target.cluster.alias")
        .unwrap_or("target")
        .to_string();
    let separator = p
        .get("replication.policy.separator")
        .unwrap_or(".")
        .to_string();
    let policy = match p.get("replication.policy.class").unwrap_or("default") {
        "default" | "org.apache.kafka.connect.mirror.DefaultReplicationPolicy" => {
            Policy::Default { separator }
        }
        "identity" | "org.apache.kafka.connect.mirror.IdentityReplicationPolicy" => {
            Policy::Identity
        }
        other => {
            p.issue("replication.policy.class", format!("Invalid value {other} for configuration replication.policy.class: default or identity"));
            Policy::Identity
        }
    };
    for (key, alias) in [
        ("source.cluster.alias", &source_alias),
        ("target.cluster.alias", &target_alias),
    ] {
        if !alias.is_empty()
            && !alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            p.issue(key, format!("Invalid value {alias} for configuration {key}: only letters, digits, '_' and '-'"));
        }
    }
    if !source_alias.is_empty() && source_alias == target_alias {
        p.issue(
            "target.cluster.alias",
            "the source and target aliases must differ".into(),
        );
    }
    let topics = p.filter(
        "topics",
        Some(".*"),
        "topics.exclude",
        Some(TOPICS_EXCLUDE_DEFAULT),
    );
    let sync_topic_configs = p.boolean("sync.topic.configs.enabled", true);
    let day = 24 * 3600;
    let refresh = p.number("refresh.topics.interval.seconds", 600, day).max(1);
    let sync_configs = p
        .number("sync.topic.configs.interval.seconds", 600, day)
        .max(1);
    let max_batch_records = p.number("max.batch.records", 10_000, 1_000_000).max(1) as usize;
    let groups = p.filter(
        "groups",
        Some(".*"),
        "groups.exclude",
        Some(GROUPS_EXCLUDE_DEFAULT),
    );
    let emit_checkpoints = p.boolean("emit.checkpoints.enabled", true);
    let checkpoints = p
        .number("emit.checkpoints.interval.seconds", 60, day)
        .max(1);
    let sync_group_offsets = p.boolean("sync.group.offsets.enabled", false);
    let sync_groups = p
        .number("sync.group.offsets.interval.seconds", 60, day)
        .max(1);
    let emit_heartbeats = p.boolean("emit.heartbeats.enabled", true);
    let heartbeats = p.number("emit.heartbeats.interval.seconds", 1, day).max(1);
    let source_properties = config
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("source.cluster.")?, v)))
        .filter(|(k, _)| !["alias", "bootstrap.servers"].contains(k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let source_bootstrap = p.string("source.bootstrap.servers");
    p.finish(|| MirrorConfig {
        source_alias,
        target_alias,
        source_bootstrap,
        source_properties,
        topics,
        policy,
        sync_topic_configs,
        refresh_topics_interval: Duration::from_secs(refresh),
        sync_topic_configs_interval: Duration::from_secs(sync_configs),
        max_batch_records,
        groups,
        emit_checkpoints,
        emit_checkpoints_interval: Duration::from_secs(checkpoints),
        sync_group_offsets,
        sync_group_offsets_interval: Duration::from_secs(sync_groups),
        emit_heartbeats,
        emit_heartbeats_interval: Duration::from_secs(heartbeats),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn mirrormaker_names_and_defaults() {
        let c = parse(&config(&[
            ("source.cluster.alias", "us-east"),
            ("source.cluster.bootstrap.servers", "a:9092"),
            ("source.cluster.security.protocol", "SASL_SSL"),
            ("topics", "orders.*"),
        ]))
        .unwrap();
        assert_eq!(c.source_bootstrap, "a:9092");
        assert_eq!(c.target_alias, "target");
        assert_eq!(
            c.source_properties,
            vec![("security.protocol".to_string(), "SASL_SSL".to_string())]
        );
        assert!(c.topics.accepts("orders"));
        assert!(!c.topics.accepts("payments"));
        assert!(!c.topics.accepts("orders.checkpoints.internal"));
        assert!(matches!(c.policy, Policy::Default { .. }));
        assert_eq!(c.refresh_topics_interval, Duration::from_secs(600));
    }

    #[test]
    fn problems_are_named() {
        let issues = parse(&config(&[
            ("source.cluster.alias", "same"),
            ("target.cluster.alias", "same"),
            ("replication.policy.class", "mine"),
        ]))
        .unwrap_err();
        let names: Vec<&str> = issues.iter().map(|i| i.name.as_str()).collect();
        assert!(names.contains(&"source.bootstrap.servers"), "{names:?}");
        assert!(names.contains(&"replication.policy.class"), "{names:?}");
        assert!(names.contains(&"target.cluster.alias"), "{names:?}");
    }
}
