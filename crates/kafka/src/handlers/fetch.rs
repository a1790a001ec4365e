//! Fetch: read whole batches below the high watermark (read_committed: below the last stable
//! offset, with the aborted transactions in the range listed); if fewer than `min_bytes` are ready, wait
//! for any requested partition's high watermark to move, up to `max_wait_ms`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;
use strom_broker::partition::Isolation;
use strom_broker::Partition;
use strom_storage::FirstBatch;

use super::Reply;
use crate::Context;

/// Longest long-poll we honour, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 30_000;

struct Want {
    partition_index: i32,
    partition: Result<Arc<Partition>, ResponseError>,
    fetch_offset: i64,
    max_bytes: usize,
}

struct TopicWants {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<Want>,
}

pub fn handle(ctx: &Arc<Context>, req: FetchRequest) -> Reply {
    let wants: Vec<TopicWants> = req
        .topics
        .into_iter()
        .map(|ft| {
            let topic = ctx.broker.topic(&ft.topic.0);
            let partitions = ft
                .partitions
                .into_iter()
                .map(|fp| {
                    let partition = topic
                        .as_ref()
                        .and_then(|t| t.partition(fp.partition))
                        .ok_or_else(|| {
                            super::cluster::missing_partition(ctx, &ft.topic.0, fp.partition)
                        })
                        .and_then(|p| {
                            super::cluster::check_serving(&p, fp.current_leader_epoch).map(|_| p)
                        });
                    Want {
                        partition_index: fp.partition,
                        partition,
                        fetch_offset: fp.fetch_offset,
                        max_bytes: fp.partition_max_bytes.max(0) as usize,
                    }
                })
                .collect();
            TopicWants {
                name: ft.topic,
                topic_id: ft.topic_id,
                partitions,
            }
        })
        .collect();
    let isolation = if req.isolation_level == super::list_offsets::READ_COMMITTED {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let arrived_at = std::time::SystemTime::now();
    Reply::Later(Box::pin(async move {
        let response = long_poll(&wants, min_bytes, max_bytes, max_wait, isolation).await;
        served(&wants, &response, arrived_at);
        Some(response.into())
    }))
}

/// Reads until `min_bytes` are ready, a partition has an error, or `max_wait` has passed.
async fn long_poll(
    wants: &[TopicWants],
    min_bytes: usize,
    max_bytes: usize,
    max_wait: Duration,
    isolation: Isolation,
) -> FetchResponse {
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        // Subscribe before reading, so a high watermark that moves after the read still wakes us.
        let mut watches: Vec<_> = wants
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|w| w.partition.as_ref().ok().map(|p| p.watch_high_watermark()))
            .collect();
        let (response, bytes, errors) = read_all(wants, max_bytes, isolation).await;
        if bytes >= min_bytes
            || errors
            || watches.is_empty()
            || tokio::time::Instant::now() >= deadline
        {
            return response;
        }
        let any_moved =
            futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, any_moved).await.is_err() {
            return read_all(wants, max_bytes, isolation).await.0;
        }
    }
}

/// Adds what the response serves to its topics' `strom_topic_*_out` counters, and records a
/// fetch span for partitions whose records carry trace contexts.
fn served(wants: &[TopicWants], response: &FetchResponse, arrived_at: std::time::SystemTime) {
    for (t, topic) in wants.iter().zip(&response.responses) {
        for (w, data) in t.partitions.iter().zip(&topic.partitions) {
            let (Ok(p), Some(records)) = (&w.partition, &data.records) else {
                continue;
            };
            if records.is_empty() {
                continue;
            }
            let traffic = p.traffic();
            traffic.bytes_out.inc_by(records.len() as u64);
            traffic
                .records_out
                .inc_by(strom_storage::batch::count_records(records));
            if crate::trace::enabled() {
                let traced = crate::trace::record_contexts(std::slice::from_ref(records));
                crate::trace::span(
                    format!("fetch {}", p.topic),
                    arrived_at,
                    &traced,
                    crate::trace::partition_attributes(&p.topic, p.index),
                );
            }
        }
    }
}

/// Reads every wanted partition within the response budget; returns the response, the record
/// bytes in it and whether any partition carries an error (which is answered at once).
/// As in Kafka (KIP-74), only the response's first batch may exceed a limit: once any partition
/// returned data, later partitions get only batches that fit what is left.
async fn read_all(
    wants: &[TopicWants],
    max_bytes: usize,
    isolation: Isolation,
) -> (FetchResponse, usize, bool) {
    let mut budget = max_bytes;
    let mut total = 0;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(wants.len());
    for t in wants {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for w in &t.partitions {
            let first = if total == 0 {
                FirstBatch::Whole
            } else {
                FirstBatch::WithinLimit
            };
            let data = read_one(w, budget, first, isolation).await;
            if data.error_code != 0 {
                any_error = true;
            }
            let n = data.records.as_ref().map_or(0, |r| r.len());
            budget = budget.saturating_sub(n);
            total += n;
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        any_error,
    )
}

async fn read_one(
    w: &Want,
    budget: usize,
    first: FirstBatch,
    isolation: Isolation,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(w.partition_index)
        .with_preferred_read_replica(BrokerId(-1))
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1);
    let p = match &w.partition {
        Ok(p) => p,
        Err(e) => return base.with_error_code(e.code()),
    };
    let with_offsets = |d: PartitionData, hw: u64, lso: u64, start: u64| {
        d.with_high_watermark(hw as i64)
            .with_last_stable_offset(lso as i64)
            .with_log_start_offset(start as i64)
    };
    let now = |d: PartitionData| {
        with_offsets(
            d,
            p.high_watermark(),
            p.last_stable_offset(),
            p.log_start_offset(),
        )
    };
    let Ok(offset) = u64::try_from(w.fetch_offset) else {
        return now(base).with_error_code(ResponseError::OffsetOutOfRange.code());
    };
    let limit = w.max_bytes.min(budget);
    if limit == 0 {
        return now(base).with_records(Some(Default::default()));
    }
    // Below the local log start of a tiered partition, this reads the object store.
    match p.fetch(offset, limit, first, isolation).await {
        Ok(d) => {
            let aborted = (isolation == Isolation::ReadCommitted).then(|| {
                d.aborted
                    .iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(kafka_protocol::messages::ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset as i64)
                    })
                    .collect()
            });
            with_offsets(
                base,
                d.high_watermark,
                d.last_stable_offset,
                d.log_start_offset,
            )
            .with_aborted_transactions(aborted)
            .with_records(Some(d.records))
        }
        Err(e) => now(base).with_error_code(crate::errors::code(&e)),
    }
}
