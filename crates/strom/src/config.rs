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
    /// Export produce and fetch spans of records carrying a W3C traceparent header to this
    /// OpenTelemetry collector, over OTLP/gRPC (e.g. http://127.0.0.1:4317) [default: none].
    otlp_endpoint: String,
    /// Log line format: text, or json (one JSON object per line, for log shippers)
    /// [default: text].
    log_format: String,
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
    /// Run the log cleaner, which compacts topics with cleanup.policy=compact
    /// (log.cleaner.enable) [default: true].
    log_cleaner_enable: bool,
    /// How long the log cleaner pauses when no compacted partition needs cleaning, in ms
    /// (log.cleaner.backoff.ms) [default: 15000].
    log_cleaner_backoff_ms: u64,
    /// The log cleaner's read and write rate limit in bytes per second
    /// (log.cleaner.io.max.bytes.per.second) [default: unlimited].
    log_cleaner_io_bytes_per_sec: u64,
    /// Memory for the log cleaner's key map in bytes; a partition with more keys is cleaned in
    /// several passes (log.cleaner.dedupe.buffer.size) [default: 134217728].
    log_cleaner_dedupe_buffer_bytes: usize,
    /// Tiered storage: the object store for topics with remote.storage.enable=true,
    /// file:///DIR or s3://BUCKET/PREFIX (AWS_* environment variables; AWS_ENDPOINT_URL and
    /// AWS_ALLOW_HTTP=true for an S3-compatible server) [default: none, tiering off].
    tier_url: String,
    /// Tiered storage: bytes of remote data cached on local disk for reads [default: 1073741824].
    tier_cache_bytes: u64,
    /// Tiered storage: how often sealed segments are looked for and uploaded, in ms
    /// (remote.log.manager.task.interval.ms) [default: 30000].
    tier_interval_ms: u64,
    /// How long the first join into an empty consumer group waits for more members, in ms
    /// (group.initial.rebalance.delay.ms) [default: 3000].
    group_initial_rebalance_delay_ms: u64,
    /// Delete the committed offsets of a group that has been empty this long, in minutes
    /// (offsets.retention.minutes) [default: 10080].
    offsets_retention_minutes: u64,
    /// etcd v3 API listener; '' turns it off [default: 127.0.0.1:2379].
    etcd_addr: String,
    /// HTTP listener (admin API, metrics, HTTP produce/consume); '' turns it off
    /// [default: 127.0.0.1:9644].
    http_addr: String,
    /// HTTP produce/consume: an idle consumer instance is closed after this many ms
    /// (consumer.instance.timeout.ms) [default: 300000].
    consumer_instance_timeout_ms: u64,
    /// etcd client address MemberList names, HOST:PORT [default: the listen address, or with
    /// 0.0.0.0 the --advertised-kafka-addr host and the etcd port].
    advertised_etcd_addr: String,
    /// Largest etcd request in bytes (etcd's --max-request-bytes) [default: 1572864].
    etcd_max_request_bytes: usize,
    /// etcd space quota in bytes; past it the NOSPACE alarm refuses writes until space is
    /// freed and the alarm disarmed (etcd's --quota-backend-bytes) [default: 2147483648].
    etcd_quota_bytes: u64,
    /// etcd journal entries between snapshots of the key-value state (the log behind a
    /// snapshot is deleted; etcd's --snapshot-count) [default: 100000].
    etcd_snapshot_entries: u64,
    /// Cluster mode: the initial voters' Raft addresses, ID@HOST:PORT,... (this node included).
    /// Without it, strom runs as a single node.
    peers: String,
    /// Cluster mode: this node's Raft listener (must match its entry in --peers).
    raft_addr: SocketAddr,
    /// Cluster mode: shared secret authenticating node-to-node traffic (or STROM_CLUSTER_SECRET).
    cluster_secret: String,
    /// Cluster mode: file holding the shared secret.
    cluster_secret_file: PathBuf,
    /// Cluster mode: Raft tick in ms; elections time out after 10 ticks [default: 100].
    raft_tick_ms: u64,
    /// Cluster mode: the cluster's name, the same on every node; peers of another cluster are
    /// refused [default: derived from --peers, so every node must then be given the same list].
    cluster_id: String,
    /// Cluster mode: join a running cluster as a new node. --peers then lists the cluster's
    /// existing nodes (not this one); the node registers, replicates the controller as a
    /// learner, and takes new and rebuilt replicas [default: false].
    join: bool,
    /// Cluster mode: rebuild the replicas of a node unheard of for this long on other nodes, in
    /// ms [default: 600000].
    dead_node_timeout_ms: u64,
    /// Kafka listeners in Kafka's syntax, PROTOCOL://HOST:PORT with PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL, comma-separated or repeated; replaces --kafka-addr. The first
    /// is the one the node registers and its own clients (connectors, HTTP proxy) use
    /// [default: PLAINTEXT://<kafka-addr>].
    kafka_listeners: Vec<String>,
    /// Addresses clients are told for each listener, PROTOCOL://HOST:PORT (Kafka's
    /// advertised.listeners) [default: the listen addresses].
    advertised_kafka_listeners: Vec<String>,
    /// TLS certificate chain (PEM) of every TLS listener; reloaded on SIGHUP or change.
    tls_cert: PathBuf,
    /// TLS private key (PEM).
    tls_key: PathBuf,
    /// CA (PEM) that client and node certificates must chain to (SSL listeners, mutual TLS).
    tls_ca: PathBuf,
    /// SASL mechanisms offered: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN [default: both SCRAM].
    sasl_mechanisms: Vec<String>,
    /// Offer PLAIN on SASL_PLAINTEXT listeners too (it sends the password in clear)
    /// [default: false].
    sasl_plain_without_tls: bool,
    /// A SASL login lasts this many ms; clients re-authenticate (KIP-368,
    /// connections.max.reauth.ms); 0 = the connection's life [default: 0].
    sasl_session_lifetime_ms: u64,
    /// Principals allowed everything, e.g. User:admin.
    super_users: Vec<String>,
    /// Enforce ACLs [default: on when a SASL or SSL listener exists, off otherwise].
    authorizer: bool,
    /// Created as a SCRAM super user on first start if absent (or STROM_BOOTSTRAP_USER).
    bootstrap_user: String,
    /// Its password (or STROM_BOOTSTRAP_PASSWORD).
    bootstrap_password: String,
    /// Most client connections from one IP address at once [default: 1000].
    max_connections_per_ip: usize,
    /// Serve the HTTP listener over TLS (tls_cert, tls_key) [default: false].
    http_tls: bool,
    /// Serve the etcd API over TLS (tls_cert, tls_key) [default: false].
    etcd_tls: bool,
    /// etcd API: require a client certificate signed by tls_ca (etcd's --client-cert-auth)
    /// [default: false].
    etcd_client_cert_auth: bool,
    /// Cluster mode: mutual TLS between nodes with tls_cert/tls_key, peers verified against
    /// tls_ca [default: false].
    raft_tls: bool,
}

