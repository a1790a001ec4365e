//! `strom bench`: throughput and latency measurements against any Kafka-protocol broker,
//! parameterised like the OpenMessaging Benchmark. See `docs/benchmarks.md` for the method.

mod consume;
mod e2e;
mod kv;
mod native;
mod nats;
mod payload;
mod plan;
mod produce;
mod producer;
mod progress;
mod report;
mod txn;

use std::time::Duration;

use tokio::task::JoinHandle;

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::cli::client::{
    self, describe_code, describe_error, Acks, Admin, Compression, Producer, QuietContext,
};
use crate::cli::BrokerArgs;

pub use consume::ConsumeBenchArgs;
use plan::{Plan, Stats};

/// The benchmark workloads.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Producer throughput and intended-send-to-ack latency.
    Produce(BenchArgs),
    /// Catch-up read throughput from the beginning of a topic.
    Consume(ConsumeBenchArgs),
    /// End-to-end latency: fixed-rate producers and a tailing consumer at the same time.
    E2e(BenchArgs),
    /// etcd v3 key-value put or linearizable get, against Strom or etcd.
    Kv(kv::KvBenchArgs),
}

impl BenchCommand {
    /// The broker flags (security included) of a Kafka workload.
    pub fn broker(&self) -> Option<&BrokerArgs> {
        match self {
            BenchCommand::Produce(a) | BenchCommand::E2e(a) => Some(&a.broker),
            BenchCommand::Consume(c) => Some(&c.common.broker),
            BenchCommand::Kv(_) => None,
        }
    }
}

/// Parameters shared by every benchmark workload.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Topic to use (default: bench-<random>); created with --partitions if missing.
    #[arg(long)]
    pub topic: Option<String>,
    /// Partitions of a topic the benchmark creates.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor of a topic the benchmark creates (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i32,
    /// Producer instances, each with its own connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub producers: u32,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub message_size: u64,
    /// Total records/s across all producers; 0 = as fast as possible within the in-flight
    /// window [default: 0 for produce, 5000 for e2e].
    #[arg(long)]
    pub rate: Option<u64>,
    /// Measured period in seconds (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Warm-up in seconds before the measured period; excluded from all statistics.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Acknowledgement level.
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    /// Batch compression codec.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// Producer linger (ms) before a batch is sent.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Maximum producer batch size in bytes.
    #[arg(long, default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub batch_size: u64,
    /// Maximum in-flight produce requests per broker connection.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Records each producer may have awaiting acknowledgement (the in-flight window).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_outstanding: u64,
    /// Label printed in the "workload" column (e.g. W1).
    #[arg(long)]
    pub workload: Option<String>,
    /// Client of the data path (produce and fetch): librdkafka, the realistic client, or
    /// native, Strom's lean built-in client whose own overhead is small (compression none
    /// only). Topics are created with librdkafka either way.
    #[arg(long, value_enum, default_value = "rdkafka")]
    pub client: ClientKind,
    /// Idempotent producers (librdkafka's enable.idempotence; needs --acks all).
    #[arg(long)]
    pub idempotent: bool,
    /// Transactional producers (bench produce and e2e, librdkafka only): each has its own
    /// transactional.id and commits every --txn-records records; bench e2e reads
    /// read_committed. Implies --idempotent.
    #[arg(long)]
    pub transactional: bool,
    /// Records per transaction of each producer, with --transactional.
    #[arg(long, default_value_t = 1000, requires = "transactional", value_parser = clap::value_parser!(u64).range(1..))]
    pub txn_records: u64,
    /// Without transactions, each producer stops every N records until all it sent is
    /// acknowledged (librdkafka's flush), as a transactional producer stops at every commit:
    /// with --idempotent, the same run as --transactional --txn-records N minus the
    /// coordinator's work, so the two separate the client's stop from the broker's share.
    #[arg(long, conflicts_with = "transactional", value_parser = clap::value_parser!(u64).range(1..))]
    pub flush_every: Option<u64>,
    /// Records carry one of this many keys in turn (librdkafka only), as a compacted topic
    /// needs: without it records have no key.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: Option<u64>,
    /// bench e2e: read the records from this broker instead, where a mirror copies the topic
    /// under the same name (its identity policy): the latency then includes the mirror.
    #[arg(long)]
    pub tail_broker: Option<String>,
}

/// The client library a benchmark's producers and consumers use.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// librdkafka (the rdkafka crate), as most non-Java Kafka clients.
    Rdkafka,
    /// Strom's minimal tokio + kafka-protocol client (bench/native).
    Native,
    /// NATS JetStream (async-nats), for a side-by-side with NATS (bench produce only;
    /// `-b` is the NATS server).
    Nats,
}

