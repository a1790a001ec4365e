//! `strom txn`: transactions as `kafka-transactions.sh` lists and describes them.
//!
//! librdkafka has no admin call for these, so the requests are kafka-protocol messages over
//! [`crate::kafka_conn`]: ListTransactions goes to every broker of the cluster (each answers only for
//! the transactional ids it coordinates), and `describe` finds the id's coordinator with
//! FindCoordinator (key type TRANSACTION) and sends DescribeTransactions there.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use rdkafka::metadata::Metadata;

use super::client::{self, describe_wire_code, wire_code_name, REQUEST_TIMEOUT};
use super::BrokerArgs;
use crate::kafka_conn::Connection;

/// FindCoordinator v4 (KIP-699) takes a batch of keys; Strom and Kafka 3.0+ (the first with
/// DescribeTransactions at all) speak it.
const FIND_COORDINATOR_VERSION: i16 = 4;
const DESCRIBE_TRANSACTIONS_VERSION: i16 = 0;
/// FindCoordinator's key type of a transactional id (0 is a group).
const KEY_TYPE_TRANSACTION: i8 = 1;
/// How long `describe` retries while the coordinator moves, loads its state or is elected.
const COORDINATOR_WAIT: Duration = Duration::from_secs(10);
/// Pause between those retries.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The transaction states of Kafka's coordinator, spelt as ListTransactions' filter wants them.
const STATES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// Transaction subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TxnCommand {
    /// Transactional ids with their producer id and state, from every broker of the cluster.
    List {
        /// Only transactions in this state (repeatable): Empty, Ongoing, PrepareCommit,
        /// PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence.
        #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
        states: Vec<String>,
        /// Only transactions of this producer id (repeatable).
        #[arg(long = "producer-id", value_name = "ID")]
        producer_ids: Vec<i64>,
        /// Only transactions that have been running for longer than this (ListTransactions v1).
        #[arg(long, value_name = "MS")]
        longer_than_ms: Option<i64>,
    },
    /// State, producer id and epoch, timeout, start time and age, and the partitions of one
    /// transactional id, from its coordinator.
    Describe {
        /// The transactional id.
        id: String,
    },
}

/// A state name given on the command line, in the protocol's spelling whatever its case.
fn parse_state(raw: &str) -> Result<String, String> {
    STATES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(raw))
        .map(|s| s.to_string())
        .ok_or_else(|| format!("unknown state {raw:?}; one of {}", STATES.join(", ")))
}

/// Runs one transaction subcommand against the cluster of `broker`.
pub async fn run(broker: &BrokerArgs, cmd: TxnCommand) -> anyhow::Result<()> {
    let metadata = client::ensure_reachable(&broker.broker)?;
    let nodes = nodes(&metadata)?;
    match cmd {
        TxnCommand::List {
            states,
            producer_ids,
            longer_than_ms,
        } => list(&nodes, states, producer_ids, longer_than_ms).await,
        TxnCommand::Describe { id } => describe(&nodes, &id).await,
    }
}

/// One broker of the cluster, as Metadata advertises it.
struct Node {
    id: i32,
    addr: String,
}

/// The cluster's brokers, by id.
fn nodes(metadata: &Metadata) -> anyhow::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = metadata
        .brokers()
        .iter()
        .map(|b| Node {
            id: b.id(),
            addr: format!("{}:{}", b.host(), b.port()),
        })
        .collect();
    if nodes.is_empty() {
        bail!("the broker's metadata lists no brokers");
    }
    nodes.sort_by_key(|n| n.id);
    Ok(nodes)
}

/// Sends one request to `addr` on a connection of its own and decodes the response.
async fn call<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> anyhow::Result<Resp> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut conn = Connection::connect(addr).await?;
        conn.request(api, version, request).await
    })
    .await
    .map_err(|_| {
        anyhow!(
            "{addr}: no {api:?} response within {} s",
            REQUEST_TIMEOUT.as_secs()
        )
    })?
}

/// One line of `txn list`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    id: String,
    producer_id: i64,
    state: String,
    coordinator: i32,
}

