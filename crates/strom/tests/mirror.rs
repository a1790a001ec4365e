//! Cross-cluster mirroring between real single-node Strom clusters on loopback: the `mirror`
//! connector created through Kafka Connect's REST API, records compared with librdkafka
//! (partition, key, value, headers, timestamp, order), topics and configs followed, an
//! active-active pair that does not loop, and exactly once through SIGKILL of the node running
//! the mirror and of the source cluster.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::connect::{create, status_of, wait_state};
use common::rdk::{consume_all_with, Rec};
use common::{cli, free_port, wait_until, Strom};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;

const PATH_HEADER: &str = "strom.mirror.path";

fn start_node(dir: &std::path::Path) -> (Strom, u16) {
    let http = free_port();
    let node = Strom::start(dir, &["--http-addr", &format!("127.0.0.1:{http}")]);
    (node, http)
}

fn admin(addr: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin client")
}

fn create_topic(addr: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results =
        futures::executor::block_on(admin(addr).create_topics([&topic], &AdminOptions::new()))
            .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

fn cluster_id(addr: &str) -> String {
    admin(addr)
        .inner()
        .fetch_cluster_id(Duration::from_secs(10))
        .expect("cluster id")
}

fn topic_config(addr: &str, topic: &str, key: &str) -> Option<String> {
    let results = futures::executor::block_on(
        admin(addr).describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
    )
    .ok()?;
    let resource = results.into_iter().next()?.ok()?;
    resource
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .and_then(|e| e.value)
}

fn topics(addr: &str) -> Vec<String> {
    admin(addr)
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map(|md| md.topics().iter().map(|t| t.name().to_string()).collect())
        .unwrap_or_default()
}

fn producer(addr: &str) -> FutureProducer {
    common::rdk::producer(addr, &[("enable.idempotence", "true")])
}

fn send(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    value: &str,
    ts: i64,
    headers: OwnedHeaders,
) {
    let record = FutureRecord::to(topic)
        .partition(partition)
        .key(key)
        .payload(value)
        .timestamp(ts)
        .headers(headers);
    futures::executor::block_on(p.send(record, Duration::from_secs(30))).expect("produce");
}

/// Every committed record of `topic`'s `partitions` (read_committed), up to `want`.
fn committed(addr: &str, topic: &str, partitions: i32, want: usize, timeout: Duration) -> Vec<Rec> {
    consume_all_with(
        addr,
        topic,
        partitions,
        want,
        timeout,
        &[("isolation.level", "read_committed")],
    )
}

/// Reads `n` records of `topic` as `group` (from its committed offsets, or the beginning),
/// commits, and leaves the group; the values read.
fn read_some(addr: &str, group: &str, topic: &str, n: usize) -> BTreeSet<String> {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::Message;
    let consumer = common::rdk::group_consumer(addr, group, &[topic]);
    let mut values = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while values.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            values.insert(text(&m.payload().map(<[u8]>::to_vec)));
            if values.len() == n {
                consumer
                    .commit_message(&m, CommitMode::Sync)
                    .expect("commit");
            }
        }
    }
    // Past `n` nothing more may arrive (a re-read or a skip would show here).
    assert_eq!(values.len(), n, "{group} read {values:?}");
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    values
}

/// The sum of `group`'s committed offsets on `topic`'s partitions.
fn committed_sum(addr: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .map(|c| {
            c.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    rdkafka::Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .sum()
        })
        .unwrap_or(-1)
}

