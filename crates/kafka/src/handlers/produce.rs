//! Produce: validate and append every partition's batches now (so pipelined requests keep their
//! order), then answer once the appends are durable. A transactional batch the partition has
//! no permission for waits for the coordinator's word and is appended after: before v12 the
//! client added the partition itself and the coordinator only verifies it (the leader changed
//! or restarted since; KIP-890 part 1); from v12 (transaction version 2) the coordinator adds
//! the partition to the producer's transaction.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use strom_broker::{BrokerError, Partition, Topic};
use strom_storage::batch;
use strom_txn::TxnError;

use super::Reply;
use crate::Context;

/// Where to wait before a partition's answer may be sent.
struct Wait {
    topic: usize,
    partition: usize,
    on: Arc<Partition>,
    result: strom_broker::AppendResult,
    /// The trace contexts its records carry (only with `--otlp-endpoint`).
    traced: Vec<opentelemetry::trace::SpanContext>,
}

/// A transactional append waiting for the coordinator's verification.
struct Unverified {
    topic: usize,
    partition: usize,
    on: Arc<Partition>,
    batches: Vec<Bytes>,
    producer_id: i64,
    epoch: i16,
}

enum Appended {
    Now(Arc<Partition>, strom_broker::AppendResult),
    Unverified(Arc<Partition>, Vec<Bytes>, i64, i16),
}

pub fn handle(ctx: &Arc<Context>, req: ProduceRequest, version: i16) -> Reply {
    let arrived = std::time::Instant::now();
    let arrived_at = std::time::SystemTime::now();
    let add = version >= super::txn::TV2_PRODUCE;
    let acks = req.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let txn_id = req.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut waits = Vec::new();
    let mut unverified = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let name = td.name.0.to_string();
        let topic = if valid_acks {
            ctx.broker.topic_or_auto_create(&name)
        } else {
            Ok(None)
        };
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for (pi, pd) in td.partition_data.into_iter().enumerate() {
            let index = pd.index;
            let mut traced = match &pd.records {
                Some(records) if crate::trace::enabled() => {
                    crate::trace::record_contexts(std::slice::from_ref(records))
                }
                _ => Vec::new(),
            };
            let resp = if !valid_acks {
                failed(index, ResponseError::InvalidRequiredAcks, None)
            } else {
                match append(ctx, &name, &topic, pd, txn_id.is_some()) {
                    Ok(Appended::Unverified(p, batches, producer_id, epoch)) => {
                        unverified.push(Unverified {
                            topic: ti,
                            partition: pi,
                            on: p,
                            batches,
                            producer_id,
                            epoch,
                        });
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_log_append_time_ms(-1)
                    }
                    Ok(Appended::Now(p, r)) => {
                        waits.push(Wait {
                            topic: ti,
                            partition: pi,
                            on: p,
                            result: r,
                            traced: std::mem::take(&mut traced),
                        });
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(r.base_offset as i64)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(r.log_start_offset as i64)
                    }
                    Err((err, message)) => failed(index, err, message),
                }
            };
            parts.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_partition_responses(parts),
        );
    }
    let response = ProduceResponse::default().with_responses(responses);
    if acks == 0 {
        if !unverified.is_empty() {
            let (ctx, txn_id) = (Arc::clone(ctx), txn_id.unwrap_or_default());
            tokio::spawn(async move {
                let mut response = response;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                let mut waits = Vec::new();
                let how = Verify { add, deadline };
                verify_and_append(&ctx, &txn_id, how, unverified, &mut response, &mut waits).await;
            });
        }
        return Reply::Nothing;
    }
    if waits.is_empty() && unverified.is_empty() {
        return Reply::Now(Box::new(response.into()));
    }
    let appended = std::time::Instant::now();
    let ctx = Arc::clone(ctx);
    // Set now, not when the connection's writer first polls this reply: replies are awaited in
    // request order, so a deadline started there would add up behind earlier stuck requests.
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(1) as u64);
    Reply::Later(Box::pin(async move {
        let mut response = response;
        let mut waits = waits;
        if let Some(txn_id) = txn_id.filter(|_| !unverified.is_empty()) {
            let how = Verify { add, deadline };
            verify_and_append(&ctx, &txn_id, how, unverified, &mut response, &mut waits).await;
        }
        let mut stages = Stages::new(arrived, appended, acks);
        for w in waits {
            let error =
                match tokio::time::timeout_at(deadline, w.on.wait_ack_timed(&w.result, acks)).await
                {
                    Ok(Ok(durable_at)) => {
                        stages.durable(durable_at);
                        if !w.traced.is_empty() {
                            let name = response.responses[w.topic].name.0.to_string();
                            let mut attributes =
                                crate::trace::partition_attributes(&name, w.on.index);
                            attributes.push(opentelemetry::KeyValue::new(
                                "messaging.kafka.offset",
                                w.result.base_offset as i64,
                            ));
                            crate::trace::span(
                                format!("produce {name}"),
                                arrived_at,
                                &w.traced,
                                attributes,
                            );
                        }
                        continue;
                    }
                    Ok(Err(e)) => crate::errors::kafka_error(&e),
                    // No quorum (or a slow disk): Kafka's answer, never a success.
                    Err(_) => ResponseError::RequestTimedOut,
                };
            let p = &mut response.responses[w.topic].partition_responses[w.partition];
            p.error_code = error.code();
            p.base_offset = -1;
        }
        stages.record();
        Some(response.into())
    }))
}

