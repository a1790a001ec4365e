//! librdkafka plumbing shared by the CLI commands and the benchmark: client configuration,
//! a context that keeps librdkafka quiet, the "is the broker there at all" probe, topic
//! metadata lookups and readable Kafka error messages.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::admin::AdminClient;
use rdkafka::client::Client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{
    DeliveryResult, FutureProducer, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// How long the initial metadata probe may take before the broker counts as unreachable.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Timeout for individual metadata and admin requests once the broker is known to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client context that drops librdkafka's log lines and global error callbacks.
///
/// librdkafka reports every reconnect attempt on its own; the commands here report failures
/// through their results instead, so the raw log would only be noise on stderr.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}

    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl ConsumerContext for QuietContext {}

/// A producer whose context is [`QuietContext`].
pub type Producer = FutureProducer<QuietContext>;
/// A consumer whose context is [`QuietContext`].
pub type Consumer = BaseConsumer<QuietContext>;
/// An admin client whose context is [`QuietContext`].
pub type Admin = AdminClient<QuietContext>;

/// Producer acknowledgement level (`acks`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: the broker sends no response.
    #[value(name = "0")]
    Zero,
    /// The leader has appended the records.
    #[value(name = "1")]
    One,
    /// All in-sync replicas have the records (Strom: durable on disk before the ack).
    #[value(name = "all")]
    All,
}

impl Acks {
    /// The value of librdkafka's `acks` property (also used in reports).
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

/// Producer batch compression (`compression.type`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type` property (also used in reports).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Configuration common to every client: bootstrap address, silenced logging.
pub fn base_config(broker: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker)
        .set("client.id", "strom-cli")
        // librdkafka leaves Nagle on by default (the Java client turns it off); with it, a small
        // request can sit in the client's socket waiting for the previous one's ACK.
        .set("socket.nagle.disable", "true")
        // Disconnect and reconnect reports are log lines too; they are dropped anyway.
        .set("log.connection.close", "false")
        .set_log_level(RDKafkaLogLevel::Emerg);
    super::security::get().apply(&mut config);
    config
}

/// Configuration for an admin client. Metadata lookups must never create topics as a side
/// effect (librdkafka admin clients are producers, whose default would allow it).
pub fn admin_config(broker: &str) -> ClientConfig {
    let mut config = base_config(broker);
    config.set("allow.auto.create.topics", "false");
    config
}

/// Configuration for a consumer that is assigned partitions by hand: no group, no commits.
pub fn consumer_config(broker: &str) -> ClientConfig {
    let mut config = base_config(broker);
    config
        // librdkafka's assign() needs a group handle even though this consumer never joins or
        // commits to the group.
        .set("group.id", "strom-cli")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Report reaching the end of a partition so bounded reads can stop there.
        .set("enable.partition.eof", "true")
        // Only consulted when an explicit start offset is out of range.
        .set("auto.offset.reset", "earliest");
    config
}

/// Probes the broker with a metadata request, turning failure into the one-line
/// "cannot reach broker at ADDR: REASON" error every command reports. Returns the cluster
/// metadata (all topics) on success.
pub fn ensure_reachable(broker: &str) -> anyhow::Result<Metadata> {
    // A throwaway client of its own: its polling thread delivers librdkafka's error events
    // (e.g. "Connect to ipv4#127.0.0.1:9092 failed: Connection refused") to the context, where
    // the reason is kept for the message.
    let mut config = base_config(broker);
    // A broker that hangs up on us is a reason worth reporting here; such failures arrive
    // as warnings in the log (which the probe's context keeps instead of printing).
    config
        .set("log.connection.close", "true")
        .set_log_level(RDKafkaLogLevel::Warning);
    let probe: ThreadedProducer<ProbeContext> = config
        .create_with_context(ProbeContext::default())
        .context("creating client")?;
    // Short attempts, so that a refused connection (recorded by the context meanwhile) can end
    // the wait early instead of after the whole REACH_TIMEOUT.
    let started = Instant::now();
    loop {
        let attempt = tokio::task::block_in_place(|| {
            probe
                .client()
                .fetch_metadata(None, Duration::from_millis(250))
        });
        let err = match attempt {
            Ok(metadata) => return Ok(metadata),
            Err(err) => err,
        };
        // Only a specific failure ends the wait early, and not at once (with several bootstrap
        // addresses another one may still answer). "All brokers down" never does: it also
        // happens briefly while librdkafka swaps the bootstrap connection for the broker's
        // advertised one.
        let context = probe.client().context();
        let elapsed = started.elapsed();
        if (context.has_reason() && elapsed >= Duration::from_secs(1)) || elapsed >= REACH_TIMEOUT {
            let reason = context
                .last_error()
                .unwrap_or_else(|| match err.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::OperationTimedOut) => {
                        format!("no answer within {}s", REACH_TIMEOUT.as_secs())
                    }
                    _ => describe_error(&err),
                });
            bail!("cannot reach broker at {broker}: {reason}");
        }
    }
}

