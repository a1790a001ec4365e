//! `--client nats`: the same plan (schedule, window, accounting) against NATS JetStream, for the
//! side-by-side in `docs/benchmarks.md` (`scripts/bench-nats.sh`). A Kafka partition becomes
//! a stream of its own (`<topic>-<p>`, subject `<topic>.<p>`, file storage, `--replication-factor`
//! replicas), so N partitions are N Raft groups on both sides, and a record is acknowledged
//! when JetStream's publish acknowledgement arrives (stored by a quorum of the stream's
//! replicas).

use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use super::plan::{self, Plan, Stats};
use super::{Acks, BenchArgs, BenchCommand};

/// Only what means the same on both sides: produce, acks=all, no keys or transactions.
pub fn check_supported(cmd: &BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Produce(args) = cmd else {
        bail!("--client nats runs bench produce only");
    };
    if args.acks != Acks::All {
        bail!(
            "--client nats: JetStream acknowledges once a quorum stored a message (use --acks all)"
        );
    }
    if args.transactional || args.keys.is_some() || args.flush_every.is_some() {
        bail!("--client nats: no transactions, keys or --flush-every");
    }
    Ok(())
}

pub fn url(args: &BenchArgs) -> String {
    let server = &args.broker.broker;
    if server.contains("://") {
        server.clone()
    } else {
        format!("nats://{server}")
    }
}

fn stream_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Creates one stream per partition (an existing one is kept) and returns the partitions.
pub async fn prepare(args: &BenchArgs, topic: &str) -> anyhow::Result<Vec<i32>> {
    let client = async_nats::connect(url(args))
        .await
        .with_context(|| format!("connecting to {}", url(args)))?;
    let js = jetstream::new(client);
    let replicas = usize::try_from(args.replication_factor).unwrap_or(1).max(1);
    for p in 0..args.partitions {
        js.get_or_create_stream(stream::Config {
            name: stream_name(topic, p),
            subjects: vec![format!("{topic}.{p}")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("create stream {}: {e}", stream_name(topic, p)))?;
    }
    Ok((0..args.partitions).collect())
}

/// Deletes the streams a run created.
pub async fn delete(url: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let js = jetstream::new(async_nats::connect(url).await?);
    for p in 0..partitions {
        js.delete_stream(stream_name(topic, p))
            .await
            .map_err(|e| anyhow!("delete stream {}: {e}", stream_name(topic, p)))?;
    }
    Ok(())
}

/// One producer per connection, as with the Kafka clients. The connections live on the
/// benchmark's main runtime, so a producer's own thread may sleep between sends as the
/// librdkafka producers do (a Tokio timer would round its waits up to a millisecond).
pub async fn producers(args: &BenchArgs) -> anyhow::Result<Vec<jetstream::Context>> {
    let mut all = Vec::new();
    for _ in 0..args.producers {
        let client = async_nats::connect(url(args))
            .await
            .with_context(|| format!("connecting to {}", url(args)))?;
        all.push(jetstream::new(client));
    }
    Ok(all)
}

type Settled = (
    Instant,
    Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
);

fn settle(
    stats: &mut Stats,
    seq: u64,
    (intended, result): Settled,
    plan: &Plan,
    window_end: Instant,
) {
    match result {
        Ok(_) => stats.ack(intended, Instant::now(), plan.measure_from, window_end),
        Err(e) => stats.fail(seq, || e.to_string()),
    }
}

/// One producer on its own connection: publish per the plan, then wait for every outstanding
/// acknowledgement.
pub async fn run_producer(js: jetstream::Context, plan: Plan) -> anyhow::Result<Stats> {
    let mut stats = Stats::new(plan.id)?;
    let window_end = plan.window_end();
    let payload = bytes::Bytes::copy_from_slice(&plan.payload);
    // Built once: a send clones a reference-counted subject rather than formatting one.
    let subjects: Vec<async_nats::Subject> = plan
        .partitions
        .iter()
        .map(|p| async_nats::Subject::from(format!("{}.{p}", plan.topic)))
        .collect();
    let mut in_flight = FuturesUnordered::new();
    let track = |seq: u64, intended: Instant, ack: PublishAckFuture| {
        std::future::IntoFuture::into_future(ack).map(move |result| (seq, (intended, result)))
    };
    let mut seq = 0u64;
    loop {
        let Some(intended) =
            plan::next_send(&plan, seq, window_end, &mut in_flight, |(s, done)| {
                settle(&mut stats, s, done, &plan, window_end)
            })
            .await
        else {
            break;
        };
        let subject = subjects[plan.partition_index(seq)].clone();
        match js.publish(subject, payload.clone()).await {
            Ok(ack) => in_flight.push(track(seq, intended, ack)),
            Err(e) => stats.fail(seq, || e.to_string()),
        }
        seq += 1;
    }
    stats.attempted = seq;
    while let Some((s, done)) = in_flight.next().await {
        settle(&mut stats, s, done, &plan, window_end);
    }
    Ok(stats)
}
