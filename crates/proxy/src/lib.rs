//! HTTP produce and consume in the shape of Confluent's REST Proxy v2 API, which Redpanda's
//! HTTP Proxy implements too: a shell script or a browser app reads and writes topics with
//! `curl`/`fetch` instead of a Kafka client.
//!
//! The proxy is a Kafka client of the cluster, as Confluent's is: records go through a
//! librdkafka producer to the node's own Kafka listener (so partitioning, idempotence, acks=all
//! and cluster routing are exactly a Kafka client's), and every consumer instance is a
//! librdkafka consumer in its group (so instances of one group share partitions with each other
//! and with any Kafka consumer of the group). Nothing here touches the log directly.
//!
//! - `topics`: `GET /topics`, `/topics/{name}`, `/topics/{name}/partitions[/{p}]`.
//! - `produce`: `POST /topics/{name}` and `/topics/{name}/partitions/{p}` with the JSON or
//!   binary (base64) embedded format, and v3's `POST /v3/clusters/{id}/topics/{name}/records`.
//! - `browse`: the console's record browser, and v3's topic create and delete.
//! - `consume`: consumer instances (`POST /consumers/{group}`), their subscription,
//!   assignments, positions, records and offsets; idle instances are closed after
//!   `consumer_instance_timeout`.
//!
//! Errors are the proxy's JSON (`error::ProxyError`).

pub mod browse;
pub mod consume;
pub mod error;
pub mod produce;
pub mod topics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use rdkafka::admin::AdminClient;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, ClientContext};
use strom_auth::Caller;

pub use error::ProxyError;

/// The content type of the proxy's own JSON (no embedded format).
pub const V2_JSON: &str = "application/vnd.kafka.v2+json";
const JSON_FORMAT: &str = "application/vnd.kafka.json.v2+json";
const BINARY_FORMAT: &str = "application/vnd.kafka.binary.v2+json";

/// Keys and values of the binary embedded format, and headers, are standard base64.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Time a Kafka call (metadata, commit, delivery) may take before the proxy answers 5xx.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// How keys and values are carried in JSON: `json` embeds them as JSON values, `binary` as
/// base64 strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Binary,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_FORMAT,
            Format::Binary => BINARY_FORMAT,
        }
    }

    /// The format a content type (or Accept header) names, if any.
    fn named_in(value: &str) -> Option<Format> {
        if value.contains("vnd.kafka.json.v2+json") {
            Some(Format::Json)
        } else if value.contains("vnd.kafka.binary.v2+json") {
            Some(Format::Binary)
        } else {
            None
        }
    }

    fn of_request(headers: &HeaderMap) -> Result<Format, ProxyError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Format::named_in(content_type).ok_or_else(|| {
            ProxyError::new(
                415,
                format!("HTTP 415 Unsupported Media Type: use {JSON_FORMAT} or {BINARY_FORMAT}, not '{content_type}'"),
            )
        })
    }
}

/// Settings of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The Kafka listener the proxy's clients connect to (the node's own).
    pub bootstrap: String,
    /// librdkafka properties the proxy's clients need to reach the listener (security).
    pub properties: Vec<(String, String)>,
    /// An idle consumer instance is closed after this (Confluent's
    /// `consumer.instance.timeout.ms`, 5 minutes by default).
    pub consumer_instance_timeout: Duration,
    /// Consumer instances open at once; more are refused with 429.
    pub max_consumer_instances: usize,
}

impl ProxyConfig {
    pub fn new(bootstrap: String) -> ProxyConfig {
        ProxyConfig {
            bootstrap,
            properties: Vec::new(),
            consumer_instance_timeout: Duration::from_secs(300),
            max_consumer_instances: 1000,
        }
    }
}

pub struct Proxy {
    config: ProxyConfig,
    /// The clients of requests that name no caller (the HTTP listener does not authenticate).
    shared: Arc<Clients>,
    /// Each authenticated caller's own clients, logged in as them (Redpanda's HTTP Proxy keeps
    /// such a cache too): the Kafka listener's ACLs decide what they may do, so the proxy is
    /// no way around them. Keyed by (user, password) so a changed password gets new clients.
    per_caller: Mutex<HashMap<(String, String), Arc<Clients>>>,
    consumers: consume::Instances,
    /// Partition counts by topic, with when they were learned (see `produce`).
    partition_counts: Mutex<HashMap<String, (usize, Instant)>>,
}