/// The stages of an acks=all produce for `strom_produce_stage_duration_seconds`: queue
/// (arrival to appended), fsync (appended to on this leader's disk, the last of its
/// partitions), replication (from there to acknowledged).
struct Stages {
    arrived: std::time::Instant,
    appended: std::time::Instant,
    durable: Option<std::time::Instant>,
    all: bool,
}

impl Stages {
    fn new(arrived: std::time::Instant, appended: std::time::Instant, acks: i16) -> Stages {
        Stages {
            arrived,
            appended,
            durable: None,
            all: acks == -1,
        }
    }

    fn durable(&mut self, at: std::time::Instant) {
        self.durable = Some(self.durable.map_or(at, |d| d.max(at)));
    }

    fn record(self) {
        let Some(durable) = self.durable.filter(|_| self.all) else {
            return;
        };
        let acked = std::time::Instant::now();
        let family = &strom_metrics::global().produce_stage_seconds;
        for (stage, from, to) in [
            ("queue", self.arrived, self.appended),
            ("fsync", self.appended, durable),
            ("replication", durable, acked),
        ] {
            family
                .get_or_create(&strom_metrics::StageLabel { stage })
                .observe(to.saturating_duration_since(from).as_secs_f64());
        }
    }
}

type Failure = (ResponseError, Option<String>);

fn append(
    ctx: &Context,
    name: &str,
    topic: &Result<Option<Arc<Topic>>, BrokerError>,
    pd: PartitionProduceData,
    transactional: bool,
) -> Result<Appended, Failure> {
    let topic = match topic {
        Ok(Some(t)) => t,
        Ok(None) => return Err((ResponseError::UnknownTopicOrPartition, None)),
        Err(e) => return Err((crate::errors::kafka_error(e), Some(e.to_string()))),
    };
    if strom_broker::topic::is_internal_topic(&topic.name) {
        let why = format!("cannot produce to internal topic {}", topic.name);
        return Err((ResponseError::InvalidTopicException, Some(why)));
    }
    let p = topic
        .partition(pd.index)
        .ok_or_else(|| (super::cluster::missing_partition(ctx, name, pd.index), None))?;
    let records = pd.records.unwrap_or_default();
    let batches =
        batch::split(&records).map_err(|e| (ResponseError::CorruptMessage, Some(e.to_string())))?;
    if batches.is_empty() {
        return Err((
            ResponseError::CorruptMessage,
            Some("no record batch".into()),
        ));
    }
    // Commit and abort markers are the brokers' to write, as in Kafka (its LogValidator): a
    // client must not end transactions, nor pass off Strom's own control entries as data.
    if batches
        .iter()
        .any(|b| batch::BatchHeader::parse(b).is_ok_and(|h| h.is_control()))
    {
        return Err((
            ResponseError::InvalidRecord,
            Some("clients may not write control batches".into()),
        ));
    }
    match p.append(&batches) {
        Ok(r) => Ok(Appended::Now(p, r)),
        Err(BrokerError::InvalidTxnState(_)) if transactional => {
            match batches
                .iter()
                .filter_map(|b| batch::BatchHeader::parse(b).ok())
                .find(|h| h.is_transactional())
            {
                Some(h) => Ok(Appended::Unverified(
                    p,
                    batches,
                    h.producer_id,
                    h.producer_epoch,
                )),
                None => Err((ResponseError::InvalidTxnState, None)),
            }
        }
        Err(e) => {
            if let BrokerError::Storage(s) = &e {
                tracing::warn!(partition = ?p, "append failed: {s}");
            }
            Err((crate::errors::kafka_error(&e), Some(e.to_string())))
        }
    }
}