fn text(b: &Option<Vec<u8>>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

#[test]
fn mirrors_records_topics_and_configs_and_an_active_active_pair_does_not_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_http) = start_node(&dir.path().join("a"));
    let (b, b_http) = start_node(&dir.path().join("b"));
    let (a_id, b_id) = (cluster_id(&a.addr()), cluster_id(&b.addr()));
    assert_ne!(a_id, b_id);

    // The source: keys, headers (one null), timestamps, chosen partitions, a topic config.
    create_topic(&a.addr(), "orders", 3, &[("retention.ms", "3600000")]);
    create_topic(&a.addr(), "payments", 1, &[]);
    let p = producer(&a.addr());
    for i in 0..60i64 {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "n",
                value: Some(i.to_string().as_bytes()),
            })
            .insert(Header {
                key: "nil",
                value: None::<&[u8]>,
            });
        send(
            &p,
            "orders",
            (i % 3) as i32,
            &format!("k{i}"),
            &format!("v{i}"),
            1_700_000_000_000 + i,
            headers,
        );
    }
    send(
        &p,
        "payments",
        0,
        "k",
        "v",
        1_700_000_000_000,
        OwnedHeaders::new(),
    );

    create(
        b_http,
        "from-a",
        &json!({
            "connector.class": "mirror",
            "source.cluster.alias": "us-east",
            "target.cluster.alias": "us-west",
            "source.bootstrap.servers": a.addr(),
            "topics": "orders.*",
            "refresh.topics.interval.seconds": "1",
            "sync.topic.configs.interval.seconds": "1",
            "emit.checkpoints.interval.seconds": "1",
            "sync.group.offsets.enabled": "true",
            "sync.group.offsets.interval.seconds": "1",
        }),
    );
    wait_state(b_http, "from-a", "RUNNING", Duration::from_secs(30));
    let got = committed(&b.addr(), "us-east.orders", 3, 60, Duration::from_secs(30));
    assert_eq!(got.len(), 60, "{got:?}");
    for r in &got {
        let i: i64 = text(&r.value)[1..].parse().unwrap();
        assert_eq!(r.partition as i64, i % 3, "partition kept");
        assert_eq!(text(&r.key), format!("k{i}"));
        assert_eq!(
            r.timestamp_ms,
            Some(1_700_000_000_000 + i),
            "timestamp kept"
        );
        assert_eq!(
            r.headers,
            vec![
                ("n".to_string(), Some(i.to_string().into_bytes())),
                ("nil".to_string(), None),
                (PATH_HEADER.to_string(), Some(a_id.clone().into_bytes())),
            ],
            "headers kept, and the path names the source cluster"
        );
    }
    for part in 0..3i64 {
        let order: Vec<String> = got
            .iter()
            .filter(|r| r.partition as i64 == part)
            .map(|r| text(&r.value))
            .collect();
        let want: Vec<String> = (0..60)
            .filter(|i| i % 3 == part)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(order, want, "order within partition {part}");
    }
    assert_eq!(
        topic_config(&b.addr(), "us-east.orders", "retention.ms").as_deref(),
        Some("3600000"),
        "the topic's config is copied"
    );
    // A change of the source's config follows.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("orders")).set("retention.ms", "7200000");
    for r in
        futures::executor::block_on(admin(&a.addr()).alter_configs([&alter], &AdminOptions::new()))
            .expect("alter configs")
    {
        r.expect("config altered");
    }
    wait_until(
        "the config change followed",
        Duration::from_secs(30),
        || {
            let v = topic_config(&b.addr(), "us-east.orders", "retention.ms");
            (v.as_deref() == Some("7200000"), format!("{v:?}"))
        },
    );
    assert!(
        !topics(&b.addr()).iter().any(|t| t.contains("payments")),
        "not in `topics`"
    );

    // Consumer group failover: "app" reads part of `orders` on us-east and commits; the
    // mirror translates its offsets, writes MirrorMaker 2 checkpoints and commits them for
    // "app" on us-west while no member is there, so "app" moved to us-west reads exactly the
    // records it had not read, none twice.
    let read_on_a = read_some(&a.addr(), "app", "orders", 25);
    let all: BTreeSet<String> = (0..60).map(|i| format!("v{i}")).collect();
    let rest: BTreeSet<String> = all.difference(&read_on_a).cloned().collect();
    wait_until(
        "app's offsets synced to us-west",
        Duration::from_secs(30),
        || {
            let n = committed_sum(&b.addr(), "app", "us-east.orders", 3);
            // Target offsets are at least the source's (transaction markers only add to them).
            (
                n >= 25,
                format!("offsets summing to {n} committed on us-west"),
            )
        },
    );
    let read_on_b = read_some(&b.addr(), "app", "us-east.orders", rest.len());
    assert_eq!(read_on_b, rest, "missing nothing, re-reading nothing");
    let checkpoints = committed(
        &b.addr(),
        "us-east.checkpoints.internal",
        1,
        1,
        Duration::from_secs(10),
    );
    let key = checkpoints
        .first()
        .and_then(|r| r.key.clone())
        .unwrap_or_default();
    assert!(
        key.starts_with(&[0, 3, b'a', b'p', b'p', 0, 14]),
        "a MirrorMaker 2 checkpoint for app on us-east.orders: {key:?}"
    );

    // A new matching topic is picked up while running.
    create_topic(&a.addr(), "orders-eu", 2, &[]);
    for i in 0..4 {
        send(
            &p,
            "orders-eu",
            i % 2,
            "k",
            &format!("eu{i}"),
            1_700_000_000_000,
            OwnedHeaders::new(),
        );
    }
    let eu = committed(
        &b.addr(),
        "us-east.orders-eu",
        2,
        4,
        Duration::from_secs(30),
    );
    assert_eq!(eu.len(), 4, "{eu:?}");

    // Aggregation: a second source into the same cluster keeps its topics apart (default
    // policy), and one consumer subscribed by regex reads both.
    let (c, _) = start_node(&dir.path().join("c"));
    create_topic(&c.addr(), "orders", 1, &[]);
    let pc = producer(&c.addr());
    for i in 0..5 {
        send(
            &pc,
            "orders",
            0,
            "k",
            &format!("eu{i}"),
            1_700_000_000_000,
            OwnedHeaders::new(),
        );
    }
    create(
        b_http,
        "from-c",
        &json!({
            "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
            "source.cluster.alias": "eu-central",
            "target.cluster.alias": "us-west",
            "source.cluster.bootstrap.servers": c.addr(),
            "topics": "orders",
            "emit.checkpoints.enabled": "false",
        }),
    );
    let eu = committed(
        &b.addr(),
        "eu-central.orders",
        1,
        5,
        Duration::from_secs(30),
    );
    assert_eq!(eu.len(), 5, "{eu:?}");
    let aggregate = read_some(&b.addr(), "aggregate", "^.*\\.orders$", 65);
    assert!(
        aggregate.contains("v0") && aggregate.contains("eu4"),
        "{aggregate:?}"
    );

    // Active-active with the identity policy: the same topic name on both sides, producers on
    // both, each record exactly once on each side and nothing copied back.
    create_topic(&a.addr(), "shared", 2, &[]);
    create_topic(&b.addr(), "shared", 2, &[]);
    let mirror = |from: &Strom, source: &str, target: &str| {
        json!({
            "connector.class": "mirror",
            "source.cluster.alias": source,
            "target.cluster.alias": target,
            "source.bootstrap.servers": from.addr(),
            "replication.policy.class": "identity",
            "topics": "shared",
            "refresh.topics.interval.seconds": "1",
        })
    };
    create(a_http, "shared-from-b", &mirror(&b, "us-west", "us-east"));
    create(b_http, "shared-from-a", &mirror(&a, "us-east", "us-west"));
    let pb = producer(&b.addr());
    for i in 0..30 {
        send(
            &p,
            "shared",
            i % 2,
            "k",
            &format!("a{i}"),
            1_700_000_000_000,
            OwnedHeaders::new(),
        );
        send(
            &pb,
            "shared",
            i % 2,
            "k",
            &format!("b{i}"),
            1_700_000_000_000,
            OwnedHeaders::new(),
        );
    }
    let want: BTreeSet<String> = (0..30)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    for (node, name) in [(&a, "A"), (&b, "B")] {
        let got = committed(&node.addr(), "shared", 2, 60, Duration::from_secs(30));
        let values: BTreeSet<String> = got.iter().map(|r| text(&r.value)).collect();
        assert_eq!(
            values, want,
            "cluster {name} holds every record of both sides"
        );
    }
    // Long enough for several more polls of both mirrors: a loop would have grown the topics.
    std::thread::sleep(Duration::from_secs(3));
    for (node, name) in [(&a, "A"), (&b, "B")] {
        let got = committed(&node.addr(), "shared", 2, 1000, Duration::from_secs(5));
        assert_eq!(
            got.len(),
            60,
            "cluster {name}: each record exactly once, no loop"
        );
    }
    // The default policy's names refuse a cycle too: us-west mirroring us-east.* back is not
    // possible (a topic named after the target came from it).
    create(
        a_http,
        "back-to-a",
        &json!({
            "connector.class": "mirror",
            "source.cluster.alias": "us-west",
            "target.cluster.alias": "us-east",
            "source.bootstrap.servers": b.addr(),
            "topics": "us-east\\..*",
            "refresh.topics.interval.seconds": "1",
        }),
    );
    wait_state(a_http, "back-to-a", "RUNNING", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !topics(&a.addr())
            .iter()
            .any(|t| t.starts_with("us-west.us-east.")),
        "{:?}",
        topics(&a.addr())
    );

    // Heartbeats, as MirrorMaker 2 writes them: every mirror writes its (source, target)
    // aliases and the time to `heartbeats` on its target each second, and the source's
    // heartbeats topics come along as `<alias>.heartbeats` whatever `topics` says (under the
    // identity policy too); a copy of a cluster's own heartbeats never goes back to it.
    let beats = |addr: &str, topic: &str, source: &str, target: &str| {
        let key = [
            &[0, source.len() as u8][..],
            source.as_bytes(),
            &[0, target.len() as u8],
            target.as_bytes(),
        ]
        .concat();
        wait_until(
            &format!("a heartbeat {source} -> {target} in {topic}"),
            Duration::from_secs(30),
            || {
                if !topics(addr).iter().any(|t| t == topic) {
                    return (false, format!("no topic {topic} yet"));
                }
                let got = committed(addr, topic, 1, 10_000, Duration::from_secs(2));
                let beat = got
                    .iter()
                    .rev()
                    .find(|r| r.key.as_deref() == Some(&key[..]));
                let recent = beat.and_then(|r| r.value.as_deref()).is_some_and(|v| {
                    let ms = v
                        .get(2..10)
                        .and_then(|b| b.try_into().ok())
                        .map(i64::from_be_bytes);
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    v.len() == 10
                        && v[..2] == [0, 0]
                        && ms.is_some_and(|ms| (now - ms).abs() < 60_000)
                });
                (recent, format!("{} records, found {beat:?}", got.len()))
            },
        );
    };
    beats(&b.addr(), "heartbeats", "us-east", "us-west");
    beats(&b.addr(), "heartbeats", "eu-central", "us-west");
    beats(&a.addr(), "heartbeats", "us-west", "us-east");
    beats(&b.addr(), "us-east.heartbeats", "us-west", "us-east");
    beats(&a.addr(), "us-west.heartbeats", "us-east", "us-west");
    for (node, back) in [
        (&a, "us-west.us-east.heartbeats"),
        (&b, "us-east.us-west.heartbeats"),
    ] {
        assert!(
            !topics(&node.addr()).iter().any(|t| t == back),
            "{back} is a cycle"
        );
    }
}

