//! Produce: validate and append every partition's batches now (so pipelined requests keep their
//! order), then answer once the appends are durable.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use strom_broker::{BrokerError, Partition, Topic};
use strom_storage::batch;

use super::Reply;
use crate::Context;

/// Where to wait before a partition's answer may be sent.
struct Wait {
    topic: usize,
    partition: usize,
    on: Arc<Partition>,
    result: strom_broker::AppendResult,
}

pub fn handle(ctx: &Arc<Context>, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let mut waits = Vec::new();
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
            let resp = if !valid_acks {
                failed(index, ResponseError::InvalidRequiredAcks, None)
            } else {
                match append(ctx, &name, &topic, pd) {
                    Ok((p, r)) => {
                        waits.push(Wait {
                            topic: ti,
                            partition: pi,
                            on: p,
                            result: r,
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
    if acks == 0 {
        return Reply::Nothing;
    }
    let response = ProduceResponse::default().with_responses(responses);
    if waits.is_empty() {
        return Reply::Now(Box::new(response.into()));
    }
    // Set now, not when the connection's writer first polls this reply: replies are awaited in
    // request order, so a deadline started there would add up behind earlier stuck requests.
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(1) as u64);
    Reply::Later(Box::pin(async move {
        let mut response = response;
        for w in waits {
            let error =
                match tokio::time::timeout_at(deadline, w.on.wait_ack(&w.result, acks)).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => crate::errors::kafka_error(&e),
                    // No quorum (or a slow disk): Kafka's answer, never a success.
                    Err(_) => ResponseError::RequestTimedOut,
                };
            let p = &mut response.responses[w.topic].partition_responses[w.partition];
            p.error_code = error.code();
            p.base_offset = -1;
        }
        Some(response.into())
    }))
}

type Failure = (ResponseError, Option<String>);

fn append(
    ctx: &Context,
    name: &str,
    topic: &Result<Option<Arc<Topic>>, BrokerError>,
    pd: PartitionProduceData,
) -> Result<(Arc<Partition>, strom_broker::AppendResult), Failure> {
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
        Ok(r) => Ok((p, r)),
        Err(e) => {
            if let BrokerError::Storage(s) = &e {
                tracing::warn!(partition = ?p, "append failed: {s}");
            }
            Err((crate::errors::kafka_error(&e), Some(e.to_string())))
        }
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
