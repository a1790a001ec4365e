//! What the Kafka face records in the node's metrics: each request's API and latency, and the
//! error codes its response carries, under Kafka's own names (`Produce`,
//! `NOT_LEADER_OR_FOLLOWER`).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Instant;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::ResponseError;

const FACE: &str = "kafka";

/// Kafka's name of each API (`ApiKey`'s variant name without `Key`), built once so a label is
/// a static string.
static API_NAMES: LazyLock<HashMap<i16, &'static str>> = LazyLock::new(|| {
    (0..=200i16)
        .filter_map(|k| {
            let api = ApiKey::try_from(k).ok()?;
            let name = format!("{api:?}");
            let name = name.strip_suffix("Key").unwrap_or(&name).to_string();
            Some((k, &*Box::leak(name.into_boxed_str())))
        })
        .collect()
});

/// Kafka's name of each error code (`NOT_LEADER_OR_FOLLOWER`), built once.
static ERROR_NAMES: LazyLock<HashMap<i16, &'static str>> = LazyLock::new(|| {
    (-1..=200i16)
        .filter_map(|code| match ResponseError::try_from_code(code)? {
            ResponseError::Unknown(_) => None,
            e => Some((
                code,
                &*Box::leak(snake_upper(&e.to_string()).into_boxed_str()),
            )),
        })
        .collect()
});

fn snake_upper(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

pub fn api_name(api: ApiKey) -> &'static str {
    API_NAMES.get(&(api as i16)).copied().unwrap_or("Unknown")
}

fn error_name(code: i16) -> &'static str {
    ERROR_NAMES.get(&code).copied().unwrap_or("UNKNOWN")
}

/// A request of `api`, started at `started`, was answered with `resp` (`None`: no response,
/// an acks=0 produce).
pub fn record(api: ApiKey, started: Instant, resp: Option<&ResponseKind>) {
    let name = api_name(api);
    let m = strom_metrics::global();
    m.request(FACE, name, started.elapsed().as_secs_f64());
    if let Some(resp) = resp {
        error_codes(resp, &mut |code| {
            if code != 0 {
                m.request_error(FACE, name, error_name(code));
            }
        });
    }
}

/// Calls `f` with every error code in the responses clients and operators watch most; other
/// APIs' errors are not counted.
fn error_codes(resp: &ResponseKind, f: &mut impl FnMut(i16)) {
    match resp {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| f(p.error_code)),
        ResponseKind::Fetch(r) => {
            f(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| f(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::Metadata(r) => r.topics.iter().for_each(|t| f(t.error_code)),
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            f(r.error_code);
            r.groups.iter().for_each(|g| f(g.error_code));
        }
        ResponseKind::FindCoordinator(r) => {
            f(r.error_code);
            r.coordinators.iter().for_each(|c| f(c.error_code));
        }
        ResponseKind::JoinGroup(r) => f(r.error_code),
        ResponseKind::SyncGroup(r) => f(r.error_code),
        ResponseKind::Heartbeat(r) => f(r.error_code),
        ResponseKind::LeaveGroup(r) => f(r.error_code),
        ResponseKind::InitProducerId(r) => f(r.error_code),
        ResponseKind::EndTxn(r) => f(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| f(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| f(t.error_code)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(api_name(ApiKey::Produce), "Produce");
        assert_eq!(api_name(ApiKey::OffsetCommit), "OffsetCommit");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(999), "UNKNOWN");
    }
}
