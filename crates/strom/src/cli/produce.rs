//! `strom produce`: one record per stdin line.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use tokio::io::AsyncBufReadExt;

use super::client::{self, describe_error, Acks, Compression, Producer, QuietContext};
use super::{parse_key_value, BrokerArgs};

/// Deliveries allowed to be outstanding before reading more input; bounds memory when stdin
/// is much faster than the broker.
const MAX_PENDING: usize = 50_000;

/// Arguments of `strom produce`.
#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to.
    pub topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP are an error).
    #[arg(long, value_name = "SEP", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub key_separator: Option<String>,
    /// Send every record to this partition (default: the client's partitioner).
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// Acknowledgement level required from the broker.
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    /// Batch compression codec.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// Header added to every record as key=value (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
}

/// Delivery bookkeeping: how many records made it and the first failure seen.
#[derive(Default)]
struct Outcome {
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn settle(&mut self, result: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>) {
        match result {
            Ok(Ok(_)) => self.delivered += 1,
            Ok(Err((err, _))) => self.fail(&err),
            Err(_) => self.fail(&KafkaError::Canceled),
        }
    }

    fn fail(&mut self, err: &KafkaError) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| describe_error(err));
    }
}

/// Reads stdin line by line, produces every line and waits for all deliveries.
pub async fn run(broker: &BrokerArgs, args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = client::base_config(&broker.broker);
    config
        .set("acks", args.acks.as_str())
        .set("compression.type", args.compression.as_str())
        // Give up on a record after 30 s rather than librdkafka's 5 minutes, so a dead broker
        // surfaces as an error while the user is still watching.
        .set("message.timeout.ms", "30000");
    client::ensure_reachable(&broker.broker)?;
    let producer: Producer = config
        .create_with_context(QuietContext)
        .context("creating producer")?;
    // A missing topic would otherwise only fail after librdkafka's metadata propagation
    // timeout; ask now. LEADER_NOT_AVAILABLE is retried briefly because brokers that create
    // topics on first use answer that way while doing so.
    let partitions = client::topic_partitions(
        producer.client(),
        &args.topic,
        Duration::from_secs(5),
        false,
    )?;
    if let Some(partition) = args.partition {
        if !partitions.contains(&partition) {
            bail!(
                "topic {} has no partition {partition} (it has {})",
                args.topic,
                partitions.len()
            );
        }
    }

    let headers = build_headers(&args.headers);
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_number = 0u64;
    let mut pending = FuturesUnordered::new();
    let mut outcome = Outcome::default();
    let mut input_error = None;

    loop {
        line.clear();
        match input.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                input_error = Some(anyhow!(err).context("reading stdin"));
                break;
            }
        }
        line_number += 1;
        let text = strip_line_end(&line);
        let (key, value) = match separator {
            None => (None, text),
            Some(sep) => match split_at_separator(text, sep) {
                Some((key, value)) => (Some(key), value),
                None => {
                    input_error = Some(anyhow!("line {line_number}: no key separator found"));
                    break;
                }
            },
        };
        let mut record = FutureRecord::<[u8], [u8]>::to(&args.topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        if let Some(headers) = &headers {
            record = record.headers(headers.clone());
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's local queue is full: let some deliveries finish, then retry.
                    record = returned;
                    match pending.next().await {
                        Some(result) => outcome.settle(result),
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((err, _)) => {
                    outcome.fail(&err);
                    break;
                }
            }
        }
        while pending.len() >= MAX_PENDING {
            if let Some(result) = pending.next().await {
                outcome.settle(result);
            }
        }
    }

    while let Some(result) = pending.next().await {
        outcome.settle(result);
    }
    eprintln!("produced {} records to {}", outcome.delivered, args.topic);
    if let Some(err) = input_error {
        return Err(err);
    }
    if let Some(first) = outcome.first_error {
        bail!(
            "{} of {} records were not delivered: {first}",
            outcome.failed,
            outcome.failed + outcome.delivered
        );
    }
    Ok(())
}

fn build_headers(pairs: &[(String, String)]) -> Option<OwnedHeaders> {
    if pairs.is_empty() {
        return None;
    }
    let headers = pairs.iter().fold(
        OwnedHeaders::new_with_capacity(pairs.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    );
    Some(headers)
}

/// Drops the line terminator (`\n` or `\r\n`).
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits at the first occurrence of `sep` (non-empty).
fn split_at_separator<'a>(line: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = line.windows(sep.len()).position(|window| window == sep)?;
    Some((&line[..at], &line[at + sep.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_separator() {
        assert_eq!(
            split_at_separator(b"k::v::w", b"::"),
            Some((&b"k"[..], &b"v::w"[..]))
        );
        assert_eq!(
            split_at_separator(b"::v", b"::"),
            Some((&b""[..], &b"v"[..]))
        );
        assert_eq!(split_at_separator(b"kv", b"::"), None);
    }

    #[test]
    fn strips_line_endings() {
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a\n"), b"a");
        assert_eq!(strip_line_end(b"a"), b"a");
    }
}
