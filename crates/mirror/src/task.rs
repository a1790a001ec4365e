//! The mirror's source task. A read_committed consumer of the source cluster is assigned every
//! partition of the mirrored topics, with no consumer group: the connector's offsets, written
//! in the same transaction as the records they cover, are the only position, so a mirror that
//! is killed or moved resumes exactly after the last committed batch. Before records are
//! written to a target topic, the topic sync has created it with the source's partition count
//! (and configs), so every record keeps its partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Value};
use strom_connect::{Batch, Record, SourceTask, TaskContext, TaskError};

use crate::checkpoint::{
    checkpoint_key, checkpoint_value, heartbeat_key, heartbeat_value, OffsetSyncs,
};
use crate::config::MirrorConfig;
use crate::groups;
use crate::policy::{self, HEARTBEATS};

/// How long a metadata or admin call to either cluster may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A poll waits this long for the first record, then takes what arrives within this long of
/// it: a batch (one transaction) holds at most that much of a steady stream, which bounds
/// the lag it adds.
const FIRST_WAIT: Duration = Duration::from_millis(500);
const LINGER: Duration = Duration::from_millis(20);
/// Most bytes of keys and values in one batch.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Topic configs that describe one cluster's hardware or policy, not the data: never copied
/// (MirrorMaker 2 leaves the same ones out).
const LOCAL_CONFIGS: [&str; 6] = [
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
];

/// Sends librdkafka's log lines to `tracing`.
#[derive(Clone, Copy, Default)]
pub struct Logs;

impl ClientContext for Logs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::warn!(facility, "mirror client: {message}"),
            _ => tracing::debug!(facility, "mirror client: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("mirror client: {error}: {reason}");
    }
}

impl ConsumerContext for Logs {}

/// High watermarks of the source partitions, from librdkafka's statistics.
type HighWatermarks = Arc<std::sync::Mutex<HashMap<(String, i32), i64>>>;

