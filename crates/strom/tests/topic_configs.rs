//! Topic configs through librdkafka's admin client and the raw wire: every config Kafka
//! documents is accepted at creation and described; AlterConfigs replaces the overrides,
//! IncrementalAlterConfigs edits them, both survive a restart; LogAppendTime, recompression and
//! the timestamp bounds act on produced batches; what Strom cannot honour is refused clearly.

mod common;

use std::time::Duration;

use common::wire::{record_batch_at, Conn};
use common::{rdk, Strom};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, IncrementalAlterConfigsRequest, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

fn admin(addr: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin")
}

/// The topic's described configs as (value, is a topic override).
async fn describe(addr: &str, topic: &str) -> std::collections::HashMap<String, (String, bool)> {
    let res = admin(addr)
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe_configs");
    let resource = res.into_iter().next().unwrap().expect("described");
    resource
        .entries
        .into_iter()
        .map(|e| {
            let dynamic = e.source == ConfigSource::DynamicTopic;
            (e.name, (e.value.unwrap_or_default(), dynamic))
        })
        .collect()
}

/// IncrementalAlterConfigs of one topic: (name, operation code, value) → the error code.
fn incremental(conn: &mut Conn, topic: &str, ops: &[(&str, i8, Option<&str>)]) -> i16 {
    let configs = ops
        .iter()
        .map(|(name, op, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_config_operation(*op)
                .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs),
    ]);
    match conn.request(ApiKey::IncrementalAlterConfigs, 1, &req) {
        ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_are_created_described_altered_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let opts = AdminOptions::new();

    // Configs librdkafka's own admin test creates topics with, acted on or only stored.
    let topic = NewTopic::new("configured", 1, TopicReplication::Fixed(1))
        .set("compression.type", "lz4")
        .set("delete.retention.ms", "900")
        .set("message.format.version", "2.8-IV1");
    let res = admin(&addr).create_topics([&topic], &opts).await.unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let c = describe(&addr, "configured").await;
    assert_eq!(c["compression.type"], ("lz4".into(), true));
    assert_eq!(c["delete.retention.ms"], ("900".into(), true));
    assert_eq!(c["retention.ms"], ("604800000".into(), false));
    assert_eq!(c["min.cleanable.dirty.ratio"], ("0.5".into(), false));

    // Compaction is a policy like any other.
    let compacted = NewTopic::new("keyed", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact,delete");
    let res = admin(&addr)
        .create_topics([&compacted], &opts)
        .await
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let c = describe(&addr, "keyed").await;
    assert_eq!(c["cleanup.policy"], ("compact,delete".into(), true));

    // Values Strom cannot honour are refused at creation, with Kafka's INVALID_CONFIG.
    for (name, value) in [
        ("cleanup.policy", "shred"),
        ("remote.storage.enable", "true"),
        ("no.such.config", "1"),
        ("retention.ms", "soon"),
    ] {
        let bad = NewTopic::new("refused", 1, TopicReplication::Fixed(1)).set(name, value);
        let res = admin(&addr).create_topics([&bad], &opts).await.unwrap();
        let err = res[0].as_ref().expect_err("refused");
        assert_eq!(
            err.1,
            rdkafka::types::RDKafkaErrorCode::InvalidConfig,
            "{name}={value}"
        );
    }

    // AlterConfigs replaces the overrides as a whole.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("configured"))
        .set("retention.ms", "3600000")
        .set("compression.type", "lz4");
    let res = admin(&addr).alter_configs([&alter], &opts).await.unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let c = describe(&addr, "configured").await;
    assert_eq!(c["retention.ms"], ("3600000".into(), true));
    assert_eq!(c["delete.retention.ms"], ("86400000".into(), false));

    // IncrementalAlterConfigs: SET, DELETE, and APPEND/SUBTRACT on a list config.
    let mut conn = Conn::connect(&addr);
    let throttled = "leader.replication.throttled.replicas";
    let ops = [
        ("segment.ms", 0, Some("60000")),
        ("retention.ms", 1, None),
        (throttled, 2, Some("0:1,0:2")),
    ];
    assert_eq!(incremental(&mut conn, "configured", &ops), 0);
    assert_eq!(
        incremental(&mut conn, "configured", &[(throttled, 3, Some("0:1"))]),
        0
    );
    // APPEND to a non-list config and an unknown policy are refused (INVALID_CONFIG, 40), and
    // a refused request changes nothing.
    assert_eq!(
        incremental(&mut conn, "configured", &[("segment.ms", 2, Some("1"))]),
        40
    );
    let shred = [
        ("segment.ms", 0, Some("1")),
        ("cleanup.policy", 2, Some("shred")),
    ];
    assert_eq!(incremental(&mut conn, "configured", &shred), 40);
    assert_eq!(incremental(&mut conn, "missing", &ops), 3);
    let c = describe(&addr, "configured").await;
    assert_eq!(c["segment.ms"], ("60000".into(), true));
    assert_eq!(c["retention.ms"], ("604800000".into(), false));
    assert_eq!(c[throttled], ("0:2".into(), true));
    // APPEND compact to the default policy: both, as Kafka lists them.
    let compact = [("cleanup.policy", 2, Some("compact"))];
    assert_eq!(incremental(&mut conn, "configured", &compact), 0);
    let c = describe(&addr, "configured").await;
    assert_eq!(c["cleanup.policy"], ("delete,compact".into(), true));

    // The broker's own configs are static: refused with a reason (INVALID_REQUEST, 42), not
    // ignored. (rdkafka's alter_configs drops per-resource errors, so this one is on the wire.)
    let req = AlterConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("0"))
            .with_configs(vec![
                kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("log.retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1"))),
            ]),
    ]);
    match conn.request(ApiKey::AlterConfigs, 2, &req) {
        ResponseKind::AlterConfigs(r) => {
            assert_eq!(r.responses[0].error_code, 42);
            let message = r.responses[0].error_message.as_deref().unwrap_or("");
            assert!(
                message.contains("cannot be changed at run time"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    strom.stop();
    strom.restart();
    let c = describe(&addr, "configured").await;
    assert_eq!(c["segment.ms"], ("60000".into(), true));
    assert_eq!(c["compression.type"], ("lz4".into(), true));
    assert_eq!(c[throttled], ("0:2".into(), true));
}

/// `message.timestamp.type=LogAppendTime`: the broker stamps each batch with its append time
/// (attributes bit 3 and maxTimestamp, new CRC) and consumers see that time; the batch is stored
/// with the topic's `compression.type`; CreateTime topics refuse timestamps outside
/// `message.timestamp.{before,after}.max.ms` with INVALID_TIMESTAMP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_batches_follow_the_topic_config() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = NewTopic::new("append-time", 1, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime")
        .set("compression.type", "gzip");
    let bounded = NewTopic::new("bounded", 1, TopicReplication::Fixed(1))
        .set("message.timestamp.before.max.ms", "3600000")
        .set("message.timestamp.after.max.ms", "3600000");
    let res = admin(&addr)
        .create_topics([&topic, &bounded], &AdminOptions::new())
        .await
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");

    let mut conn = Conn::connect(&addr);
    let before = strom_now_ms();
    let batch = record_batch_at(None, bytes::Bytes::from_static(b"stamped"), 1_000);
    assert_eq!(conn.produce("append-time", 0, batch).0, 0);
    let after = strom_now_ms();
    let stored = fetch_raw(&mut conn, "append-time");
    let attributes = i16::from_be_bytes([stored[21], stored[22]]);
    assert_eq!(attributes & 0b111, 1, "stored gzip-compressed");
    assert_ne!(attributes & 0b1000, 0, "marked LogAppendTime");

    let recs = tokio::task::spawn_blocking(move || {
        rdk::consume_all(&addr, "append-time", 1, 1, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(recs[0].value.as_deref(), Some(&b"stamped"[..]));
    let ts = recs[0].timestamp_ms.expect("a timestamp");
    assert!(
        (before..=after).contains(&ts),
        "{before} <= {ts} <= {after}"
    );

    let now = strom_now_ms();
    let old = record_batch_at(None, bytes::Bytes::from_static(b"old"), now - 7_200_000);
    let future = record_batch_at(None, bytes::Bytes::from_static(b"new"), now + 7_200_000);
    let fine = record_batch_at(None, bytes::Bytes::from_static(b"now"), now);
    assert_eq!(conn.produce("bounded", 0, old).0, 32, "INVALID_TIMESTAMP");
    assert_eq!(
        conn.produce("bounded", 0, future).0,
        32,
        "INVALID_TIMESTAMP"
    );
    assert_eq!(conn.produce("bounded", 0, fine), (0, 0));
}

fn strom_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The stored bytes of partition 0 from offset 0 (1 MiB at most).
fn fetch_raw(conn: &mut Conn, topic: &str) -> bytes::Bytes {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    let req = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    match conn.request(ApiKey::Fetch, 12, &req) {
        ResponseKind::Fetch(r) => r.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

/// Without an authorizer, Kafka answers "every supported operation" when a client asks for its
/// authorized operations (librdkafka's admin test checks for them); 0 would mean "nothing".
#[test]
fn authorized_operations_are_all_supported_ones() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, TopicName};
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let mut conn = Conn::connect(&strom.addr());
    let batch = record_batch_at(None, bytes::Bytes::from_static(b"x"), 1);
    assert_eq!(conn.produce("ops", 0, batch).0, 0);
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("ops"))))]))
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    let ResponseKind::Metadata(r) = conn.request(ApiKey::Metadata, 9, &req) else {
        panic!("not a metadata response")
    };
    let bit = |op: i32| 1 << op;
    // READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
    let topic_ops = [3, 4, 5, 6, 7, 8, 10, 11].map(bit).iter().sum::<i32>();
    assert_eq!(r.topics[0].topic_authorized_operations, topic_ops);
    // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
    let cluster_ops = [5, 7, 8, 9, 10, 11, 12].map(bit).iter().sum::<i32>();
    assert_eq!(r.cluster_authorized_operations, cluster_ops);
    // Not asked: Kafka's "absent" value.
    let ResponseKind::Metadata(r) = conn.request(ApiKey::Metadata, 9, &MetadataRequest::default())
    else {
        panic!("not a metadata response")
    };
    assert_eq!(r.cluster_authorized_operations, i32::MIN);
}
