//! `strom bench kv`: put and get against any etcd v3 endpoint (Strom's or etcd's), with etcd's
//! `benchmark put` shape: 8-byte keys, 256-byte values, N clients each on its own connection.
//! At `--rate 0` every client runs closed-loop (one request in flight) for throughput; at a
//! fixed rate requests are scheduled in advance and latency is measured from the scheduled
//! time, so a stall is not hidden by the requests it delayed (coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use etcd_client::{Client, GetOptions};
use hdrhistogram::Histogram;

use super::payload::Rng;
use super::report::{self, Table};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Puts of random keys.
    Put,
    /// Linearizable gets of keys written before the measurement.
    Get,
}

#[derive(clap::Args, Debug, Clone)]
pub struct KvBenchArgs {
    /// etcd v3 endpoints, comma-separated; clients are spread over them.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub endpoints: String,
    #[arg(long, value_enum, default_value = "put")]
    pub op: KvOp,
    /// Concurrent clients, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub key_size: u64,
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub value_size: u64,
    /// Distinct keys the requests pick from at random.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space: u64,
    /// Total requests/s across all clients; 0 = as fast as the clients go.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Measured period in seconds (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Warm-up in seconds before the measured period; excluded from all statistics.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Label printed in the "workload" column.
    #[arg(long)]
    pub workload: Option<String>,
}

struct ClientStats {
    hist: Histogram<u64>,
    done: u64,
    errors: u64,
    first_error: Option<String>,
}

fn key(args: &KvBenchArgs, n: u64) -> Vec<u8> {
    let text = format!("{n:0width$}", width = args.key_size as usize);
    let bytes = text.as_bytes();
    bytes[bytes.len() - args.key_size as usize..].to_vec()
}

pub async fn run(args: KvBenchArgs) -> anyhow::Result<()> {
    let endpoints: Vec<String> = args
        .endpoints
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    anyhow::ensure!(!endpoints.is_empty(), "--endpoints is empty");
    let value: Arc<[u8]> = Rng::from_entropy().bytes(args.value_size as usize).into();
    // Gets read keys that exist.
    let readable = args.key_space.min(1000);
    if args.op == KvOp::Get {
        let mut c = Client::connect([endpoints[0].as_str()], None)
            .await
            .with_context(|| format!("connecting to {}", endpoints[0]))?;
        for n in 0..readable {
            c.put(key(&args, n), value.to_vec(), None).await?;
        }
    }
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let per_client_rate = args.rate as f64 / f64::from(args.clients);
    let mut tasks = Vec::new();
    for id in 0..args.clients {
        let endpoint = endpoints[id as usize % endpoints.len()].clone();
        let args = args.clone();
        let value = Arc::clone(&value);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect([endpoint.as_str()], None)
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
            let mut rng = Rng::from_entropy();
            let mut stats = ClientStats {
                hist: report::latency_histogram()?,
                done: 0,
                errors: 0,
                first_error: None,
            };
            // Clients start spread over one interval so a fixed rate is smooth.
            let interval =
                (per_client_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / per_client_rate));
            let mut due = start
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(f64::from(id) / f64::from(args.clients))
                });
            loop {
                let sent = match interval {
                    Some(i) => {
                        let at = due;
                        tokio::time::sleep_until(at.into()).await;
                        due += i;
                        at
                    }
                    None => Instant::now(),
                };
                if sent >= end {
                    break;
                }
                let result = match args.op {
                    KvOp::Put => {
                        let k = key(&args, rng.next_u64() % args.key_space);
                        c.put(k, value.to_vec(), None).await.map(|_| ())
                    }
                    KvOp::Get => {
                        let k = key(&args, rng.next_u64() % readable);
                        c.get(k, Some(GetOptions::new())).await.map(|_| ())
                    }
                };
                let now = Instant::now();
                if sent < measure_from {
                    continue;
                }
                match result {
                    Ok(()) => {
                        stats.done += 1;
                        let us = now.duration_since(sent).as_micros() as u64;
                        stats.hist.record(us.max(1))?;
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            anyhow::Ok(stats)
        }));
    }
    let mut hist = report::latency_histogram()?;
    let (mut done, mut errors, mut first_error) = (0, 0, None);
    for t in tasks {
        let s = t.await.context("client task")??;
        hist.add(&s.hist)?;
        done += s.done;
        errors += s.errors;
        if first_error.is_none() {
            first_error = s.first_error;
        }
    }
    let secs = args.duration as f64;
    let mut headers = vec!["workload", "op", "clients", "target/s", "ops/s"];
    headers.extend(report::PERCENTILE_HEADERS);
    headers.push("errors");
    let mut table = Table::new(&headers);
    let mut row = vec![
        args.workload.clone().unwrap_or_else(|| "kv".into()),
        format!("{:?}", args.op).to_lowercase(),
        args.clients.to_string(),
        if args.rate == 0 {
            "max".into()
        } else {
            args.rate.to_string()
        },
        report::rate(done, secs),
    ];
    row.extend(report::percentiles_ms(&hist));
    row.push(errors.to_string());
    table.row(row);
    println!("{}", table.render().trim_end());
    if let Some(e) = first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}