/// The source consumer's context: logs, and the high watermarks its statistics report (the
/// lag in the status, without a request per partition).
#[derive(Clone, Default)]
pub struct SourceContext {
    highs: HighWatermarks,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        Logs.log(level, facility, message)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Logs.error(error, reason)
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut highs = self.highs.lock().unwrap_or_else(|p| p.into_inner());
        for (name, topic) in statistics.topics {
            for (p, partition) in topic.partitions {
                // librdkafka reports -1 for its internal "unassigned" partition and unknowns.
                if p >= 0 && partition.hi_offset >= 0 {
                    highs.insert((name.clone(), p), partition.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {}

/// The connector's instruments.
struct Instruments {
    records: prometheus_client::metrics::counter::Counter,
    bytes: prometheus_client::metrics::counter::Counter,
    lag_records: prometheus_client::metrics::gauge::Gauge,
    lag_seconds: prometheus_client::metrics::gauge::Gauge,
}

impl Instruments {
    fn of(connector: &str) -> Instruments {
        let m = strom_metrics::global();
        let label = strom_metrics::ConnectorLabel {
            connector: connector.to_string(),
        };
        Instruments {
            records: m.mirror_records.get_or_create(&label).clone(),
            bytes: m.mirror_bytes.get_or_create(&label).clone(),
            lag_records: m.mirror_lag_records.get_or_create(&label).clone(),
            lag_seconds: m.mirror_lag_seconds.get_or_create(&label).clone(),
        }
    }
}

pub struct MirrorTask {
    cfg: Arc<MirrorConfig>,
    /// The source clients' settings (for group handles) and this cluster's.
    source_config: ClientConfig,
    target_config: ClientConfig,
    consumer: Arc<BaseConsumer<SourceContext>>,
    highs: HighWatermarks,
    /// The timestamp of the last record mirrored from each source partition.
    last_timestamps: HashMap<(String, i32), i64>,
    instruments: Instruments,
    source_admin: AdminClient<Logs>,
    target_admin: Arc<AdminClient<Logs>>,
    source_id: String,
    target_id: String,
    /// Source topic -> (target topic, partitions assigned).
    mirrored: BTreeMap<String, (String, i32)>,
    /// The next offset of each source partition: where the last committed batch ended.
    positions: HashMap<(String, i32), i64>,
    next_refresh: Instant,
    next_config_sync: Instant,
    /// Which target offset each source offset became.
    syncs: OffsetSyncs,
    /// The source position of each record of the batches not yet committed, in order.
    in_flight: Vec<(String, i32, i64)>,
    /// The checkpoint last written per (group, target topic, partition).
    emitted: HashMap<(String, String, i32), (i64, i64)>,
    next_checkpoint: Instant,
    next_group_sync: Instant,
    next_heartbeat: Instant,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn kafka(context: &str) -> impl Fn(KafkaError) -> TaskError + '_ {
    move |e| TaskError::retriable(format!("{context}: {e}"))
}

/// A blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TaskError::retriable(format!("mirror task: {e}")))?
}

/// The source partition as the connector's offsets name it.
fn partition_key(alias: &str, topic: &str, partition: i32) -> Value {
    json!({"cluster": alias, "topic": topic, "partition": partition})
}

/// Connects to both clusters, learns their ids and starts from the stored offsets.
pub async fn start(ctx: TaskContext, cfg: MirrorConfig) -> Result<MirrorTask, TaskError> {
    let cfg = Arc::new(cfg);
    let mut source = ClientConfig::new();
    source
        .set("bootstrap.servers", &cfg.source_bootstrap)
        .set("client.id", format!("strom-mirror-{}", ctx.connector))
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &cfg.source_properties {
        source.set(k, v);
    }
    let context = SourceContext::default();
    let highs = Arc::clone(&context.highs);
    let consumer: BaseConsumer<SourceContext> = source
        .clone()
        .set("statistics.interval.ms", "5000")
        // Required by librdkafka, never joined: positions come from the connector's offsets.
        .set("group.id", format!("strom-mirror-{}", ctx.connector))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Aborted source transactions are not mirrored; committed ones arrive whole.
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create_with_context(context)
        .map_err(kafka("creating the source consumer"))?;
    let consumer = Arc::new(consumer);
    let source_admin: AdminClient<Logs> = source
        .clone()
        .create_with_context(Logs)
        .map_err(kafka("creating the source admin client"))?;
    let target_config = strom_connect::store::client_config(&ctx.target);
    let target_admin: AdminClient<Logs> = target_config
        .create_with_context(Logs)
        .map_err(kafka("creating the target admin client"))?;
    let target_admin = Arc::new(target_admin);
    let (c, t) = (Arc::clone(&consumer), Arc::clone(&target_admin));
    let (source_id, target_id) = blocking(move || {
        let source_id = c.client().fetch_cluster_id(CALL_TIMEOUT).ok_or_else(|| {
            TaskError::retriable("the source cluster does not answer (or names no cluster id)")
        })?;
        let target_id = t
            .inner()
            .fetch_cluster_id(CALL_TIMEOUT)
            .ok_or_else(|| TaskError::retriable("this cluster's Kafka listener does not answer"))?;
        Ok((source_id, target_id))
    })
    .await?;
    if source_id == target_id {
        return Err(TaskError::fatal(format!(
            "the source cluster is this cluster (cluster id {source_id}): a mirror copies from another cluster"
        )));
    }
    let positions = ctx
        .offsets
        .iter()
        .filter(|(k, _)| k["cluster"] == json!(cfg.source_alias))
        .filter_map(|(k, v)| {
            let topic = k["topic"].as_str()?.to_string();
            let partition = i32::try_from(k["partition"].as_i64()?).ok()?;
            Some(((topic, partition), v["offset"].as_i64()?))
        })
        .collect();
    tracing::info!(connector = %ctx.connector, source = %cfg.source_alias, %source_id, %target_id, "mirror starts");
    let mut syncs = OffsetSyncs::default();
    syncs.load(&ctx.state);
    let now = Instant::now();
    let mut task = MirrorTask {
        cfg,
        source_config: source,
        target_config,
        consumer,
        highs,
        last_timestamps: HashMap::new(),
        instruments: Instruments::of(&ctx.connector),
        source_admin,
        target_admin,
        source_id,
        target_id,
        mirrored: BTreeMap::new(),
        positions,
        next_refresh: now,
        next_config_sync: now,
        syncs,
        in_flight: Vec::new(),
        emitted: HashMap::new(),
        next_checkpoint: now,
        next_group_sync: now,
        next_heartbeat: now,
    };
    task.refresh(true).await?;
    Ok(task)
}

impl MirrorTask {
    /// Finds the source topics to mirror, creates or grows their target topics (copying
    /// configs when `configs`), and assigns the consumer any partition it does not read yet.
    async fn refresh(&mut self, configs: bool) -> Result<(), TaskError> {
        let now = Instant::now();
        self.next_refresh = now + self.cfg.refresh_topics_interval;
        if configs {
            self.next_config_sync = now + self.cfg.sync_topic_configs_interval;
        }
        let cfg = Arc::clone(&self.cfg);
        let (consumer, target) = (Arc::clone(&self.consumer), Arc::clone(&self.target_admin));
        let (source_topics, target_topics) = blocking(move || {
            let source = consumer
                .fetch_metadata(None, CALL_TIMEOUT)
                .map_err(kafka("reading the source cluster's topics"))?;
            let target = target
                .inner()
                .fetch_metadata(None, CALL_TIMEOUT)
                .map_err(kafka("reading this cluster's topics"))?;
            let counts = |md: &rdkafka::metadata::Metadata| -> BTreeMap<String, i32> {
                md.topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                    .collect()
            };
            Ok((counts(&source), counts(&target)))
        })
        .await?;
        let wanted: BTreeMap<String, (String, i32)> = source_topics
            .into_iter()
            .filter(|(t, n)| {
                *n > 0
                    && (cfg.topics.accepts(t) || cfg.policy.is_heartbeats(t))
                    && !cfg.policy.is_cycle(t, &cfg.target_alias)
            })
            .map(|(t, n)| (cfg.policy.target_topic(&cfg.source_alias, &t), t, n))
            .map(|(target, t, n)| (t, (target, n)))
            .collect();
        let new_topics: Vec<&String> = wanted
            .iter()
            .filter(|(_, (target, _))| !target_topics.contains_key(target))
            .map(|(t, _)| t)
            .collect();
        let copy_configs: Vec<&String> = if configs && cfg.sync_topic_configs {
            wanted.keys().collect()
        } else if cfg.sync_topic_configs {
            new_topics.clone()
        } else {
            Vec::new()
        };
        let source_configs = self.source_configs(&copy_configs).await?;
        let options = AdminOptions::new().request_timeout(Some(CALL_TIMEOUT));
        // Missing target topics, with the source's partition count and configs.
        let mut creations: Vec<NewTopic<'_>> = new_topics
            .iter()
            .map(|t| {
                let (target, n) = &wanted[*t];
                let mut topic = NewTopic::new(target, *n, TopicReplication::Fixed(-1));
                for (k, v) in source_configs.get(*t).into_iter().flatten() {
                    topic = topic.set(k, v);
                }
                topic
            })
            .collect();
        let checkpoints = self.checkpoints_topic();
        if self.cfg.emit_checkpoints && !target_topics.contains_key(&checkpoints) {
            creations.push(
                NewTopic::new(&checkpoints, 1, TopicReplication::Fixed(-1))
                    .set("cleanup.policy", "compact"),
            );
        }
        if self.cfg.emit_heartbeats && !target_topics.contains_key(HEARTBEATS) {
            creations.push(
                NewTopic::new(HEARTBEATS, 1, TopicReplication::Fixed(-1))
                    .set("cleanup.policy", "compact"),
            );
        }
        if !creations.is_empty() {
            let results = self
                .target_admin
                .create_topics(&creations, &options)
                .await
                .map_err(kafka("creating mirrored topics"))?;
            for r in results {
                match r {
                    Ok(name) => tracing::info!(topic = %name, "mirror created a topic"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => {
                        return Err(TaskError::retriable(format!("creating {name}: {code}")))
                    }
                }
            }
        }
        // Source topics that grew: the target grows with them.
        let growing: Vec<NewPartitions<'_>> = wanted
            .values()
            .filter_map(|(target, n)| {
                let have = *target_topics.get(target)?;
                (have < *n).then(|| NewPartitions::new(target, *n as usize))
            })
            .collect();
        if !growing.is_empty() {
            let results = self
                .target_admin
                .create_partitions(&growing, &options)
                .await
                .map_err(kafka("adding partitions to mirrored topics"))?;
            for r in results {
                if let Err((name, code)) = r {
                    return Err(TaskError::retriable(format!(
                        "adding partitions to {name}: {code}"
                    )));
                }
            }
        }
        // Configs of topics that already existed follow the source's.
        let existing: Vec<(&String, &Vec<(String, String)>)> = source_configs
            .iter()
            .filter(|(t, _)| !new_topics.contains(t))
            .collect();
        if !existing.is_empty() {
            let alters: Vec<AlterConfig<'_>> = existing
                .iter()
                .map(|(t, entries)| {
                    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&wanted[*t].0));
                    for (k, v) in entries.iter() {
                        alter = alter.set(k, v);
                    }
                    alter
                })
                .collect();
            let results = self
                .target_admin
                .alter_configs(&alters, &options)
                .await
                .map_err(kafka("copying topic configs"))?;
            for r in results {
                if let Err((resource, code)) = r {
                    tracing::warn!(?resource, "mirror cannot copy a topic's configs: {code}");
                }
            }
        }
        // New partitions are read from the stored position, or from the beginning.
        let mut assign = TopicPartitionList::new();
        for (topic, (_, n)) in &wanted {
            let from = self.mirrored.get(topic).map_or(0, |(_, have)| *have);
            for p in from..*n {
                let offset = match self.positions.get(&(topic.clone(), p)) {
                    Some(&o) => Offset::Offset(o),
                    None => Offset::Beginning,
                };
                assign
                    .add_partition_offset(topic, p, offset)
                    .map_err(kafka("assigning source partitions"))?;
            }
        }
        if assign.count() > 0 {
            tracing::info!(
                partitions = assign.count(),
                "mirror reads new source partitions"
            );
            self.consumer
                .incremental_assign(&assign)
                .map_err(kafka("assigning source partitions"))?;
        }
        for (topic, (target, n)) in wanted {
            let entry = self.mirrored.entry(topic).or_insert((target, 0));
            entry.1 = entry.1.max(n);
        }
        Ok(())
    }

    /// The configs set on each of `topics` at the source (not defaults, not read-only, not
    /// the cluster-local ones).
    async fn source_configs(
        &self,
        topics: &[&String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, TaskError> {
        if topics.is_empty() {
            return Ok(HashMap::new());
        }
        let specifiers: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .map(|t| ResourceSpecifier::Topic(t.as_str()))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(CALL_TIMEOUT));
        let results = self
            .source_admin
            .describe_configs(&specifiers, &options)
            .await
            .map_err(kafka("reading the source topics' configs"))?;
        let mut out = HashMap::new();
        for (topic, result) in topics.iter().zip(results) {
            let Ok(resource) = result else { continue };
            let entries = resource
                .entries
                .into_iter()
                .filter(|e| !e.is_default && !e.is_read_only && !e.is_sensitive)
                .filter(|e| e.source == rdkafka::admin::ConfigSource::DynamicTopic)
                .filter(|e| !LOCAL_CONFIGS.contains(&e.name.as_str()))
                .filter_map(|e| Some((e.name, e.value?)))
                .collect();
            out.insert(topic.to_string(), entries);
        }
        Ok(out)
    }

    /// The records polled, as one batch with the positions they reach.
    fn batch(&mut self, polled: Vec<OwnedMessage>) -> Batch {
        let mut batch = Batch::default();
        let mut reached: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in polled {
            reached.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            let Some((target, _)) = self.mirrored.get(m.topic()) else {
                continue;
            };
            let headers: Vec<(String, Option<Vec<u8>>)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            // It came from here: copying it back would be a loop. Its offset still counts.
            if policy::been_in(&headers, &self.target_id) {
                continue;
            }
            self.in_flight
                .push((m.topic().to_string(), m.partition(), m.offset()));
            if let Some(ts) = m.timestamp().to_millis() {
                self.last_timestamps
                    .insert((m.topic().to_string(), m.partition()), ts);
            }
            self.instruments.records.inc();
            self.instruments.bytes.inc_by(
                (m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len)) as u64,
            );
            batch.records.push(Record {
                topic: target.clone(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp_ms: m.timestamp().to_millis(),
                partition: Some(m.partition()),
                headers: policy::with_path(headers, &self.source_id),
            });
        }
        for ((topic, partition), next) in reached {
            batch.offsets.push((
                partition_key(&self.cfg.source_alias, &topic, partition),
                json!({ "offset": next }),
            ));
            self.positions.insert((topic, partition), next);
        }
        batch.state = self.syncs.take_changed();
        batch
    }

    /// MirrorMaker 2's heartbeat: this mirror is running and reaches both clusters.
    fn heartbeat(&mut self, now: Instant) -> Batch {
        self.next_heartbeat = now + self.cfg.emit_heartbeats_interval;
        let mut batch = Batch::default();
        batch.records.push(Record {
            topic: HEARTBEATS.to_string(),
            partition: Some(0),
            key: Some(heartbeat_key(
                &self.cfg.source_alias,
                &self.cfg.target_alias,
            )),
            value: Some(heartbeat_value(now_ms())),
            ..Record::default()
        });
        batch
    }

    /// MirrorMaker 2's name for the checkpoints of this source.
    fn checkpoints_topic(&self) -> String {
        format!("{}.checkpoints.internal", self.cfg.source_alias)
    }

    /// The source groups' offsets, translated: checkpoint records for those that moved, and
    /// (when due and enabled) commits for the same groups here.
    async fn checkpoint(&mut self) -> Result<Batch, TaskError> {
        let now = Instant::now();
        self.next_checkpoint = now + self.cfg.emit_checkpoints_interval;
        let partitions: Vec<(String, i32)> = self
            .mirrored
            .iter()
            .flat_map(|(t, (_, n))| (0..*n).map(move |p| (t.clone(), p)))
            .collect();
        let (source, lister, cfg) = (
            self.source_config.clone(),
            Arc::clone(&self.consumer),
            Arc::clone(&self.cfg),
        );
        let committed =
            blocking(move || groups::source_offsets(&source, &lister, &cfg.groups, &partitions))
                .await?;
        let topic = self.checkpoints_topic();
        let mut batch = Batch::default();
        let mut per_group: BTreeMap<String, Vec<(String, i32, i64)>> = BTreeMap::new();
        for c in committed {
            let (Some(down), Some((target, _))) = (
                self.syncs.translate(&c.topic, c.partition, c.offset),
                self.mirrored.get(&c.topic),
            ) else {
                continue;
            };
            per_group
                .entry(c.group.clone())
                .or_default()
                .push((target.clone(), c.partition, down));
            let key = (c.group.clone(), target.clone(), c.partition);
            if self.emitted.get(&key) == Some(&(c.offset, down)) {
                continue;
            }
            batch.records.push(Record {
                topic: topic.clone(),
                partition: Some(0),
                key: Some(checkpoint_key(&c.group, target, c.partition)),
                value: Some(checkpoint_value(c.offset, down, &c.metadata)),
                ..Record::default()
            });
            self.emitted.insert(key, (c.offset, down));
        }
        if self.cfg.sync_group_offsets && now >= self.next_group_sync {
            self.next_group_sync = now + self.cfg.sync_group_offsets_interval;
            let target = self.target_config.clone();
            blocking(move || {
                for (group, offsets) in per_group {
                    match groups::sync_group(&target, &group, &offsets) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(%group, offsets = n, "mirror synced a group's offsets")
                        }
                        Err(e) => {
                            tracing::warn!(%group, "mirror cannot sync the group's offsets: {e}")
                        }
                    }
                }
                Ok(())
            })
            .await?;
        }
        if !self.cfg.emit_checkpoints {
            batch.records.clear();
        }
        batch.state = self.syncs.take_changed();
        Ok(batch)
    }
}

/// Records from the consumer: waits up to [`FIRST_WAIT`] for one, then takes what arrives
/// within [`LINGER`] of it, up to the batch limits.
fn poll_some(
    consumer: &BaseConsumer<SourceContext>,
    max_records: usize,
) -> Result<Vec<OwnedMessage>, TaskError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    loop {
        let wait = match first {
            None => FIRST_WAIT.saturating_sub(started.elapsed()),
            Some(at) => LINGER.saturating_sub(at.elapsed()),
        };
        if wait.is_zero() {
            return Ok(out);
        }
        match consumer.poll(wait) {
            None => return Ok(out),
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                bytes += m.payload_len() + m.key().map_or(0, <[u8]>::len);
                out.push(m.detach());
                if out.len() >= max_records || bytes >= MAX_BATCH_BYTES {
                    return Ok(out);
                }
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown))) => {
                // What was read is still written; the next poll fails if the source is
                // still gone, and the runtime retries with backoff.
                if out.is_empty() {
                    return Err(TaskError::retriable("the source cluster is unreachable"));
                }
                return Ok(out);
            }
            Some(Err(e)) => {
                tracing::debug!("mirror: source consumer: {e}");
                if out.is_empty() && started.elapsed() >= FIRST_WAIT {
                    return Ok(out);
                }
            }
        }
    }
}

