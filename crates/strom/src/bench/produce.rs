//! `strom bench produce`: producer throughput and acknowledgement latency.

use std::sync::Arc;
use std::time::Duration;

use super::payload::Clock;
use super::plan::{self, Plan, Stats};
use super::report::{self, Table, MBPS_HEADER, PERCENTILE_HEADERS};
use super::txn::{self, TxnStats};
use super::BenchArgs;

/// Runs producers for warm-up + duration and prints one result line.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let topic = args.topic_name();
    let partitions = super::prepare_topic(&args, &topic, true).await?;
    let producers = super::create_producers(&args, args.acks, &topic, &partitions).await?;
    let rate = args.rate.unwrap_or(0);
    eprintln!(
        "bench produce: {} client, topic {topic} ({} partitions), {} producers{}, {} B records, rate {}, warm-up {} s, measuring {} s",
        args.client.as_str(),
        partitions.len(),
        args.producers,
        txn::describe(&args),
        args.message_size,
        rate_label(rate),
        args.warmup,
        args.duration
    );

    let clock = Clock::start();
    let measure_from = clock.origin() + Duration::from_secs(args.warmup);
    let plan = Plan {
        id: 0,
        producers: args.producers,
        topic: Arc::from(topic.as_str()),
        partitions: Arc::from(partitions.as_slice()),
        total_rate: (rate > 0).then_some(rate as f64),
        clock,
        measure_from,
        stop_at: Some(measure_from + Duration::from_secs(args.duration)),
        max_records: None,
        max_outstanding: usize::try_from(args.max_outstanding).unwrap_or(usize::MAX),
        payload: super::random_payload(args.message_size)?,
        stamp_run: None,
        txn_records: args.txn_records(),
        flush_every: args.flush_every,
        keys: args.keys,
    };
    let progress = super::progress::Progress::start(
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.duration),
    );
    let stats = Stats::merge(plan::join(producers.spawn(&plan)).await?)?;
    drop(progress);

    let label = args.label("produce");
    // Transactional: one row for the records' acknowledgements, one for the commits.
    let (extra, measure): (&[&str], Vec<String>) = if args.transactional {
        (&["measure"], vec!["ack".to_string()])
    } else {
        (&[], Vec::new())
    };
    let mut table = Table::new(&produce_header(extra));
    table.row(produce_row(
        &args,
        &label,
        partitions.len(),
        rate,
        &stats,
        &measure,
    ));
    if args.transactional {
        table.row(commit_row(
            &args,
            &label,
            partitions.len(),
            rate,
            &stats.txn,
        ));
    }
    table.print();
    if args.transactional {
        txn::print_commit_split(&stats.txn);
    }
    if let Some(err) = &stats.first_error {
        eprintln!("{} records failed; first error: {err}", stats.errors);
    }
    Ok(())
}

/// "max" for an unthrottled run, else the target rate.
pub fn rate_label(rate: u64) -> String {
    if rate == 0 {
        "max".to_string()
    } else {
        rate.to_string()
    }
}

/// The produce result columns, with `extra` columns inserted after "workload".
pub fn produce_header(extra: &[&str]) -> Vec<String> {
    let mut header = vec!["workload".to_string()];
    header.extend(extra.iter().map(|s| s.to_string()));
    for column in [
        "acks",
        "compression",
        "partitions",
        "producers",
        "msg_size",
        "rate",
        "records",
        "records/s",
        MBPS_HEADER,
    ] {
        header.push(column.to_string());
    }
    header.extend(PERCENTILE_HEADERS.iter().map(|s| s.to_string()));
    header.push("errors".to_string());
    header
}

/// The configuration cells of a row (acks .. rate).
pub fn row_context(args: &BenchArgs, partitions: usize, rate: u64) -> [String; 6] {
    [
        args.acks.as_str().to_string(),
        args.compression.as_str().to_string(),
        partitions.to_string(),
        args.producers.to_string(),
        args.message_size.to_string(),
        rate_label(rate),
    ]
}

/// One row under [`produce_header`]: acknowledged records in the measured period, their
/// throughput, the latency percentiles and the error count.
pub fn produce_row(
    args: &BenchArgs,
    label: &str,
    partitions: usize,
    rate: u64,
    stats: &Stats,
    extra: &[String],
) -> Vec<String> {
    let secs = args.duration as f64;
    let mut row = vec![label.to_string()];
    row.extend(extra.iter().cloned());
    row.extend(row_context(args, partitions, rate));
    row.extend([
        stats.acked_in_window.to_string(),
        report::rate(stats.acked_in_window, secs),
        report::mb_per_sec(
            stats.acked_in_window.saturating_mul(args.message_size),
            secs,
        ),
    ]);
    row.extend(report::percentiles_ms(&stats.latency));
    row.push(stats.errors.to_string());
    row
}

/// The "commit" row of a transactional run, under `produce_header(&["measure"])`: commits
/// started in the measured period (in "records"), commits/s, the latency of the
/// `commit_transaction` calls and, as errors, the transactions aborted.
pub fn commit_row(
    args: &BenchArgs,
    label: &str,
    partitions: usize,
    rate: u64,
    txn: &TxnStats,
) -> Vec<String> {
    let mut row = vec![label.to_string(), "commit".to_string()];
    row.extend(row_context(args, partitions, rate));
    row.extend([
        txn.commits_in_window.to_string(),
        report::rate(txn.commits_in_window, args.duration as f64),
        "-".to_string(),
    ]);
    row.extend(report::percentiles_ms(&txn.commit_latency));
    row.push(txn.aborted.to_string());
    row
}
