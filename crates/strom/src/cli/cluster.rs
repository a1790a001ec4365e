//! `strom cluster`: talks to a node's Raft address (not the Kafka port), authenticated with the
//! cluster secret like a node, because these commands change the cluster itself.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use strom_broker::cluster::rpc::{self, Request, Response, Status};
use strom_broker::cluster::Command;

#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Any node's Raft address (HOST:PORT).
    #[arg(
        long,
        env = "STROM_RAFT_ADDR",
        global = true,
        default_value = "127.0.0.1:9093"
    )]
    pub raft_addr: String,
    /// The cluster secret [env: STROM_CLUSTER_SECRET].
    #[arg(
        long,
        env = "STROM_CLUSTER_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub cluster_secret: Option<String>,
    /// With --raft-tls on the nodes: a certificate of the cluster's CA to present (PEM).
    #[arg(long, global = true, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true)]
    pub tls_key: Option<std::path::PathBuf>,
    /// The cluster's CA (PEM).
    #[arg(long, global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Nodes, the controller's leader, and every partition's leader, replicas and ISR.
    Status,
    /// Hand partition leadership back to each partition's preferred (first) replica where that
    /// replica is caught up.
    RebalanceLeaders,
    /// Make a node that joined (`strom serve --join`) a voter of the controller group, so the
    /// cluster metadata survives the loss of an original node.
    AddNode {
        /// The node's id.
        id: u64,
    },
    /// Decommission a node: its replicas move to other nodes, it leaves the controller group,
    /// and no new replica is placed on it again.
    RemoveNode {
        /// The node's id.
        id: u64,
        /// Wait until no partition has a replica on the node any more, showing progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
}

pub async fn run(args: &ClusterArgs, command: ClusterCommand) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .raft_addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", args.raft_addr))?
        .next()
        .with_context(|| format!("{} resolves to nothing", args.raft_addr))?;
    let Some(secret) = &args.cluster_secret else {
        bail!("the cluster secret is needed: --cluster-secret or STROM_CLUSTER_SECRET");
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            strom_tls::client_config(
                &strom_tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: args.tls_ca.clone(),
                },
                true,
            )
            .context("cannot load the TLS files")?,
        ),
        _ => None,
    };
    let tls = &tls;
    let call = |req: Request| async move {
        let bytes = strom_consensus::transport::client_call(
            addr,
            secret.as_bytes(),
            None,
            rpc::encode(&req),
            Duration::from_secs(15),
            tls.clone(),
        )
        .await
        .with_context(|| format!("cannot reach the node at {addr}"))?;
        let response: Response =
            rpc::decode(&bytes).map_err(|e| anyhow::anyhow!("bad answer: {e}"))?;
        if let Some(e) = response.error {
            bail!("{e}");
        }
        Ok::<_, anyhow::Error>(response)
    };
    match command {
        ClusterCommand::Status => {
            let Some(status) = call(Request::Status).await?.status else {
                bail!("the node sent no status");
            };
            print_status(&status);
        }
        ClusterCommand::RebalanceLeaders => {
            // Each node moves the leaderships it holds; ask them all.
            let Some(status) = call(Request::Status).await?.status else {
                bail!("the node sent no status");
            };
            for node in status.state.nodes.values() {
                let Some(raft) = node.raft_addr.parse::<SocketAddr>().ok() else {
                    continue;
                };
                let req = rpc::encode(&Request::RebalanceLeaders);
                match strom_consensus::transport::client_call(
                    raft,
                    secret.as_bytes(),
                    None,
                    req,
                    Duration::from_secs(5),
                    tls.clone(),
                )
                .await
                {
                    Ok(_) => println!("node {}: leadership rebalance started", node.id),
                    Err(e) => println!("node {}: not reached ({e})", node.id),
                }
            }
        }
        ClusterCommand::AddNode { id } => {
            call(Request::AddVoter(id)).await?;
            println!("node {id} is a voter of the controller group");
        }
        ClusterCommand::RemoveNode {
            id,
            wait,
            timeout_secs,
        } => {
            call(Request::Propose(Command::RemoveNode { node: id })).await?;
            if !wait {
                println!("node {id} removed: its replicas are moving to other nodes");
                return Ok(());
            }
            // Partitions with a replica on the node, or about to get one.
            let on_node = |s: &Status| {
                s.state
                    .topics
                    .values()
                    .flat_map(|t| t.partitions.iter())
                    .filter(|p| p.hosts(id))
                    .count() as u64
            };
            let status = |r: Response| r.status.context("the node sent no status");
            let total = on_node(&status(call(Request::Status).await?)?);
            let mut meter = crate::progress::Meter::new("moving replicas", total, "partitions");
            let deadline = std::time::Instant::now() + Duration::from_secs(timeout_secs);
            loop {
                let left = on_node(&status(call(Request::Status).await?)?);
                let moved = total.saturating_sub(left);
                meter.update(moved, || {
                    format!("{moved} of {total} partitions moved off node {id}")
                });
                if left == 0 {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!("{left} partitions still have a replica on node {id} after {timeout_secs} s");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            drop(meter);
            println!("node {id} removed: its {total} partitions' replicas moved to other nodes");
        }
    }
    Ok(())
}

fn print_status(s: &Status) {
    println!(
        "cluster {}  controller leader: {}  (asked node {})",
        s.state.cluster_id,
        s.controller_leader
            .map_or("none".to_string(), |l| l.to_string()),
        s.node
    );
    println!("NODE  KAFKA                  RAFT                   STATE        CONTROLLER");
    for n in s.state.nodes.values() {
        let state = if s.state.removed_nodes.contains(&n.id) {
            "removed"
        } else if s.state.fenced_nodes.contains(&n.id) {
            // The controller has not heard from it for a broker session.
            "fenced"
        } else if n.id == s.node || s.connected.contains(&n.id) {
            "up"
        } else {
            "unreachable"
        };
        let role = if s.controller_voters.contains(&n.id) {
            "voter"
        } else if s.controller_learners.contains(&n.id) {
            "learner"
        } else {
            "-"
        };
        println!(
            "{:<5} {:<22} {:<22} {state:<12} {role}",
            n.id,
            format!("{}:{}", n.kafka_host, n.kafka_port),
            n.raft_addr
        );
    }
    println!("\nTOPIC                PARTITION  LEADER  EPOCH  REPLICAS   ISR        MOVING TO");
    for t in s.state.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            println!(
                "{:<20} {:<10} {:<7} {:<6} {:<10} {:<10} {}",
                t.name,
                i,
                p.leader.map_or("-".to_string(), |l| l.to_string()),
                p.leader_epoch,
                ids(&p.replicas),
                ids(&p.isr),
                p.target_replicas.as_deref().map_or("-".to_string(), ids)
            );
        }
    }
}