#[test]
fn exactly_once_through_sigkill_of_the_mirror_node_and_of_the_source() {
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _) = start_node(&dir.path().join("a"));
    let (mut b, b_http) = start_node(&dir.path().join("b"));
    create_topic(&a.addr(), "stream", PARTITIONS, &[]);
    let p = producer(&a.addr());
    let futures: Vec<_> = (0..PER_PARTITION)
        .flat_map(|i| (0..PARTITIONS).map(move |part| (i, part)))
        .map(|(i, part)| {
            let value = format!("{part}-{i}");
            p.send_result(
                FutureRecord::to("stream")
                    .partition(part)
                    .key("k")
                    .payload(&value),
            )
            .expect("queue")
        })
        .collect();
    for f in futures {
        futures::executor::block_on(f)
            .expect("delivery")
            .expect("produced");
    }
    // Small transactions, so the kills land mid-stream.
    create(
        b_http,
        "from-a",
        &json!({
            "connector.class": "mirror",
            "source.cluster.alias": "a",
            "source.bootstrap.servers": a.addr(),
            "topics": "stream",
            "max.batch.records": "50",
        }),
    );
    let total = PER_PARTITION * PARTITIONS as usize;
    // High watermarks (records and transaction markers): how far the mirror has come.
    let progress = |b: &Strom| -> i64 {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", b.addr())
            .create()
            .expect("consumer");
        (0..PARTITIONS)
            .map(|part| {
                use rdkafka::consumer::Consumer as _;
                consumer
                    .fetch_watermarks("a.stream", part, Duration::from_secs(5))
                    .map_or(0, |(_, high)| high)
            })
            .sum()
    };
    wait_until("the mirror is under way", Duration::from_secs(60), || {
        let n = progress(&b);
        (n >= 2_000, format!("{n} offsets on the target"))
    });
    b.kill9();
    b.restart();
    wait_until("the mirror resumes", Duration::from_secs(60), || {
        let n = progress(&b);
        (n >= 8_000, format!("{n} offsets on the target"))
    });
    a.kill9();
    // The mirror waits for its source with backoff, and its status says so.
    wait_until(
        "the status shows the retries",
        Duration::from_secs(60),
        || {
            let s = status_of(b_http, "from-a");
            let trace = s["tasks"][0]["trace"].as_str().unwrap_or("").to_string();
            (trace.contains("retrying"), s.to_string())
        },
    );
    a.restart();
    let got = committed(
        &b.addr(),
        "a.stream",
        PARTITIONS,
        total,
        Duration::from_secs(120),
    );
    assert_eq!(got.len(), total, "every record once");
    for part in 0..PARTITIONS {
        let values: Vec<String> = got
            .iter()
            .filter(|r| r.partition == part)
            .map(|r| text(&r.value))
            .collect();
        let want: Vec<String> = (0..PER_PARTITION).map(|i| format!("{part}-{i}")).collect();
        assert!(
            values == want,
            "partition {part}: in order, no loss, no duplicate"
        );
    }
    // Nothing more arrives later (a duplicate would).
    std::thread::sleep(Duration::from_secs(2));
    let again = committed(
        &b.addr(),
        "a.stream",
        PARTITIONS,
        total + 1,
        Duration::from_secs(5),
    );
    assert_eq!(again.len(), total);

    // Caught up: the status, `strom mirror status` and the metrics say no lag.
    wait_until("no lag reported", Duration::from_secs(30), || {
        let s = status_of(b_http, "from-a");
        let p = &s["tasks"][0]["progress"];
        let parts = p["partitions"].as_array().map_or(0, Vec::len);
        (
            p["records_behind"] == 0
                && parts == PARTITIONS as usize
                && s["tasks"][0]["trace"].is_null(),
            s.to_string(),
        )
    });
    let url = format!("http://127.0.0.1:{b_http}");
    let (ok, out, err) = cli(&["mirror", "status", "--url", &url], "");
    assert!(ok, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.contains("stream -> a.stream"))
        .unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(
        fields.len() >= 3 && fields[fields.len() - 3..] == ["4", "0", "0"],
        "{out}"
    );
    let (_, metrics) = common::curl(&[&format!("{url}/metrics")]);
    assert!(
        metrics.contains("strom_mirror_records_total{connector=\"from-a\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("strom_mirror_lag_records{connector=\"from-a\"} 0"),
        "{metrics}"
    );
}
