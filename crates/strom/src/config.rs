//! `strom serve` settings: flags, optionally on top of a TOML file (`--config`), on top of defaults.
//! Every flag has the same name in the file with `_` for `-` (e.g. `data_dir = "/var/lib/strom"`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde::Deserialize;
use strom_broker::{BrokerConfig, FlushPolicy, TopicConfig};
use strom_kafka::KafkaConfig;

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty ),* $(,)?) => {
        /// Flags of `strom serve`. Unset flags fall back to the config file, then to the defaults.
        #[derive(clap::Args, Debug, Default)]
        pub struct ServeArgs {
            /// TOML file with any of the settings below (flags win over the file).
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $( $(#[doc = $doc])* #[arg(long)] pub $name: Option<$ty>, )*
        }

        #[derive(Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields)]
        struct FileSettings { $( $name: Option<$ty>, )* }

        impl ServeArgs {
            /// Fills every unset flag from the file.
            fn merge(mut self, file: FileSettings) -> Self {
                $( if self.$name.is_none() { self.$name = file.$name; } )*
                self
            }
        }
    };
}

settings! {
    /// Data directory [default: ./strom-data].
    data_dir: PathBuf,
    /// Kafka listener, also advertised to clients unless --advertised-kafka-addr is set [default: 127.0.0.1:9092].
    kafka_addr: SocketAddr,
    /// Address clients are told to connect to, HOST:PORT [default: the listen address].
    advertised_kafka_addr: String,
    /// This node's id [default: 0].
    node_id: i32,
    /// Log filter, e.g. info, debug, strom_kafka=debug [default: info, or RUST_LOG].
    log_level: String,
    /// Partitions of topics created without a count (num.partitions) [default: 1].
    default_partitions: i32,
    /// Create unknown topics on Metadata and Produce [default: true].
    auto_create_topics: bool,
    /// Roll a segment at this size in bytes (log.segment.bytes) [default: 1073741824].
    segment_bytes: u64,
    /// Roll a segment at this age in ms (log.roll.ms) [default: 604800000].
    segment_ms: u64,
    /// Delete segments older than this many ms; -1 keeps forever (log.retention.ms) [default: 604800000].
    retention_ms: i64,
    /// Delete the oldest segments of a partition beyond this many bytes; -1 = unlimited [default: -1].
    retention_bytes: i64,
    /// Largest record batch accepted in bytes (message.max.bytes) [default: 1048588].
    max_message_bytes: u32,
    /// Largest request frame in bytes (socket.request.max.bytes) [default: 104857600].
    max_request_bytes: usize,
    /// Most client connections at once [default: 10000].
    max_connections: usize,
    /// Relaxed durability: fsync every N ms and acknowledge before the fsync. LOSES up to N ms of
    /// acknowledged writes on power loss. Unset (the default): fsync before every acknowledgement.
    flush_interval_ms: u64,
    /// How often retention is checked, in ms [default: 60000].
    retention_check_interval_ms: u64,
    /// How long the first join into an empty consumer group waits for more members, in ms
    /// (group.initial.rebalance.delay.ms) [default: 3000].
    group_initial_rebalance_delay_ms: u64,
    /// Delete the committed offsets of a group that has been empty this long, in minutes
    /// (offsets.retention.minutes) [default: 10080].
    offsets_retention_minutes: u64,
}

/// Everything `serve` needs, resolved and validated.
pub struct Settings {
    pub broker: BrokerConfig,
    pub kafka: KafkaConfig,
    pub kafka_addr: SocketAddr,
    pub log_level: Option<String>,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let args = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                let file: FileSettings = toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?;
                self.merge(file)
            }
            None => self,
        };
        let d = TopicConfig::default();
        let topic_defaults = TopicConfig {
            retention_ms: args.retention_ms.unwrap_or(d.retention_ms),
            retention_bytes: args.retention_bytes.unwrap_or(d.retention_bytes),
            segment_bytes: args.segment_bytes.unwrap_or(d.segment_bytes),
            segment_ms: args.segment_ms.unwrap_or(d.segment_ms),
            max_message_bytes: args.max_message_bytes.unwrap_or(d.max_message_bytes),
            index_interval_bytes: d.index_interval_bytes,
        };
        if !(1024..=(i32::MAX as u64)).contains(&topic_defaults.segment_bytes) {
            bail!("--segment-bytes must be between 1024 and {}", i32::MAX);
        }
        if topic_defaults.retention_ms < -1 || topic_defaults.retention_bytes < -1 {
            bail!("--retention-ms and --retention-bytes must be -1 (unlimited) or positive");
        }
        let default_partitions = args.default_partitions.unwrap_or(1);
        if !(1..=strom_broker::PARTITIONS_MAX).contains(&default_partitions) {
            bail!(
                "--default-partitions must be between 1 and {}",
                strom_broker::PARTITIONS_MAX
            );
        }
        let max_request_bytes = args.max_request_bytes.unwrap_or(100 * 1024 * 1024);
        if !(1024..=(i32::MAX as usize)).contains(&max_request_bytes) {
            bail!("--max-request-bytes must be between 1024 and {}", i32::MAX);
        }
        let flush = match args.flush_interval_ms {
            None => FlushPolicy::Always,
            Some(0) => bail!(
                "--flush-interval-ms must be positive (leave it unset to fsync before every ack)"
            ),
            Some(ms) => FlushPolicy::IntervalMs(ms),
        };
        if args.offsets_retention_minutes == Some(0) {
            bail!("--offsets-retention-minutes must be at least 1");
        }
        let kafka_addr = args
            .kafka_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9092)));
        let (advertised_host, advertised_port) = match &args.advertised_kafka_addr {
            Some(a) => parse_host_port(a)?,
            None => (kafka_addr.ip().to_string(), i32::from(kafka_addr.port())),
        };
        Ok(Settings {
            broker: BrokerConfig {
                data_dir: args.data_dir.unwrap_or_else(|| PathBuf::from("strom-data")),
                node_id: args.node_id.unwrap_or(0),
                default_partitions,
                auto_create_topics: args.auto_create_topics.unwrap_or(true),
                topic_defaults,
                flush,
                retention_check_interval_ms: args
                    .retention_check_interval_ms
                    .unwrap_or(60_000)
                    .max(10),
                group_initial_rebalance_delay_ms: args
                    .group_initial_rebalance_delay_ms
                    .unwrap_or(3000),
                offsets_retention_minutes: args.offsets_retention_minutes.unwrap_or(7 * 24 * 60),
            },
            kafka: KafkaConfig {
                advertised_host,
                advertised_port,
                max_request_bytes,
                max_connections: args.max_connections.unwrap_or(10_000),
            },
            kafka_addr,
            log_level: args.log_level,
        })
    }
}

fn parse_host_port(s: &str) -> anyhow::Result<(String, i32)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("{s:?} is not HOST:PORT"))?;
    let port: u16 = port.parse().with_context(|| format!("{s:?}: bad port"))?;
    if host.is_empty() {
        bail!("{s:?}: empty host");
    }
    Ok((host.to_string(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strom.toml");
        std::fs::write(&path, "data_dir = \"/from/file\"\ndefault_partitions = 3\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            default_partitions: Some(5),
            ..Default::default()
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.broker.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.broker.default_partitions, 5);
        assert_eq!(s.kafka_addr.to_string(), "127.0.0.1:9092");
        assert_eq!(s.broker.flush, FlushPolicy::Always);

        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("no_such_setting"), "{err:#}");
        assert!(ServeArgs {
            default_partitions: Some(0),
            ..Default::default()
        }
        .resolve()
        .is_err());
    }
}