impl ClientKind {
    fn as_str(self) -> &'static str {
        match self {
            ClientKind::Rdkafka => "rdkafka",
            ClientKind::Native => "native",
            ClientKind::Nats => "nats",
        }
    }
}

impl BenchArgs {
    /// The workload label, defaulting to the subcommand name.
    fn label(&self, default: &str) -> String {
        self.workload.clone().unwrap_or_else(|| default.to_string())
    }

    /// Records per transaction of each producer, when transactional.
    fn txn_records(&self) -> Option<u64> {
        self.transactional.then_some(self.txn_records)
    }

    /// The configured topic or a fresh random name.
    fn topic_name(&self) -> String {
        self.topic.clone().unwrap_or_else(|| {
            format!(
                "bench-{:08x}",
                payload::Rng::from_entropy().next_u64() as u32
            )
        })
    }
}

/// Runs one benchmark workload.
pub async fn run(mut cmd: BenchCommand) -> anyhow::Result<()> {
    // Before anything touches the server: a NATS run is a produce run only.
    let client = match &cmd {
        BenchCommand::Produce(args) | BenchCommand::E2e(args) => Some(args.client),
        BenchCommand::Consume(args) => Some(args.common.client),
        BenchCommand::Kv(_) => None,
    };
    if client == Some(ClientKind::Nats) {
        nats::check_supported(&cmd)?;
    }
    let common = match &mut cmd {
        BenchCommand::Produce(args) | BenchCommand::E2e(args) => args,
        BenchCommand::Consume(args) => &mut args.common,
        BenchCommand::Kv(args) => return kv::run(args.clone()).await,
    };
    // Refuse unsupported settings before anything is created on the broker.
    if common.client == ClientKind::Native {
        native::check_supported(common)?;
    }
    txn::check_supported(common)?;
    // A topic the benchmark names itself is its own to remove afterwards: durable runs write
    // gigabytes a minute, and leftover topics would fill the broker's disk run after run.
    // (`bench consume` reads a topic it is told to use, and leaves it.)
    let generated = match &cmd {
        BenchCommand::Consume(_) | BenchCommand::Kv(_) => None,
        BenchCommand::Produce(args) | BenchCommand::E2e(args) => {
            args.topic.is_none().then(|| args.topic_name())
        }
    };
    if let (Some(name), BenchCommand::Produce(args) | BenchCommand::E2e(args)) =
        (&generated, &mut cmd)
    {
        args.topic = Some(name.clone());
    }
    let broker = common_broker(&cmd);
    // Where a NATS run's streams are, for removing them afterwards.
    let nats_streams = match &cmd {
        BenchCommand::Produce(args) if args.client == ClientKind::Nats => {
            Some((nats::url(args), args.partitions))
        }
        _ => None,
    };
    let result = match cmd {
        BenchCommand::Produce(args) => produce::run(args).await,
        BenchCommand::Consume(args) => consume::run(args).await,
        BenchCommand::E2e(args) => e2e::run(args).await,
        BenchCommand::Kv(args) => kv::run(args).await,
    };
    if let Some(topic) = generated {
        let deleted = match &nats_streams {
            Some((url, partitions)) => nats::delete(url, &topic, *partitions).await,
            None => delete_topic(&broker, &topic).await,
        };
        if let Err(err) = deleted {
            eprintln!("warning: could not delete benchmark topic {topic}: {err:#}");
        }
    }
    result
}

fn common_broker(cmd: &BenchCommand) -> String {
    match cmd {
        BenchCommand::Produce(args) | BenchCommand::E2e(args) => args.broker.broker.clone(),
        BenchCommand::Consume(args) => args.common.broker.broker.clone(),
        BenchCommand::Kv(args) => args.endpoints.clone(),
    }
}

async fn delete_topic(broker: &str, topic: &str) -> anyhow::Result<()> {
    let admin: Admin = client::admin_config(broker)
        .create_with_context(QuietContext)
        .context("creating admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(client::REQUEST_TIMEOUT));
    for result in admin
        .delete_topics(&[topic], &options)
        .await
        .map_err(|e| anyhow!("{}", describe_error(&e)))?
    {
        if let Err((name, code)) = result {
            bail!("delete topic {name}: {}", describe_code(code));
        }
    }
    Ok(())
}

/// Connects an admin client, creates the topic if `create` (an existing topic is fine) and
/// waits until every partition has a leader. Returns the partition ids.
async fn prepare_topic(args: &BenchArgs, topic: &str, create: bool) -> anyhow::Result<Vec<i32>> {
    if args.client == ClientKind::Nats {
        return nats::prepare(args, topic).await;
    }
    let broker = &args.broker.broker;
    client::ensure_reachable(broker)?;
    let admin: Admin = client::admin_config(broker)
        .create_with_context(QuietContext)
        .context("creating admin client")?;
    if create {
        let new_topic = NewTopic::new(
            topic,
            args.partitions,
            TopicReplication::Fixed(args.replication_factor),
        );
        let options = AdminOptions::new()
            .request_timeout(Some(client::REQUEST_TIMEOUT))
            .operation_timeout(Some(client::REQUEST_TIMEOUT));
        let results = admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(|err| anyhow!("create topic {topic}: {}", describe_error(&err)))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("create topic {name}: {}", describe_code(code)),
            }
        }
    }
    let wait = if create {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    };
    client::topic_partitions(admin.inner(), topic, wait, create)
}

