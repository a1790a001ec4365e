//! Transactional producers (`--transactional`, librdkafka only). Each producer has a
//! `transactional.id` of its own, calls `init_transactions` before the clock starts, then
//! repeats `begin_transaction`, `--txn-records` records, `commit_transaction`, the way an
//! application using transactions does. A transaction is only begun when its first record is
//! about to be sent, so a run never ends with an empty one open.
//!
//! librdkafka refuses to send while a commit is in progress, so the producer is stalled for the
//! whole commit: at a fixed rate the records due meanwhile go out late and their latency says
//! so (it counts from the intended send time, as always). The commit runs on a helper thread
//! while the producer's own thread keeps collecting acknowledgements, so their latency is taken
//! when they arrive and not when the commit returns.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use rdkafka::bindings::rd_kafka_flush;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::report::{latency_histogram, percentiles_ms};
use super::{BenchArgs, ClientKind};
use crate::cli::client::{describe_error, Acks, Producer};

/// Timeout of `init_transactions`, the flush before a commit, `commit_transaction` and
/// `abort_transaction`; a commit that takes longer fails the transaction.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts of a commit that fails with a retriable error.
const COMMIT_ATTEMPTS: u32 = 3;

/// How long the producer thread sleeps at most between looks at acknowledgements while a
/// commit runs.
const POLL_STEP: Duration = Duration::from_micros(100);

/// Refuses settings transactions cannot run with, before anything is created on the broker.
pub fn check_supported(args: &BenchArgs) -> anyhow::Result<()> {
    if args.flush_every.is_some() && args.client != ClientKind::Rdkafka {
        bail!("--flush-every needs --client rdkafka (it calls librdkafka's flush)");
    }
    if args.keys.is_some() && args.client != ClientKind::Rdkafka {
        bail!("--keys needs --client rdkafka (the native client sends records without keys)");
    }
    if !args.transactional && !args.idempotent {
        return Ok(());
    }
    let flag = if args.transactional {
        "--transactional"
    } else {
        "--idempotent"
    };
    if args.client != ClientKind::Rdkafka {
        bail!("{flag} needs --client rdkafka (the native client has no idempotence)");
    }
    if args.acks != Acks::All {
        bail!("{flag} needs --acks all (an idempotent producer waits for every replica)");
    }
    if args.max_in_flight > 5 {
        bail!(
            "{flag} allows at most 5 in-flight requests per connection (got --max-in-flight {})",
            args.max_in_flight
        );
    }
    Ok(())
}

/// Adds idempotence, and with `--transactional` the producer's own transactional id, to a
/// producer configuration. `run` (random per benchmark run) keeps runs from fencing each other.
pub fn configure(config: &mut ClientConfig, args: &BenchArgs, run: u32, producer: u32) {
    if args.transactional {
        config.set(
            "transactional.id",
            format!("strom-bench-{run:08x}-{producer}"),
        );
    }
    if args.transactional || args.idempotent {
        config.set("enable.idempotence", "true");
    }
}

/// How the producers deliver, for the line that starts a run ("" when plain).
pub fn describe(args: &BenchArgs) -> String {
    if args.transactional {
        format!(
            ", transactional ({} records per transaction)",
            args.txn_records
        )
    } else if args.idempotent {
        ", idempotent".to_string()
    } else {
        String::new()
    }
}

/// Prints where a transaction's time goes beyond the table: the part of each commit after
/// the flush of its last records, and the first record's acknowledgement latency.
pub fn print_commit_split(stats: &TxnStats) {
    let [p50, p99, p999, max] = percentiles_ms(&stats.end_latency);
    eprintln!(
        "commit_transaction after its flush (EndTxn): p50 {p50} ms, p99 {p99} ms, p99.9 {p999} ms, max {max} ms; {} commits in all, {} aborted",
        stats.commits, stats.aborted
    );
    let [p50, p99, p999, max] = percentiles_ms(&stats.first_ack_latency);
    eprintln!(
        "ack of each transaction's first record (AddPartitionsToTxn first): p50 {p50} ms, p99 {p99} ms, p99.9 {p999} ms, max {max} ms"
    );
}

