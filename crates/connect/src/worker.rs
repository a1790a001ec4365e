//! Which connectors run on this node, and running them.
//!
//! Placement: a connector runs on the live node that ranks first for its name by rendezvous
//! hashing over the controller's membership (nodes neither fenced nor removed). Every node
//! computes the same answer from the same replicated controller state, so when the controller
//! fences a dead node its connectors move to the next-ranked nodes, and nothing else moves.
//!
//! Fencing: each connector writes through one transactional id, `strom-connect-NAME`. A task
//! starts by initialising it, which bumps the producer epoch and aborts whatever its
//! predecessor left open; from then on the predecessor's writes and commits fail with
//! `PRODUCER_FENCED`. So while two nodes disagree about the membership for a moment (one has
//! not yet applied a fencing), at most one of them can commit. Only after the fencing does
//! the task read its offsets and state, so it starts exactly where the last commit left off.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::plugin::{Batch, Config, Record, TaskContext, TaskError};
use crate::store::{self, client_config, Status, Target};
use crate::Runtime;

/// Which node this is and which nodes may run connectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub me: u64,
    pub live: Vec<u64>,
}

/// The live node `name` runs on.
pub fn owner(name: &str, live: &[u64]) -> Option<u64> {
    // A hash that every build computes alike, so nodes of different versions agree.
    live.iter().copied().max_by_key(|node| {
        let h = crc32c::crc32c_append(crc32c::crc32c(name.as_bytes()), &node.to_be_bytes());
        (h, *node)
    })
}

/// The transactional id a connector's records and offsets are written with.
pub fn transactional_id(name: &str) -> String {
    format!("strom-connect-{name}")
}

/// The broker aborts a transaction left open this long (Kafka's maximum, 15 minutes): a
/// snapshot is one transaction. A successor aborts it at once anyway, by fencing.
const TXN_TIMEOUT: Duration = Duration::from_secs(900);
/// How long one blocking transaction call may take.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Backoff after a retriable failure, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a running task's progress is asked for and, when it changed, written to its status.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

struct Running {
    generation: i64,
    restart: i64,
    target: watch::Sender<Target>,
    handle: tokio::task::JoinHandle<()>,
}