async fn list(
    nodes: &[Node],
    states: Vec<String>,
    producer_ids: Vec<i64>,
    longer_than_ms: Option<i64>,
) -> anyhow::Result<()> {
    let mut request = ListTransactionsRequest::default()
        .with_state_filters(states.into_iter().map(StrBytes::from_string).collect())
        .with_producer_id_filters(producer_ids.into_iter().map(ProducerId).collect());
    // v0 where it will do, so that brokers without KIP-994 (Kafka before 3.8) answer too.
    let version = match longer_than_ms {
        Some(ms) => {
            request = request.with_duration_filter(ms.max(0));
            1
        }
        None => 0,
    };
    // Every broker at once: each one only knows the ids it coordinates.
    let answers = futures::future::join_all(nodes.iter().map(|node| {
        let request = &request;
        async move {
            let answer: anyhow::Result<ListTransactionsResponse> =
                call(&node.addr, ApiKey::ListTransactions, version, request).await;
            (node, answer.and_then(check_listed))
        }
    }))
    .await;
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (node, answer) in answers {
        match answer {
            Ok(response) => rows.extend(response.transaction_states.into_iter().map(|t| Listed {
                id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
                coordinator: node.id,
            })),
            Err(err) => failed.push(format!("broker {} at {}: {err:#}", node.id, node.addr)),
        }
    }
    rows.sort_unstable();
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(0).max(24);
    println!(
        "{:<width$} {:>12} {:<16} {:>11}",
        "TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "COORDINATOR"
    );
    for r in &rows {
        println!(
            "{:<width$} {:>12} {:<16} {:>11}",
            r.id, r.producer_id, r.state, r.coordinator
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} brokers did not list their transactions, so the list is incomplete: {}",
            failed.len(),
            nodes.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// A ListTransactions response's own errors: a coordinator that cannot answer yet, or a state
/// filter the broker does not know.
fn check_listed(response: ListTransactionsResponse) -> anyhow::Result<ListTransactionsResponse> {
    if response.error_code != 0 {
        bail!("{}", describe_wire_code(response.error_code));
    }
    if !response.unknown_state_filters.is_empty() {
        let unknown: Vec<&str> = response
            .unknown_state_filters
            .iter()
            .map(|s| s.as_str())
            .collect();
        bail!("unknown state filter {}", unknown.join(", "));
    }
    Ok(response)
}

/// The node that coordinates a transactional id.
struct Coordinator {
    id: i32,
    addr: String,
}

/// One attempt's outcome, where it is worth trying again.
enum Attempt<T> {
    Done(T),
    /// A transient condition (no coordinator elected yet, state loading, coordinator moved).
    Retry(String),
}

async fn describe(nodes: &[Node], id: &str) -> anyhow::Result<()> {
    if id.is_empty() {
        bail!("the transactional id must not be empty");
    }
    let started = Instant::now();
    loop {
        let reason = match find_coordinator(nodes, id).await? {
            Attempt::Done(coordinator) => match describe_at(&coordinator, id).await? {
                Attempt::Done(state) => {
                    print_description(id, &coordinator, &state);
                    return Ok(());
                }
                Attempt::Retry(reason) => reason,
            },
            Attempt::Retry(reason) => reason,
        };
        if started.elapsed() >= COORDINATOR_WAIT {
            bail!("transactional id {id}: {reason}");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Asks the brokers in turn (the first that answers decides) which one coordinates `id`.
async fn find_coordinator(nodes: &[Node], id: &str) -> anyhow::Result<Attempt<Coordinator>> {
    let request = FindCoordinatorRequest::default()
        .with_key_type(KEY_TYPE_TRANSACTION)
        .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
    let mut unreachable = Vec::new();
    for node in nodes {
        let response: FindCoordinatorResponse = match call(
            &node.addr,
            ApiKey::FindCoordinator,
            FIND_COORDINATOR_VERSION,
            &request,
        )
        .await
        {
            Ok(response) => response,
            Err(err) => {
                unreachable.push(format!("{err:#}"));
                continue;
            }
        };
        let Some(found) = response
            .coordinators
            .into_iter()
            .find(|c| c.key.as_str() == id)
        else {
            bail!(
                "broker {} did not answer for transactional id {id}",
                node.id
            );
        };
        if found.error_code != 0 {
            let mut why = describe_wire_code(found.error_code);
            if let Some(message) = found.error_message.as_ref().filter(|m| !m.is_empty()) {
                why.push_str(&format!(": {}", message.as_str()));
            }
            if retriable(found.error_code) {
                return Ok(Attempt::Retry(format!("no coordinator: {why}")));
            }
            bail!("finding the coordinator of transactional id {id}: {why}");
        }
        return Ok(Attempt::Done(Coordinator {
            id: found.node_id.0,
            addr: format!("{}:{}", found.host.as_str(), found.port),
        }));
    }
    Ok(Attempt::Retry(format!(
        "no broker answered FindCoordinator: {}",
        unreachable.join("; ")
    )))
}

/// DescribeTransactions for `id` at its coordinator.
async fn describe_at(
    coordinator: &Coordinator,
    id: &str,
) -> anyhow::Result<Attempt<TransactionState>> {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
    let response: DescribeTransactionsResponse = match call(
        &coordinator.addr,
        ApiKey::DescribeTransactions,
        DESCRIBE_TRANSACTIONS_VERSION,
        &request,
    )
    .await
    {
        Ok(response) => response,
        // The coordinator may just have died; FindCoordinator will name its successor.
        Err(err) => {
            return Ok(Attempt::Retry(format!(
                "coordinator {} unreachable: {err:#}",
                coordinator.id
            )))
        }
    };
    let Some(state) = response
        .transaction_states
        .into_iter()
        .find(|s| s.transactional_id.0.as_str() == id)
    else {
        bail!(
            "coordinator {} did not describe transactional id {id}",
            coordinator.id
        );
    };
    match state.error_code {
        0 => Ok(Attempt::Done(state)),
        code if code == ResponseError::TransactionalIdNotFound.code() => bail!(
            "transactional id {id} not found ({}): no producer has initialised it on this \
             cluster, or its state has expired",
            wire_code_name(code)
        ),
        code if retriable(code) => Ok(Attempt::Retry(format!(
            "coordinator {}: {}",
            coordinator.id,
            describe_wire_code(code)
        ))),
        code => bail!(
            "describe transactional id {id} at coordinator {}: {}",
            coordinator.id,
            describe_wire_code(code)
        ),
    }
}

/// Whether an error code means "ask again" (coordinator moving, loading, not elected yet).
fn retriable(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|err| err.is_retriable())
}

/// Prints a description in the layout of `strom group describe`: a header line of fields,
/// then a table of partitions.
fn print_description(id: &str, coordinator: &Coordinator, state: &TransactionState) {
    println!(
        "Transaction: {id}\tState: {}\tProducerId: {}\tProducerEpoch: {}\tCoordinator: {} ({})",
        state.transaction_state.as_str(),
        state.producer_id.0,
        state.producer_epoch,
        coordinator.id,
        coordinator.addr,
    );
    let start = state.transaction_start_time_ms;
    let (started, age) = if start >= 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        (utc(start), duration_text(now.saturating_sub(start).max(0)))
    } else {
        ("-".to_string(), "-".to_string())
    };
    println!(
        "Timeout: {} ms\tStarted: {started}\tAge: {age}",
        state.transaction_timeout_ms
    );
    let mut partitions: Vec<(&str, i32)> = state
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.as_str(), *p)))
        .collect();
    partitions.sort_unstable();
    println!("Partitions: {}", partitions.len());
    if partitions.is_empty() {
        return;
    }
    let width = partitions
        .iter()
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0)
        .max(24);
    println!("{:<width$} {:>9}", "TOPIC", "PARTITION");
    for (topic, partition) in partitions {
        println!("{topic:<width$} {partition:>9}");
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day number.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// A duration for people: `850 ms`, `12.3 s`, `4m 05s`, `2h 01m`.
fn duration_text(ms: i64) -> String {
    let secs = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if secs < 60 {
        format!("{}.{} s", secs, ms % 1000 / 100)
    } else if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h {:02}m", secs / 3600, secs / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_in_any_case() {
        assert_eq!(parse_state("ongoing"), Ok("Ongoing".to_string()));
        assert_eq!(
            parse_state("COMPLETECOMMIT"),
            Ok("CompleteCommit".to_string())
        );
        assert!(parse_state("Running").unwrap_err().contains("Ongoing"));
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(duration_text(850), "850 ms");
        assert_eq!(duration_text(12_345), "12.3 s");
        assert_eq!(duration_text(245_000), "4m 05s");
        assert_eq!(duration_text(7_260_000), "2h 01m");
    }
}