/// Registers every producer's transactional id with its coordinator (`init_transactions`,
/// blocking), one after the other.
pub fn init(producers: &[Producer]) -> anyhow::Result<()> {
    for (id, producer) in producers.iter().enumerate() {
        producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|err| anyhow::anyhow!("producer {id}: init_transactions: {err}"))?;
    }
    Ok(())
}

/// Commit statistics of one producer (or, after [`TxnStats::merge`], of all of them).
pub struct TxnStats {
    /// Successful commits, warm-up included.
    pub commits: u64,
    /// Successful commits started inside the measured period.
    pub commits_in_window: u64,
    /// Duration (µs) of each `commit_transaction` call started in the measured period, as
    /// the application sees it: the flush of the transaction's last records included.
    pub commit_latency: Histogram<u64>,
    /// The part of the same commits after that flush (µs): EndTxn and what it waits for.
    pub end_latency: Histogram<u64>,
    /// Acknowledgement latency (µs) of each transaction's first record, which also waits
    /// for the partitions to be added to the transaction (AddPartitionsToTxn).
    pub first_ack_latency: Histogram<u64>,
    /// Transactions aborted because their commit failed.
    pub aborted: u64,
}

impl TxnStats {
    pub fn new() -> anyhow::Result<TxnStats> {
        Ok(TxnStats {
            commits: 0,
            commits_in_window: 0,
            commit_latency: latency_histogram()?,
            end_latency: latency_histogram()?,
            first_ack_latency: latency_histogram()?,
            aborted: 0,
        })
    }

    pub fn merge(&mut self, other: &TxnStats) -> anyhow::Result<()> {
        self.commits += other.commits;
        self.commits_in_window += other.commits_in_window;
        self.commit_latency.add(&other.commit_latency)?;
        self.end_latency.add(&other.end_latency)?;
        self.first_ack_latency.add(&other.first_ack_latency)?;
        self.aborted += other.aborted;
        Ok(())
    }

    /// Accounts for a successful commit; its latency counts when it started inside
    /// `[measure_from, window_end)`.
    pub fn committed(&mut self, commit: &Committed, measure_from: Instant, window_end: Instant) {
        self.commits += 1;
        if commit.started >= measure_from && commit.started < window_end {
            self.commits_in_window += 1;
            self.commit_latency
                .saturating_record(micros(commit.ended - commit.started));
            self.end_latency
                .saturating_record(micros(commit.ended - commit.flushed));
        }
    }

