//! The benchmark's producer loop, shared by `bench produce`, `bench e2e` and the fill phase of
//! `bench consume`.
//!
//! Latency is measured from the *intended* send time. At a fixed rate, record `i` of a producer
//! is due at a precomputed instant; when the producer falls behind (window full, librdkafka
//! queue full, slow scheduling) it sends as soon as it can, but the latency still counts from
//! the due instant, so stalls show up in the percentiles instead of being hidden by sending
//! fewer records ("coordinated omission"). Unthrottled, the intended time is the send call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot::Canceled;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use rdkafka::error::KafkaError;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinHandle;

use super::payload::{Clock, Stamp, STAMP_LEN};
use super::report::latency_histogram;
use crate::cli::client::{describe_error, Producer};

/// Records sent between voluntary yields to the async runtime.
const YIELD_EVERY: u64 = 64;

/// What one producer sends and when it stops.
#[derive(Clone)]
pub struct Plan {
    /// Producer index; also the partition rotation offset and the stamped producer id.
    pub id: u32,
    /// Number of producers in the run (spreads fixed-rate schedules evenly).
    pub producers: u32,
    /// Target topic.
    pub topic: Arc<str>,
    /// Partitions to rotate over, one record each in turn.
    pub partitions: Arc<[i32]>,
    /// Total records/s across all producers; `None` sends as fast as the window allows.
    pub total_rate: Option<f64>,
    /// Common time origin of all producers (and of the e2e consumer).
    pub clock: Clock,
    /// Records due before this instant are warm-up: excluded from latency and throughput.
    pub measure_from: Instant,
    /// No record is sent at or after this instant.
    pub stop_at: Option<Instant>,
    /// No more than this many records are sent.
    pub max_records: Option<u64>,
    /// Records that may await acknowledgement at once.
    pub max_outstanding: usize,
    /// Payload template; its first [`STAMP_LEN`] bytes are overwritten when `stamp_run` is set.
    pub payload: Arc<[u8]>,
    /// Run id to stamp into payloads (end-to-end mode).
    pub stamp_run: Option<u32>,
}

impl Plan {
    /// When record `seq` is due at a fixed rate. Producer `id` is offset by `id / total_rate`
    /// so that the producers interleave instead of sending in bursts.
    fn due(&self, seq: u64) -> Option<Instant> {
        let rate = self.total_rate?;
        let slot = seq as f64 * f64::from(self.producers) + f64::from(self.id);
        Some(self.clock.origin() + Duration::from_secs_f64(slot / rate))
    }
}

/// A finished delivery: sequence number, intended send time and librdkafka's report.
type Settled = (u64, Instant, Result<OwnedDeliveryResult, Canceled>);

/// Outcome of one producer (or, after [`Stats::merge`], of all of them).
pub struct Stats {
    /// Index of the producer (meaningless after merging).
    pub producer: u32,
    /// Intended-send-to-acknowledgement latency in µs of records due after the warm-up.
    pub latency: Histogram<u64>,
    /// Acknowledgements received inside the measurement window.
    pub acked_in_window: u64,
    /// All acknowledged records, warm-up included.
    pub acked: u64,
    /// Records that failed (enqueue or delivery).
    pub errors: u64,
    /// The first failure, rendered.
    pub first_error: Option<String>,
    /// Records attempted: sequence numbers `0..attempted` were used.
    pub attempted: u64,
    /// Sequence numbers that failed, for matching against what a consumer saw.
    pub failed_seqs: Vec<u64>,
}

impl Stats {
    fn new(producer: u32) -> anyhow::Result<Stats> {
        Ok(Stats {
            producer,
            latency: latency_histogram()?,
            acked_in_window: 0,
            acked: 0,
            errors: 0,
            first_error: None,
            attempted: 0,
            failed_seqs: Vec::new(),
        })
    }