/// Callers whose clients are kept at most; the one idle longest makes room for a new one.
const MAX_CALLERS: usize = 100;

/// One identity's librdkafka clients, each created on first use, so a node whose proxy is
/// never used runs no librdkafka threads.
pub(crate) struct Clients {
    config: ClientConfig,
    producer: OnceLock<Result<FutureProducer<LogContext>, KafkaError>>,
    admin: OnceLock<Result<AdminClient<LogContext>, KafkaError>>,
    /// Metadata lookups go through a consumer handle: unlike a producer's, its requests never
    /// create the topic they ask about.
    metadata: OnceLock<Result<BaseConsumer<LogContext>, KafkaError>>,
    last_used: Mutex<Instant>,
}

impl Proxy {
    pub fn new(config: ProxyConfig) -> Arc<Proxy> {
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &config.bootstrap)
            .set("client.id", "strom-http-proxy")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in &config.properties {
            base.set(k, v);
        }
        Arc::new(Proxy {
            config,
            shared: Arc::new(Clients::new(base)),
            per_caller: Mutex::new(HashMap::new()),
            consumers: consume::Instances::default(),
            partition_counts: Mutex::new(HashMap::new()),
        })
    }

    fn partition_counts(&self) -> MutexGuard<'_, HashMap<String, (usize, Instant)>> {
        self.partition_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn per_caller(&self) -> MutexGuard<'_, HashMap<(String, String), Arc<Clients>>> {
        self.per_caller.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clients acting for `caller`: the shared ones without one, else the caller's own.
    fn clients(&self, caller: Option<&Caller>) -> Result<Arc<Clients>, ProxyError> {
        let Some(caller) = caller else {
            return Ok(Arc::clone(&self.shared));
        };
        let mechanism = match self.shared.config.get("sasl.mechanism") {
            None => {
                return Err(ProxyError::new(
                    503,
                    "the HTTP proxy acts as the HTTP user through a SASL listener, and this node has none (add a SASL_SSL or SASL_PLAINTEXT listener)",
                ))
            }
            // PLAIN checks the password against the same credentials.
            Some("PLAIN") => "PLAIN",
            Some(_) => caller.mechanism.name(),
        };
        let key = (caller.user.clone(), caller.password.clone());
        let mut map = self.per_caller();
        if let Some(c) = map.get(&key) {
            c.touch();
            return Ok(Arc::clone(c));
        }
        if map.len() >= MAX_CALLERS {
            let idlest = map
                .iter()
                .max_by_key(|(_, c)| c.idle_for())
                .map(|(k, _)| k.clone());
            if let Some(gone) = idlest.and_then(|k| map.remove(&k)) {
                close(gone);
            }
        }
        let mut config = self.shared.config.clone();
        config
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", &caller.user)
            .set("sasl.password", &caller.password);
        let clients = Arc::new(Clients::new(config));
        map.insert(key, Arc::clone(&clients));
        Ok(clients)
    }
}