    /// Accounts for the acknowledgement of a transaction's first record (of the measured
    /// period), `latency` after its intended send time.
    pub fn first_acked(&mut self, latency: Duration) {
        self.first_ack_latency.saturating_record(micros(latency));
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Timestamps of one successful commit.
pub struct Committed {
    started: Instant,
    flushed: Instant,
    ended: Instant,
}

/// How ending a transaction went.
pub enum Ended {
    /// No transaction was open.
    Nothing,
    /// The transaction committed.
    Committed(Committed),
    /// The commit failed and the transaction was aborted (or could not be); the records
    /// `first..next_seq` it held are to be counted as failed. `fatal`: the producer cannot
    /// begin another transaction.
    Failed {
        first: u64,
        error: String,
        fatal: bool,
    },
}

/// One producer's transaction schedule: which records the open transaction holds.
pub struct Txn {
    /// Records per transaction.
    every: u64,
    /// Sequence number of the open transaction's first record.
    first: Option<u64>,
}

impl Txn {
    pub fn new(every: u64) -> Txn {
        Txn {
            every: every.max(1),
            first: None,
        }
    }

    /// Begins a transaction for record `seq` unless one is open.
    pub fn begin(&mut self, producer: &Producer, seq: u64) -> Result<(), String> {
        if self.first.is_none() {
            producer
                .begin_transaction()
                .map_err(|err| format!("begin_transaction: {}", describe_error(&err)))?;
            self.first = Some(seq);
        }
        Ok(())
    }

    /// True when the open transaction holds `--txn-records` records once records up to
    /// `next_seq` (exclusive) were sent.
    pub fn full(&self, next_seq: u64) -> bool {
        self.first
            .is_some_and(|first| next_seq.saturating_sub(first) >= self.every)
    }

    /// Commits the open transaction, if any, on a helper thread; meanwhile `settle_ready`
    /// is called every [`POLL_STEP`] to collect acknowledgements as they arrive. A failed
    /// commit aborts the transaction.
    pub fn end(&mut self, producer: &Producer, mut settle_ready: impl FnMut()) -> Ended {
        let Some(first) = self.first.take() else {
            return Ended::Nothing;
        };
        let started = Instant::now();
        let result = std::thread::scope(|scope| {
            let worker = scope.spawn(|| commit(producer));
            while !worker.is_finished() {
                settle_ready();
                std::thread::sleep(POLL_STEP);
            }
            worker
                .join()
                .unwrap_or_else(|_| Err((KafkaError::Canceled, false)))
        });
        match result {
            Ok(flushed) => Ended::Committed(Committed {
                started,
                flushed,
                ended: Instant::now(),
            }),
            Err((err, abortable)) => {
                let mut error = format!("commit_transaction: {}", describe_error(&err));
                let aborted = abortable
                    .then(|| producer.abort_transaction(TXN_TIMEOUT))
                    .map(|r| r.map_err(|e| describe_error(&e)));
                let fatal = match aborted {
                    Some(Ok(())) => false,
                    Some(Err(abort_err)) => {
                        error.push_str(&format!("; abort_transaction: {abort_err}"));
                        true
                    }
                    None => true,
                };
                Ended::Failed {
                    first,
                    error,
                    fatal,
                }
            }
        }
    }
}

/// Flushes the transaction's records and commits it, retrying retriable commit errors.
/// Returns when the flush ended; on failure, the error and whether the transaction can be
/// aborted (the producer is not fenced or otherwise dead).
fn commit(producer: &Producer) -> Result<Instant, (KafkaError, bool)> {
    // commit_transaction flushes too; flushing first separates the wait for the last
    // records' acknowledgements from the commit itself.
    if let Err(err) = flush(producer, TXN_TIMEOUT) {
        return Err((err, true));
    }
    let flushed = Instant::now();
    let mut attempt = 1;
    loop {
        match producer.commit_transaction(TXN_TIMEOUT) {
            Ok(()) => return Ok(flushed),
            Err(KafkaError::Transaction(err))
                if err.is_retriable() && attempt < COMMIT_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(err) => {
                let abortable = match &err {
                    KafkaError::Transaction(e) => e.txn_requires_abort() && !e.is_fatal(),
                    _ => true,
                };
                return Err((err, abortable));
            }
        }
    }
}

/// librdkafka's own flush: sends what lingers at once and waits until every delivery report
/// has been handled (by the producer's polling thread). rust-rdkafka's `Producer::flush`
/// (which its `commit_transaction` calls first) instead polls in steps that each block for
/// the full 100 ms, which would add up to 100 ms to every commit; after this flush it returns
/// at once, and librdkafka's commit finds nothing left to flush either.
pub(super) fn flush(producer: &Producer, timeout: Duration) -> Result<(), KafkaError> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is the producer's live librdkafka handle, borrowed for the call;
    // rd_kafka_flush may be called from any thread.
    let code = unsafe { rd_kafka_flush(producer.client().native_ptr(), timeout_ms) };
    match RDKafkaErrorCode::from(code) {
        RDKafkaErrorCode::NoError => Ok(()),
        code => Err(KafkaError::Flush(code)),
    }
}

/// Sequence numbers `first..next_seq` not already in `failed`: the records of an aborted
/// transaction that still count as delivered.
pub fn newly_failed(failed: &[u64], first: u64, next_seq: u64) -> Vec<u64> {
    let known: HashSet<u64> = failed.iter().copied().filter(|&s| s >= first).collect();
    (first..next_seq).filter(|s| !known.contains(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_after_every_records() {
        let mut txn = Txn::new(3);
        assert!(!txn.full(10), "no transaction open");
        txn.first = Some(10);
        assert!(!txn.full(12));
        assert!(txn.full(13));
    }

    #[test]
    fn aborted_records_fail_once() {
        assert_eq!(newly_failed(&[1, 5, 7], 4, 9), vec![4, 6, 8]);
    }
}
