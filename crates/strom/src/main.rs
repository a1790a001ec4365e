//! The `strom` binary: the broker (`serve`), a Kafka-protocol client CLI and the benchmark.
//! Everything here is the edge of the program: errors become `anyhow` and a non-zero exit.

mod bench;
mod cli;
mod config;
mod kafka_conn;
mod listeners;
mod progress;
mod security;
mod serve;
mod telemetry;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "strom",
    version,
    about = "Strom: a durable, Kafka-compatible stream store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (single node on local disk by default).
    Serve(Box<config::ServeArgs>),
    /// Create, list, describe and delete topics on a running broker.
    Topic {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(subcommand)]
        command: cli::topic::TopicCommand,
    },
    /// List, describe, reset and delete consumer groups.
    Group {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(subcommand)]
        command: cli::group::GroupCommand,
    },
    /// List and describe transactions (the coordinators' view of transactional ids).
    Txn {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(subcommand)]
        command: cli::txn::TxnCommand,
    },
    /// Produce lines from stdin to a topic.
    Produce {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(flatten)]
        args: cli::produce::ProduceArgs,
    },
    /// Print records of a topic to stdout.
    Consume {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(flatten)]
        args: cli::consume::ConsumeArgs,
    },
    /// Inspect and manage a cluster (over the node-to-node port, with the cluster secret).
    Cluster {
        #[command(flatten)]
        args: cli::cluster::ClusterArgs,
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
    },
    /// Create, inspect and control connectors (Kafka Connect's REST API).
    Connector {
        #[command(flatten)]
        args: cli::connector::ConnectArgs,
        #[command(subcommand)]
        command: cli::connector::ConnectorCommand,
    },
    /// Cross-cluster mirrors (mirror connectors): their lag per topic.
    Mirror {
        #[command(flatten)]
        args: cli::connector::ConnectArgs,
        #[command(subcommand)]
        command: cli::mirror::MirrorCommand,
    },
    /// Create, list and delete SCRAM users (Kafka's AlterUserScramCredentials).
    User {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(subcommand)]
        command: cli::security::UserCommand,
    },
    /// Create, list and delete ACLs (Kafka's model: principal, resource, operation).
    Acl {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(subcommand)]
        command: cli::security::AclCommand,
    },
    /// Set, remove and list client quotas (byte rates, request percentage).
    Quota {
        #[command(flatten)]
        broker: cli::BrokerArgs,
        #[command(subcommand)]
        command: cli::security::QuotaCommand,
    },
    /// A local certificate authority and certificates for nodes and clients (PEM files).
    Cert {
        #[command(subcommand)]
        command: cli::security::CertCommand,
    },
    /// Measure throughput and latency against any Kafka-protocol broker.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let broker = match &cli.command {
        Command::Topic { broker, .. }
        | Command::Group { broker, .. }
        | Command::Txn { broker, .. }
        | Command::Produce { broker, .. }
        | Command::Consume { broker, .. }
        | Command::User { broker, .. }
        | Command::Acl { broker, .. }
        | Command::Quota { broker, .. } => Some(broker),
        Command::Bench { command } => command.broker(),
        _ => None,
    };
    if let Some(Err(err)) = broker.map(cli::security::init) {
        eprintln!("error: {err:#}");
        return std::process::ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Topic { broker, command } => {
            block_on(async move { cli::topic::run(&broker, command).await })
        }
        Command::Group { broker, command } => {
            block_on(async move { cli::group::run(&broker, command).await })
        }
        Command::Txn { broker, command } => {
            block_on(async move { cli::txn::run(&broker, command).await })
        }
        Command::Produce { broker, args } => {
            block_on(async move { cli::produce::run(&broker, args).await })
        }
        Command::Consume { broker, args } => {
            block_on(async move { cli::consume::run(&broker, args).await })
        }
        Command::Cluster { args, command } => {
            block_on(async move { cli::cluster::run(&args, command).await })
        }
        Command::Connector { args, command } => cli::connector::run(&args, command),
        Command::Mirror { args, command } => cli::mirror::run(&args, command),
        Command::User { broker, command } => {
            block_on(async move { cli::security::user(&broker, command).await })
        }
        Command::Acl { broker, command } => {
            block_on(async move { cli::security::acl(&broker, command).await })
        }
        Command::Quota { broker, command } => {
            block_on(async move { cli::security::quota(&broker, command).await })
        }
        Command::Cert { command } => cli::security::cert(command),
        Command::Bench { command } => block_on(bench::run(command)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Client commands run on a runtime of their own; `serve` builds the broker's.
fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}