    /// Accounts for one finished delivery; acknowledgements count towards throughput when
    /// they arrive inside `[measure_from, window_end)`.
    fn settle(
        &mut self,
        (seq, intended, result): Settled,
        measure_from: Instant,
        window_end: Instant,
    ) {
        let now = Instant::now();
        match result {
            Ok(Ok(_)) => {
                self.acked += 1;
                if intended >= measure_from {
                    let us = now.saturating_duration_since(intended).as_micros();
                    self.latency
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                }
                if now >= measure_from && now < window_end {
                    self.acked_in_window += 1;
                }
            }
            Ok(Err((err, _))) => self.fail(seq, &err),
            Err(_) => self.fail(seq, &KafkaError::Canceled),
        }
    }

    fn fail(&mut self, seq: u64, err: &KafkaError) {
        self.errors += 1;
        self.failed_seqs.push(seq);
        self.first_error.get_or_insert_with(|| describe_error(err));
    }

    /// Folds per-producer results into one (failed sequence numbers are dropped).
    pub fn merge(all: Vec<Stats>) -> anyhow::Result<Stats> {
        let mut total = Stats::new(0)?;
        for stats in all {
            total.latency.add(&stats.latency)?;
            total.acked_in_window += stats.acked_in_window;
            total.acked += stats.acked;
            total.errors += stats.errors;
            total.attempted += stats.attempted;
            if total.first_error.is_none() {
                total.first_error = stats.first_error;
            }
        }
        Ok(total)
    }
}

/// Starts one thread per producer; every producer gets the same plan apart from its id.
/// A producer owns its thread so it can wait for the next send time with a precise thread
/// sleep: a runtime timer fires on millisecond ticks and would send each record up to 1 ms
/// late, which the intended-time latency would then (rightly) blame on the broker.
pub fn spawn(producers: Vec<Producer>, plan: &Plan) -> Vec<JoinHandle<anyhow::Result<Stats>>> {
    producers
        .into_iter()
        .zip(0u32..)
        .map(|(producer, id)| {
            let plan = Plan { id, ..plan.clone() };
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(run(producer, plan))
            })
        })
        .collect()
}

/// Waits for the producer tasks, in id order.
pub async fn join(handles: Vec<JoinHandle<anyhow::Result<Stats>>>) -> anyhow::Result<Vec<Stats>> {
    let mut all = Vec::with_capacity(handles.len());
    for handle in handles {
        all.push(
            handle
                .await
                .map_err(|err| anyhow::anyhow!("producer task failed: {err}"))??,
        );
    }
    Ok(all)
}

/// How long a fixed-rate producer sleeps at most between looks at its acknowledgements.
const SETTLE_STEP: Duration = Duration::from_micros(100);

/// One producer: send per the plan, then wait for every outstanding acknowledgement.
async fn run(producer: Producer, plan: Plan) -> anyhow::Result<Stats> {
    let mut stats = Stats::new(plan.id)?;
    let window_end = plan
        .stop_at
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
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
            stats.settle(done, plan.measure_from, window_end);
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
                Some(done) => stats.settle(done, plan.measure_from, window_end),
                None => break,
            }
        }
        if let Some(due) = due {
            // Collect acknowledgements while waiting for the slot, in steps short enough that
            // an acknowledgement's latency is taken within ~0.1 ms of its arrival.
            loop {
                while let Some(Some(done)) = in_flight.next().now_or_never() {
                    stats.settle(done, plan.measure_from, window_end);
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
        if let Some(run) = plan.stamp_run {
            let stamp = Stamp {
                intended_us: plan.clock.epoch_us(intended),
                run,
                producer: plan.id,
                seq,
            };
            stamp.write(&mut buf[..STAMP_LEN]);
        }
        let index = (seq + u64::from(plan.id)) % plan.partitions.len() as u64;
        let partition = plan.partitions[index as usize];
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
                        Some(done) => stats.settle(done, plan.measure_from, window_end),
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
                Err((err, _)) => {
                    stats.fail(seq, &err);
                    break;
                }
            }
        }
        seq += 1;
    }
    stats.attempted = seq;
    while let Some(done) = in_flight.next().await {
        stats.settle(done, plan.measure_from, window_end);
    }
    Ok(stats)
}
