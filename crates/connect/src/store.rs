//! The runtime's state, kept where Kafka Connect keeps it: in compacted topics of the cluster
//! it runs in, so every node sees the same connectors and any node can take one over.
//!
//! - `__connect_configs` (one partition, so writes are totally ordered): `connector-NAME` ->
//!   `{"properties": {...}}`, `target-state-NAME` -> `{"state": "STARTED|PAUSED|STOPPED"}`,
//!   `restart-NAME` -> `{"requested_ms": N}`; a tombstone deletes.
//! - `__connect_status`: `status-connector-NAME` and `status-task-NAME-0` -> `{"state",
//!   "trace", "worker_id", "generation"}`, written by the node running the connector.
//! - `__connect_offsets`: `["NAME", {source partition}]` -> `{source offset}`, written by the
//!   task's transactional producer in the same transaction as its records.
//! - `__connect_state`: `["NAME", "KEY"]` -> a connector's durable state (a schema history),
//!   in the same transactions.
//!
//! Each node runs one reader of the configs and status topics from the beginning (`Store`);
//! a REST write waits until the reader has seen it, so a read after a write sees it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::plugin::Config;

pub const CONFIGS_TOPIC: &str = "__connect_configs";
pub const STATUS_TOPIC: &str = "__connect_status";
pub const OFFSETS_TOPIC: &str = "__connect_offsets";
pub const STATE_TOPIC: &str = "__connect_state";

/// Time a write to the runtime's topics may take before the REST call fails.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the cluster did not answer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("timed out waiting for the connector configs to be read back")]
    Timeout,
    #[error("malformed record in {topic}: {message}")]
    Malformed { topic: String, message: String },
    #[error("cannot create the connector topics: {0}")]
    CreateTopics(String),
    #[error("cannot start the connector reader: {0}")]
    Thread(std::io::Error),
}

/// What a connector is told to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Target {
    Started,
    Paused,
    Stopped,
}

/// A connector as the configs topic describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub config: Config,
    pub target: Target,
    /// Offset of its latest config record: a new one restarts the task.
    pub generation: i64,
    /// Offset of its latest restart request.
    pub restart: i64,
}

/// A status record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: i64,
    /// What a running task last said about its progress (a mirror's lag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct View {
    pub connectors: BTreeMap<String, Connector>,
    pub statuses: BTreeMap<String, Status>,
    /// Target states seen before their connector's config (or after it was deleted).
    targets: BTreeMap<String, Target>,
}

impl View {
    fn apply_config(&mut self, key: &str, value: Option<&[u8]>, offset: i64) -> Result<(), String> {
        let parsed: Option<Value> = match value {
            Some(v) => Some(serde_json::from_slice(v).map_err(|e| e.to_string())?),
            None => None,
        };
        if let Some(name) = key.strip_prefix("connector-") {
            match parsed {
                None => {
                    self.connectors.remove(name);
                    self.targets.remove(name);
                }
                Some(v) => {
                    let config: Config = serde_json::from_value(v["properties"].clone())
                        .map_err(|e| format!("connector {name}: {e}"))?;
                    let target = self.targets.get(name).copied().unwrap_or(Target::Started);
                    let restart = self.connectors.get(name).map_or(0, |c| c.restart);
                    self.connectors.insert(
                        name.to_string(),
                        Connector {
                            config,
                            target,
                            generation: offset,
                            restart,
                        },
                    );
                }
            }
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let target = match parsed {
                None => Target::Started,
                Some(v) => serde_json::from_value(v["state"].clone())
                    .map_err(|e| format!("target state of {name}: {e}"))?,
            };
            self.targets.insert(name.to_string(), target);
            if let Some(c) = self.connectors.get_mut(name) {
                c.target = target;
            }
        } else if let Some(name) = key.strip_prefix("restart-") {
            if let Some(c) = self.connectors.get_mut(name) {
                c.restart = offset;
            }
        }
        Ok(())
    }
}

/// How the runtime's clients reach the node's Kafka listener: its address and the
/// librdkafka properties it needs (security protocol, SASL login, CA).
#[derive(Clone, Debug, Default)]
pub struct KafkaClient {
    pub bootstrap: String,
    pub properties: Vec<(String, String)>,
}

/// Kafka client settings shared by the runtime's clients.
pub fn client_config(kafka: &KafkaClient) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap)
        .set("socket.keepalive.enable", "true")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
    c
}

/// The node's view of the configs and status topics, and the writer to them.
pub struct Store {
    kafka: KafkaClient,
    view: Arc<RwLock<View>>,
    /// The next configs-topic offset the reader will apply.
    read_position: watch::Receiver<i64>,
    producer: FutureProducer,
}

