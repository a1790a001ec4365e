//! `strom consume`: print the records of a topic, one value per line.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset};

use super::client::{self, describe_error, Consumer, QuietContext};
use super::BrokerArgs;

/// A bounded read (without `--follow`) gives up after this long without any progress, so a
/// vanished broker cannot make it hang forever.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// How long one poll waits; also how stale buffered output may get while idle.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Arguments of `strom consume`.
#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Start at the earliest retained record (default: only records produced from now on).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Keep waiting for new records; without it, stop at the end offsets seen at start.
    #[arg(long)]
    pub follow: bool,
    /// Read only this partition (default: all partitions).
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// Start at this offset (requires --partition).
    #[arg(long, value_name = "N", requires = "partition", value_parser = clap::value_parser!(i64).range(0..))]
    pub offset: Option<i64>,
    /// Stop after printing this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Print each record's key before its value.
    #[arg(long)]
    pub print_key: bool,
    /// Print each record's partition:offset before its key and value.
    #[arg(long)]
    pub print_offset: bool,
    /// Separator between the printed offset, key and value.
    #[arg(long, value_name = "SEP", default_value = "\t")]
    pub key_separator: String,
}

/// Reads the topic as the arguments ask and prints the records to stdout.
pub async fn run(broker: &BrokerArgs, args: ConsumeArgs) -> anyhow::Result<()> {
    client::ensure_reachable(&broker.broker)?;
    let consumer: Consumer = client::consumer_config(&broker.broker)
        .create_with_context(QuietContext)
        .context("creating consumer")?;
    let all = client::topic_partitions(consumer.client(), &args.topic, Duration::ZERO, false)?;
    let partitions = match args.partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => bail!(
            "topic {} has no partition {p} (it has {})",
            args.topic,
            all.len()
        ),
        None => all,
    };
    let start = match (args.offset, args.from_beginning) {
        (Some(offset), _) => Offset::Offset(offset),
        (None, true) => Offset::Beginning,
        (None, false) => Offset::End,
    };

    // The end of a bounded read is fixed now, before assigning, so records produced while
    // reading do not extend it.
    let mut ends = HashMap::new();
    if !args.follow {
        for mark in client::watermarks(&consumer, &args.topic, &partitions)? {
            let first = match start {
                Offset::Offset(offset) => offset,
                Offset::Beginning => mark.low,
                _ => mark.high,
            };
            if first < mark.high {
                ends.insert(mark.partition, mark.high);
            }
        }
        if ends.is_empty() {
            return Ok(());
        }
    }
    // A bounded read only needs the partitions that have something to deliver.
    let starts: Vec<(i32, Offset)> = partitions
        .iter()
        .filter(|p| args.follow || ends.contains_key(p))
        .map(|&p| (p, start))
        .collect();
    client::assign(&consumer, &args.topic, &starts)?;

    // Polling blocks inside librdkafka; give the whole loop its own thread.
    tokio::task::spawn_blocking(move || print_records(&consumer, &args, ends))
        .await
        .map_err(|err| anyhow!("consumer thread failed: {err}"))?
}

/// The poll loop. `ends` holds, for a bounded read, the end offset of every partition that
/// still has records to deliver; it is empty and ignored with `--follow`.
fn print_records(
    consumer: &Consumer,
    args: &ConsumeArgs,
    mut ends: HashMap<i32, i64>,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let mut printed = 0u64;
    let mut last_progress = Instant::now();
    let mut last_error: Option<String> = None;
    loop {
        if args.max_messages.is_some_and(|max| printed >= max) || (!args.follow && ends.is_empty())
        {
            break;
        }
        match consumer.poll(POLL_INTERVAL) {
            None => {
                // Idle: make what was printed so far visible (matters with --follow).
                if !flush_ok(out.flush())? {
                    return Ok(());
                }
                if !args.follow && last_progress.elapsed() > STALL_LIMIT {
                    bail!(
                        "no progress reading {} for {}s (last error: {})",
                        args.topic,
                        STALL_LIMIT.as_secs(),
                        last_error.as_deref().unwrap_or("none")
                    );
                }
            }
            Some(Ok(message)) => {
                last_progress = Instant::now();
                if !args.follow {
                    // Records past the end seen at start belong to a later read.
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
                }
                if !flush_ok(write_record(&mut out, args, &message))? {
                    return Ok(());
                }
                printed += 1;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // Caught up with the partition: any end seen at start has been passed.
                last_progress = Instant::now();
                ends.remove(&partition);
            }
            Some(Err(err)) if client::is_fatal_consume_error(&err) => {
                bail!("reading {}: {}", args.topic, describe_error(&err));
            }
            Some(Err(err)) => last_error = Some(describe_error(&err)),
        }
    }
    flush_ok(out.flush())?;
    Ok(())
}

/// Prints `[partition:offset SEP][key SEP]value`.
fn write_record(
    out: &mut impl Write,
    args: &ConsumeArgs,
    message: &impl Message,
) -> io::Result<()> {
    let sep = args.key_separator.as_bytes();
    if args.print_offset {
        write!(out, "{}:{}", message.partition(), message.offset())?;
        out.write_all(sep)?;
    }
    if args.print_key {
        out.write_all(message.key().unwrap_or(&b"null"[..]))?;
        out.write_all(sep)?;
    }
    out.write_all(message.payload().unwrap_or_default())?;
    out.write_all(b"\n")
}

/// `Ok(false)` when stdout was closed by the reader (e.g. `| head`), which ends the command
/// successfully; other write errors are real failures.
fn flush_ok(result: io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(anyhow!(err).context("writing to stdout")),
    }
}