/// Context of the reachability probe: prints nothing, but keeps why connecting failed.
#[derive(Default)]
struct ProbeContext {
    state: Mutex<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    /// The latest specific failure (connect refused, name not resolved, disconnected, ...).
    reason: Option<String>,
    /// librdkafka's "N/N brokers are down", which only summarises failures.
    summary: Option<String>,
}

impl ProbeContext {
    fn has_reason(&self) -> bool {
        self.state.lock().is_ok_and(|state| state.reason.is_some())
    }

    fn last_error(&self) -> Option<String> {
        let state = self.state.lock().ok()?;
        state.reason.clone().or_else(|| state.summary.clone())
    }

    fn record(&self, summary: bool, reason: &str) {
        let reason = strip_origin(reason).to_string();
        if let Ok(mut state) = self.state.lock() {
            if summary {
                state.summary = Some(reason);
            } else {
                state.reason = Some(reason);
            }
        }
    }
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // Some failures (e.g. the broker closing the connection) only show up as a log line.
        if facility == "FAIL" && (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.record(false, message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.record(
            error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown),
            reason,
        );
    }
}

/// Drops librdkafka's "[thrd:...]: " and "HOST:PORT/NAME: " prefixes; the error message
/// names the address already.
fn strip_origin(reason: &str) -> &str {
    let reason = match reason
        .strip_prefix("[thrd:")
        .and_then(|rest| rest.split_once("]: "))
    {
        Some((_, rest)) => rest,
        None => reason,
    };
    match reason.split_once(": ") {
        Some((origin, rest)) if origin.contains('/') && !origin.contains(' ') => rest,
        _ => reason,
    }
}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _result: &DeliveryResult<'_>, _opaque: ()) {}
}