impl SourceTask for MirrorTask {
    fn progress(&mut self) -> Option<Value> {
        let highs = self.highs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now_ms = now_ms();
        let mut partitions = Vec::new();
        let (mut behind_total, mut seconds_max) = (0i64, 0i64);
        for (topic, (target, n)) in &self.mirrored {
            for p in 0..*n {
                let key = (topic.clone(), p);
                let Some(&high) = highs.get(&key) else {
                    continue;
                };
                let behind = (high - self.positions.get(&key).copied().unwrap_or(0)).max(0);
                // The newest record copied is at least as old as the oldest one waiting.
                let seconds = match (behind, self.last_timestamps.get(&key)) {
                    (0, _) => Some(0),
                    (_, Some(ts)) => Some(((now_ms - ts) / 1000).max(0)),
                    (_, None) => None,
                };
                behind_total += behind;
                seconds_max = seconds_max.max(seconds.unwrap_or(0));
                partitions.push(json!({
                    "topic": topic, "partition": p, "target": target,
                    "records_behind": behind, "seconds_behind": seconds,
                }));
            }
        }
        self.instruments.lag_records.set(behind_total);
        self.instruments.lag_seconds.set(seconds_max);
        Some(json!({
            "source": self.cfg.source_alias,
            "records_behind": behind_total,
            "seconds_behind": seconds_max,
            "partitions": partitions,
        }))
    }