/// How the coordinator is asked about an unverified partition.
struct Verify {
    /// Transaction version 2: add the partition to the transaction, not just check it.
    add: bool,
    /// The request's: a coordinator still ending the producer's previous transaction is asked
    /// again until then.
    deadline: tokio::time::Instant,
}

/// Asks the coordinator about each unverified partition; a verified one is allowed and
/// appended (then waited for like the others), a refused one answers with the coordinator's
/// reason as Kafka's partition leaders pass it on.
async fn verify_and_append(
    ctx: &Context,
    txn_id: &str,
    how: Verify,
    unverified: Vec<Unverified>,
    response: &mut ProduceResponse,
    waits: &mut Vec<Wait>,
) {
    for u in unverified {
        let tp = (u.on.topic.clone(), u.on.index);
        let verified = loop {
            let r = ctx
                .txn
                .verify_for_partition(txn_id, &tp, u.producer_id, u.epoch, how.add)
                .await;
            match r {
                Err(TxnError::ConcurrentTransactions)
                    if tokio::time::Instant::now() + CONCURRENT_RETRY < how.deadline =>
                {
                    tokio::time::sleep(CONCURRENT_RETRY).await
                }
                r => break r,
            }
        };
        let appended = match verified {
            Ok(()) => u.on.append_verified(&u.batches).map_err(|e| {
                let code = crate::errors::kafka_error(&e);
                (code, e.to_string())
            }),
            Err(e) => Err((
                verification_error(&e, how.add),
                format!("the transaction coordinator refused the partition: {e}"),
            )),
        };
        let p = &mut response.responses[u.topic].partition_responses[u.partition];
        match appended {
            Ok(r) => {
                p.base_offset = r.base_offset as i64;
                p.log_start_offset = r.log_start_offset as i64;
                waits.push(Wait {
                    topic: u.topic,
                    partition: u.partition,
                    on: u.on,
                    result: r,
                    traced: Vec::new(),
                });
            }
            Err((code, why)) => {
                tracing::debug!(partition = ?u.on, txn_id, "transactional produce refused: {why}");
                p.error_code = code.code();
                p.error_message = Some(super::str_bytes(why));
                p.base_offset = -1;
                p.log_start_offset = -1;
            }
        }
    }
}

/// How often a leader asks again while the producer's previous transaction is being ended.
const CONCURRENT_RETRY: Duration = Duration::from_millis(20);

/// The produce error for a coordinator's refusal, as Kafka's partition leaders answer it: the
/// coordinator moving or busy is retriable (NOT_ENOUGH_REPLICAS), a fenced producer an epoch
/// error; the rest as the coordinator said (before transaction version 2: INVALID_TXN_STATE).
fn verification_error(e: &TxnError, add: bool) -> ResponseError {
    match e {
        TxnError::NotCoordinator
        | TxnError::LoadInProgress
        | TxnError::CoordinatorNotAvailable(_) => ResponseError::NotEnoughReplicas,
        TxnError::ConcurrentTransactions if !add => ResponseError::NotEnoughReplicas,
        TxnError::ProducerFenced | TxnError::InvalidProducerEpoch => {
            ResponseError::InvalidProducerEpoch
        }
        _ if !add => ResponseError::InvalidTxnState,
        other => crate::errors::txn_error(other),
    }
}

fn failed(index: i32, err: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(err.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(super::str_bytes))
}
