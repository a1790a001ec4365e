//! Per-topic configuration under Kafka's names: every topic config Kafka 3.9 documents is
//! accepted, validated by its type, stored and described. Strom acts on the ones marked
//! [`Effect::Acted`]; the others are kept (so tools that set them work) and described with a
//! note saying they have no effect yet. A value Strom cannot honour (tiered storage, unclean
//! leader election) is refused with INVALID_CONFIG rather than stored and ignored.

use std::collections::BTreeMap;

use strom_storage::LogConfig;

use crate::BrokerError;

/// How a record batch's timestamp is set (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    CreateTime,
    /// The broker stamps each batch with its append time.
    LogAppendTime,
}

/// `compression.type`: keep the producer's codec, or store every batch with this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    Producer,
    /// Kafka's codec id: 0 none ("uncompressed"), 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    Codec(u8),
}

/// The per-topic settings Strom acts on, plus the stored ones it does not (`stored`).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `cleanup.policy` holds `delete`: retention removes old segments.
    pub delete: bool,
    /// `cleanup.policy` holds `compact`: the cleaner keeps the latest record of each key.
    pub compact: bool,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone outlives cleaning.
    pub delete_retention_ms: i64,
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
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime batch may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime batch may be.
    pub timestamp_after_max_ms: i64,
    /// `compression.type`.
    pub compression: TopicCompression,
    /// `remote.storage.enable`: sealed segments go to the object store (`crate::tiering`).
    pub remote_storage: bool,
    /// `local.retention.ms`: how long a tiered partition keeps segments on local disk; -2 =
    /// `retention.ms`.
    pub local_retention_ms: i64,
    /// `local.retention.bytes`: how much of a tiered partition stays on local disk; -2 =
    /// `retention.bytes`.
    pub local_retention_bytes: i64,
    /// Configs that are stored and described but not acted on, by name (and `cleanup.policy`
    /// as given, which `delete` and `compact` act on).
    pub stored: BTreeMap<String, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            delete: true,
            compact: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            compression: TopicCompression::Producer,
            remote_storage: false,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            stored: BTreeMap::new(),
        }
    }
}

/// Whether Strom acts on a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Acted,
    /// Stored and described, with this note on why it has no effect.
    StoredOnly(&'static str),
}

/// A config's type, as Kafka validates it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Ratio,
    Bool,
    Str,
    /// A comma-separated list; each item one of these, or anything when empty.
    List(&'static [&'static str]),
}

/// One topic config Kafka documents.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    /// Kafka's default, as DescribeConfigs prints it for a topic without an override.
    pub kafka_default: &'static str,
    kind: Kind,
    pub effect: Effect,
}

const fn def(
    name: &'static str,
    kafka_default: &'static str,
    kind: Kind,
    effect: Effect,
) -> ConfigDef {
    ConfigDef {
        name,
        kafka_default,
        kind,
        effect,
    }
}

const FSYNC: Effect = Effect::StoredOnly(
    "no effect: Strom fsyncs every batch before acknowledging it (see --flush-interval-ms)",
);
const NO_TIERING: Effect = Effect::StoredOnly(
    "no effect: tiered data is deleted by retention only, and tiering cannot be turned off",
);
const NO_THROTTLE: Effect = Effect::StoredOnly("no effect: Strom does not throttle replication");
const V2_ONLY: Effect =
    Effect::StoredOnly("no effect: Strom stores and serves only RecordBatch v2 (message format 2)");
const LONG: Kind = Kind::Long { min: i64::MIN };
const LONG0: Kind = Kind::Long { min: 0 };

