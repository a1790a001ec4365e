//! The consumer-group side of failover: what the source's groups committed, and committing
//! translated offsets for groups here that nobody is consuming with. Blocking librdkafka
//! calls; the task runs them off the async workers.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use strom_connect::props::Filter;
use strom_connect::TaskError;

use crate::task::Logs;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An offset a source group committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

fn failed(context: &str) -> impl Fn(rdkafka::error::KafkaError) -> TaskError + '_ {
    move |e| TaskError::retriable(format!("{context}: {e}"))
}

/// A handle on `group` (never joined: it only reads and commits offsets).
fn group_handle(config: &ClientConfig, group: &str) -> Result<BaseConsumer<Logs>, TaskError> {
    config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(Logs)
        .map_err(failed("opening a consumer group handle"))
}

fn partition_list(partitions: &[(String, i32)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in partitions {
        tpl.add_partition(topic, *p);
    }
    tpl
}

/// The offsets the source's groups named by `groups` committed on `partitions`.
pub fn source_offsets<C: ConsumerContext>(
    source: &ClientConfig,
    lister: &BaseConsumer<C>,
    groups: &Filter,
    partitions: &[(String, i32)],
) -> Result<Vec<Committed>, TaskError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let list = lister
        .fetch_group_list(None, CALL_TIMEOUT)
        .map_err(failed("listing the source's consumer groups"))?;
    let names: Vec<String> = list
        .groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|g| groups.accepts(g))
        .collect();
    let tpl = partition_list(partitions);
    let mut out = Vec::new();
    for group in names {
        let handle = group_handle(source, &group)?;
        let committed = match handle.committed_offsets(tpl.clone(), CALL_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%group, "mirror: no offsets for the group: {e}");
                continue;
            }
        };
        for e in committed.elements() {
            if let Offset::Offset(offset) = e.offset() {
                out.push(Committed {
                    group: group.clone(),
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    offset,
                    metadata: e.metadata().to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` ((target topic, partition, offset)) for `group` here, unless the group
/// has members (a consumer already moved here owns its position), and never backwards.
/// Returns how many offsets were committed.
pub fn sync_group(
    target: &ClientConfig,
    group: &str,
    offsets: &[(String, i32, i64)],
) -> Result<usize, TaskError> {
    let handle = group_handle(target, group)?;
    let list = handle
        .fetch_group_list(Some(group), CALL_TIMEOUT)
        .map_err(failed("describing a consumer group here"))?;
    let active = list
        .groups()
        .iter()
        .any(|g| g.name() == group && !g.members().is_empty());
    if active {
        return Ok(0);
    }
    let partitions: Vec<(String, i32)> = offsets.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let current = handle
        .committed_offsets(partition_list(&partitions), CALL_TIMEOUT)
        .map_err(failed("reading a group's offsets here"))?;
    let mut commit = TopicPartitionList::new();
    for (topic, p, offset) in offsets {
        let have = current
            .find_partition(topic, *p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        if have.is_none_or(|h| h < *offset) {
            commit
                .add_partition_offset(topic, *p, Offset::Offset(*offset))
                .map_err(failed("committing a group's offsets here"))?;
        }
    }
    if commit.count() == 0 {
        return Ok(0);
    }
    handle
        .commit(&commit, CommitMode::Sync)
        .map_err(failed("committing a group's offsets here"))?;
    Ok(commit.count())
}