    fn committed(&mut self, landed: Vec<(i32, i64)>) {
        // Reading the source from a mirrored record is reading the target from its copy, and
        // from after the last one, from after its copy; so a group that stopped anywhere in
        // mirrored data translates exactly (older pairs are thinned, never wrong).
        let mut last: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        for ((topic, partition, offset), (_, at)) in self.in_flight.drain(..).zip(landed) {
            self.syncs.record(&topic, partition, offset, at);
            last.insert((topic, partition), (offset, at));
        }
        for ((topic, partition), (offset, at)) in last {
            self.syncs.record(&topic, partition, offset + 1, at + 1);
        }
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Option<Batch>, TaskError>> {
        Box::pin(async move {
            let now = Instant::now();
            if now >= self.next_refresh || now >= self.next_config_sync {
                let configs = now >= self.next_config_sync;
                self.refresh(configs).await?;
            }
            if self.cfg.emit_heartbeats && now >= self.next_heartbeat {
                return Ok(Some(self.heartbeat(now)));
            }
            let checkpoints_due = (self.cfg.emit_checkpoints || self.cfg.sync_group_offsets)
                && now >= self.next_checkpoint;
            if checkpoints_due {
                let batch = self.checkpoint().await?;
                if !batch.is_empty() {
                    return Ok(Some(batch));
                }
            }
            let consumer = Arc::clone(&self.consumer);
            let max = self.cfg.max_batch_records;
            let polled = blocking(move || poll_some(&consumer, max)).await?;
            if polled.is_empty() {
                return Ok(None);
            }
            Ok(Some(self.batch(polled)))
        })
    }
}
