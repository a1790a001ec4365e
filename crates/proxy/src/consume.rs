//! Consumer instances over HTTP (Confluent REST Proxy v2): each is a librdkafka consumer in
//! its group, created by `POST /consumers/{group}`, driven by its subscription or manual
//! assignment, read with `GET .../records`, and closed by `DELETE` or after being idle for
//! `consumer_instance_timeout`. Each instance's calls run one at a time on a blocking thread
//! (librdkafka's poll blocks).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    blocking, parse_body, reply, Acting, Format, LogContext, Proxy, ProxyError, KAFKA_TIMEOUT,
};

/// Longest a records request waits for records, whatever the client asks.
const MAX_RECORDS_WAIT: Duration = Duration::from_secs(30);
/// Most bytes of keys and values one records response carries.
const MAX_RECORDS_BYTES: usize = 8 << 20;

pub struct Instance {
    format: Format,
    /// The authenticated user who created it; only they may use it.
    owner: Option<String>,
    consumer: Mutex<BaseConsumer<LogContext>>,
    last_used: Mutex<Instant>,
}

impl Instance {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// The open instances by (group, name).
#[derive(Default)]
pub struct Instances {
    map: Mutex<HashMap<(String, String), Arc<Instance>>>,
    created: AtomicU64,
}

impl Instances {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Instance>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance, if `owner` created it (another user's is as good as absent).
    fn get(
        &self,
        group: &str,
        name: &str,
        owner: &Option<String>,
    ) -> Result<Arc<Instance>, ProxyError> {
        let instance = self
            .lock()
            .get(&(group.to_string(), name.to_string()))
            .filter(|i| i.owner == *owner)
            .cloned()
            .ok_or_else(ProxyError::instance_not_found)?;
        instance.touch();
        Ok(instance)
    }
}

pub(crate) fn routes() -> Router<Arc<Proxy>> {
    Router::new()
        .route("/consumers/{group}", post(create))
        .route(
            "/consumers/{group}/instances/{instance}",
            axum::routing::delete(delete),
        )
        .route(
            "/consumers/{group}/instances/{instance}/subscription",
            post(subscribe).get(subscription).delete(unsubscribe),
        )
        .route(
            "/consumers/{group}/instances/{instance}/assignments",
            post(assign).get(assignments),
        )
        .route(
            "/consumers/{group}/instances/{instance}/positions",
            post(seek),
        )
        .route(
            "/consumers/{group}/instances/{instance}/positions/beginning",
            post(seek_to_beginning),
        )
        .route(
            "/consumers/{group}/instances/{instance}/positions/end",
            post(seek_to_end),
        )
        .route(
            "/consumers/{group}/instances/{instance}/records",
            get(records),
        )
        .route(
            "/consumers/{group}/instances/{instance}/offsets",
            post(commit).get(committed),
        )
}

/// Closes instances idle longer than the proxy's timeout, once a second.
pub(crate) fn spawn_reaper(proxy: &Arc<Proxy>) {
    let weak: Weak<Proxy> = Arc::downgrade(proxy);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(proxy) = weak.upgrade() else { return };
            let timeout = proxy.config.consumer_instance_timeout;
            let expired: Vec<((String, String), Arc<Instance>)> = {
                let mut map = proxy.consumers.lock();
                let keys: Vec<_> = map
                    .iter()
                    .filter(|(_, i)| i.idle_for() > timeout)
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.into_iter()
                    .filter_map(|k| map.remove(&k).map(|i| (k, i)))
                    .collect()
            };
            // Callers' clients idle as long as an instance may be go too.
            let idle: Vec<Arc<crate::Clients>> = {
                let mut map = proxy.per_caller();
                let keys: Vec<_> = map
                    .iter()
                    .filter(|(_, c)| c.idle_for() > timeout)
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter().filter_map(|k| map.remove(k)).collect()
            };
            idle.into_iter().for_each(crate::close);
            for ((group, name), instance) in expired {
                tracing::info!(
                    group,
                    instance = name,
                    "closing an idle HTTP consumer instance"
                );
                // Closing leaves the group, a blocking call.
                tokio::task::spawn_blocking(move || drop(instance));
            }
        }
    });
}

