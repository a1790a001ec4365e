//! What every producer of a run shares, whichever client library sends the records: the plan
//! (schedule, window, payload), the per-producer statistics and the thread each producer runs
//! on. `producer` (librdkafka) and `native::producer` (Strom's own lean client) only differ in
//! how a record reaches the broker; both account for it here, so their numbers mean the same.
//!
//! Latency is measured from the *intended* send time. At a fixed rate, record `i` of a producer
//! is due at a precomputed instant; when the producer falls behind (window full, client queue
//! full, slow scheduling) it sends as soon as it can, but the latency still counts from the due
//! instant, so stalls show up in the percentiles instead of being hidden by sending fewer
//! records ("coordinated omission"). Unthrottled, the intended time is the send call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

use super::payload::{Clock, Stamp, STAMP_LEN};
use super::report::latency_histogram;
use super::txn::TxnStats;

/// Records sent between voluntary yields to the async runtime.
pub const YIELD_EVERY: u64 = 64;

/// How long a fixed-rate producer sleeps at most between looks at its acknowledgements.
const SETTLE_STEP: Duration = Duration::from_micros(100);

/// Waits until a record's send time, taking the acknowledgements that arrive meanwhile
/// (`settle_ready`) in steps short enough that each one's latency is taken within ~0.1 ms of
/// its arrival. The producer's own thread sleeps: a runtime timer would round up to 1 ms.
pub fn wait_until(due: Instant, mut settle_ready: impl FnMut()) {
    loop {
        settle_ready();
        let now = Instant::now();
        if now >= due {
            return;
        }
        std::thread::sleep((due - now).min(SETTLE_STEP));
    }
}

/// The pacing of a producer whose acknowledgements are futures (librdkafka, NATS): settles
/// those already arrived, yields to the runtime now and then, waits while `max_outstanding`
/// are in flight and until record `seq` is due (settling meanwhile). Returns when `seq` is
/// meant to be sent, or `None` once the measured window is over.
pub async fn next_send<F: Future>(
    plan: &Plan,
    seq: u64,
    window_end: Instant,
    in_flight: &mut FuturesUnordered<F>,
    mut settle: impl FnMut(F::Output),
) -> Option<Instant> {
    // Acknowledgements already here are settled now, not whenever the window next fills up.
    while let Some(Some(done)) = in_flight.next().now_or_never() {
        settle(done);
    }
    // A producer that never has to wait would otherwise keep its worker thread to itself and
    // starve the other producers' tasks.
    if seq % YIELD_EVERY == YIELD_EVERY - 1 {
        tokio::task::yield_now().await;
    }
    let due = plan.due(seq);
    if due.is_some_and(|due| due >= window_end) {
        return None;
    }
    while in_flight.len() >= plan.max_outstanding {
        match in_flight.next().await {
            Some(done) => settle(done),
            None => break,
        }
    }
    if let Some(due) = due {
        wait_until(due, || {
            while let Some(Some(done)) = in_flight.next().now_or_never() {
                settle(done);
            }
        });
    }
    let now = Instant::now();
    if due.is_none() && now >= window_end {
        return None;
    }
    Some(due.unwrap_or(now))
}

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
    /// Records per transaction of a transactional producer (`--transactional`).
    pub txn_records: Option<u64>,
    /// A producer without transactions flushes every this many records (`--flush-every`).
    pub flush_every: Option<u64>,
    /// Records carry key `seq % keys` (8 bytes, big-endian) when set (`--keys`).
    pub keys: Option<u64>,
}

impl Plan {
    /// When record `seq` is due at a fixed rate. Producer `id` is offset by `id / total_rate`
    /// so that the producers interleave instead of sending in bursts.
    pub fn due(&self, seq: u64) -> Option<Instant> {
        let rate = self.total_rate?;
        let slot = seq as f64 * f64::from(self.producers) + f64::from(self.id);
        Some(self.clock.origin() + Duration::from_secs_f64(slot / rate))
    }

    /// The end of the measured period (far in the future for runs bounded by record count).
    pub fn window_end(&self) -> Instant {
        self.stop_at
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
    }

    /// Index into [`Plan::partitions`] of record `seq`'s partition (round-robin, offset by id).
    pub fn partition_index(&self, seq: u64) -> usize {
        ((seq + u64::from(self.id)) % self.partitions.len() as u64) as usize
    }

    /// Writes record `seq`'s stamp over the start of `buf` when this run stamps payloads.
    pub fn stamp(&self, buf: &mut [u8], seq: u64, intended: Instant) {
        if let Some(run) = self.stamp_run {
            let stamp = Stamp {
                intended_us: self.clock.epoch_us(intended),
                run,
                producer: self.id,
                seq,
            };
            stamp.write(&mut buf[..STAMP_LEN]);
        }
    }
}

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
    /// Commits of a transactional producer.
    pub txn: TxnStats,
}

impl Stats {
    pub fn new(producer: u32) -> anyhow::Result<Stats> {
        Ok(Stats {
            producer,
            latency: latency_histogram()?,
            acked_in_window: 0,
            acked: 0,
            errors: 0,
            first_error: None,
            attempted: 0,
            failed_seqs: Vec::new(),
            txn: TxnStats::new()?,
        })
    }

    /// Accounts for one acknowledgement that arrived at `acked_at`; it counts towards
    /// throughput when it arrived inside `[measure_from, window_end)`.
    pub fn ack(
        &mut self,
        intended: Instant,
        acked_at: Instant,
        measure_from: Instant,
        window_end: Instant,
    ) {
        self.acked += 1;
        super::progress::ACKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if intended >= measure_from {
            let us = acked_at.saturating_duration_since(intended).as_micros();
            self.latency
                .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
        }
        if acked_at >= measure_from && acked_at < window_end {
            self.acked_in_window += 1;
        }
    }

    /// Accounts for one failed record; `describe` renders the error (only the first is kept,
    /// so it is only called once).
    pub fn fail(&mut self, seq: u64, describe: impl FnOnce() -> String) {
        self.errors += 1;
        self.failed_seqs.push(seq);
        if self.first_error.is_none() {
            self.first_error = Some(describe());
        }
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
            total.txn.merge(&stats.txn)?;
            if total.first_error.is_none() {
                total.first_error = stats.first_error;
            }
        }
        Ok(total)
    }
}

/// Starts one thread per producer; every producer gets the same plan apart from its id.
/// A producer owns its thread so it can wait for the next send time precisely: a runtime
/// timer fires on millisecond ticks and would send each record up to 1 ms late, which the
/// intended-time latency would then (rightly) blame on the broker. `run` executes on a
/// current-thread runtime of its own, so it need not be `Send`.
pub fn spawn<C, F, Fut>(
    clients: Vec<C>,
    plan: &Plan,
    run: F,
) -> Vec<JoinHandle<anyhow::Result<Stats>>>
where
    C: Send + 'static,
    F: Fn(C, Plan) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = anyhow::Result<Stats>>,
{
    clients
        .into_iter()
        .zip(0u32..)
        .map(|(client, id)| {
            let plan = Plan { id, ..plan.clone() };
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(run(client, plan))
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