/// The placement loop: starts, pauses and stops this node's connectors as the configs and the
/// membership change.
pub async fn run(rt: Arc<Runtime>) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut changes = rt.store.changes();
    loop {
        let membership = (rt.membership)();
        let wanted: BTreeMap<String, store::Connector> = rt.store.view(|v| {
            v.connectors
                .iter()
                .filter(|(name, c)| {
                    c.target != Target::Stopped
                        && owner(name, &membership.live) == Some(membership.me)
                })
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect()
        });
        running.retain(|name, r| {
            let keep = wanted
                .get(name)
                .is_some_and(|c| c.generation == r.generation && c.restart == r.restart);
            if !keep {
                tracing::info!(connector = %name, "connector stops on this node");
                r.handle.abort();
            }
            keep
        });
        for (name, c) in &wanted {
            if let Some(r) = running.get(name) {
                r.target
                    .send_if_modified(|t| std::mem::replace(t, c.target) != c.target);
                continue;
            }
            tracing::info!(connector = %name, "connector starts on this node");
            let (target, target_rx) = watch::channel(c.target);
            let handle = tokio::spawn(run_connector(
                Arc::clone(&rt),
                name.clone(),
                c.config.clone(),
                c.generation,
                target_rx,
            ));
            running.insert(
                name.clone(),
                Running {
                    generation: c.generation,
                    restart: c.restart,
                    target,
                    handle,
                },
            );
        }
        // Stopped and deleted connectors: the status says so, written by the node that would
        // run them.
        let idle: Vec<(String, Option<Target>)> = rt.store.view(|v| {
            let mut idle: Vec<(String, Option<Target>)> = v
                .connectors
                .iter()
                .filter(|(n, c)| {
                    c.target == Target::Stopped && owner(n, &membership.live) == Some(membership.me)
                })
                .filter(|(n, _)| {
                    v.statuses
                        .get(&connector_key(n))
                        .is_none_or(|s| s.state != "STOPPED")
                })
                .map(|(n, _)| (n.clone(), Some(Target::Stopped)))
                .collect();
            idle.extend(
                v.statuses
                    .keys()
                    .filter_map(|k| k.strip_prefix("status-connector-"))
                    .filter(|n| {
                        !v.connectors.contains_key(*n)
                            && owner(n, &membership.live) == Some(membership.me)
                    })
                    .map(|n| (n.to_string(), None)),
            );
            idle
        });
        for (name, target) in idle {
            let status = target.map(|_| rt.status("STOPPED", None, 0));
            let _ = rt
                .store
                .put_status(&connector_key(&name), status.as_ref())
                .await;
            let _ = rt.store.put_status(&task_key(&name), None).await;
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

pub fn connector_key(name: &str) -> String {
    format!("status-connector-{name}")
}

pub fn task_key(name: &str) -> String {
    format!("status-task-{name}-0")
}

/// Runs one connector until aborted: starts its task, writes its batches, retries retriable
/// failures with backoff, reports FAILED on the others and waits for a restart.
async fn run_connector(
    rt: Arc<Runtime>,
    name: String,
    config: Config,
    generation: i64,
    mut target: watch::Receiver<Target>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut restarting = false;
    loop {
        let mut started = false;
        match run_once(
            &rt,
            &name,
            &config,
            generation,
            &mut target,
            restarting,
            &mut started,
        )
        .await
        {
            Ok(()) => return,
            Err(e) if e.retriable => {
                if started {
                    restarting = true;
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(connector = %name, "connector failed, retrying in {backoff:?}: {e}");
                // Still meant to run, and trying: the status says why it is not making progress.
                let why = format!("retrying in {backoff:?} after: {e}");
                rt.report(&name, "RUNNING", Some(why), generation).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => {
                tracing::error!(connector = %name, "connector failed: {e}");
                rt.report(&name, "FAILED", Some(e.message), generation)
                    .await;
                // FAILED until restarted or reconfigured (which aborts this task).
                std::future::pending::<()>().await;
            }
        }
    }
}

fn kafka_error(context: &str, e: KafkaError) -> TaskError {
    let fenced = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    );
    if fenced {
        // Another node runs this connector now; this task is a zombie and stops quietly
        // (placement aborts it when the membership catches up).
        TaskError::retriable(format!(
            "{context}: fenced by a newer instance of this connector: {e}"
        ))
    } else {
        TaskError::retriable(format!("{context}: {e}"))
    }
}

/// Blocking librdkafka transaction calls, off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
    context: &str,
) -> Result<T, TaskError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| kafka_error(context, e)),
        Err(e) => Err(TaskError::retriable(format!("{context}: {e}"))),
    }
}