/// Producer configuration for the benchmark; `run` (random per run) makes transactional ids
/// unique.
fn producer_config(args: &BenchArgs, acks: Acks, run: u32, id: u32) -> ClientConfig {
    let mut config = client::base_config(&args.broker.broker);
    config
        .set("client.id", format!("strom-bench-{id}"))
        .set("acks", acks.as_str())
        .set("compression.type", args.compression.as_str())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        // librdkafka caps a batch at message.max.bytes too (default 1,000,000); raise it so
        // --batch-size is the limit that applies.
        .set(
            "message.max.bytes",
            args.batch_size.max(1_000_000).to_string(),
        )
        // Batches are bounded by bytes, not by librdkafka's default of 10,000 records.
        .set("batch.num.messages", "1000000")
        .set(
            "max.in.flight.requests.per.connection",
            args.max_in_flight.to_string(),
        )
        // The window (--max-outstanding) is the intended bound; keep librdkafka's queue above it.
        .set(
            "queue.buffering.max.messages",
            args.max_outstanding
                .saturating_mul(2)
                .max(100_000)
                .to_string(),
        )
        .set("queue.buffering.max.kbytes", "2097151")
        // A record not acknowledged within 30 s counts as an error instead of stalling the run.
        .set("message.timeout.ms", "30000");
    txn::configure(&mut config, args, run, id);
    config
}

/// The producers of a run, with the client library `--client` selects.
enum Producers {
    Rdkafka(Vec<Producer>),
    Native(Vec<native::ProducerSetup>),
    Nats(Vec<async_nats::jetstream::Context>),
}

impl Producers {
    /// Starts every producer on its own thread (see [`plan::spawn`]).
    fn spawn(self, plan: &Plan) -> Vec<JoinHandle<anyhow::Result<Stats>>> {
        match self {
            Producers::Rdkafka(producers) => plan::spawn(producers, plan, producer::run),
            Producers::Native(setups) => plan::spawn(setups, plan, native::run_producer),
            Producers::Nats(contexts) => plan::spawn(contexts, plan, nats::run_producer),
        }
    }
}

/// Creates `args.producers` producers of `partitions` (the broker was probed by
/// [`prepare_topic`]); native producers connect to the partition leaders now.
async fn create_producers(
    args: &BenchArgs,
    acks: Acks,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Producers> {
    match args.client {
        ClientKind::Rdkafka => {
            let run = payload::Rng::from_entropy().next_u64() as u32;
            let producers: Vec<Producer> = (0..args.producers)
                .map(|id| {
                    producer_config(args, acks, run, id)
                        .create_with_context(QuietContext)
                        .context("creating producer")
                })
                .collect::<anyhow::Result<_>>()?;
            if args.transactional {
                tokio::task::block_in_place(|| txn::init(&producers))?;
            }
            Ok(Producers::Rdkafka(producers))
        }
        ClientKind::Native => native::connect_producers(args, acks, topic, partitions)
            .await
            .map(Producers::Native),
        ClientKind::Nats => nats::producers(args).await.map(Producers::Nats),
    }
}

/// Consumer configuration tuned for throughput: large fetches and a deep prefetch queue.
fn consumer_config(broker: &str) -> ClientConfig {
    let mut config = client::consumer_config(broker);
    config
        .set("client.id", "strom-bench-consumer")
        .set("fetch.max.bytes", (50 << 20).to_string())
        .set("max.partition.fetch.bytes", (10 << 20).to_string())
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", (512 << 10).to_string());
    config
}

/// Random payload of the configured size, generated once and reused for every record.
fn random_payload(size: u64) -> anyhow::Result<std::sync::Arc<[u8]>> {
    let size = usize::try_from(size).context("--message-size does not fit in memory")?;
    Ok(payload::Rng::from_entropy().bytes(size).into())
}
