//! Admin changes in a 3-node cluster go through the controller: AlterConfigs reaches every node,
//! and a DeleteRecords point outlives the leader that took it.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{admin, create, TestCluster};
use common::rdk;
use common::wire::Conn;
use rdkafka::admin::AdminOptions;
use rdkafka::producer::FutureRecord;

/// The earliest offset `addr` answers for partition 0 of `topic` (ListOffsets -2).
fn earliest_at(addr: &str, topic: &str) -> (i16, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-2)])]);
    let mut conn = Conn::connect(addr);
    match conn.request(ApiKey::ListOffsets, 7, &req) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.offset)
        }
        other => panic!("{other:?}"),
    }
}

/// One topic config as `addr` describes it.
fn described_at(addr: &str, topic: &str, config: &str) -> Option<String> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, ResponseKind};
    use kafka_protocol::protocol::StrBytes;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(config.to_string())]))]);
    match Conn::connect(addr).request(ApiKey::DescribeConfigs, 4, &req) {
        ResponseKind::DescribeConfigs(r) => r.results[0]
            .configs
            .first()
            .and_then(|c| c.value.as_ref().map(|v| v.to_string())),
        other => panic!("{other:?}"),
    }
}

/// AlterConfigs and DeleteRecords go through the controller: every node describes the new
/// config, and after the leader dies its successor serves from the moved log start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_and_log_start_are_replicated_through_the_controller() {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    use rdkafka::{Offset, TopicPartitionList};
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "kept", 1, 3).await;
    let leaders = cluster.wait_for_leaders(&bootstrap, "kept", 3, 3, &[], Duration::from_secs(30));
    let producer = rdk::producer(&bootstrap, &[]);
    for i in 0..50 {
        let value = format!("r-{i}");
        let delivery = producer
            .send(
                FutureRecord::<(), _>::to("kept").payload(&value),
                Duration::from_secs(20),
            )
            .await;
        assert!(delivery.is_ok(), "{delivery:?}");
    }

    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let alter = AlterConfig::new(ResourceSpecifier::Topic("kept"))
        .set("retention.ms", "3600000")
        .set("delete.retention.ms", "900");
    admin(&bootstrap)
        .alter_configs([&alter], &opts)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &cluster.nodes {
        while described_at(&node.addr(), "kept", "retention.ms").as_deref() != Some("3600000") {
            assert!(
                Instant::now() < deadline,
                "{} never took the config",
                node.addr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let stored = described_at(&node.addr(), "kept", "delete.retention.ms");
        assert_eq!(stored.as_deref(), Some("900"));
    }

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("kept", 0, Offset::Offset(20))
        .unwrap();
    let done = admin(&bootstrap).delete_records(&tpl, &opts).await.unwrap();
    assert_eq!(done.elements()[0].error(), Ok(()));
    assert_eq!(done.elements()[0].offset(), Offset::Offset(20));
    let leader = leaders[0];
    assert_eq!(earliest_at(&cluster.node(leader).addr(), "kept"), (0, 20));

    cluster.node(leader).kill9();
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.pid().is_some())
        .map(|n| n.addr())
        .unwrap();
    let new = cluster.wait_for_leaders(&survivor, "kept", 3, 2, &[leader], Duration::from_secs(30));
    assert_eq!(earliest_at(&cluster.node(new[0]).addr(), "kept"), (0, 20));
}