async fn run_once(
    rt: &Arc<Runtime>,
    name: &str,
    config: &Config,
    generation: i64,
    target: &mut watch::Receiver<Target>,
    restarting: bool,
    started: &mut bool,
) -> Result<(), TaskError> {
    let plugin = rt.plugin(config).map_err(TaskError::fatal)?;
    let producer = fencing_producer(rt, name).await?;
    let mut ctx = load_context(rt, name, config).await?;
    ctx.restarting = restarting;
    let mut task = plugin.start(ctx).await?;
    *started = true;
    let mut state = *target.borrow();
    rt.report(name, state_name(state), None, generation).await;
    // A transaction spanning batches (`Batch::more`) is finished before pausing.
    let mut open = false;
    // Where the open transaction's records landed, told to the task once it commits.
    let mut landed: Vec<(i32, i64)> = Vec::new();
    let mut next_progress = tokio::time::Instant::now() + PROGRESS_EVERY;
    let mut progress: Option<Value> = None;
    loop {
        if state == Target::Paused && !open {
            if target.changed().await.is_err() {
                return Ok(());
            }
            state = *target.borrow_and_update();
            rt.report(name, state_name(state), None, generation).await;
            continue;
        }
        let batch = tokio::select! {
            b = task.poll() => b?,
            changed = target.changed(), if !open => {
                if changed.is_err() {
                    return Ok(());
                }
                state = *target.borrow_and_update();
                rt.report(name, state_name(state), None, generation).await;
                continue;
            }
        };
        if tokio::time::Instant::now() >= next_progress {
            next_progress = tokio::time::Instant::now() + PROGRESS_EVERY;
            let now = task.progress();
            if now.is_some() && now != progress {
                progress = now;
                let mut status = rt.status(state_name(state), None, generation);
                status.progress = progress.clone();
                if let Err(e) = rt.store.put_status(&task_key(name), Some(&status)).await {
                    tracing::debug!(connector = %name, "cannot write the task's progress: {e}");
                }
            }
        }
        if let Some(batch) = batch {
            if !batch.is_empty() || (open && !batch.more) {
                let more = batch.more;
                landed.extend(send(&producer, name, batch, &mut open).await?);
                if !more {
                    task.committed(std::mem::take(&mut landed));
                }
            }
        }
    }
}

/// The connector's transactional producer, initialised: every earlier instance is fenced and
/// its open transaction aborted.
async fn fencing_producer(rt: &Runtime, name: &str) -> Result<FutureProducer, TaskError> {
    let producer: FutureProducer = client_config(rt.store.kafka())
        .set("transactional.id", transactional_id(name))
        .set(
            "transaction.timeout.ms",
            TXN_TIMEOUT.as_millis().to_string(),
        )
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| kafka_error("creating the producer", e))?;
    let p = producer.clone();
    blocking(
        move || p.init_transactions(TXN_CALL_TIMEOUT),
        "initialising the transactional producer",
    )
    .await?;
    Ok(producer)
}

/// Writes records in the connector's name (the offsets API): fences any running instance
/// first, so a zombie cannot overwrite what was written here.
pub async fn write_as(rt: &Runtime, name: &str, records: Vec<Record>) -> Result<(), TaskError> {
    let producer = fencing_producer(rt, name).await?;
    send(
        &producer,
        name,
        Batch {
            records,
            ..Batch::default()
        },
        &mut false,
    )
    .await
    .map(drop)
}

fn state_name(t: Target) -> &'static str {
    match t {
        Target::Started => "RUNNING",
        Target::Paused => "PAUSED",
        Target::Stopped => "STOPPED",
    }
}

/// Reads the offsets and state the connector committed last.
async fn load_context(
    rt: &Arc<Runtime>,
    name: &str,
    config: &Config,
) -> Result<TaskContext, TaskError> {
    let committed = rt
        .store
        .committed(name)
        .await
        .map_err(|e| TaskError::retriable(format!("reading the connector's offsets: {e}")))?;
    Ok(TaskContext {
        connector: name.to_string(),
        config: config.clone(),
        offsets: committed
            .offsets
            .into_iter()
            .map(|(k, v)| (k.get(1).cloned().unwrap_or(Value::Null), v))
            .collect(),
        state: committed
            .state
            .into_iter()
            .filter_map(|(k, v)| Some((k.get(1)?.as_str()?.to_string(), v)))
            .collect(),
        restarting: false,
        target: rt.store.kafka().clone(),
    })
}

