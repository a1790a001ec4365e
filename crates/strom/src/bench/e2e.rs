//! `strom bench e2e`: end-to-end latency. Fixed-rate producers stamp each payload with its
//! intended send time; a consumer tailing every partition measures `now - intended` on receipt.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hdrhistogram::Histogram;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset};

use super::payload::{Clock, Rng, Stamp, STAMP_LEN};
use super::plan::{self, Plan, Stats};
use super::produce::{commit_row, produce_header, produce_row, rate_label, row_context};
use super::report::{self, latency_histogram, Table};
use super::{native, BenchArgs, ClientKind};
use crate::cli::client::{self, describe_error, Consumer, QuietContext};

/// How long a mirror may take to create the topic on the tail broker.
const TOPIC_ARRIVAL: Duration = Duration::from_secs(60);

/// Waits until `topic` has `partitions` partitions on `broker` (a mirror creates it there).
fn arrived(broker: &str, topic: &str, partitions: usize) -> anyhow::Result<()> {
    let consumer: Consumer = super::consumer_config(broker)
        .create_with_context(QuietContext)
        .context("creating consumer")?;
    let deadline = Instant::now() + TOPIC_ARRIVAL;
    loop {
        let found = tokio::task::block_in_place(|| {
            consumer.fetch_metadata(Some(topic), client::REQUEST_TIMEOUT)
        })
        .ok()
        .and_then(|md| {
            md.topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len())
        });
        if found.is_some_and(|n| n >= partitions) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("topic {topic} did not arrive on {broker} within {TOPIC_ARRIVAL:?} (is a mirror with the identity policy copying it?)");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long the consumer may keep reading after the producers have finished.
const DRAIN: Duration = Duration::from_secs(5);

/// Default total rate of `bench e2e` (records/s).
const DEFAULT_RATE: u64 = 5_000;

/// Fetch long-poll of the native tailing consumer: short, so the loop looks at the producers'
/// progress often.
const NATIVE_MAX_WAIT_MS: i32 = 10;

/// The tailing consumer, by client library.
enum Tail {
    Rdkafka(Consumer),
    Native(native::Reader),
}

/// Sent to the consumer thread once every producer has finished.
struct ProducersDone {
    /// Records the producers attempted; the consumer may stop once it has seen that many.
    attempted: u64,
    /// The consumer stops at this instant at the latest.
    deadline: Instant,
}

/// What the consumer saw.
struct Seen {
    /// Intended-send-to-receipt latency (µs) of records due in the measured period.
    latency: Histogram<u64>,
    /// `seen[producer][seq]`.
    seen: Vec<Vec<bool>>,
    /// Distinct records seen.
    unique: u64,
}

impl Seen {
    fn new(producers: u32) -> anyhow::Result<Seen> {
        Ok(Seen {
            latency: latency_histogram()?,
            seen: vec![Vec::new(); producers as usize],
            unique: 0,
        })
    }

    /// Records a sighting; `true` the first time a record is seen (not for redeliveries).
    fn mark(&mut self, producer: u32, seq: u64) -> bool {
        let Some(list) = self.seen.get_mut(producer as usize) else {
            return false;
        };
        let Ok(index) = usize::try_from(seq) else {
            return false;
        };
        if list.len() <= index {
            list.resize(index + 1, false);
        }
        if list[index] {
            return false;
        }
        list[index] = true;
        self.unique += 1;
        true
    }

    /// Accounts for one received payload: latency of this run's records due in the measured
    /// period (`window_us`), the first time each is seen.
    fn observe(&mut self, payload: &[u8], received_us: u64, run_id: u32, window_us: (u64, u64)) {
        let Some(stamp) = Stamp::read(payload) else {
            return;
        };
        if stamp.run != run_id {
            return;
        }
        let first = self.mark(stamp.producer, stamp.seq);
        if first && (window_us.0..window_us.1).contains(&stamp.intended_us) {
            self.latency
                .saturating_record(received_us.saturating_sub(stamp.intended_us));
        }
    }

    fn contains(&self, producer: u32, seq: u64) -> bool {
        let list = self.seen.get(producer as usize);
        usize::try_from(seq)
            .ok()
            .and_then(|i| list?.get(i).copied())
            .unwrap_or(false)
    }
}

/// Runs the end-to-end workload and prints an acknowledgement line, with --transactional a
/// commit line, and an end-to-end line.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.message_size < STAMP_LEN as u64 {
        bail!("bench e2e needs --message-size of at least {STAMP_LEN} bytes (the latency stamp)");
    }
    let topic = args.topic_name();
    let partitions = super::prepare_topic(&args, &topic, true).await?;
    let rate = args.rate.unwrap_or(DEFAULT_RATE);
    let tail_broker = match &args.tail_broker {
        Some(other) => {
            arrived(other, &topic, partitions.len())?;
            other.clone()
        }
        None => args.broker.broker.clone(),
    };

    // Start exactly at the current end of every partition, before producing, so that no
    // record of this run can be skipped by a late offset lookup.
    let tail = match args.client {
        ClientKind::Nats => bail!("--client nats runs bench produce only"),
        ClientKind::Rdkafka => {
            let mut config = super::consumer_config(&tail_broker);
            if args.transactional {
                // librdkafka's default too; stated so the run says what it measures.
                config.set("isolation.level", "read_committed");
            }
            let consumer: Consumer = config
                .create_with_context(QuietContext)
                .context("creating consumer")?;
            let starts: Vec<(i32, Offset)> = client::watermarks(&consumer, &topic, &partitions)?
                .into_iter()
                .map(|mark| (mark.partition, Offset::Offset(mark.high)))
                .collect();
            client::assign(&consumer, &topic, &starts)?;
            Tail::Rdkafka(consumer)
        }
        ClientKind::Native => {
            let cluster = native::Cluster::discover(&tail_broker, &topic).await?;
            let reader = native::Reader::open(
                &cluster,
                &partitions,
                native::LATEST,
                false,
                NATIVE_MAX_WAIT_MS,
            )
            .await?;
            Tail::Native(reader)
        }
    };
    let producers = super::create_producers(&args, args.acks, &topic, &partitions).await?;
    eprintln!(
        "bench e2e: {} client, topic {topic} ({} partitions), {} producers{}, {} B records, rate {}, warm-up {} s, measuring {} s",
        args.client.as_str(),
        partitions.len(),
        args.producers,
        super::txn::describe(&args),
        args.message_size,
        rate_label(rate),
        args.warmup,
        args.duration
    );

    let run_id = Rng::from_entropy().next_u64() as u32;
    let clock = Clock::start();
    let measure_from = clock.origin() + Duration::from_secs(args.warmup);
    let stop_at = measure_from + Duration::from_secs(args.duration);
    let window_us = (clock.epoch_us(measure_from), clock.epoch_us(stop_at));
    let (done_tx, done_rx) = mpsc::channel();
    let reader = {
        let (topic, producers) = (topic.clone(), args.producers);
        match tail {
            Tail::Rdkafka(consumer) => tokio::task::spawn_blocking(move || {
                read(
                    &consumer, &topic, run_id, producers, clock, window_us, &done_rx,
                )
            }),
            Tail::Native(reader) => tokio::spawn(async move {
                read_native(reader, &topic, run_id, producers, clock, window_us, done_rx).await
            }),
        }
    };

    let plan = Plan {
        id: 0,
        producers: args.producers,
        topic: Arc::from(topic.as_str()),
        partitions: Arc::from(partitions.as_slice()),
        total_rate: (rate > 0).then_some(rate as f64),
        clock,
        measure_from,
        stop_at: Some(stop_at),
        max_records: None,
        max_outstanding: usize::try_from(args.max_outstanding).unwrap_or(usize::MAX),
        payload: super::random_payload(args.message_size)?,
        stamp_run: Some(run_id),
        txn_records: args.txn_records(),
        flush_every: args.flush_every,
        keys: args.keys,
    };
    // If a producer fails, `done_tx` is dropped on return and the reader thread stops.
    let progress = super::progress::Progress::start(
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.duration),
    );
    let per_producer = plan::join(producers.spawn(&plan)).await?;
    drop(progress);
    let attempted = per_producer.iter().map(|s| s.attempted).sum();
    // The reader only stops early on its own; a send error means it already quit, which the
    // join below reports.
    let _ = done_tx.send(ProducersDone {
        attempted,
        deadline: Instant::now() + DRAIN,
    });
    let seen = reader
        .await
        .map_err(|err| anyhow!("consumer thread failed: {err}"))??;

    let missing = count_missing(&per_producer, &seen);
    let stats = Stats::merge(per_producer)?;
    let label = args.label("e2e");
    let mut header = produce_header(&["measure"]);
    header.push("missing".to_string());
    let mut table = Table::new(&header);
    let mut ack_row = produce_row(
        &args,
        &label,
        partitions.len(),
        rate,
        &stats,
        &["ack".to_string()],
    );
    ack_row.push("-".to_string());
    table.row(ack_row);
    if args.transactional {
        let mut row = commit_row(&args, &label, partitions.len(), rate, &stats.txn);
        row.push("-".to_string());
        table.row(row);
    }

    let received = seen.latency.len();
    let secs = args.duration as f64;
    let mut e2e_row = vec![label, "e2e".to_string()];
    e2e_row.extend(row_context(&args, partitions.len(), rate));
    e2e_row.extend([
        received.to_string(),
        report::rate(received, secs),
        report::mb_per_sec(received.saturating_mul(args.message_size), secs),
    ]);
    e2e_row.extend(report::percentiles_ms(&seen.latency));
    e2e_row.extend(["-".to_string(), missing.to_string()]);
    table.row(e2e_row);
    table.print();
    if args.transactional {
        super::txn::print_commit_split(&stats.txn);
    }
    if let Some(err) = &stats.first_error {
        eprintln!("{} records failed; first error: {err}", stats.errors);
    }
    if missing > 0 {
        eprintln!(
            "{missing} acknowledged records were not seen by the consumer within {} s",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

/// Acknowledged records (attempted and not failed) the consumer never saw.
fn count_missing(per_producer: &[Stats], seen: &Seen) -> u64 {
    let mut missing = 0;
    for stats in per_producer {
        let mut failed = stats.failed_seqs.clone();
        failed.sort_unstable();
        for seq in 0..stats.attempted {
            if !seen.contains(stats.producer, seq) && failed.binary_search(&seq).is_err() {
                missing += 1;
            }
        }
    }
    missing
}

/// The consumer loop (on a blocking thread): records latency of this run's records until
/// it has seen everything attempted or the drain deadline passes.
fn read(
    consumer: &Consumer,
    topic: &str,
    run_id: u32,
    producers: u32,
    clock: Clock,
    window_us: (u64, u64),
    done_rx: &mpsc::Receiver<ProducersDone>,
) -> anyhow::Result<Seen> {
    let mut seen = Seen::new(producers)?;
    let mut done: Option<ProducersDone> = None;
    loop {
        if should_stop(&seen, &mut done, done_rx) {
            return Ok(seen);
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                let received_us = clock.now_us();
                if let Some(payload) = message.payload() {
                    seen.observe(payload, received_us, run_id, window_us);
                }
            }
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(err)) if client::is_fatal_consume_error(&err) => {
                bail!("reading {topic}: {}", describe_error(&err));
            }
            Some(Err(_)) => {}
        }
    }
}

