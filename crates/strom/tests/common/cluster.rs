//! Three (or more) real `strom` processes forming a cluster on loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{free_ports, Strom};

pub const SECRET: &str = "test-cluster-secret";

pub struct TestCluster {
    pub nodes: Vec<Strom>,
    pub raft_ports: Vec<u16>,
}

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n) under `root`, each in its own data directory.
    pub fn start(root: &Path, n: usize, extra: &[&str]) -> TestCluster {
        let ports = free_ports(2 * n);
        let (raft_ports, kafka_ports) = (ports[..n].to_vec(), ports[n..].to_vec());
        let peers = raft_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..n)
            .map(|i| {
                let id = (i + 1).to_string();
                let raft = format!("127.0.0.1:{}", raft_ports[i]);
                let mut args = vec![
                    "--node-id",
                    &id,
                    "--raft-addr",
                    &raft,
                    "--peers",
                    &peers,
                    "--cluster-secret",
                    SECRET,
                ];
                args.extend_from_slice(extra);
                Strom::start_on(
                    &root.join(format!("node{}", i + 1)),
                    kafka_ports[i],
                    &args,
                    &[],
                )
            })
            .collect();
        TestCluster { nodes, raft_ports }
    }

    /// Every node's Kafka address: what a client bootstraps from.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node (index into `nodes`) whose Kafka port is `port`.
    pub fn index_of_port(&self, port: i32) -> Option<usize> {
        self.nodes.iter().position(|n| i32::from(n.port) == port)
    }

    /// Waits until Metadata from `via` lists `brokers` nodes and every partition of `topic` has
    /// a leader, none of them in `avoid`, with `isr` caught-up replicas; returns the leader node
    /// id of each partition.
    pub fn wait_for_leaders(
        &self,
        via: &str,
        topic: &str,
        brokers: usize,
        isr: usize,
        avoid: &[i32],
        timeout: Duration,
    ) -> Vec<i32> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", via)
            .create()
            .expect("client");
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
                let ok_brokers = md.brokers().len() == brokers;
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    let leaders: Vec<i32> = t.partitions().iter().map(|p| p.leader()).collect();
                    let all_led = !leaders.is_empty()
                        && t.partitions()
                            .iter()
                            .all(|p| p.leader() > 0 && p.isr().len() >= isr && p.error().is_none())
                        && !leaders.iter().any(|l| avoid.contains(l));
                    last = format!(
                        "brokers {} leaders {leaders:?} isr {:?}",
                        md.brokers().len(),
                        t.partitions()
                            .iter()
                            .map(|p| p.isr().to_vec())
                            .collect::<Vec<_>>()
                    );
                    if ok_brokers && all_led {
                        return leaders;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{topic}: no leaders with isr {isr} within {timeout:?} (last: {last})");
    }

    /// The node index with Kafka node id `id` (ids are 1-based).
    pub fn node(&mut self, id: i32) -> &mut Strom {
        &mut self.nodes[(id - 1) as usize]
    }
}