impl Store {
    /// Creates the topics if needed (`create`) and starts the reader thread. Returns once the reader has
    /// caught up with what the configs topic held at start.
    pub async fn open(kafka: &KafkaClient, create: bool) -> Result<Arc<Store>, StoreError> {
        if create {
            create_topics(kafka).await?;
        }
        let producer: FutureProducer = client_config(kafka)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        let view = Arc::new(RwLock::new(View::default()));
        let (tx, rx) = watch::channel(0);
        let consumer: BaseConsumer = client_config(kafka)
            .set("group.id", "strom-connect-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(CONFIGS_TOPIC, 0, Offset::Beginning)?;
        assignment.add_partition_offset(STATUS_TOPIC, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let end = tokio::task::block_in_place(|| end_offset(&consumer, CONFIGS_TOPIC))?;
        let reader_view = Arc::clone(&view);
        std::thread::Builder::new()
            .name("connect-reader".into())
            .spawn(move || read_loop(consumer, reader_view, tx))
            .map_err(StoreError::Thread)?;
        let store = Arc::new(Store {
            kafka: kafka.clone(),
            view,
            read_position: rx,
            producer,
        });
        store.wait_read(end).await?;
        Ok(store)
    }

    pub fn kafka(&self) -> &KafkaClient {
        &self.kafka
    }

    pub fn view<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        let guard = self.view.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// A receiver that changes whenever the reader applied config records.
    pub fn changes(&self) -> watch::Receiver<i64> {
        self.read_position.clone()
    }

    async fn wait_read(&self, offset: i64) -> Result<(), StoreError> {
        let mut rx = self.read_position.clone();
        let reached = tokio::time::timeout(WRITE_TIMEOUT, async {
            rx.wait_for(|p| *p >= offset).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(StoreError::Timeout),
        }
    }

    async fn write(&self, topic: &str, key: &str, value: Option<Value>) -> Result<i64, StoreError> {
        let payload = value.map(|v| v.to_string());
        let mut record = FutureRecord::<str, str>::to(topic).key(key);
        if let Some(p) = payload.as_deref() {
            record = record.payload(p);
        }
        match self.producer.send(record, WRITE_TIMEOUT).await {
            Ok(delivery) => Ok(delivery.offset),
            Err((e, _)) => Err(e.into()),
        }
    }

    /// Writes a config record and waits until this node's view includes it.
    async fn write_config(&self, key: &str, value: Option<Value>) -> Result<(), StoreError> {
        let offset = self.write(CONFIGS_TOPIC, key, value).await?;
        self.wait_read(offset + 1).await
    }

    pub async fn put_connector(&self, name: &str, config: &Config) -> Result<(), StoreError> {
        self.write_config(
            &format!("connector-{name}"),
            Some(json!({ "properties": config })),
        )
        .await
    }

    pub async fn set_target(&self, name: &str, target: Target) -> Result<(), StoreError> {
        self.write_config(
            &format!("target-state-{name}"),
            Some(json!({ "state": target })),
        )
        .await
    }

    pub async fn request_restart(&self, name: &str) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.write_config(
            &format!("restart-{name}"),
            Some(json!({ "requested_ms": now })),
        )
        .await
    }

    pub async fn delete_connector(&self, name: &str) -> Result<(), StoreError> {
        self.write_config(&format!("target-state-{name}"), None)
            .await?;
        self.write_config(&format!("restart-{name}"), None).await?;
        self.write_config(&format!("connector-{name}"), None).await
    }

    /// Writes a status record (`None` deletes it).
    pub async fn put_status(&self, key: &str, status: Option<&Status>) -> Result<(), StoreError> {
        let value = status.map(|s| serde_json::to_value(s).unwrap_or(Value::Null));
        self.write(STATUS_TOPIC, key, value).await.map(|_| ())
    }
}

/// Whether the runtime's topics exist (a metadata request that never creates a topic).
pub fn topics_exist(kafka: &KafkaClient) -> Result<bool, StoreError> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("allow.auto.create.topics", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(None, WRITE_TIMEOUT)?;
    let names: Vec<&str> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .collect();
    Ok([CONFIGS_TOPIC, STATUS_TOPIC, OFFSETS_TOPIC, STATE_TOPIC]
        .iter()
        .all(|t| names.contains(t)))
}

async fn create_topics(kafka: &KafkaClient) -> Result<(), StoreError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let compact = [("cleanup.policy", "compact"), ("retention.ms", "-1")];
    let topics: Vec<NewTopic> = [CONFIGS_TOPIC, STATUS_TOPIC, OFFSETS_TOPIC, STATE_TOPIC]
        .iter()
        .map(|t| {
            let mut nt = NewTopic::new(t, 1, TopicReplication::Fixed(-1));
            for (k, v) in compact {
                nt = nt.set(k, v);
            }
            nt
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(WRITE_TIMEOUT));
    // A cluster that is still electing its controller refuses for a while; keep asking.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let outcome = match admin.create_topics(topics.iter(), &opts).await {
            Ok(results) => results.into_iter().find_map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                Err((topic, code)) => Some(format!("{topic}: {code}")),
            }),
            Err(e) => Some(e.to_string()),
        };
        match outcome {
            None => return Ok(()),
            Some(e) if Instant::now() > deadline => return Err(StoreError::CreateTopics(e)),
            Some(e) => {
                tracing::debug!("connect topics not created yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn read_loop(consumer: BaseConsumer, view: Arc<RwLock<View>>, position: watch::Sender<i64>) {
    loop {
        if position.is_closed() {
            return;
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            // Control records advance the position without a message.
            if let Ok(p) = consumer.position() {
                if let Some(Offset::Offset(o)) =
                    p.find_partition(CONFIGS_TOPIC, 0).map(|e| e.offset())
                {
                    position.send_if_modified(|cur| {
                        let changed = o > *cur;
                        *cur = (*cur).max(o);
                        changed
                    });
                }
            }
            continue;
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("connect reader: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
        let mut guard = view.write().unwrap_or_else(|e| e.into_inner());
        if msg.topic() == CONFIGS_TOPIC {
            if let Err(e) = guard.apply_config(&key, msg.payload(), msg.offset()) {
                tracing::warn!(
                    offset = msg.offset(),
                    "connect: skipping malformed config record {key}: {e}"
                );
            }
            drop(guard);
            position.send_replace(msg.offset() + 1);
        } else {
            match msg.payload() {
                None => {
                    guard.statuses.remove(key.as_ref());
                }
                Some(p) => match serde_json::from_slice::<Status>(p) {
                    Ok(s) => {
                        guard.statuses.insert(key.into_owned(), s);
                    }
                    Err(e) => {
                        tracing::warn!("connect: skipping malformed status record {key}: {e}")
                    }
                },
            }
        }
    }
}

/// The end of a topic's only partition; retried while the partition has no leader yet (a
/// topic just created in a cluster).
fn end_offset(consumer: &BaseConsumer, topic: &str) -> Result<i64, StoreError> {
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, 0, WRITE_TIMEOUT) {
            Ok((_, end)) => return Ok(end),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, "no end offset yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a connector committed last: its offsets and its durable state, each as (the record's
/// key, `["NAME", partition or state key]`, its value).
#[derive(Debug, Default)]
pub struct Committed {
    pub offsets: Vec<(Value, Value)>,
    pub state: Vec<(Value, Value)>,
}

impl Store {
    /// Reads `name`'s offsets and state to the end of their topics. Used when a task starts
    /// (after fencing its predecessor, so no transaction of its connector is still open) and
    /// by the offsets API.
    pub async fn committed(&self, name: &str) -> Result<Committed, StoreError> {
        let kafka = self.kafka.clone();
        let owner = name.to_string();
        let read = tokio::task::spawn_blocking(move || {
            let mine = |k: &Value| k.get(0).and_then(Value::as_str) == Some(owner.as_str());
            Ok::<_, StoreError>(Committed {
                offsets: read_latest(&kafka, OFFSETS_TOPIC, mine)?
                    .into_values()
                    .collect(),
                state: read_latest(&kafka, STATE_TOPIC, mine)?
                    .into_values()
                    .collect(),
            })
        });
        read.await
            .map_err(|e| StoreError::Thread(std::io::Error::other(e)))?
    }
}

/// Reads a compacted topic from the beginning to its end, read_committed, keeping the latest
/// value of each key that `keep` accepts.
fn read_latest(
    kafka: &KafkaClient,
    topic: &str,
    keep: impl Fn(&Value) -> bool,
) -> Result<BTreeMap<String, (Value, Value)>, StoreError> {
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", "strom-connect-offsets-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let end = end_offset(&consumer, topic)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let mut latest = BTreeMap::new();
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        let pos = match consumer
            .position()?
            .find_partition(topic, 0)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        };
        if pos >= end {
            return Ok(latest);
        }
        if Instant::now() > deadline {
            return Err(StoreError::Timeout);
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        let Some(raw_key) = msg.key() else { continue };
        let Ok(key) = serde_json::from_slice::<Value>(raw_key) else {
            tracing::warn!(
                topic,
                offset = msg.offset(),
                "connect: skipping a record whose key is not JSON"
            );
            continue;
        };
        if !keep(&key) {
            continue;
        }
        let id = key.to_string();
        match msg.payload() {
            None => {
                latest.remove(&id);
            }
            Some(p) => match serde_json::from_slice::<Value>(p) {
                Ok(v) => {
                    latest.insert(id, (key, v));
                }
                Err(e) => {
                    return Err(StoreError::Malformed {
                        topic: topic.to_string(),
                        message: format!("offset {}: {e}", msg.offset()),
                    })
                }
            },
        }
    }
}