/// A setting given as a JSON string or number.
fn setting(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn create(
    proxy: Acting,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let settings: HashMap<String, Value> = if body.is_empty() {
        HashMap::new()
    } else {
        parse_body(&body)?
    };
    let format = match settings.get("format").and_then(setting).as_deref() {
        None | Some("binary") => Format::Binary,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(ProxyError::new(
                42204,
                format!("unsupported format {other}: use binary or json"),
            ))
        }
    };
    let n = proxy.consumers.created.fetch_add(1, Ordering::Relaxed);
    let name = match settings.get("name").and_then(setting) {
        Some(name) if name.is_empty() || name.len() > 200 || name.contains('/') => {
            return Err(ProxyError::bad_request(
                "a consumer name is 1 to 200 characters, no '/'",
            ))
        }
        Some(name) => name,
        None => format!("rest-consumer-{}-{n}", std::process::id()),
    };
    let mut config = proxy.client_config();
    config
        .set("group.id", &group)
        .set("client.id", format!("strom-http-{name}"))
        .set("enable.partition.eof", "false");
    for (key, kafka_key) in [
        ("auto.offset.reset", "auto.offset.reset"),
        ("auto.commit.enable", "enable.auto.commit"),
        ("fetch.min.bytes", "fetch.min.bytes"),
    ] {
        if let Some(v) = settings.get(key).and_then(setting) {
            config.set(kafka_key, v);
        }
    }
    let consumer: BaseConsumer<LogContext> = config
        .create_with_context(LogContext)
        .map_err(|e| ProxyError::new(422, format!("invalid consumer settings: {e}")))?;
    {
        let mut map = proxy.consumers.lock();
        let key = (group.clone(), name.clone());
        if map.contains_key(&key) {
            return Err(ProxyError::new(
                40902,
                "Consumer with specified consumer ID already exists in the specified consumer group.",
            ));
        }
        if map.len() >= proxy.config.max_consumer_instances {
            return Err(ProxyError::new(
                429,
                format!(
                    "{} consumer instances are open; delete one first",
                    map.len()
                ),
            ));
        }
        let instance = Instance {
            format,
            owner: proxy.owner.clone(),
            consumer: Mutex::new(consumer),
            last_used: Mutex::new(Instant::now()),
        };
        map.insert(key, Arc::new(instance));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(reply(
        StatusCode::OK,
        json!({
            "instance_id": name,
            "base_uri": format!("http://{host}/consumers/{group}/instances/{name}"),
        }),
    ))
}

async fn delete(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
) -> Result<Response, ProxyError> {
    proxy.consumers.get(&group, &name, &proxy.owner)?;
    let instance = proxy
        .consumers
        .lock()
        .remove(&(group, name))
        .ok_or_else(ProxyError::instance_not_found)?;
    blocking(move || {
        drop(instance);
        Ok(())
    })
    .await?;
    Ok(no_content())
}

fn no_content() -> Response {
    use axum::response::IntoResponse;
    StatusCode::NO_CONTENT.into_response()
}

/// Runs `f` with the instance's consumer on a blocking thread, one call at a time.
async fn with_consumer<T: Send + 'static>(
    proxy: &Acting,
    group: &str,
    name: &str,
    f: impl FnOnce(&BaseConsumer<LogContext>, Format) -> Result<T, ProxyError> + Send + 'static,
) -> Result<T, ProxyError> {
    let instance = proxy.consumers.get(group, name, &proxy.owner)?;
    blocking(move || {
        let consumer = instance.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let result = f(&consumer, instance.format);
        instance.touch();
        result
    })
    .await
}

fn kafka_error(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> ProxyError + '_ {
    move |e| ProxyError::of_kafka(what, &e)
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(default)]
    topics: Vec<String>,
    topic_pattern: Option<String>,
}