/// Everything `serve` needs, resolved and validated.
pub struct Settings {
    pub broker: BrokerConfig,
    pub kafka: KafkaConfig,
    pub log_level: Option<String>,
    /// Log lines as JSON objects rather than text.
    pub log_json: bool,
    /// Where spans go (`--otlp-endpoint`); `None`: no spans.
    pub otlp_endpoint: Option<String>,
    /// Set when `--peers` is given.
    pub cluster: Option<strom_broker::cluster::ClusterConfig>,
    /// The etcd API's listener and limits; `None` when turned off.
    pub etcd: Option<(SocketAddr, strom_etcd::EtcdConfig)>,
    /// The HTTP listener; `None` when turned off.
    pub http: Option<SocketAddr>,
    /// How long an idle HTTP consumer instance lives.
    pub consumer_instance_timeout: std::time::Duration,
    /// Kafka listeners (the first is `kafka_addr`), TLS, SASL and the authorizer.
    pub security: crate::listeners::Security,
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
            ..d.clone()
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
            Some(a) if args.kafka_listeners.is_none() => parse_host_port(a)?,
            _ => (kafka_addr.ip().to_string(), i32::from(kafka_addr.port())),
        };
        let security =
            crate::listeners::resolve(&args, kafka_addr, (&advertised_host, advertised_port))?;
        let primary = &security.listeners[0];
        let (advertised_host, advertised_port) =
            (primary.advertised_host.clone(), primary.advertised_port);
        let mut cluster = cluster_config(&args, &advertised_host, advertised_port)?;
        let mut etcd = etcd_config(&args)?;
        if let (Some((_, e)), true) = (etcd.as_mut(), security.etcd_tls) {
            e.client_url = e.client_url.replacen("http://", "https://", 1);
        }
        let http = listen_addr("--http-addr", args.http_addr.as_deref(), "127.0.0.1:9644")?;
        if let (Some(c), Some((_, e))) = (cluster.as_mut(), etcd.as_ref()) {
            c.endpoints.insert("etcd".into(), e.client_url.clone());
        }
        Ok(Settings {
            broker: BrokerConfig {
                data_dir: args.data_dir.unwrap_or_else(|| PathBuf::from("strom-data")),
                node_id: args
                    .node_id
                    .unwrap_or(if cluster.is_some() { 1 } else { 0 }),
                default_partitions,
                auto_create_topics: args.auto_create_topics.unwrap_or(true),
                topic_defaults,
                flush,
                retention_check_interval_ms: args
                    .retention_check_interval_ms
                    .unwrap_or(60_000)
                    .max(10),
                cleaner: strom_broker::cleaner::CleanerConfig {
                    enabled: args.log_cleaner_enable.unwrap_or(true),
                    backoff_ms: args.log_cleaner_backoff_ms.unwrap_or(15_000).max(10),
                    io_bytes_per_sec: args.log_cleaner_io_bytes_per_sec,
                    key_map_bytes: args
                        .log_cleaner_dedupe_buffer_bytes
                        .unwrap_or(128 << 20)
                        .max(1 << 10),
                },
                group_initial_rebalance_delay_ms: args
                    .group_initial_rebalance_delay_ms
                    .unwrap_or(3000),
                tier: args.tier_url.clone().filter(|u| !u.is_empty()).map(|url| {
                    strom_broker::tiering::TierConfig {
                        url,
                        cache_bytes: args.tier_cache_bytes.unwrap_or(1 << 30),
                        interval_ms: args.tier_interval_ms.unwrap_or(30_000).max(10),
                    }
                }),
                offsets_retention_minutes: args.offsets_retention_minutes.unwrap_or(7 * 24 * 60),
            },
            kafka: KafkaConfig {
                advertised_host,
                advertised_port,
                max_request_bytes,
                max_connections: args.max_connections.unwrap_or(10_000),
            },
            log_level: args.log_level,
            otlp_endpoint: args.otlp_endpoint.filter(|e| !e.is_empty()),
            log_json: match args.log_format.as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => bail!("--log-format {other:?}: use text or json"),
            },
            cluster,
            etcd,
            http,
            consumer_instance_timeout: std::time::Duration::from_millis(
                args.consumer_instance_timeout_ms
                    .unwrap_or(300_000)
                    .max(1000),
            ),
            security,
        })
    }
}

