//! The librdkafka producer loop, shared by `bench produce`, `bench e2e` and the fill phase of
//! `bench consume` when they run with `--client rdkafka` (the default). The schedule, window
//! and accounting are [`super::plan`]'s; this file only hands records to librdkafka.

use std::time::{Duration, Instant};

use futures::channel::oneshot::Canceled;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

use super::plan::{Plan, Stats, YIELD_EVERY};
use crate::cli::client::{describe_error, Producer};

/// A finished delivery: sequence number, intended send time and librdkafka's report.
type Settled = (u64, Instant, Result<OwnedDeliveryResult, Canceled>);

/// How long a fixed-rate producer sleeps at most between looks at its acknowledgements.
const SETTLE_STEP: Duration = Duration::from_micros(100);

/// Accounts for one finished delivery; the acknowledgement time is when it is looked at.
fn settle(
    stats: &mut Stats,
    (seq, intended, result): Settled,
    measure_from: Instant,
    window_end: Instant,
) {
    match result {
        Ok(Ok(_)) => stats.ack(intended, Instant::now(), measure_from, window_end),
        Ok(Err((err, _))) => stats.fail(seq, || describe_error(&err)),
        Err(_) => stats.fail(seq, || describe_error(&KafkaError::Canceled)),
    }
}

/// One producer: send per the plan, then wait for every outstanding acknowledgement.
pub async fn run(producer: Producer, plan: Plan) -> anyhow::Result<Stats> {
    let mut stats = Stats::new(plan.id)?;
    let window_end = plan.window_end();
    let mut buf = plan.payload.to_vec();
    let mut in_flight = FuturesUnordered::new();
    let mut seq = 0u64;
    loop {
        if plan.max_records.is_some_and(|max| seq >= max) {
            break;
        }
        // Settle acknowledgements that have already arrived, so that their latency is taken
        // now and not whenever the window next fills up.
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            settle(&mut stats, done, plan.measure_from, window_end);
        }
        // A producer that never has to wait would otherwise keep its worker thread to itself
        // and starve the other producers' tasks.
        if seq % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        let due = plan.due(seq);
        if due.is_some_and(|due| due >= window_end) {
            break;
        }
        while in_flight.len() >= plan.max_outstanding {
            match in_flight.next().await {
                Some(done) => settle(&mut stats, done, plan.measure_from, window_end),
                None => break,
            }
        }
        if let Some(due) = due {
            // Collect acknowledgements while waiting for the slot, in steps short enough that
            // an acknowledgement's latency is taken within ~0.1 ms of its arrival.
            loop {
                while let Some(Some(done)) = in_flight.next().now_or_never() {
                    settle(&mut stats, done, plan.measure_from, window_end);
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(SETTLE_STEP));
            }
        }
        let now = Instant::now();
        if due.is_none() && now >= window_end {
            break;
        }
        let intended = due.unwrap_or(now);
        plan.stamp(&mut buf, seq, intended);
        let partition = plan.partitions[plan.partition_index(seq)];
        let mut record = FutureRecord::<(), [u8]>::to(&plan.topic)
            .payload(&buf[..])
            .partition(partition);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    in_flight.push(delivery.map(move |result| (seq, intended, result)));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's queue is full: make room by waiting for an acknowledgement.
                    record = returned;
                    match in_flight.next().await {
                        Some(done) => settle(&mut stats, done, plan.measure_from, window_end),
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
                Err((err, _)) => {
                    stats.fail(seq, || describe_error(&err));
                    break;
                }
            }
        }
        seq += 1;
    }
    stats.attempted = seq;
    while let Some(done) = in_flight.next().await {
        settle(&mut stats, done, plan.measure_from, window_end);
    }
    Ok(stats)
}
