//! `GET /metrics` scraped while real clients produce, consume and commit, parsed with the
//! Prometheus client library's OpenMetrics parser: the values move as they must.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::cluster::TestCluster;
use common::rdk::{group_consumer, poll_records};
use common::{cli, free_port, free_ports, run_python, wait_until, Strom};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// One scrape: samples by name, each with its labels and value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

fn scrape(http: &str) -> Scrape {
    let out = run_python("parse_metrics.py", &format!("http://{http}/metrics"));
    Scrape(
        out.lines()
            .map(|line| serde_json::from_str(line).expect("a sample as JSON"))
            .collect(),
    )
}

impl Scrape {
    /// The sum of `name`'s samples whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

fn commit(consumer: &BaseConsumer, topic: &str, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

#[test]
fn metrics_follow_produce_consume_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let etcd = format!("127.0.0.1:{}", free_port());
    let s = Strom::start(dir.path(), &["--http-addr", &http, "--etcd-addr", &etcd]);
    let (ok, _, err) = cli(&["topic", "create", "orders", "-b", &s.addr()], "");
    assert!(ok, "{err}");
    let lines: String = (0..50).map(|i| format!("order-{i}\n")).collect();
    let (ok, _, err) = cli(&["produce", "orders", "-b", &s.addr()], &lines);
    assert!(ok, "{err}");

    let m = scrape(&http);
    let orders = [("topic", "orders")];
    assert_eq!(m.sum("strom_topic_records_in_total", &orders), 50.0);
    // The CLI batches its 50 lines: at least one append, never more than one per record.
    let appends = m.sum("strom_topic_appends_total", &orders);
    assert!((1.0..=50.0).contains(&appends), "{appends}");
    assert!(m.sum("strom_topic_in_bytes_total", &orders) > 50.0 * 7.0);
    let p0 = [("topic", "orders"), ("partition", "0")];
    assert_eq!(m.sum("strom_partition_high_watermark", &p0), 50.0);
    assert!(m.sum("strom_partition_log_size_bytes", &p0) > 0.0);
    let produce = [("face", "kafka"), ("api", "Produce")];
    assert!(m.sum("strom_requests_total", &produce) >= 1.0);
    assert!(m.sum("strom_request_duration_seconds_count", &produce) >= 1.0);
    assert!(m.sum("strom_fsync_duration_seconds_count", &[]) >= 1.0);
    let fsync = [("stage", "fsync")];
    assert!(m.sum("strom_produce_stage_duration_seconds_count", &fsync) >= 1.0);
    assert_eq!(m.sum("strom_build_info", &[]), 1.0);
    assert_eq!(m.sum("strom_controller_active", &[]), 1.0);
    assert!(m.sum("strom_process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.sum("strom_process_open_fds", &[]) > 0.0);
    assert!(m.has("strom_process_cpu_seconds_total"));

    // A group: lag is the high watermark minus the committed offset, and falls to 0.
    let consumer = group_consumer(&s.addr(), "readers", &["orders"]);
    let read = poll_records(&consumer, 50, Duration::from_secs(30));
    assert_eq!(read, 50);
    commit(&consumer, "orders", 20);
    let m = scrape(&http);
    let readers = [
        ("group", "readers"),
        ("topic", "orders"),
        ("partition", "0"),
    ];
    assert_eq!(m.sum("strom_group_lag", &readers), 30.0);
    assert_eq!(m.sum("strom_group_members", &[("group", "readers")]), 1.0);
    let stable = [("group", "readers"), ("state", "Stable")];
    assert_eq!(m.sum("strom_group_state", &stable), 1.0);
    assert!(m.sum("strom_group_rebalances_total", &[("group", "readers")]) >= 1.0);
    assert_eq!(m.sum("strom_topic_records_out_total", &orders), 50.0);
    assert!(m.sum("strom_connections_open", &[("face", "kafka")]) >= 1.0);
    let commits = [("face", "kafka"), ("api", "OffsetCommit")];
    assert!(m.sum("strom_requests_total", &commits) >= 1.0);
    commit(&consumer, "orders", 50);
    let m = scrape(&http);
    assert_eq!(m.sum("strom_group_lag", &readers), 0.0);

    // An error is counted under its API and Kafka's name for it.
    let (ok, _, _) = cli(&["topic", "create", "orders", "-b", &s.addr()], "");
    assert!(!ok, "creating an existing topic fails");
    let m = scrape(&http);
    let exists = [
        ("face", "kafka"),
        ("api", "CreateTopics"),
        ("error", "TOPIC_ALREADY_EXISTS"),
    ];
    assert_eq!(m.sum("strom_request_errors_total", &exists), 1.0);

    // etcd calls are counted by RPC, and the HTTP face's own by route.
    let etcdctl = |args: &[&str]| {
        let out = Command::new("etcdctl")
            .arg(format!("--endpoints=http://{etcd}"))
            .args(args)
            .output()
            .expect("run etcdctl (scripts/test.sh installs it)");
        assert!(out.status.success(), "{out:?}");
    };
    etcdctl(&["put", "k", "v"]);
    etcdctl(&["get", "k"]);
    let m = scrape(&http);
    let put = [("face", "etcd"), ("api", "KV/Put")];
    assert_eq!(m.sum("strom_requests_total", &put), 1.0);
    assert_eq!(
        m.sum(
            "strom_requests_total",
            &[("face", "etcd"), ("api", "KV/Range")]
        ),
        1.0
    );
    // Five scrapes so far; this one is counted once answered.
    let scrapes = [("face", "http"), ("api", "GET /metrics")];
    assert_eq!(m.sum("strom_requests_total", &scrapes), 4.0);

    // A deleted topic's series go with it.
    drop(consumer);
    let (ok, _, err) = cli(&["topic", "delete", "orders", "-b", &s.addr()], "");
    assert!(ok, "{err}");
    let m = scrape(&http);
    assert!(!m.0.iter().any(
        |(_, l, _)| l.get("topic").map(String::as_str) == Some("orders")
            && !l.contains_key("group")
    ));
}

/// Under-replicated partitions rise on the leaders when a node dies and fall when it returns;
/// the controller's leader reports the dead node fenced.
#[test]
fn under_replicated_partitions_follow_a_node_down_and_back() {
    let root = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let https: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut cluster = TestCluster::start_each(root.path(), 3, |i| {
        vec!["--http-addr".to_string(), https[i].clone()]
    });
    cluster.wait_for_brokers(&cluster.bootstrap(), 3, Duration::from_secs(30));
    let (ok, _, err) = cli(
        &[
            "topic",
            "create",
            "events",
            "-b",
            &cluster.bootstrap(),
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
        "",
    );
    assert!(ok, "{err}");
    cluster.wait_for_leaders(
        &cluster.bootstrap(),
        "events",
        3,
        3,
        &[],
        Duration::from_secs(30),
    );

    let total = |nodes: &[usize], name: &str, labels: &[(&str, &str)]| -> f64 {
        nodes
            .iter()
            .map(|&i| scrape(&https[i]).sum(name, labels))
            .sum()
    };
    let wait_until =
        |what: &str, f: &dyn Fn() -> (bool, String)| wait_until(what, Duration::from_secs(60), f);
    let all = [0, 1, 2];
    // Every partition (internal topics' too) led exactly once, with its ISR full.
    let partitions = || {
        let mut seen = std::collections::BTreeSet::new();
        for i in all {
            for (name, labels, _) in scrape(&https[i]).0 {
                if name == "strom_partition_leader_epoch" {
                    seen.insert((labels["topic"].clone(), labels["partition"].clone()));
                }
            }
        }
        seen.len() as f64
    };
    wait_until("every ISR full", &|| {
        let under = total(&all, "strom_partitions_under_replicated", &[]);
        let led = total(&all, "strom_partitions_led", &[]);
        let partitions = partitions();
        (
            under == 0.0 && led == partitions && partitions >= 3.0,
            format!("under {under} led {led} of {partitions}"),
        )
    });
    assert_eq!(total(&all, "strom_controller_active", &[]), 1.0);
    // Every partition has a replica on every node (RF 3 on three nodes, internal topics too).
    let count = partitions();

    cluster.nodes[2].kill9();
    let survivors = [0, 1];
    wait_until("under-replicated partitions", &|| {
        let under = total(&survivors, "strom_partitions_under_replicated", &[]);
        (under == count, format!("under {under} of {count}"))
    });
    wait_until("the dead node fenced", &|| {
        let fenced = total(&survivors, "strom_cluster_nodes", &[("state", "fenced")]);
        (fenced == 1.0, format!("fenced {fenced}"))
    });
    assert!(total(&survivors, "strom_isr_shrinks_total", &[]) >= 1.0);

    cluster.nodes[2].restart();
    wait_until("ISRs full again", &|| {
        let under = total(&all, "strom_partitions_under_replicated", &[]);
        (under == 0.0, format!("under {under}"))
    });
    wait_until("no node fenced", &|| {
        let fenced = total(&all, "strom_cluster_nodes", &[("state", "fenced")]);
        let alive = total(&all, "strom_cluster_nodes", &[("state", "alive")]);
        (
            fenced == 0.0 && alive == 3.0,
            format!("fenced {fenced} alive {alive}"),
        )
    });
    assert!(total(&all, "strom_isr_expands_total", &[]) >= 1.0);
    assert!(total(&all, "strom_raft_leader_changes_total", &[]) >= 3.0);
}