/// Partition ids of `topic`, sorted.
///
/// With a non-zero `wait`, transient states of a topic that is still being created (leader not
/// elected yet, partitions without a leader and, if `retry_unknown`, not yet known to the broker
/// answering) are retried until `wait` has passed; with `Duration::ZERO` the first answer is final.
pub fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    wait: Duration,
    retry_unknown: bool,
) -> anyhow::Result<Vec<i32>> {
    let started = Instant::now();
    loop {
        let metadata =
            tokio::task::block_in_place(|| client.fetch_metadata(Some(topic), REQUEST_TIMEOUT))
                .map_err(|err| anyhow!("metadata for topic {topic}: {}", describe_error(&err)))?;
        let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic {topic}: missing from the broker's metadata response");
        };
        let transient = match entry.error() {
            Some(code) => {
                let code: RDKafkaErrorCode = code.into();
                let retryable = code == RDKafkaErrorCode::LeaderNotAvailable
                    || (retry_unknown && code == RDKafkaErrorCode::UnknownTopicOrPartition);
                if !retryable || started.elapsed() >= wait {
                    bail!("topic {topic}: {}", describe_code(code));
                }
                true
            }
            None => {
                entry.partitions().is_empty() || entry.partitions().iter().any(|p| p.leader() < 0)
            }
        };
        if !transient || started.elapsed() >= wait {
            let mut ids: Vec<i32> = entry.partitions().iter().map(|p| p.id()).collect();
            if ids.is_empty() {
                bail!("topic {topic} has no partitions");
            }
            ids.sort_unstable();
            return Ok(ids);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Low and high watermark of one partition.
#[derive(Clone, Copy, Debug)]
pub struct Watermarks {
    /// Partition id.
    pub partition: i32,
    /// First offset still stored.
    pub low: i64,
    /// Offset the next record will get (one past the last readable record).
    pub high: i64,
}

/// Queries the watermarks of `partitions` of `topic` (blocking, one request per partition).
pub fn watermarks(
    consumer: &Consumer,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<Watermarks>> {
    partitions
        .iter()
        .map(|&partition| {
            let (low, high) = tokio::task::block_in_place(|| {
                consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            })
            .map_err(|err| anyhow!("offsets of {topic}/{partition}: {}", describe_error(&err)))?;
            Ok(Watermarks {
                partition,
                low,
                high,
            })
        })
        .collect()
}

/// Assigns `topic`'s partitions to `consumer`, each starting at the given offset.
pub fn assign(consumer: &Consumer, topic: &str, starts: &[(i32, Offset)]) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::with_capacity(starts.len());
    for &(partition, offset) in starts {
        list.add_partition_offset(topic, partition, offset)
            .map_err(|err| anyhow!("assigning {topic}/{partition}: {}", describe_error(&err)))?;
    }
    consumer
        .assign(&list)
        .map_err(|err| anyhow!("assigning partitions of {topic}: {}", describe_error(&err)))
}

/// Whether a consumer error means the read cannot succeed (as opposed to librdkafka reporting
/// a connection problem it keeps retrying on its own).
pub fn is_fatal_consume_error(err: &KafkaError) -> bool {
    match err {
        KafkaError::MessageConsumption(code) => matches!(
            code,
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::OffsetOutOfRange
        ),
        KafkaError::PartitionEOF(_) => false,
        _ => true,
    }
}

/// Renders a Kafka error code as `NAME (description)`, e.g.
/// `TOPIC_ALREADY_EXISTS (Broker: Topic already exists)`, using the protocol's spelling.
pub fn describe_code(code: RDKafkaErrorCode) -> String {
    // rdkafka prints codes as `CamelName (description)`; swap in the protocol-style name.
    let camel = format!("{code:?}");
    let display = code.to_string();
    let rest = display.strip_prefix(camel.as_str()).unwrap_or(&display);
    format!("{}{rest}", screaming_snake(&camel))
}

/// Renders a client error, preferring the Kafka error code when there is one.
pub fn describe_error(err: &KafkaError) -> String {
    match err.rdkafka_error_code() {
        Some(code) => describe_code(code),
        None => err.to_string(),
    }
}

/// Renders an error code of a response decoded with kafka-protocol in the protocol's spelling,
/// e.g. `TRANSACTIONAL_ID_NOT_FOUND (error code 105)`.
pub fn describe_wire_code(code: i16) -> String {
    format!("{} (error code {code})", wire_code_name(code))
}

/// The protocol's name of an error code, e.g. `TRANSACTIONAL_ID_NOT_FOUND`.
pub fn wire_code_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(kafka_protocol::ResponseError::Unknown(_)) => "UNKNOWN".to_string(),
        Some(err) => screaming_snake(&format!("{err:?}")),
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    let mut prev_lower = false;
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_librdkafka_origin() {
        assert_eq!(
            strip_origin("[thrd:127.0.0.1:9092/0]: 127.0.0.1:9092/0: Disconnected (after 0ms)"),
            "Disconnected (after 0ms)"
        );
        assert_eq!(
            strip_origin("127.0.0.1:1/bootstrap: Connect failed: refused"),
            "Connect failed: refused"
        );
        assert_eq!(strip_origin("1/1 brokers are down"), "1/1 brokers are down");
    }

    #[test]
    fn codes_use_protocol_names() {
        assert_eq!(
            screaming_snake("UnknownTopicOrPartition"),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        let text = describe_code(RDKafkaErrorCode::TopicAlreadyExists);
        assert!(text.starts_with("TOPIC_ALREADY_EXISTS ("), "{text}");
        assert_eq!(
            describe_wire_code(105),
            "TRANSACTIONAL_ID_NOT_FOUND (error code 105)"
        );
        assert_eq!(describe_wire_code(-1234), "UNKNOWN (error code -1234)");
    }
}
