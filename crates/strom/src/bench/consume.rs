//! `strom bench consume`: catch-up read throughput. Reads a topic from the beginning until
//! `--bytes` of payload have been read or the end offsets seen at start are reached,
//! optionally writing the data first (`--fill`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset};

use super::payload::Clock;
use super::plan::{self, Plan, Stats};
use super::report::{self, Table, MBPS_HEADER};
use super::{native, Acks, BenchArgs, ClientKind};
use crate::cli::client::{self, describe_error, Consumer, QuietContext};

/// A consumer that receives nothing for this long stops (and the run says so).
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Arguments of `strom bench consume`.
#[derive(clap::Args, Debug)]
pub struct ConsumeBenchArgs {
    #[command(flatten)]
    pub common: BenchArgs,
    /// Consumers (each with its own connections); the partitions are divided among them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub consumers: u32,
    /// Payload bytes to read (and to write with --fill); accepts KiB, MiB, GiB suffixes.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub bytes: u64,
    /// First produce --bytes of random records at maximum rate with acks=all.
    #[arg(long)]
    pub fill: bool,
}

/// What one consumer read.
struct ReadResult {
    records: u64,
    bytes: u64,
    finished: Instant,
    stalled: bool,
}

impl ReadResult {
    fn start() -> ReadResult {
        ReadResult {
            records: 0,
            bytes: 0,
            finished: Instant::now(),
            stalled: false,
        }
    }
}

/// Optionally fills the topic, then reads it with `--consumers` consumers and prints one line.
pub async fn run(args: ConsumeBenchArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if common.transactional {
        bail!("--transactional is for bench produce and bench e2e");
    }
    if common.topic.is_none() && !args.fill {
        bail!("bench consume reads an existing topic: pass --topic NAME, or --fill to write --bytes first");
    }
    let topic = common.topic_name();
    let partitions = super::prepare_topic(common, &topic, args.fill).await?;
    if args.fill {
        fill(common, &topic, &partitions, args.bytes).await?;
    }

    // Set everything up (connections, end offsets) before the clock starts.
    let count = (args.consumers as usize).min(partitions.len());
    let (started, results) = match common.client {
        ClientKind::Rdkafka => read_rdkafka(common, &topic, &partitions, count, args.bytes).await?,
        ClientKind::Native => read_native(common, &topic, &partitions, count, args.bytes).await?,
        ClientKind::Nats => anyhow::bail!("--client nats runs bench produce only"),
    };
    let mut records = 0;
    let mut bytes = 0;
    let mut finished = started;
    let mut stalled = false;
    for result in results {
        records += result.records;
        bytes += result.bytes;
        finished = finished.max(result.finished);
        stalled |= result.stalled;
    }
    let secs = finished.duration_since(started).as_secs_f64();

    let mut table = Table::new(&[
        "workload",
        "consumers",
        "partitions",
        "records",
        "bytes",
        "seconds",
        "records/s",
        MBPS_HEADER,
    ]);
    table.row(vec![
        common.label("consume"),
        count.to_string(),
        partitions.len().to_string(),
        records.to_string(),
        bytes.to_string(),
        format!("{secs:.3}"),
        report::rate(records, secs),
        report::mb_per_sec(bytes, secs),
    ]);
    table.print();
    if stalled {
        eprintln!(
            "warning: a consumer received nothing for {} s and stopped early",
            STALL_LIMIT.as_secs()
        );
    }
    Ok(())
}

/// The partitions consumer `index` of `count` reads (round-robin).
fn share(partitions: &[i32], index: usize, count: usize) -> Vec<i32> {
    partitions
        .iter()
        .copied()
        .skip(index)
        .step_by(count)
        .collect()
}

fn announce(topic: &str, partitions: usize, count: usize, target: u64) {
    eprintln!(
        "bench consume: reading {topic} ({partitions} partitions) with {count} consumers, up to {target} bytes"
    );
}

/// Reads with `count` librdkafka consumers, each on a blocking thread. Returns when the clock
/// started and what each consumer read.
async fn read_rdkafka(
    common: &BenchArgs,
    topic: &str,
    partitions: &[i32],
    count: usize,
    target: u64,
) -> anyhow::Result<(Instant, Vec<ReadResult>)> {
    let mut readers = Vec::with_capacity(count);
    for index in 0..count {
        let mine = share(partitions, index, count);
        let consumer: Consumer = super::consumer_config(&common.broker.broker)
            .create_with_context(QuietContext)
            .context("creating consumer")?;
        let marks = client::watermarks(&consumer, topic, &mine)?;
        let ends: HashMap<i32, i64> = marks
            .iter()
            .filter(|m| m.low < m.high)
            .map(|m| (m.partition, m.high))
            .collect();
        let starts: Vec<(i32, Offset)> = marks
            .iter()
            .filter(|m| m.low < m.high)
            .map(|m| (m.partition, Offset::Offset(m.low)))
            .collect();
        readers.push((consumer, ends, starts));
    }
    announce(topic, partitions.len(), count, target);

    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(count);
    for (consumer, ends, starts) in readers {
        if !starts.is_empty() {
            client::assign(&consumer, topic, &starts)?;
        }
        let (topic, total) = (topic.to_string(), Arc::clone(&total));
        handles.push(tokio::task::spawn_blocking(move || {
            read(&consumer, &topic, ends, &total, target)
        }));
    }
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(
            handle
                .await
                .map_err(|err| anyhow!("consumer thread failed: {err}"))??,
        );
    }
    Ok((started, results))
}