impl Clients {
    fn new(config: ClientConfig) -> Clients {
        Clients {
            config,
            producer: OnceLock::new(),
            admin: OnceLock::new(),
            metadata: OnceLock::new(),
            last_used: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    fn client_config(&self) -> ClientConfig {
        self.config.clone()
    }

    fn producer(&self) -> Result<&FutureProducer<LogContext>, ProxyError> {
        self.producer
            .get_or_init(|| {
                self.client_config()
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "2")
                    .set("message.timeout.ms", "30000")
                    // Keys land where a Java client would put them.
                    .set("partitioner", "murmur2_random")
                    .create_with_context(LogContext)
            })
            .as_ref()
            .map_err(|e| ProxyError::kafka(format!("cannot create the proxy's producer: {e}")))
    }

    fn admin(&self) -> Result<&AdminClient<LogContext>, ProxyError> {
        self.admin
            .get_or_init(|| self.client_config().create_with_context(LogContext))
            .as_ref()
            .map_err(|e| ProxyError::kafka(format!("cannot create the proxy's admin client: {e}")))
    }

    fn metadata_client(&self) -> Result<&BaseConsumer<LogContext>, ProxyError> {
        self.metadata
            .get_or_init(|| {
                self.client_config()
                    .set("allow.auto.create.topics", "false")
                    .create_with_context(LogContext)
            })
            .as_ref()
            .map_err(|e| {
                ProxyError::kafka(format!("cannot create the proxy's metadata client: {e}"))
            })
    }
}

/// Closing librdkafka clients blocks (they flush and leave): off the async workers.
fn close(clients: Arc<Clients>) {
    tokio::task::spawn_blocking(move || drop(clients));
}

/// A request's view of the proxy: the clients it acts through (its caller's, when the HTTP
/// listener authenticated one) and the user owning the consumer instances it may touch.
#[derive(Clone)]
pub(crate) struct Acting {
    proxy: Arc<Proxy>,
    clients: Arc<Clients>,
    owner: Option<String>,
}

impl std::ops::Deref for Acting {
    type Target = Proxy;

    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

impl Acting {
    fn client_config(&self) -> ClientConfig {
        self.clients.client_config()
    }

    fn producer(&self) -> Result<&FutureProducer<LogContext>, ProxyError> {
        self.clients.producer()
    }

    fn admin(&self) -> Result<&AdminClient<LogContext>, ProxyError> {
        self.clients.admin()
    }

    fn metadata_client(&self) -> Result<&BaseConsumer<LogContext>, ProxyError> {
        self.clients.metadata_client()
    }
}

impl axum::extract::FromRequestParts<Arc<Proxy>> for Acting {
    type Rejection = ProxyError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        proxy: &Arc<Proxy>,
    ) -> Result<Acting, ProxyError> {
        let caller = parts.extensions.get::<Caller>();
        Ok(Acting {
            proxy: Arc::clone(proxy),
            clients: proxy.clients(caller)?,
            owner: caller.map(|c| c.user.clone()),
        })
    }
}

/// Sends librdkafka's log lines to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::warn!(facility, "http proxy client: {message}"),
            _ => tracing::debug!(facility, "http proxy client: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("http proxy client: {error}: {reason}");
    }
}

impl ConsumerContext for LogContext {}

/// The proxy's routes; `consume::spawn_reaper` closes idle consumer instances.
pub fn routes(proxy: Arc<Proxy>) -> Router {
    consume::spawn_reaper(&proxy);
    Router::new()
        .route("/topics", get(topics::list))
        .route(
            "/topics/{topic}",
            get(topics::describe).post(produce::to_topic),
        )
        .route("/topics/{topic}/partitions", get(topics::partitions))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(topics::partition).post(produce::to_partition),
        )
        .route(
            "/v3/clusters/{cluster}/topics/{topic}/records",
            post(produce::v3_record),
        )
        .route("/v3/clusters/{cluster}/topics", post(browse::create_topic))
        .route(
            "/v3/clusters/{cluster}/topics/{topic}",
            axum::routing::delete(browse::delete_topic),
        )
        .route("/v1/groups/{id}/reset-offsets", post(browse::reset_offsets))
        // `{name}`, as the admin API's `/v1/topics/{name}` names the segment.
        .route(
            "/v1/topics/{name}/partitions/{partition}/records",
            get(browse::records),
        )
        .merge(consume::routes())
        .with_state(proxy)
}

/// A JSON body, or the proxy's 400 naming what is wrong with it.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProxyError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ProxyError::new(422, format!("Unprocessable entity: {e}"))
        }
        _ => ProxyError::bad_request(format!("Malformed JSON: {e}")),
    })
}

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProxyError> + Send + 'static,
) -> Result<T, ProxyError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProxyError::new(500, format!("internal error: {e}")))?
}

/// A response with the proxy's content type.
fn reply(status: axum::http::StatusCode, body: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, [(header::CONTENT_TYPE, V2_JSON)], body.to_string()).into_response()
}
