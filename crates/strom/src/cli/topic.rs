//! `strom topic`: create, list, describe and delete topics through the Kafka admin API.

use anyhow::{anyhow, bail, Context};
use rdkafka::admin::{AdminOptions, ConfigResource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::metadata::MetadataTopic;

use super::client::{self, describe_code, describe_error, Admin, QuietContext, REQUEST_TIMEOUT};
use super::{parse_key_value, BrokerArgs};

/// Topic administration subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (-1: the broker's default).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i32,
        /// Topic configuration override as key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topic names, one per line.
    List,
    /// Show partitions (leader, replicas, in-sync replicas) and configuration of a topic.
    Describe {
        /// Topic name.
        name: String,
        /// Show every configuration entry, not only those that differ from the defaults.
        #[arg(long)]
        all_configs: bool,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs one topic subcommand against the broker.
pub async fn run(broker: &BrokerArgs, cmd: TopicCommand) -> anyhow::Result<()> {
    let metadata = client::ensure_reachable(&broker.broker)?;
    let admin: Admin = client::admin_config(&broker.broker)
        .create_with_context(QuietContext)
        .context("creating admin client")?;
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = NewTopic::new(
                &name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            );
            for (key, value) in &configs {
                topic = topic.set(key, value);
            }
            let results = admin
                .create_topics([&topic], &admin_options(true))
                .await
                .map_err(|err| anyhow!("create topic {name}: {}", describe_error(&err)))?;
            check_results(results, "create")?;
            eprintln!("created topic {name}");
        }
        TopicCommand::List => {
            let mut names: Vec<&str> = metadata.topics().iter().map(MetadataTopic::name).collect();
            names.sort_unstable();
            for name in names {
                println!("{name}");
            }
        }
        TopicCommand::Describe { name, all_configs } => {
            describe(&admin, &name, all_configs).await?;
        }
        TopicCommand::Delete { name } => {
            let results = admin
                .delete_topics(&[&name], &admin_options(true))
                .await
                .map_err(|err| anyhow!("delete topic {name}: {}", describe_error(&err)))?;
            check_results(results, "delete")?;
            eprintln!("deleted topic {name}");
        }
    }
    Ok(())
}

/// Admin request options; `operation` also bounds how long the broker may take to finish a
/// topic creation or deletion before answering.
pub(crate) fn admin_options(operation: bool) -> AdminOptions {
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    if operation {
        options.operation_timeout(Some(REQUEST_TIMEOUT))
    } else {
        options
    }
}

/// Turns per-topic admin results into an error naming the Kafka error code.
fn check_results(results: Vec<rdkafka::admin::TopicResult>, action: &str) -> anyhow::Result<()> {
    for result in results {
        if let Err((topic, code)) = result {
            bail!("{action} topic {topic}: {}", describe_code(code));
        }
    }
    Ok(())
}

/// Prints a topic in the layout of `kafka-topics --describe`.
async fn describe(admin: &Admin, name: &str, all_configs: bool) -> anyhow::Result<()> {
    let metadata =
        tokio::task::block_in_place(|| admin.inner().fetch_metadata(Some(name), REQUEST_TIMEOUT))
            .map_err(|err| anyhow!("metadata for topic {name}: {}", describe_error(&err)))?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
        bail!("topic {name}: missing from the broker's metadata response");
    };
    if let Some(code) = topic.error() {
        bail!("topic {name}: {}", describe_code(code.into()));
    }
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_unstable_by_key(|p| p.id());
    let replication_factor = partitions.first().map_or(0, |p| p.replicas().len());

    let resources = [ResourceSpecifier::Topic(name)];
    let configs = admin
        .describe_configs(&resources, &admin_options(false))
        .await
        .map_err(|err| anyhow!("describe configs of topic {name}: {}", describe_error(&err)))?;
    let mut entries = Vec::new();
    for result in configs {
        let resource: ConfigResource = result
            .map_err(|code| anyhow!("describe configs of topic {name}: {}", describe_code(code)))?;
        for entry in resource.entries {
            if all_configs || !entry.is_default {
                let value = if entry.is_sensitive {
                    None
                } else {
                    entry.value
                };
                entries.push(format!("{}={}", entry.name, value.as_deref().unwrap_or("")));
            }
        }
    }
    entries.sort_unstable();

    println!(
        "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {replication_factor}\tConfigs: {}",
        partitions.len(),
        entries.join(",")
    );
    for p in partitions {
        let mut line = format!(
            "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            p.id(),
            if p.leader() < 0 {
                "none".to_string()
            } else {
                p.leader().to_string()
            },
            join_ids(p.replicas()),
            join_ids(p.isr()),
        );
        if let Some(code) = p.error() {
            line.push_str(&format!("\tError: {}", describe_code(code.into())));
        }
        println!("{line}");
    }
    Ok(())
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
