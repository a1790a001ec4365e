//! `strom group`: consumer groups as `kafka-consumer-groups` shows and changes them.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _};
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{
    self, describe_code, describe_error, Admin, Consumer, QuietContext, REQUEST_TIMEOUT,
};
use super::BrokerArgs;

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Members, assignments, and per partition the committed offset, the log end offset, the
    /// last stable offset (where open transactions hold read_committed consumers back) and the
    /// lag against each: LAG for read_uncommitted consumers, LSO-LAG for read_committed ones.
    Describe { group: String },
    /// Move a group's committed offsets; the group must have no active members.
    /// Prints the plan; changes nothing without --execute.
    ResetOffsets {
        group: String,
        /// Topic whose offsets move (every partition).
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        to: ResetTo,
        /// Apply the plan (without it, only print it).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group and its committed offsets; the group must be empty.
    Delete { group: String },
}

#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    /// To the first offset still stored.
    #[arg(long)]
    to_earliest: bool,
    /// To the end: only records produced from now on are consumed.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to the partition's range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// By this many records from the committed offset (negative: back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

pub async fn run(broker: &BrokerArgs, cmd: GroupCommand) -> anyhow::Result<()> {
    let metadata = client::ensure_reachable(&broker.broker)?;
    match cmd {
        GroupCommand::List => {
            let consumer = consumer_for(&broker.broker, "strom-cli")?;
            let list =
                tokio::task::block_in_place(|| consumer.fetch_group_list(None, REQUEST_TIMEOUT))
                    .map_err(|e| anyhow!("list groups: {}", describe_error(&e)))?;
            let mut groups: Vec<&GroupInfo> = list.groups().iter().collect();
            groups.sort_by_key(|g| g.name());
            for g in groups {
                println!("{}\t{}", g.name(), g.state());
            }
        }
        GroupCommand::Describe { group } => {
            let topics: Vec<String> = metadata
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|n| !n.starts_with("__"))
                .collect();
            describe(&broker.broker, &group, &topics)?;
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            execute,
        } => {
            reset(&broker.broker, &group, &topic, &to, execute)?;
        }
        GroupCommand::Delete { group } => {
            let admin: Admin = client::admin_config(&broker.broker)
                .create_with_context(QuietContext)
                .context("creating admin client")?;
            let results = admin
                .delete_groups(&[group.as_str()], &super::topic::admin_options(false))
                .await
                .map_err(|e| anyhow!("delete group {group}: {}", describe_error(&e)))?;
            for r in results {
                if let Err((name, code)) = r {
                    bail!("delete group {name}: {}", describe_code(code));
                }
            }
            eprintln!("deleted group {group}");
        }
    }
    Ok(())
}

/// A consumer that acts *as* `group` for offset fetches and commits without ever joining it.
fn consumer_for(broker: &str, group: &str) -> anyhow::Result<Consumer> {
    let mut config = client::consumer_config(broker);
    config.set("group.id", group);
    config
        .create_with_context(QuietContext)
        .context("creating consumer")
}

fn group_info(consumer: &Consumer, group: &str) -> anyhow::Result<(String, Vec<Member>)> {
    let list =
        tokio::task::block_in_place(|| consumer.fetch_group_list(Some(group), REQUEST_TIMEOUT))
            .map_err(|e| anyhow!("describe group {group}: {}", describe_error(&e)))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        bail!("group {group}: not found");
    };
    let members = info
        .members()
        .iter()
        .map(|m| Member {
            id: m.id().to_string(),
            client: format!("{}/{}", m.client_id(), m.client_host()),
            partitions: m
                .assignment()
                .map(strom_broker::group::consumer_assignment)
                .unwrap_or_default(),
        })
        .collect();
    Ok((info.state().to_string(), members))
}

struct Member {
    id: String,
    client: String,
    partitions: Vec<(String, i32)>,
}

/// A client whose ListOffsets requests carry `isolation` (librdkafka sends the consumer's
/// `isolation.level` with its watermark queries): `read_uncommitted` answers the log end (the
/// high watermark), `read_committed` the last stable offset.
fn offsets_client(broker: &str, isolation: &str) -> anyhow::Result<Consumer> {
    let mut config = client::consumer_config(broker);
    config.set("isolation.level", isolation);
    config
        .create_with_context(QuietContext)
        .context("creating consumer")
}