/// A listener address flag: `default` when unset, `None` for '' (turned off).
fn listen_addr(
    flag: &str,
    given: Option<&str>,
    default: &str,
) -> anyhow::Result<Option<SocketAddr>> {
    let addr = given.unwrap_or(default);
    if addr.is_empty() {
        return Ok(None);
    }
    let parsed = addr
        .parse()
        .with_context(|| format!("{flag} {addr:?} is not HOST:PORT ('' turns it off)"))?;
    Ok(Some(parsed))
}

fn etcd_config(args: &ServeArgs) -> anyhow::Result<Option<(SocketAddr, strom_etcd::EtcdConfig)>> {
    let addr = args.etcd_addr.as_deref().unwrap_or("127.0.0.1:2379");
    if addr.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--etcd-addr {addr:?} is not HOST:PORT ('' turns it off)"))?;
    let d = strom_etcd::EtcdConfig::default();
    let max_request_bytes = args.etcd_max_request_bytes.unwrap_or(d.max_request_bytes);
    if !(1024..=(64 << 20)).contains(&max_request_bytes) {
        bail!(
            "--etcd-max-request-bytes must be between 1024 and {}",
            64 << 20
        );
    }
    let quota_bytes = args.etcd_quota_bytes.unwrap_or(d.quota_bytes);
    if quota_bytes < 1 << 20 {
        bail!("--etcd-quota-bytes must be at least 1 MiB");
    }
    let snapshot_every = args.etcd_snapshot_entries.unwrap_or(d.snapshot_every);
    if snapshot_every == 0 {
        bail!("--etcd-snapshot-entries must be at least 1");
    }
    Ok(Some((
        addr,
        strom_etcd::EtcdConfig {
            max_request_bytes,
            quota_bytes,
            snapshot_every,
            client_url: match &args.advertised_etcd_addr {
                Some(a) => {
                    let (host, port) = parse_host_port(a)
                        .with_context(|| format!("--advertised-etcd-addr {a:?}"))?;
                    format!("http://{host}:{port}")
                }
                // Listening on every address: the host clients reach for Kafka, if given.
                None => match &args.advertised_kafka_addr {
                    Some(a) if addr.ip().is_unspecified() => {
                        let (host, _) = parse_host_port(a)?;
                        format!("http://{host}:{}", addr.port())
                    }
                    _ => format!("http://{addr}"),
                },
            },
            ..d
        },
    )))
}

