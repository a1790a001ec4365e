//! Three (or more) real `strom` processes forming a cluster on loopback.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::wire::Conn;
use super::{free_ports, Strom};

/// One partition as one node's Metadata answer describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: i32,
    pub isr: Vec<i32>,
    pub error: i16,
}

/// What the node at `addr` itself answers to Metadata for `topic` (partitions in order), asked
/// on its own connection so no other node answers instead; `None` if it does not answer
/// within `timeout` (down, stopped) or does not know the topic.
pub fn metadata_of(addr: &str, topic: &str, timeout: Duration) -> Option<Vec<PartitionView>> {
    let mut conn = Conn::try_connect(addr, timeout)?;
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let ResponseKind::Metadata(md) = conn.try_request(ApiKey::Metadata, 9, &req)? else {
        return None;
    };
    let t = md
        .topics
        .into_iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic) && t.error_code == 0)?;
    let mut parts: Vec<PartitionView> = t
        .partitions
        .into_iter()
        .map(|p| PartitionView {
            partition: p.partition_index,
            leader: p.leader_id.0,
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            error: p.error_code,
        })
        .collect();
    parts.sort_by_key(|p| p.partition);
    Some(parts)
}

/// Asks `via` for Metadata (of `topic`, or of the cluster) every 200 ms until `check` returns a
/// value, for at most `timeout`; `check` also leaves a description of what it saw in `last`.
/// Panics with `what` and that description when time runs out.
fn poll_metadata<T>(
    via: &str,
    topic: Option<&str>,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut(&rdkafka::metadata::Metadata, &mut String) -> Option<T>,
) -> T {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", via)
        .create()
        .expect("client");
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(md) = consumer.fetch_metadata(topic, Duration::from_secs(2)) {
            if let Some(done) = check(&md, &mut last) {
                return done;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} within {timeout:?} (last: {last})");
}

pub const SECRET: &str = "test-cluster-secret";

/// Starts node `id` under `root/node{id}`: Raft on `raft_port`, Kafka on `kafka_port`.
pub fn start_node(
    root: &Path,
    id: usize,
    raft_port: u16,
    kafka_port: u16,
    peers: &str,
    extra: &[&str],
) -> Strom {
    let id_arg = id.to_string();
    let raft = format!("127.0.0.1:{raft_port}");
    let mut args = vec![
        "--node-id",
        &id_arg,
        "--raft-addr",
        &raft,
        "--peers",
        peers,
        "--cluster-secret",
        SECRET,
    ];
    args.extend_from_slice(extra);
    Strom::start_on(&root.join(format!("node{id}")), kafka_port, &args, &[])
}

pub struct TestCluster {
    pub nodes: Vec<Strom>,
    pub raft_ports: Vec<u16>,
    /// The initial voters, as every node was given them.
    peers: String,
}

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n) under `root`, each in its own data directory.
    pub fn start(root: &Path, n: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_each(root, n, |_| extra.iter().map(|s| s.to_string()).collect())
    }

    /// Like [`TestCluster::start`], node `i` (0-based) getting `extra_of(i)` as its extra flags
    /// (its own HTTP port, say).
    pub fn start_each(
        root: &Path,
        n: usize,
        extra_of: impl Fn(usize) -> Vec<String>,
    ) -> TestCluster {
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
                let extra = extra_of(i);
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                start_node(root, i + 1, raft_ports[i], kafka_ports[i], &peers, &extra)
            })
            .collect();
        TestCluster {
            nodes,
            raft_ports,
            peers,
        }
    }

    /// Starts one node per entry of `raft_ports` (ids 1..=n) under `root`: node `i + 1` listens
    /// for Raft on `raft_ports[i]` and for Kafka on `kafka_ports[i]` and gets `peers[i]` as its
    /// `--peers` (which may differ per node, e.g. other nodes reached through proxies; then pass
    /// the same `--cluster-id` to all in `extra`).
    pub fn start_with(
        root: &Path,
        raft_ports: &[u16],
        kafka_ports: &[u16],
        peers: &[String],
        extra: &[&str],
    ) -> TestCluster {
        let n = raft_ports.len();
        assert!(
            kafka_ports.len() == n && peers.len() == n,
            "one entry per node"
        );
        let nodes = (0..n)
            .map(|i| start_node(root, i + 1, raft_ports[i], kafka_ports[i], &peers[i], extra))
            .collect();
        TestCluster {
            nodes,
            raft_ports: raft_ports.to_vec(),
            peers: peers.first().cloned().unwrap_or_default(),
        }
    }

    /// Starts one more node that joins the running cluster (`--join`); returns its id.
    pub fn join(&mut self, root: &Path, extra: &[&str]) -> i32 {
        let ports = free_ports(2);
        let mut args = vec!["--join", "true"];
        args.extend_from_slice(extra);
        let id = self.nodes.len() + 1;
        self.nodes
            .push(start_node(root, id, ports[0], ports[1], &self.peers, &args));
        self.raft_ports.push(ports[0]);
        self.nodes.len() as i32
    }

    /// Waits until Metadata from `via` lists `n` brokers (registered nodes).
    pub fn wait_for_brokers(&self, via: &str, n: usize, timeout: Duration) {
        poll_metadata(via, None, timeout, &format!("{n} brokers"), |md, last| {
            *last = format!("{} brokers", md.brokers().len());
            (md.brokers().len() == n).then_some(())
        })
    }

    /// Waits until every partition of `topic` has `rf` replicas, all caught up (in the ISR),
    /// none on a node in `avoid`, and a leader; returns the replica lists.
    pub fn wait_for_replicas(
        &self,
        via: &str,
        topic: &str,
        rf: usize,
        avoid: &[i32],
        timeout: Duration,
    ) -> Vec<Vec<i32>> {
        let what = format!("{topic}: {rf} healthy replicas");
        poll_metadata(via, Some(topic), timeout, &what, |md, last| {
            let t = md.topics().iter().find(|t| t.name() == topic)?;
            let parts = t.partitions();
            let replicas: Vec<Vec<i32>> = parts.iter().map(|p| p.replicas().to_vec()).collect();
            *last = format!(
                "replicas {replicas:?} isr {:?} leaders {:?}",
                parts.iter().map(|p| p.isr().to_vec()).collect::<Vec<_>>(),
                parts.iter().map(|p| p.leader()).collect::<Vec<_>>()
            );
            let healed = !parts.is_empty()
                && parts.iter().all(|p| {
                    p.replicas().len() == rf
                        && p.isr().len() == rf
                        && p.leader() > 0
                        && !p.replicas().iter().any(|r| avoid.contains(r))
                });
            healed.then_some(replicas)
        })
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
        let what = format!("{topic}: leaders with isr {isr}");
        poll_metadata(via, Some(topic), timeout, &what, |md, last| {
            let t = md.topics().iter().find(|t| t.name() == topic)?;
            let leaders: Vec<i32> = t.partitions().iter().map(|p| p.leader()).collect();
            let all_led = !leaders.is_empty()
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() > 0 && p.isr().len() >= isr && p.error().is_none())
                && !leaders.iter().any(|l| avoid.contains(l));
            *last = format!(
                "brokers {} leaders {leaders:?} isr {:?}",
                md.brokers().len(),
                t.partitions()
                    .iter()
                    .map(|p| p.isr().to_vec())
                    .collect::<Vec<_>>()
            );
            (md.brokers().len() == brokers && all_led).then_some(leaders)
        })
    }

    /// Waits until every node in `ids` (1-based), each asked on its own, reports a leader for
    /// every partition of `topic` with at least `isr` replicas in sync, and all of them agree on
    /// the leaders, none of which is in `avoid`; returns the leader of each partition. Unlike
    /// [`TestCluster::wait_for_leaders`], a node that was stopped or cut off cannot pass this
    /// with the stale view it woke up with.
    pub fn wait_converged(
        &self,
        ids: &[i32],
        topic: &str,
        isr: usize,
        avoid: &[i32],
        timeout: Duration,
    ) -> Vec<i32> {
        let deadline = Instant::now() + timeout;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = ids
                .iter()
                .map(|id| {
                    let addr = self.nodes[(*id - 1) as usize].addr();
                    (*id, metadata_of(&addr, topic, Duration::from_secs(2)))
                })
                .collect::<Vec<_>>();
            let views: Vec<_> = last.iter().filter_map(|(_, v)| v.as_ref()).collect();
            let healthy = |v: &Vec<PartitionView>| {
                !v.is_empty()
                    && v.iter().all(|p| {
                        p.leader > 0
                            && p.error == 0
                            && p.isr.len() >= isr
                            && !avoid.contains(&p.leader)
                    })
            };
            let leaders = |v: &Vec<PartitionView>| v.iter().map(|p| p.leader).collect::<Vec<_>>();
            if views.len() == ids.len()
                && views.iter().all(|v| healthy(v))
                && views.iter().all(|v| leaders(v) == leaders(views[0]))
            {
                return leaders(views[0]);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{topic}: nodes {ids:?} did not agree on leaders with isr {isr} within {timeout:?} (last: {last:?})");
    }

    /// The node index with Kafka node id `id` (ids are 1-based).
    pub fn node(&mut self, id: i32) -> &mut Strom {
        &mut self.nodes[(id - 1) as usize]
    }
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

pub async fn create(bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    create_with(bootstrap, topic, partitions, rf, &[]).await;
}

pub async fn create_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    rf: i32,
    configs: &[(&str, &str)],
) {
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    // The controller may still be electing right after start: retry until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = admin(bootstrap);
    loop {
        let res = client.create_topics([&t], &opts).await;
        match res.as_ref().map(|r| r[0].clone()) {
            Ok(Ok(_)) => return,
            other if Instant::now() > deadline => panic!("create {topic}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Sends `count` records, keyed `{tag}-{i}`, and returns the acknowledged ones:
/// value -> (partition, offset).
pub async fn produce(
    p: &FutureProducer,
    topic: &str,
    tag: &str,
    count: usize,
) -> BTreeMap<String, (i32, i64)> {
    produce_padded(p, topic, tag, count, 0).await
}

/// As [`produce`], with `pad` bytes of padding after each value (and so in its key).
pub async fn produce_padded(
    p: &FutureProducer,
    topic: &str,
    tag: &str,
    count: usize,
    pad: usize,
) -> BTreeMap<String, (i32, i64)> {
    let padding = "x".repeat(pad);
    let futures: Vec<_> = (0..count)
        .map(|i| {
            let value = format!("{tag}-{i}{padding}");
            let fut = p
                .send_result(FutureRecord::to(topic).key(&value).payload(&value))
                .map_err(|(e, _)| e);
            (value, fut)
        })
        .collect();
    let mut acked = BTreeMap::new();
    for (value, fut) in futures {
        let Ok(fut) = fut else { continue };
        if let Ok(Ok(d)) = fut.await {
            acked.insert(value, (d.partition, d.offset));
        }
    }
    acked
}

/// Every acknowledged record is stored exactly once, at its acknowledged offset.
pub fn check_acked(records: &[super::rdk::Rec], acked: &BTreeMap<String, (i32, i64)>) {
    let mut seen = HashSet::new();
    let mut at: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for r in records {
        let v = String::from_utf8(r.value.clone().unwrap_or_default()).unwrap();
        assert!(seen.insert(v.clone()), "duplicate record {v}");
        assert!(
            at.insert((r.partition, r.offset), v.clone()).is_none(),
            "two records at {}/{}",
            r.partition,
            r.offset
        );
    }
    for (v, (p, o)) in acked {
        assert_eq!(
            at.get(&(*p, *o)),
            Some(v),
            "acknowledged {v} at {p}/{o} is not there"
        );
    }
}

/// `strom cluster <args>` against the node with raft port `raft_port`; panics on failure.
pub fn cluster_cli(raft_port: u16, args: &[&str]) -> String {
    let addr = format!("127.0.0.1:{raft_port}");
    let mut all = vec!["cluster", "--raft-addr", &addr, "--cluster-secret", SECRET];
    all.extend_from_slice(args);
    let (ok, out, err) = super::cli(&all, "");
    assert!(ok, "strom {all:?} failed: {err}");
    out
}
