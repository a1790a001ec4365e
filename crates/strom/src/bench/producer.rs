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

use super::plan::{self, Plan, Stats};
use super::txn::{self, Ended, Txn};
use crate::cli::client::{describe_error, Producer};

/// A finished delivery: sequence number, intended send time and librdkafka's report.
type Settled = (u64, Instant, Result<OwnedDeliveryResult, Canceled>);

/// Accounts for one finished delivery; the acknowledgement time is when it is looked at.
fn settle(stats: &mut Stats, (seq, intended, result): Settled, plan: &Plan, window_end: Instant) {
    match result {
        Ok(Ok(_)) => {
            let acked_at = Instant::now();
            stats.ack(intended, acked_at, plan.measure_from, window_end);
            // Transaction k holds records k·N..(k+1)·N; its first one also waits for
            // AddPartitionsToTxn.
            if plan.txn_records.is_some_and(|n| seq % n == 0) && intended >= plan.measure_from {
                stats
                    .txn
                    .first_acked(acked_at.saturating_duration_since(intended));
            }
        }
        Ok(Err((err, _))) => stats.fail(seq, || describe_error(&err)),
        Err(_) => stats.fail(seq, || describe_error(&KafkaError::Canceled)),
    }
}

/// One producer: send per the plan, then wait for every outstanding acknowledgement. A
/// transactional producer (`plan.txn_records`) commits every that many records and at the end.
pub async fn run(producer: Producer, plan: Plan) -> anyhow::Result<Stats> {
    let mut stats = Stats::new(plan.id)?;
    let window_end = plan.window_end();
    let mut buf = plan.payload.to_vec();
    let mut in_flight = FuturesUnordered::new();
    let mut txn = plan.txn_records.map(Txn::new);
    let mut seq = 0u64;
    loop {
        if plan.max_records.is_some_and(|max| seq >= max) {
            break;
        }
        let Some(intended) = plan::next_send(&plan, seq, window_end, &mut in_flight, |done| {
            settle(&mut stats, done, &plan, window_end)
        })
        .await
        else {
            break;
        };
        if let Some(txn) = &mut txn {
            if let Err(err) = txn.begin(&producer, seq) {
                stats.fail(seq, || err);
                seq += 1;
                break;
            }
        }
        plan.stamp(&mut buf, seq, intended);
        let partition = plan.partitions[plan.partition_index(seq)];
        let key = plan.keys.map(|n| (seq % n).to_be_bytes());
        let mut record = FutureRecord::<[u8], [u8]>::to(&plan.topic)
            .payload(&buf[..])
            .partition(partition);
        if let Some(key) = &key {
            record = record.key(&key[..]);
        }
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
                        Some(done) => settle(&mut stats, done, &plan, window_end),
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
        if plan.flush_every.is_some_and(|n| seq.is_multiple_of(n)) {
            if let Err(e) = txn::flush(&producer, txn::TXN_TIMEOUT) {
                stats.fail(seq, || describe_error(&e));
                break;
            }
            let window_end = plan.window_end();
            while let Some(Some(done)) = in_flight.next().now_or_never() {
                settle(&mut stats, done, &plan, window_end);
            }
        }
        if let Some(txn) = txn.as_mut().filter(|txn| txn.full(seq)) {
            if !end_txn(&producer, txn, seq, &mut stats, &mut in_flight, &plan).await {
                break;
            }
        }
    }
    stats.attempted = seq;
    if let Some(txn) = &mut txn {
        end_txn(&producer, txn, seq, &mut stats, &mut in_flight, &plan).await;
    }
    while let Some(done) = in_flight.next().await {
        settle(&mut stats, done, &plan, window_end);
    }
    Ok(stats)
}

/// Commits the open transaction (records up to `next_seq`, exclusive), settling
/// acknowledgements while the commit runs. If the commit fails, the transaction is aborted and
/// its records count as failed (a read_committed consumer never sees them). Returns false when
/// the producer cannot go on.
async fn end_txn<F>(
    producer: &Producer,
    txn: &mut Txn,
    next_seq: u64,
    stats: &mut Stats,
    in_flight: &mut FuturesUnordered<F>,
    plan: &Plan,
) -> bool
where
    F: std::future::Future<Output = Settled>,
{
    let window_end = plan.window_end();
    let ended = txn.end(producer, || {
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            settle(stats, done, plan, window_end);
        }
    });
    match ended {
        Ended::Nothing => true,
        Ended::Committed(commit) => {
            stats.txn.committed(&commit, plan.measure_from, window_end);
            true
        }
        Ended::Failed {
            first,
            error,
            fatal,
        } => {
            stats.txn.aborted += 1;
            // An abort fails whatever was still queued; wait for those reports first.
            while let Some(done) = in_flight.next().await {
                settle(stats, done, plan, window_end);
            }
            for seq in txn::newly_failed(&stats.failed_seqs, first, next_seq) {
                stats.fail(seq, || error.clone());
            }
            !fatal
        }
    }
}
