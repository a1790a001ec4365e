//! The broker's part of the node's Prometheus metrics: values read at scrape time
//! ([`BrokerCollector`]) — per-partition offsets and sizes, under-replicated and leaderless
//! partitions, followers' lag, the controller's view of the nodes, consumer groups, and the
//! process's CPU, memory and files — beside the instruments every layer records into
//! (`strom_metrics::global`). Reading them costs a few atomic loads and short lock holds per
//! partition, nothing per record.

use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::Broker;

/// A registry with every instrument and `broker`'s scrape-time values, names prefixed `strom_`.
pub fn registry(broker: &Arc<Broker>) -> Registry {
    let mut r = Registry::with_prefix("strom");
    strom_metrics::global().register(&mut r);
    r.register_collector(Box::new(BrokerCollector(Arc::downgrade(broker))));
    r
}

/// Values read from the broker at each scrape.
#[derive(Debug)]
pub struct BrokerCollector(Weak<Broker>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabels {
    topic: String,
    partition: String,
    follower: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupStateLabels {
    group: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeStateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// No labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoLabels {}

/// One gauge family: a name, help, and (labels, value) pairs.
fn gauges<L: EncodeLabelSet + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(L, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    gauges(encoder, name, help, None, &[(NoLabels {}, value)])
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(broker) = self.0.upgrade() else {
            return Ok(());
        };
        let version = [(
            VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            },
            1,
        )];
        gauges(
            &mut encoder,
            "build_info",
            "Strom's version",
            None,
            &version,
        )?;
        partitions(&broker, &mut encoder)?;
        controller(&broker, &mut encoder)?;
        groups(&broker, &mut encoder)?;
        process(&mut encoder)
    }
}

/// The partitions this node holds a replica of.
fn partitions(broker: &Broker, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let (mut hw, mut start, mut size, mut remote, mut epoch, mut follower_lag) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut led = 0;
    for topic in broker.topics() {
        for p in topic.partitions() {
            let labels = PartitionLabels {
                topic: topic.name.clone(),
                partition: p.index.to_string(),
            };
            hw.push((labels.clone(), n(p.high_watermark())));
            start.push((labels.clone(), n(p.log_start_offset())));
            size.push((labels.clone(), n(p.size_bytes())));
            remote.push((labels.clone(), n(p.remote_size_bytes())));
            epoch.push((labels.clone(), i64::from(p.leader_epoch())));
            // A single node's partitions have no Raft group, and lead.
            let Some(status) = p.with_driver(|d| d.status()) else {
                led += 1;
                continue;
            };
            if !status.role.is_leader {
                continue;
            }
            led += 1;
            let me = u64::try_from(broker.node_id()).unwrap_or(0);
            for f in status.progress.iter().filter(|f| f.node != me) {
                follower_lag.push((
                    FollowerLabels {
                        topic: topic.name.clone(),
                        partition: p.index.to_string(),
                        follower: f.node.to_string(),
                    },
                    n(status.last_index.saturating_sub(f.matched)),
                ));
            }
        }
    }
    gauges(
        encoder,
        "partition_high_watermark",
        "Offset below which records are committed and visible",
        None,
        &hw,
    )?;
    gauges(
        encoder,
        "partition_log_start_offset",
        "First offset served (tiered partitions: in the object store)",
        None,
        &start,
    )?;
    gauges(
        encoder,
        "partition_log_size",
        "Bytes of the partition's log on this node's disk",
        Some(&Unit::Bytes),
        &size,
    )?;
    gauges(
        encoder,
        "partition_remote_size",
        "Bytes of the partition's log in the object store",
        Some(&Unit::Bytes),
        &remote,
    )?;
    gauges(
        encoder,
        "partition_leader_epoch",
        "Leader epoch (Raft term) this replica knows",
        None,
        &epoch,
    )?;
    gauge(
        encoder,
        "partitions_led",
        "Partitions this node leads (all of them on a single node)",
        led,
    )?;
    gauges(
        encoder,
        "raft_follower_lag",
        "Raft entries a follower lacks, for the partitions this node leads",
        None,
        &follower_lag,
    )?;
    let under = broker.cluster().map_or(0, |c| {
        let me = c.node_id();
        c.with_state(|s| {
            s.topics
                .values()
                .flat_map(|t| t.partitions.iter())
                .filter(|p| p.leader == Some(me) && p.isr.len() < p.replicas.len())
                .count()
        })
    });
    gauge(
        encoder,
        "partitions_under_replicated",
        "Partitions this node leads whose in-sync replicas are fewer than their replicas (Kafka's UnderReplicatedPartitions; sum over nodes for the cluster)",
        under as i64,
    )
}

/// The controller's view, reported by its leader only (as Kafka's active controller does), so
/// a sum over nodes counts each partition once.
fn controller(broker: &Broker, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(c) = broker.cluster() else {
        return gauge(
            encoder,
            "controller_active",
            "1 on the node leading the controller (a single node always)",
            1,
        );
    };
    let active = c.controller_leader() == Some(c.node_id());
    gauge(
        encoder,
        "controller_active",
        "1 on the node leading the controller (a single node always)",
        i64::from(active),
    )?;
    if !active {
        return Ok(());
    }
    let (nodes, leaderless, reassigning) = c.with_state(|s| {
        let removed = s.removed_nodes.len() as i64;
        let fenced = s
            .fenced_nodes
            .iter()
            .filter(|n| !s.removed_nodes.contains(n))
            .count() as i64;
        let alive = s.nodes.len() as i64 - removed - fenced;
        let parts = || s.topics.values().flat_map(|t| t.partitions.iter());
        let leaderless = parts()
            .filter(|p| p.leader.is_none_or(|l| s.fenced_nodes.contains(&l)))
            .count() as i64;
        let reassigning = parts().filter(|p| p.target_replicas.is_some()).count() as i64;
        (
            [
                (NodeStateLabel { state: "alive" }, alive),
                (NodeStateLabel { state: "fenced" }, fenced),
                (NodeStateLabel { state: "removed" }, removed),
            ],
            leaderless,
            reassigning,
        )
    });
    gauges(
        encoder,
        "cluster_nodes",
        "Registered nodes by state: alive (heard within a broker session), fenced, removed",
        None,
        &nodes,
    )?;
    gauge(
        encoder,
        "cluster_partitions_leaderless",
        "Partitions with no leader, or a fenced one (Kafka's OfflinePartitionsCount)",
        leaderless,
    )?;
    gauge(
        encoder,
        "cluster_reassignments",
        "Partitions whose replicas are being moved",
        reassigning,
    )
}

/// The consumer groups this node coordinates.
fn groups(broker: &Broker, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let (mut lag, mut members, mut states) = (Vec::new(), Vec::new(), Vec::new());
    for g in broker.groups().list() {
        let described = broker.groups().describe(&g.group_id);
        let label = GroupLabel {
            group: g.group_id.clone(),
        };
        members.push((label, described.members.len() as i64));
        states.push((
            GroupStateLabels {
                group: g.group_id.clone(),
                state: described.state.name(),
            },
            1,
        ));
        for (topic, parts) in broker.groups().fetch_offsets(&g.group_id, None) {
            let held = broker.topic(&topic);
            for (partition, committed) in parts {
                let (Some(c), Some(p)) = (
                    committed,
                    held.as_ref().and_then(|t| t.partition(partition)),
                ) else {
                    continue;
                };
                lag.push((
                    LagLabels {
                        group: g.group_id.clone(),
                        topic: topic.clone(),
                        partition: partition.to_string(),
                    },
                    (n(p.high_watermark()) - c.offset).max(0),
                ));
            }
        }
    }
    gauges(
        encoder,
        "group_lag",
        "Records between a group's committed offset and the high watermark, where this node holds the partition",
        None,
        &lag,
    )?;
    gauges(
        encoder,
        "group_members",
        "Members of a consumer group this node coordinates",
        None,
        &members,
    )?;
    gauges(
        encoder,
        "group_state",
        "1 for the state a consumer group this node coordinates is in",
        None,
        &states,
    )
}

/// CPU time, resident memory and open files of this process, from /proc.
fn process(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Ok(());
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf reads a configuration value and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let cpu = (ticks(11) + ticks(12)) as f64 / hz;
    let rss = ticks(21) * page;
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let counter = prometheus_client::metrics::counter::ConstCounter::new(cpu);
    counter.encode(encoder.encode_descriptor(
        "process_cpu",
        "User and system CPU time of the process",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?)?;
    ConstGauge::new(rss as i64).encode(encoder.encode_descriptor(
        "process_resident_memory",
        "Resident memory of the process",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?)?;
    ConstGauge::new(fds as i64).encode(encoder.encode_descriptor(
        "process_open_fds",
        "Open file descriptors of the process",
        None,
        MetricType::Gauge,
    )?)
}