/// Reads with `count` native consumers, each a task with its own connections. They count
/// records and payload bytes from the batches without decoding the records.
async fn read_native(
    common: &BenchArgs,
    topic: &str,
    partitions: &[i32],
    count: usize,
    target: u64,
) -> anyhow::Result<(Instant, Vec<ReadResult>)> {
    let cluster = native::Cluster::discover(&common.broker.broker, topic).await?;
    let mut readers = Vec::with_capacity(count);
    for index in 0..count {
        let mine = share(partitions, index, count);
        readers.push(native::Reader::open(&cluster, &mine, native::EARLIEST, true, 100).await?);
    }
    announce(topic, partitions.len(), count, target);

    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(count);
    for mut reader in readers {
        let total = Arc::clone(&total);
        handles.push(tokio::spawn(async move {
            let mut result = ReadResult::start();
            let mut last_progress = Instant::now();
            while !reader.is_done() && total.load(Ordering::Relaxed) < target {
                if last_progress.elapsed() > STALL_LIMIT {
                    result.stalled = true;
                    break;
                }
                let before = result.records;
                reader
                    .poll(&mut |batch, _| {
                        let size = batch.payload_bytes()?;
                        result.records += u64::from(batch.records);
                        result.bytes += size;
                        total.fetch_add(size, Ordering::Relaxed);
                        Ok(())
                    })
                    .await?;
                if result.records > before {
                    last_progress = Instant::now();
                }
            }
            result.finished = Instant::now();
            anyhow::Ok(result)
        }));
    }
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(
            handle
                .await
                .map_err(|err| anyhow!("consumer task failed: {err}"))?
                .with_context(|| format!("reading {topic}"))?,
        );
    }
    Ok((started, results))
}

/// Writes `bytes` of random records at maximum rate with acks=all.
async fn fill(args: &BenchArgs, topic: &str, partitions: &[i32], bytes: u64) -> anyhow::Result<()> {
    let records = bytes.div_ceil(args.message_size);
    let per_producer = records.div_ceil(u64::from(args.producers));
    eprintln!(
        "bench consume: filling {topic} with {records} records of {} B",
        args.message_size
    );
    let clock = Clock::start();
    let plan = Plan {
        id: 0,
        producers: args.producers,
        topic: Arc::from(topic),
        partitions: Arc::from(partitions),
        total_rate: None,
        clock,
        measure_from: clock.origin(),
        stop_at: None,
        max_records: Some(per_producer),
        max_outstanding: usize::try_from(args.max_outstanding).unwrap_or(usize::MAX),
        payload: super::random_payload(args.message_size)?,
        stamp_run: None,
        txn_records: None,
        flush_every: None,
        keys: None,
    };
    let producers = super::create_producers(args, Acks::All, topic, partitions).await?;
    let stats = Stats::merge(plan::join(producers.spawn(&plan)).await?)?;
    if let Some(err) = stats.first_error {
        bail!("fill: {} records failed; first error: {err}", stats.errors);
    }
    let secs = clock.origin().elapsed().as_secs_f64();
    eprintln!(
        "bench consume: filled {} records in {secs:.1} s ({} {MBPS_HEADER})",
        stats.acked,
        report::mb_per_sec(stats.acked.saturating_mul(args.message_size), secs)
    );
    Ok(())
}

/// One consumer's loop (on a blocking thread). `ends` holds the end offset of each assigned
/// partition that still has records to deliver.
fn read(
    consumer: &Consumer,
    topic: &str,
    mut ends: HashMap<i32, i64>,
    total: &AtomicU64,
    target: u64,
) -> anyhow::Result<ReadResult> {
    let mut result = ReadResult::start();
    let mut last_progress = Instant::now();
    while !ends.is_empty() && total.load(Ordering::Relaxed) < target {
        if last_progress.elapsed() > STALL_LIMIT {
            result.stalled = true;
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let partition = message.partition();
                let Some(&end) = ends.get(&partition) else {
                    continue;
                };
                if message.offset() + 1 >= end {
                    ends.remove(&partition);
                }
                if message.offset() >= end {
                    continue;
                }
                let size = (message.payload_len() + message.key().map_or(0, <[u8]>::len)) as u64;
                result.records += 1;
                result.bytes += size;
                total.fetch_add(size, Ordering::Relaxed);
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            Some(Err(err)) if client::is_fatal_consume_error(&err) => {
                bail!("reading {topic}: {}", describe_error(&err));
            }
            None | Some(Err(_)) => {}
        }
    }
    result.finished = Instant::now();
    Ok(result)
}

/// Parses a byte count with an optional binary (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB,
/// TB) suffix.
fn parse_size(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("expected a byte count like 1GiB, got {raw:?}"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{raw} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("1XB").is_err());
    }
}