/// Every topic config of Kafka 3.9, in Kafka's documentation order.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", "delete", Kind::List(&["delete", "compact"]), Effect::Acted),
    def("compression.gzip.level", "-1", Kind::Int { min: -1 }, Effect::StoredOnly("no effect: recompression uses each codec's default level")),
    def("compression.lz4.level", "9", Kind::Int { min: 1 }, Effect::StoredOnly("no effect: recompression uses each codec's default level")),
    def("compression.type", "producer", Kind::Str, Effect::Acted),
    def("compression.zstd.level", "3", Kind::Int { min: -131072 }, Effect::StoredOnly("no effect: recompression uses each codec's default level")),
    def("delete.retention.ms", "86400000", LONG0, Effect::Acted),
    def("file.delete.delay.ms", "60000", LONG0, Effect::StoredOnly("no effect: Strom deletes retained segments at once")),
    def("flush.messages", "9223372036854775807", Kind::Long { min: 1 }, FSYNC),
    def("flush.ms", "9223372036854775807", LONG0, FSYNC),
    def("follower.replication.throttled.replicas", "", Kind::List(&[]), NO_THROTTLE),
    def("index.interval.bytes", "4096", Kind::Int { min: 0 }, Effect::Acted),
    def("leader.replication.throttled.replicas", "", Kind::List(&[]), NO_THROTTLE),
    def("local.retention.bytes", "-2", Kind::Long { min: -2 }, Effect::Acted),
    def("local.retention.ms", "-2", Kind::Long { min: -2 }, Effect::Acted),
    def("max.compaction.lag.ms", "9223372036854775807", Kind::Long { min: 1 }, Effect::Acted),
    def("max.message.bytes", "1048588", Kind::Int { min: 0 }, Effect::Acted),
    def("message.downconversion.enable", "true", Kind::Bool, V2_ONLY),
    def("message.format.version", "3.0-IV1", Kind::Str, V2_ONLY),
    def("message.timestamp.after.max.ms", "9223372036854775807", LONG0, Effect::Acted),
    def("message.timestamp.before.max.ms", "9223372036854775807", LONG0, Effect::Acted),
    def("message.timestamp.difference.max.ms", "9223372036854775807", LONG0, Effect::StoredOnly("deprecated in Kafka: use message.timestamp.before.max.ms and message.timestamp.after.max.ms")),
    def("message.timestamp.type", "CreateTime", Kind::Str, Effect::Acted),
    def("min.cleanable.dirty.ratio", "0.5", Kind::Ratio, Effect::Acted),
    def("min.compaction.lag.ms", "0", LONG0, Effect::Acted),
    def("min.insync.replicas", "1", Kind::Int { min: 1 }, Effect::StoredOnly("no effect: an acks=all write in a cluster waits for a majority of the replicas (Raft), whatever this says")),
    def("preallocate", "false", Kind::Bool, Effect::StoredOnly("no effect: segments grow as they are written")),
    def("remote.log.copy.disable", "false", Kind::Bool, NO_TIERING),
    def("remote.log.delete.on.disable", "false", Kind::Bool, NO_TIERING),
    def("remote.storage.enable", "false", Kind::Bool, Effect::Acted),
    def("retention.bytes", "-1", LONG, Effect::Acted),
    def("retention.ms", "604800000", LONG, Effect::Acted),
    def("segment.bytes", "1073741824", Kind::Int { min: 14 }, Effect::Acted),
    def("segment.index.bytes", "10485760", Kind::Int { min: 4 }, Effect::StoredOnly("no effect: Strom's indexes are sparse and sized by the segment")),
    def("segment.jitter.ms", "0", LONG0, Effect::StoredOnly("no effect: segments roll at exactly segment.ms")),
    def("segment.ms", "604800000", Kind::Long { min: 1 }, Effect::Acted),
    def("unclean.leader.election.enable", "false", Kind::Bool, Effect::StoredOnly("no effect: Raft never elects a leader that could lack committed data")),
];

impl ConfigDef {
    /// Kafka's `ConfigType` code for DescribeConfigs v3+.
    pub fn kafka_type(&self) -> i8 {
        match self.kind {
            Kind::Bool => 1,
            Kind::Str => 2,
            Kind::Int { .. } => 3,
            Kind::Long { .. } => 5,
            Kind::Ratio => 6,
            Kind::List(_) => 7,
        }
    }
}

