//! What a connector plugin implements: its class names, the validation of a config, and a
//! source task that turns an external system's changes into batches of records.
//!
//! A batch is the unit of atomicity: the runtime writes its records, its source offset and its
//! durable state changes in one Kafka transaction, so a batch is either wholly visible to
//! read_committed consumers together with the offset after it, or not at all. A source that
//! must keep an external transaction whole (a database transaction) puts it in one batch.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::Value;

/// A connector's configuration: Kafka Connect's string-to-string properties.
pub type Config = BTreeMap<String, String>;

/// One record to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: Option<i64>,
    /// The partition to write to; `None` lets the producer's partitioner choose by key.
    pub partition: Option<i32>,
    /// Kafka record headers, in order; a `None` value is a null header.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What a task hands the runtime to write atomically.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Each source partition these records came from with the offset reached after them
    /// (Kafka Connect's source offsets; stored in the offsets topic in the same transaction).
    pub offsets: Vec<(Value, Value)>,
    /// Changes to the connector's durable state (e.g. a schema history), by key; `None`
    /// deletes. Stored in the state topic in the same transaction.
    pub state: Vec<(String, Option<Value>)>,
    /// The transaction goes on in the next batch (a snapshot too large for one batch is
    /// still one transaction: all of it is visible, or none).
    pub more: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.offsets.is_empty() && self.state.is_empty()
    }
}

/// Why a task stopped or could not start.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    /// A retriable error (the source went away) is retried with backoff; any other fails the
    /// task until it is restarted or reconfigured.
    pub retriable: bool,
}

impl TaskError {
    pub fn fatal(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retriable: false,
        }
    }

    pub fn retriable(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retriable: true,
        }
    }

    /// A config the plugin refuses: every problem, in one message.
    pub fn invalid_config(issues: &[ConfigIssue]) -> TaskError {
        TaskError::fatal(
            issues
                .iter()
                .map(|i| format!("{}: {}", i.name, i.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// What a task starts from: its connector's name and config, the offsets and durable state
/// it committed last (read after its predecessors were fenced, so nothing newer exists).
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    pub connector: String,
    pub config: Config,
    /// Source partition -> offset.
    pub offsets: Vec<(Value, Value)>,
    pub state: BTreeMap<String, Value>,
    /// The connector ran on this node before and is being restarted after a retriable
    /// failure: a source that is unreachable now is retried, not failed.
    pub restarting: bool,
    /// How to reach the cluster the records go to (this node's), for a source that must
    /// prepare it (a mirror creates the topics it writes to).
    pub target: crate::store::KafkaClient,
}

/// A running source task.
pub trait SourceTask: Send {
    /// The next batch, waiting for one; `Ok(None)` when nothing came for a while (the runtime
    /// checks whether it should stop or pause, then polls again).
    fn poll(&mut self) -> BoxFuture<'_, Result<Option<Batch>, TaskError>>;

    /// The transaction holding the batches polled since the last call committed; `landed` is
    /// the (partition, offset) of each of their records, in order. A mirror learns from it
    /// which target offset each source offset became.
    fn committed(&mut self, landed: Vec<(i32, i64)>) {
        let _ = landed;
    }

    /// How far along the task is (a mirror: how far behind its source), shown in the task's
    /// status as `progress`; asked every few seconds between polls.
    fn progress(&mut self) -> Option<Value> {
        None
    }
}

/// One property a plugin knows, as `config/validate` describes it.
#[derive(Debug, Clone)]
pub struct ConfigDef {
    pub name: &'static str,
    pub required: bool,
    pub default: Option<&'static str>,
    pub documentation: &'static str,
}

impl ConfigDef {
    pub const fn new(
        name: &'static str,
        required: bool,
        default: Option<&'static str>,
        documentation: &'static str,
    ) -> ConfigDef {
        ConfigDef {
            name,
            required,
            default,
            documentation,
        }
    }
}

/// A problem with one property of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub name: String,
    pub message: String,
}

/// A source connector plugin.
pub trait Plugin: Send + Sync {
    /// The class name `GET /connector-plugins` lists.
    fn class(&self) -> &'static str;
    /// Other names `connector.class` may use for it.
    fn aliases(&self) -> &'static [&'static str];
    fn version(&self) -> &'static str;
    fn config_defs(&self) -> Vec<ConfigDef>;
    /// Problems knowable without reaching the source (missing or malformed properties).
    fn validate(&self, config: &Config) -> Vec<ConfigIssue>;
    /// Starts a task: connects, checks the source's settings, loads its state. An error here
    /// is the connector's FAILED status.
    fn start(&self, ctx: TaskContext)
        -> BoxFuture<'static, Result<Box<dyn SourceTask>, TaskError>>;
}

/// Checks the properties every connector needs and the plugin's own required ones.
pub fn missing_required(defs: &[ConfigDef], config: &Config) -> Vec<ConfigIssue> {
    defs.iter()
        .filter(|d| d.required && config.get(d.name).is_none_or(|v| v.trim().is_empty()))
        .map(|d| ConfigIssue {
            name: d.name.to_string(),
            message: format!(
                "Missing required configuration \"{}\" which has no default value.",
                d.name
            ),
        })
        .collect()
}