/// Writes one batch in the open transaction (beginning one if none is open), and commits
/// unless the batch says the transaction goes on; returns the (partition, offset) each of the
/// batch's records was written at.
async fn send(
    producer: &FutureProducer,
    name: &str,
    batch: Batch,
    open: &mut bool,
) -> Result<Vec<(i32, i64)>, TaskError> {
    if !*open {
        let p = producer.clone();
        blocking(move || p.begin_transaction(), "beginning a transaction").await?;
        *open = true;
    }
    let more = batch.more;
    let sending = std::time::Instant::now();
    let mut deliveries = Vec::with_capacity(batch.records.len() + 2);
    // The offset and state go to the runtime's topics, keyed by connector, in the same
    // transaction as the records.
    let runtime_record = |topic: &str, key: Value, value: Option<Value>| Record {
        topic: topic.to_string(),
        key: Some(json!([name, key]).to_string().into_bytes()),
        value: value.map(|v| v.to_string().into_bytes()),
        ..Default::default()
    };
    let own = batch.records.len();
    let mut all = batch.records;
    for (partition, offset) in batch.offsets {
        all.push(runtime_record(
            store::OFFSETS_TOPIC,
            partition,
            Some(offset),
        ));
    }
    for (key, value) in batch.state {
        all.push(runtime_record(
            store::STATE_TOPIC,
            Value::String(key),
            value,
        ));
    }
    for r in &all {
        let mut record = FutureRecord::<[u8], [u8]>::to(&r.topic);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        if let Some(v) = &r.value {
            record = record.payload(v);
        }
        if let Some(ts) = r.timestamp_ms {
            record = record.timestamp(ts);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if !r.headers.is_empty() {
            let headers = r.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                })
            });
            record = record.headers(headers);
        }
        loop {
            match producer.send_result(record) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    abort(producer).await;
                    *open = false;
                    return Err(kafka_error("writing a record", e));
                }
            }
        }
    }
    // Every record is acknowledged before the commit (or the next batch): a failed one
    // aborts the transaction instead of committing without it.
    let mut landed = Vec::with_capacity(own);
    for d in deliveries {
        let failed = match d.await {
            Ok(Ok(at)) => {
                if landed.len() < own {
                    landed.push((at.partition, at.offset));
                }
                None
            }
            Ok(Err((e, _))) => Some(kafka_error("writing a record", e)),
            Err(_) => Some(TaskError::retriable("a delivery report was lost")),
        };
        if let Some(e) = failed {
            abort(producer).await;
            *open = false;
            return Err(e);
        }
    }
    if more {
        return Ok(landed);
    }
    let p = producer.clone();
    *open = false;
    let committing = std::time::Instant::now();
    let committed = blocking(move || p.commit_transaction(TXN_CALL_TIMEOUT), "committing").await;
    tracing::debug!(connector = %name, records = all.len(), send_ms = sending.elapsed().as_millis() as u64, commit_ms = committing.elapsed().as_millis() as u64, "batch committed");
    if let Err(e) = committed {
        abort(producer).await;
        return Err(e);
    }
    Ok(landed)
}

async fn abort(producer: &FutureProducer) {
    let p = producer.clone();
    let _ = blocking(move || p.abort_transaction(TXN_CALL_TIMEOUT), "aborting").await;
}

impl Runtime {
    pub(crate) fn status(&self, state: &str, trace: Option<String>, generation: i64) -> Status {
        Status {
            state: state.to_string(),
            trace,
            worker_id: self.worker_id.clone(),
            generation,
            progress: None,
        }
    }

    /// Writes the connector's and its task's status.
    async fn report(&self, name: &str, state: &str, trace: Option<String>, generation: i64) {
        let status = self.status(state, trace, generation);
        for key in [connector_key(name), task_key(name)] {
            if let Err(e) = self.store.put_status(&key, Some(&status)).await {
                tracing::warn!(connector = %name, "cannot write the connector's status: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_stable_and_moves_only_from_a_lost_node() {
        let all = [1, 2, 3];
        let names: Vec<String> = (0..60).map(|i| format!("c{i}")).collect();
        let before: Vec<u64> = names.iter().map(|n| owner(n, &all).unwrap()).collect();
        for node in 1..=3 {
            assert!(
                before.contains(&node),
                "every node runs some of 60 connectors"
            );
        }
        let after: Vec<u64> = names.iter().map(|n| owner(n, &[1, 3]).unwrap()).collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b, "a connector not on the lost node stays where it is");
            }
            assert_ne!(*a, 2);
        }
        assert_eq!(owner("x", &[]), None);
    }
}
