//! `--client native`: a minimal Kafka client for the benchmark's data path, built on tokio and
//! the `kafka-protocol` crate. It exists to measure the broker rather than the client: the
//! librdkafka load generator spends a core and adds a good fraction of a millisecond per round
//! trip of its own on a small machine. Here a producer is one thread that schedules, batches,
//! writes and reads its own sockets, with no queues or threads between it and the wire.
//!
//! Scope: uncompressed batches, no idempotence or transactions, no retries, reconnects or
//! leader changes (a failed connection fails its records and stops that producer). Topic
//! creation stays on the librdkafka admin client.

mod batch;
mod consumer;
mod metadata;
mod producer;
mod requests;
mod timer;

use std::time::Duration;

use anyhow::{bail, Context};
use kafka_protocol::messages::TopicName;

pub use consumer::Reader;
pub use metadata::{Cluster, EARLIEST, LATEST};
pub use producer::run as run_producer;

use super::{Acks, BenchArgs, Compression};

/// Batching and acknowledgement settings of a native producer.
#[derive(Clone, Copy, Debug)]
pub struct ProduceOptions {
    /// The Produce request's `acks`: 0, 1 or -1 (all).
    pub acks: i16,
    pub linger: Duration,
    /// Bytes per partition batch.
    pub batch_size: usize,
    /// Produce requests awaiting a response per connection.
    pub max_in_flight: usize,
}

/// What one native producer starts with: a connection to each partition leader it needs,
/// opened before the clock starts.
pub struct ProducerSetup {
    pub topic: TopicName,
    pub options: ProduceOptions,
    /// Leader address and its connected (non-blocking) socket.
    pub connections: Vec<(String, std::net::TcpStream)>,
    /// For each of the plan's partitions (same order), its index in `connections`.
    pub leader_of: Vec<usize>,
}

/// Refuses settings the native client does not implement.
pub fn check_supported(args: &BenchArgs) -> anyhow::Result<()> {
    if args.compression != Compression::None {
        bail!(
            "--client native supports --compression none only (got {}); use --client rdkafka",
            args.compression.as_str()
        );
    }
    Ok(())
}

/// Opens `args.producers` producers' connections to the leaders of `partitions`.
pub async fn connect_producers(
    args: &BenchArgs,
    acks: Acks,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<ProducerSetup>> {
    check_supported(args)?;
    let cluster = Cluster::discover(&args.broker.broker, topic).await?;
    let options = ProduceOptions {
        acks: match acks {
            Acks::Zero => 0,
            Acks::One => 1,
            Acks::All => -1,
        },
        linger: Duration::from_millis(args.linger_ms),
        batch_size: usize::try_from(args.batch_size).context("--batch-size")?,
        max_in_flight: usize::try_from(args.max_in_flight).context("--max-in-flight")?,
    };
    let mut setups = Vec::new();
    for _ in 0..args.producers {
        let mut connections: Vec<(String, std::net::TcpStream)> = Vec::new();
        let mut leader_of = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let addr = cluster.leader(partition)?;
            let index = match connections.iter().position(|(a, _)| a == addr) {
                Some(index) => index,
                None => {
                    let stream =
                        tokio::task::block_in_place(|| crate::kafka_conn::connect_std(addr))?;
                    connections.push((addr.to_string(), stream));
                    connections.len() - 1
                }
            };
            leader_of.push(index);
        }
        setups.push(ProducerSetup {
            topic: cluster.topic.clone(),
            options,
            connections,
            leader_of,
        });
    }
    Ok(setups)
}