/// The definition of a topic config, if Kafka has one by that name.
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

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
        c.check_tiering()?;
        Ok(c)
    }

    /// Kafka's rules for tiered topics: not compacted, and the local part no longer kept than
    /// the whole log.
    fn check_tiering(&self) -> Result<(), BrokerError> {
        if !self.remote_storage {
            return Ok(());
        }
        if self.compact {
            return Err(BrokerError::InvalidConfig(
                "remote.storage.enable=true is not supported for compacted topics (cleanup.policy=compact)".into(),
            ));
        }
        let over = |local: i64, whole: i64| local >= 0 && whole >= 0 && local > whole;
        if over(self.local_retention_ms, self.retention_ms) {
            return Err(BrokerError::InvalidConfig(format!(
                "local.retention.ms {} cannot be more than retention.ms {}",
                self.local_retention_ms, self.retention_ms
            )));
        }
        if over(self.local_retention_bytes, self.retention_bytes) {
            return Err(BrokerError::InvalidConfig(format!(
                "local.retention.bytes {} cannot be more than retention.bytes {}",
                self.local_retention_bytes, self.retention_bytes
            )));
        }
        Ok(())
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), BrokerError> {
        let def = config_def(name)
            .ok_or_else(|| BrokerError::InvalidConfig(format!("unknown topic config {name}")))?;
        let invalid = |why: &str| {
            BrokerError::InvalidConfig(format!("invalid value {value:?} for {name}: {why}"))
        };
        let unsupported = |why: &str| {
            BrokerError::InvalidConfig(format!("{name}={value} is not supported: {why}"))
        };
        let int = |min: i64, max: i64| -> Result<i64, BrokerError> {
            value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| invalid(&format!("not a whole number in {min}..={max}")))
        };
        let boolean = || match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid("not true or false")),
        };
        // Type check first, as Kafka's ConfigDef does.
        match def.kind {
            Kind::Long { min } => {
                int(min, i64::MAX)?;
            }
            Kind::Int { min } => {
                int(min, i64::from(i32::MAX))?;
            }
            Kind::Ratio => {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| invalid("not a number in 0..=1"))?;
            }
            Kind::Bool => {
                boolean()?;
            }
            Kind::Str => {}
            Kind::List(allowed) => {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !allowed.is_empty() && !allowed.contains(&item) {
                        return Err(invalid(&format!("{item} is not one of {allowed:?}")));
                    }
                }
            }
        }
        match name {
            "retention.ms" => self.retention_ms = int(-1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = int(-1, i64::MAX)?,
            // Segment positions are u32 in the index; 14 bytes is Kafka's floor.
            "segment.bytes" => self.segment_bytes = int(14, i64::from(i32::MAX))? as u64,
            "segment.ms" => self.segment_ms = int(1, i64::MAX)? as u64,
            "max.message.bytes" => self.max_message_bytes = int(0, i64::from(i32::MAX))? as u32,
            "index.interval.bytes" => {
                self.index_interval_bytes = int(0, i64::from(i32::MAX))? as u32
            }
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = int(0, i64::MAX)?,
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = int(0, i64::MAX)?,
            "message.timestamp.type" => {
                self.timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("not CreateTime or LogAppendTime")),
                }
            }
            "compression.type" => {
                self.compression = match value.trim().to_ascii_lowercase().as_str() {
                    "producer" => TopicCompression::Producer,
                    "uncompressed" => TopicCompression::Codec(0),
                    "gzip" => TopicCompression::Codec(1),
                    "snappy" => TopicCompression::Codec(2),
                    "lz4" => TopicCompression::Codec(3),
                    "zstd" => TopicCompression::Codec(4),
                    _ => {
                        return Err(invalid(
                            "not one of producer, uncompressed, gzip, snappy, lz4, zstd",
                        ))
                    }
                }
            }
            "cleanup.policy" => {
                let has = |p: &str| value.split(',').any(|item| item.trim() == p);
                self.delete = has("delete");
                self.compact = has("compact");
                // Described as given, as Kafka does.
                self.stored.insert(name.to_string(), value.to_string());
            }
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value.trim().parse().unwrap_or(0.5)
            }
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int(0, i64::MAX)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = int(1, i64::MAX)?,
            "delete.retention.ms" => self.delete_retention_ms = int(0, i64::MAX)?,
            "remote.storage.enable" => self.remote_storage = boolean()?,
            "local.retention.ms" => self.local_retention_ms = int(-2, i64::MAX)?,
            "local.retention.bytes" => self.local_retention_bytes = int(-2, i64::MAX)?,
            "unclean.leader.election.enable" if boolean()? => {
                return Err(unsupported(
                    "Raft never elects a leader that could lack committed data",
                ))
            }
            _ => {
                self.stored.insert(name.to_string(), value.to_string());
            }
        }
        Ok(())
    }

    /// The value of a named config as Kafka would print it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "remote.storage.enable" => self.remote_storage.to_string(),
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "compression.type" => match self.compression {
                TopicCompression::Producer => "producer".into(),
                TopicCompression::Codec(c) => {
                    ["uncompressed", "gzip", "snappy", "lz4", "zstd"][usize::from(c.min(4))].into()
                }
            },
            other => match self.stored.get(other) {
                Some(v) => v.clone(),
                None => config_def(other)?.kafka_default.to_string(),
            },
        })
    }

    /// The local limit of a tiered topic (-2: the whole log's), else the whole log's.
    fn local_or(&self, local: i64, whole: i64) -> i64 {
        if self.remote_storage && local != -2 {
            local
        } else {
            whole
        }
    }

    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            // As Kafka, a compacted topic rolls the active segment (which is never cleaned)
            // once its data is max.compaction.lag.ms old.
            segment_ms: match u64::try_from(self.max_compaction_lag_ms) {
                Ok(lag) if self.compact => self.segment_ms.min(lag),
                _ => self.segment_ms,
            },
            // A compact-only topic keeps everything the cleaner keeps, whatever retention says.
            // A tiered one keeps its local part by local.retention.* (the broker also keeps
            // whatever is not uploaded yet); retention.* applies to the whole, in the store.
            retention_ms: u64::try_from(self.local_or(self.local_retention_ms, self.retention_ms))
                .ok()
                .filter(|_| self.delete),
            retention_bytes: u64::try_from(
                self.local_or(self.local_retention_bytes, self.retention_bytes),
            )
            .ok()
            .filter(|_| self.delete),
            index_interval_bytes: self.index_interval_bytes,
        }
    }
}