/// The cluster settings, checked: a node must find itself in `--peers` at its `--raft-addr`,
/// and node-to-node traffic needs a secret.
fn cluster_config(
    args: &ServeArgs,
    kafka_host: &str,
    kafka_port: i32,
) -> anyhow::Result<Option<strom_broker::cluster::ClusterConfig>> {
    let Some(peers_arg) = &args.peers else {
        if args.raft_addr.is_some() {
            bail!("--raft-addr needs --peers (the initial voters, ID@HOST:PORT,...)");
        }
        return Ok(None);
    };
    let peers = parse_peers(peers_arg)?;
    let node_id = match args.node_id {
        Some(id) if (1..1024).contains(&id) => id as u64,
        Some(id) => bail!("--node-id must be between 1 and 1023 in a cluster, got {id}"),
        None => bail!("--peers needs --node-id (this node's id among the peers)"),
    };
    let Some(raft_addr) = args.raft_addr else {
        bail!("--peers needs --raft-addr (this node's Raft listener)");
    };
    let join = args.join.unwrap_or(false);
    match peers.get(&node_id) {
        None if join => {}
        None => bail!("--node-id {node_id} is not among --peers {peers_arg} (a new node of a running cluster needs --join)"),
        Some(_) if join => {
            bail!("--join is for a new node: node {node_id} is already among --peers {peers_arg}")
        }
        Some(a) if *a != raft_addr => {
            bail!("--peers gives node {node_id} the address {a}, but --raft-addr is {raft_addr}")
        }
        Some(_) => {}
    }
    let secret = match (&args.cluster_secret, &args.cluster_secret_file) {
        (Some(s), _) => s.clone().into_bytes(),
        (None, Some(f)) => std::fs::read(f)
            .with_context(|| format!("cannot read --cluster-secret-file {}", f.display()))?
            .trim_ascii()
            .to_vec(),
        (None, None) => match std::env::var("STROM_CLUSTER_SECRET") {
            Ok(s) => s.into_bytes(),
            Err(_) => bail!(
                "a cluster needs a shared secret: --cluster-secret, --cluster-secret-file or STROM_CLUSTER_SECRET"
            ),
        },
    };
    if secret.len() < 8 {
        bail!("the cluster secret must be at least 8 bytes");
    }
    let tick_ms = args.raft_tick_ms.unwrap_or(100);
    if !(10..=10_000).contains(&tick_ms) {
        bail!("--raft-tick-ms must be between 10 and 10000");
    }
    let dead_node_timeout_ms = args.dead_node_timeout_ms.unwrap_or(600_000);
    if dead_node_timeout_ms < 1000 {
        bail!("--dead-node-timeout-ms must be at least 1000");
    }
    Ok(Some(strom_broker::cluster::ClusterConfig {
        node_id,
        join,
        dead_node_timeout: std::time::Duration::from_millis(dead_node_timeout_ms),
        raft_addr,
        kafka_host: kafka_host.to_string(),
        kafka_port: u16::try_from(kafka_port).context("bad kafka port")?,
        cluster_id: match &args.cluster_id {
            Some(id) if id.is_empty() || id.len() > 255 => {
                bail!("--cluster-id must be 1 to 255 bytes")
            }
            Some(id) => id.clone(),
            None => cluster_id_of(&peers),
        },
        peers,
        secret,
        tick_ms,
        driver: Default::default(),
        endpoints: Default::default(),
        tls: None,
    }))
}

/// Every node started with the same `--peers` derives the same id (FNV-1a of the sorted list).
fn cluster_id_of(peers: &std::collections::BTreeMap<u64, SocketAddr>) -> String {
    let text: String = peers.iter().map(|(id, a)| format!("{id}@{a},")).collect();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("strom-{hash:016x}")
}

/// `1@127.0.0.1:9101,2@host:9102`: ids must be unique and at least 1; host names resolve now.
pub fn parse_peers(s: &str) -> anyhow::Result<std::collections::BTreeMap<u64, SocketAddr>> {
    use std::net::ToSocketAddrs;
    let mut peers = std::collections::BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .with_context(|| format!("peer {part:?} is not ID@HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .with_context(|| format!("peer {part:?}: bad node id"))?;
        if id == 0 {
            bail!("peer {part:?}: node ids start at 1");
        }
        let addr = addr
            .to_socket_addrs()
            .with_context(|| format!("peer {part:?}: cannot resolve {addr}"))?
            .next()
            .with_context(|| format!("peer {part:?}: {addr} resolves to nothing"))?;
        if peers.insert(id, addr).is_some() {
            bail!("node {id} appears twice in --peers");
        }
    }
    if peers.is_empty() {
        bail!("--peers is empty");
    }
    Ok(peers)
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
        assert_eq!(
            s.security.listeners[0].listener.addr.to_string(),
            "127.0.0.1:9092"
        );
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