async fn subscribe(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let s: Subscription = parse_body(&body)?;
    let topics = match (s.topic_pattern, s.topics.is_empty()) {
        // librdkafka takes a topic starting with `^` as a regular expression.
        (Some(pattern), true) => vec![format!("^{}", pattern.trim_start_matches('^'))],
        (None, false) => s.topics,
        _ => {
            return Err(ProxyError::new(
                40903,
                "Subscription to topics, partitions and pattern are mutually exclusive.",
            ))
        }
    };
    with_consumer(&proxy, &group, &name, move |c, _| {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        c.subscribe(&topics).map_err(kafka_error("subscribe"))
    })
    .await?;
    Ok(no_content())
}

async fn subscription(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
) -> Result<Response, ProxyError> {
    let topics = with_consumer(&proxy, &group, &name, |c, _| {
        let list = c.subscription().map_err(kafka_error("subscription"))?;
        Ok(list
            .elements()
            .iter()
            .map(|e| e.topic().to_string())
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(reply(StatusCode::OK, json!({"topics": topics})))
}

async fn unsubscribe(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
) -> Result<Response, ProxyError> {
    with_consumer(&proxy, &group, &name, |c, _| {
        c.unsubscribe();
        Ok(())
    })
    .await?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct PartitionRef {
    topic: String,
    partition: i32,
}

#[derive(Deserialize)]
struct Partitions {
    partitions: Vec<PartitionRef>,
}

#[derive(Deserialize)]
struct OffsetRef {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Confluent's body names the list `offsets`; Redpanda's, `partitions`.
#[derive(Deserialize)]
struct Offsets {
    #[serde(alias = "partitions")]
    offsets: Vec<OffsetRef>,
}

fn tpl_of(partitions: &[PartitionRef]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(&p.topic, p.partition);
    }
    tpl
}

fn partitions_json(tpl: &TopicPartitionList) -> Vec<Value> {
    tpl.elements()
        .iter()
        .map(|e| json!({"topic": e.topic(), "partition": e.partition()}))
        .collect()
}

async fn assign(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let p: Partitions = parse_body(&body)?;
    let tpl = tpl_of(&p.partitions);
    with_consumer(&proxy, &group, &name, move |c, _| {
        c.assign(&tpl).map_err(kafka_error("assign"))
    })
    .await?;
    Ok(no_content())
}

async fn assignments(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
) -> Result<Response, ProxyError> {
    let tpl = with_consumer(&proxy, &group, &name, |c, _| {
        c.assignment().map_err(kafka_error("assignment"))
    })
    .await?;
    Ok(reply(
        StatusCode::OK,
        json!({"partitions": partitions_json(&tpl)}),
    ))
}

async fn seek_each(
    proxy: &Acting,
    group: &str,
    name: &str,
    targets: Vec<(String, i32, Offset)>,
) -> Result<Response, ProxyError> {
    with_consumer(proxy, group, name, move |c, _| {
        for (topic, partition, offset) in &targets {
            c.seek(topic, *partition, *offset, KAFKA_TIMEOUT)
                .map_err(|e| {
                    ProxyError::new(
                        40402,
                        format!("cannot seek {topic}/{partition} (is it assigned?): {e}"),
                    )
                })?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn seek(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let o: Offsets = parse_body(&body)?;
    let targets = o
        .offsets
        .into_iter()
        .map(|o| (o.topic, o.partition, Offset::Offset(o.offset)))
        .collect();
    seek_each(&proxy, &group, &name, targets).await
}

async fn seek_to(
    proxy: &Acting,
    group: &str,
    name: &str,
    body: &[u8],
    offset: Offset,
) -> Result<Response, ProxyError> {
    let p: Partitions = parse_body(body)?;
    let targets = p
        .partitions
        .into_iter()
        .map(|p| (p.topic, p.partition, offset))
        .collect();
    seek_each(proxy, group, name, targets).await
}

async fn seek_to_beginning(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    seek_to(&proxy, &group, &name, &body, Offset::Beginning).await
}

async fn seek_to_end(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    seek_to(&proxy, &group, &name, &body, Offset::End).await
}

#[derive(Deserialize)]
struct RecordsQuery {
    timeout: Option<u64>,
    max_bytes: Option<usize>,
}

/// A key or value as the instance's format shows it.
fn encode(format: Format, bytes: Option<&[u8]>) -> Result<Value, String> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    match format {
        Format::Binary => Ok(Value::String(crate::BASE64.encode(bytes))),
        Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

async fn records(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    Query(q): Query<RecordsQuery>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let wait = Duration::from_millis(q.timeout.unwrap_or(1000)).min(MAX_RECORDS_WAIT);
    let max_bytes = q
        .max_bytes
        .unwrap_or(MAX_RECORDS_BYTES)
        .min(MAX_RECORDS_BYTES);
    let (format, records) = with_consumer(&proxy, &group, &name, move |c, format| {
        if let Some(asked) = accept.as_deref().and_then(Format::named_in) {
            if asked != format {
                return Err(ProxyError::new(
                    40601,
                    format!(
                        "The consumer was created with the {format:?} format; ask for {}",
                        format.content_type()
                    ),
                ));
            }
        }
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            // Once a record is in hand, take only what is ready: answer rather than wait.
            let left = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let Some(polled) = c.poll(left) else {
                if !out.is_empty() || Instant::now() >= deadline {
                    break;
                }
                continue;
            };
            let m = polled.map_err(kafka_error("poll"))?;
            bytes += m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
            let field = |v: Option<&[u8]>| {
                encode(format, v).map_err(|e| {
                    ProxyError::new(
                        50002,
                        format!(
                            "Error deserializing {}/{} at offset {} as JSON: {e}",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        ),
                    )
                })
            };
            out.push(json!({
                "topic": m.topic(),
                "key": field(m.key())?,
                "value": field(m.payload())?,
                "partition": m.partition(),
                "offset": m.offset(),
            }));
        }
        Ok((format, out))
    })
    .await?;
    use axum::response::IntoResponse;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        Value::Array(records).to_string(),
    )
        .into_response())
}

/// Commits: with no body, the positions of the records this instance has returned; with a
/// list, each given offset + 1 (the offset named is the last record processed, as in
/// Confluent's proxy, and the group resumes after it).
async fn commit(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let explicit: Option<Offsets> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body(&body)?)
    };
    with_consumer(&proxy, &group, &name, move |c, _| match explicit {
        None => c
            .commit_consumer_state(CommitMode::Sync)
            .map_err(kafka_error("commit")),
        Some(o) => {
            let mut tpl = TopicPartitionList::new();
            for o in &o.offsets {
                let next = o.offset.checked_add(1).filter(|n| *n >= 0).ok_or_else(|| {
                    ProxyError::new(42202, format!("invalid offset {}", o.offset))
                })?;
                tpl.add_partition_offset(&o.topic, o.partition, Offset::Offset(next))
                    .map_err(kafka_error("commit"))?;
            }
            c.commit(&tpl, CommitMode::Sync)
                .map_err(kafka_error("commit"))
        }
    })
    .await?;
    Ok(no_content())
}

/// The group's committed offsets (the next offset to read) for the partitions in the body.
async fn committed(
    proxy: Acting,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let p: Partitions = parse_body(&body)?;
    let tpl = tpl_of(&p.partitions);
    let offsets = with_consumer(&proxy, &group, &name, move |c, _| {
        let got = c
            .committed_offsets(tpl, KAFKA_TIMEOUT)
            .map_err(kafka_error("committed offsets"))?;
        Ok(got
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(json!({
                    "topic": e.topic(),
                    "partition": e.partition(),
                    "offset": o,
                    "metadata": e.metadata(),
                })),
                _ => None,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(reply(StatusCode::OK, json!({"offsets": offsets})))
}