/// How an IncrementalAlterConfigs operation changes one config (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterOp {
    pub fn from_code(code: i8) -> Option<AlterOp> {
        Some(match code {
            0 => AlterOp::Set,
            1 => AlterOp::Delete,
            2 => AlterOp::Append,
            3 => AlterOp::Subtract,
            _ => return None,
        })
    }
}

/// Applies one IncrementalAlterConfigs operation to a topic's overrides (`effective` gives the
/// current value of a list config that has no override yet, for APPEND and SUBTRACT).
pub fn apply_incremental(
    overrides: &mut BTreeMap<String, String>,
    effective: &TopicConfig,
    name: &str,
    op: AlterOp,
    value: Option<&str>,
) -> Result<(), BrokerError> {
    let def = config_def(name)
        .ok_or_else(|| BrokerError::InvalidConfig(format!("unknown topic config {name}")))?;
    let needs_value = || {
        value.ok_or_else(|| {
            BrokerError::InvalidConfig(format!("{name}: the operation needs a value"))
        })
    };
    match op {
        AlterOp::Set => {
            overrides.insert(name.to_string(), needs_value()?.to_string());
        }
        AlterOp::Delete => {
            overrides.remove(name);
        }
        AlterOp::Append | AlterOp::Subtract => {
            if !matches!(def.kind, Kind::List(_)) {
                return Err(BrokerError::InvalidConfig(format!(
                    "{name} is not a list: APPEND and SUBTRACT apply to list configs only"
                )));
            }
            let current = effective.get(name).unwrap_or_default();
            let mut items: Vec<String> = current
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for item in needs_value()?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let present = items.iter().any(|i| i == item);
                match op {
                    AlterOp::Append if !present => items.push(item.to_string()),
                    AlterOp::Subtract => items.retain(|i| i != item),
                    _ => {}
                }
            }
            overrides.insert(name.to_string(), items.join(","));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_kafka_topic_config_is_accepted_with_its_default() {
        let base = TopicConfig::default();
        for d in TOPIC_CONFIGS {
            let c = base
                .with_overrides(&overrides(&[(d.name, d.kafka_default)]))
                .unwrap_or_else(|e| panic!("{}={}: {e}", d.name, d.kafka_default));
            assert_eq!(
                c.get(d.name).as_deref(),
                Some(d.kafka_default),
                "{}",
                d.name
            );
            assert_eq!(
                base.get(d.name).as_deref(),
                Some(d.kafka_default),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn config_overrides_are_validated() {
        let base = TopicConfig::default();
        let c = base
            .with_overrides(&overrides(&[
                ("retention.ms", "1000"),
                ("compression.type", "lz4"),
                ("delete.retention.ms", "900"),
                ("message.timestamp.type", "LogAppendTime"),
            ]))
            .unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.compression, TopicCompression::Codec(3));
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.get("delete.retention.ms").as_deref(), Some("900"));
        for (k, v) in [
            ("retention.ms", "abc"),
            ("segment.bytes", "1"),
            ("nope", "1"),
            ("cleanup.policy", "shred"),
            ("compression.type", "brotli"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("preallocate", "maybe"),
            ("remote.storage.enable", "yes"),
            ("message.timestamp.type", "Now"),
        ] {
            assert!(
                base.with_overrides(&overrides(&[(k, v)])).is_err(),
                "{k}={v} accepted"
            );
        }
    }

    #[test]
    fn cleanup_policy_decides_compaction_and_retention() {
        let base = TopicConfig::default();
        assert!(base.delete && !base.compact);
        let compact = base
            .with_overrides(&overrides(&[
                ("cleanup.policy", "compact"),
                ("retention.ms", "5"),
            ]))
            .unwrap();
        assert!(compact.compact && !compact.delete);
        // Retention does not apply to a compact-only topic.
        assert_eq!(compact.log_config().retention_ms, None);
        let both = base
            .with_overrides(&overrides(&[
                ("cleanup.policy", "delete,compact"),
                ("retention.ms", "5"),
            ]))
            .unwrap();
        assert!(both.compact && both.delete);
        assert_eq!(both.log_config().retention_ms, Some(5));
        assert_eq!(
            both.get("cleanup.policy").as_deref(),
            Some("delete,compact")
        );
    }

    #[test]
    fn incremental_operations() {
        let base = TopicConfig::default();
        let mut o = overrides(&[("retention.ms", "5")]);
        apply_incremental(&mut o, &base, "segment.ms", AlterOp::Set, Some("60000")).unwrap();
        apply_incremental(&mut o, &base, "retention.ms", AlterOp::Delete, None).unwrap();
        assert_eq!(o, overrides(&[("segment.ms", "60000")]));
        apply_incremental(
            &mut o,
            &base,
            "leader.replication.throttled.replicas",
            AlterOp::Append,
            Some("0:1,1:2"),
        )
        .unwrap();
        let eff = base.with_overrides(&o).unwrap();
        apply_incremental(
            &mut o,
            &eff,
            "leader.replication.throttled.replicas",
            AlterOp::Subtract,
            Some("0:1"),
        )
        .unwrap();
        assert_eq!(o["leader.replication.throttled.replicas"], "1:2");
        let err = apply_incremental(&mut o, &base, "retention.ms", AlterOp::Append, Some("1"));
        assert!(err.is_err(), "APPEND on a non-list");
        assert!(apply_incremental(&mut o, &base, "nope", AlterOp::Set, Some("1")).is_err());
    }
    #[test]
    fn tiered_topics_keep_their_local_part_by_local_retention() {
        let base = TopicConfig::default();
        let c = base
            .with_overrides(&overrides(&[
                ("remote.storage.enable", "true"),
                ("retention.ms", "100000"),
                ("local.retention.ms", "1000"),
                ("retention.bytes", "-1"),
                ("local.retention.bytes", "4096"),
            ]))
            .unwrap();
        assert!(c.remote_storage);
        assert_eq!(c.log_config().retention_ms, Some(1000));
        assert_eq!(c.log_config().retention_bytes, Some(4096));
        assert_eq!(c.get("local.retention.ms").as_deref(), Some("1000"));
        // -2: the local part follows the whole log's limits.
        let c = base
            .with_overrides(&overrides(&[("remote.storage.enable", "true")]))
            .unwrap();
        assert_eq!(c.log_config().retention_ms, Some(7 * 24 * 3600 * 1000));
        for pairs in [
            &[
                ("remote.storage.enable", "true"),
                ("cleanup.policy", "compact"),
            ][..],
            &[
                ("remote.storage.enable", "true"),
                ("retention.ms", "10"),
                ("local.retention.ms", "20"),
            ],
            &[
                ("remote.storage.enable", "true"),
                ("retention.bytes", "10"),
                ("local.retention.bytes", "20"),
            ],
        ] {
            assert!(
                base.with_overrides(&overrides(pairs)).is_err(),
                "{pairs:?} accepted"
            );
        }
    }
}