fn describe(broker: &str, group: &str, topics: &[String]) -> anyhow::Result<()> {
    let consumer = consumer_for(broker, group)?;
    let log_end = offsets_client(broker, "read_uncommitted")?;
    let stable = offsets_client(broker, "read_committed")?;
    let (state, members) = group_info(&consumer, group)?;
    let owner: BTreeMap<(String, i32), &Member> = members
        .iter()
        .flat_map(|m| m.partitions.iter().map(move |tp| (tp.clone(), m)))
        .collect();
    println!("Group: {group}\tState: {state}\tMembers: {}", members.len());
    println!(
        "{:<24} {:>9} {:>16} {:>14} {:>18} {:>10} {:>10}  MEMBER",
        "TOPIC",
        "PARTITION",
        "COMMITTED-OFFSET",
        "END-OFFSET",
        "LAST-STABLE-OFFSET",
        "LAG",
        "LSO-LAG"
    );
    for topic in topics {
        let partitions =
            client::topic_partitions(consumer.client(), topic, std::time::Duration::ZERO, false)?;
        let committed = committed(&consumer, topic, &partitions)?;
        let assigned = partitions
            .iter()
            .any(|p| owner.contains_key(&(topic.clone(), *p)));
        if !assigned && committed.values().all(|o| *o < 0) {
            continue;
        }
        // The LSO first: both only grow and the LSO never passes the log end, so asked in this
        // order they never show an LSO beyond the end.
        let lsos: BTreeMap<i32, i64> = client::watermarks(&stable, topic, &partitions)?
            .into_iter()
            .map(|w| (w.partition, w.high))
            .collect();
        for w in client::watermarks(&log_end, topic, &partitions)? {
            let c = committed.get(&w.partition).copied().unwrap_or(-1);
            let lso = lsos
                .get(&w.partition)
                .copied()
                .unwrap_or(w.high)
                .min(w.high);
            let (shown, lag, lso_lag) = if c >= 0 {
                (
                    c.to_string(),
                    (w.high - c).max(0).to_string(),
                    (lso - c).max(0).to_string(),
                )
            } else {
                ("-".into(), "-".into(), "-".into())
            };
            let member = owner
                .get(&(topic.clone(), w.partition))
                .map_or("-".to_string(), |m| format!("{} ({})", m.id, m.client));
            println!(
                "{topic:<24} {:>9} {shown:>16} {:>14} {lso:>18} {lag:>10} {lso_lag:>10}  {member}",
                w.partition, w.high
            );
        }
    }
    Ok(())
}

/// Committed offset per partition; -1 where the group has none.
fn committed(
    consumer: &Consumer,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let got = tokio::task::block_in_place(|| consumer.committed_offsets(tpl, REQUEST_TIMEOUT))
        .map_err(|e| anyhow!("committed offsets of {topic}: {}", describe_error(&e)))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                if let Offset::Offset(o) = e.offset() {
                    o
                } else {
                    -1
                },
            )
        })
        .collect())
}

fn reset(
    broker: &str,
    group: &str,
    topic: &str,
    to: &ResetTo,
    execute: bool,
) -> anyhow::Result<()> {
    let consumer = consumer_for(broker, group)?;
    if let Ok((state, members)) = group_info(&consumer, group) {
        if !members.is_empty() {
            bail!("group {group} is {state} with {} active members: stop them before resetting offsets", members.len());
        }
    }
    let partitions =
        client::topic_partitions(consumer.client(), topic, std::time::Duration::ZERO, false)?;
    let current = committed(&consumer, topic, &partitions)?;
    let mut tpl = TopicPartitionList::new();
    println!(
        "{:<24} {:>9} {:>12} {:>12}",
        "TOPIC", "PARTITION", "CURRENT", "NEW"
    );
    for w in client::watermarks(&consumer, topic, &partitions)? {
        let now = current.get(&w.partition).copied().unwrap_or(-1);
        let target = if to.to_earliest {
            w.low
        } else if to.to_latest {
            w.high
        } else if let Some(o) = to.to_offset {
            o
        } else {
            let base = if now >= 0 { now } else { w.low };
            base.saturating_add(to.shift_by.unwrap_or(0))
        };
        let target = target.clamp(w.low, w.high);
        println!(
            "{topic:<24} {:>9} {:>12} {target:>12}",
            w.partition,
            if now >= 0 {
                now.to_string()
            } else {
                "-".into()
            }
        );
        tpl.add_partition_offset(topic, w.partition, Offset::Offset(target))
            .map_err(|e| anyhow!("{topic}/{}: {}", w.partition, describe_error(&e)))?;
    }
    if !execute {
        eprintln!("dry run: add --execute to commit these offsets");
        return Ok(());
    }
    tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync))
        .map_err(|e| anyhow!("commit offsets for group {group}: {}", describe_error(&e)))?;
    eprintln!("reset offsets of group {group} on {topic}");
    Ok(())
}