/// True when the consumer may stop: it has seen everything the producers attempted, the drain
/// deadline has passed, or the producers failed (their error is what gets reported).
fn should_stop(
    seen: &Seen,
    done: &mut Option<ProducersDone>,
    done_rx: &mpsc::Receiver<ProducersDone>,
) -> bool {
    if done.is_none() {
        match done_rx.try_recv() {
            Ok(message) => *done = Some(message),
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => return true,
        }
    }
    done.as_ref()
        .is_some_and(|d| seen.unique >= d.attempted || Instant::now() >= d.deadline)
}

/// The native consumer loop (a task): decodes every fetched batch and takes each record's
/// receipt time as its response's arrival.
async fn read_native(
    mut reader: native::Reader,
    topic: &str,
    run_id: u32,
    producers: u32,
    clock: Clock,
    window_us: (u64, u64),
    // Owned: a task holding a borrowed std receiver across an await would not be `Send`.
    done_rx: mpsc::Receiver<ProducersDone>,
) -> anyhow::Result<Seen> {
    let mut seen = Seen::new(producers)?;
    let mut done: Option<ProducersDone> = None;
    while !should_stop(&seen, &mut done, &done_rx) {
        reader
            .poll(&mut |batch, arrived| {
                let received_us = clock.epoch_us(arrived);
                let decoded =
                    RecordBatchDecoder::decode(&mut batch.bytes.clone()).map_err(|err| {
                        anyhow!("decoding a batch at offset {}: {err:#}", batch.base_offset)
                    })?;
                for record in decoded.records {
                    if let Some(value) = &record.value {
                        seen.observe(value, received_us, run_id, window_us);
                    }
                }
                Ok(())
            })
            .await
            .with_context(|| format!("reading {topic}"))?;
    }
    Ok(seen)
}
