//! Every API at every version Strom advertises gets a well-formed answer from the real broker:
//! a response the client library decodes, with no error for a valid request. (A field set in a
//! response version that cannot carry it makes the encoder fail, and the client would hang.)
//! The transaction cases mostly ask about ids nobody initialised; they check those errors
//! themselves (`conformance/txn.rs`).

mod common;
#[path = "conformance/groups.rs"]
mod group_cases;
#[path = "conformance/security.rs"]
mod security_cases;
#[path = "conformance/txn.rs"]
mod txn_cases;

use bytes::Bytes;
use common::wire::Conn;
use common::Strom;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_kafka::versions::SUPPORTED;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn batch() -> Bytes {
    common::wire::record_batch(None, Bytes::from_static(b"every version"))
}

/// Sends one valid request of `api` at `v` and checks the answer; returns its error codes.
fn exchange(conn: &mut Conn, api: ApiKey, v: i16, partitions: &mut i32) -> Vec<i16> {
    let ask = |conn: &mut Conn, body: &dyn EncodeDyn| body.send(conn, api, v);
    match api {
        ApiKey::ApiVersions => match ask(conn, &ApiVersionsRequest::default()) {
            ResponseKind::ApiVersions(r) => vec![r.error_code],
            r => panic!("{r:?}"),
        },
        ApiKey::Metadata => {
            let topics = vec![MetadataRequestTopic::default().with_name(Some(name("conf")))];
            match ask(conn, &MetadataRequest::default().with_topics(Some(topics))) {
                ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::Produce => {
            let data = vec![TopicProduceData::default()
                .with_name(name("conf"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch()))])];
            match ask(
                conn,
                &ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(5000)
                    .with_topic_data(data),
            ) {
                ResponseKind::Produce(r) => r.responses[0]
                    .partition_responses
                    .iter()
                    .map(|p| p.error_code)
                    .collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::Fetch => {
            let topics = vec![FetchTopic::default()
                .with_topic(name("conf"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])];
            let req = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(topics);
            match ask(conn, &req) {
                ResponseKind::Fetch(r) => {
                    let p = &r.responses[0].partitions[0];
                    assert!(
                        p.records.as_ref().is_some_and(|b| !b.is_empty()),
                        "v{v}: no records"
                    );
                    vec![r.error_code, p.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::ListOffsets => {
            let topics = vec![ListOffsetsTopic::default()
                .with_name(name("conf"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])];
            match ask(conn, &ListOffsetsRequest::default().with_topics(topics)) {
                ResponseKind::ListOffsets(r) => {
                    let p = &r.topics[0].partitions[0];
                    assert!(p.offset > 0, "v{v}: latest offset {}", p.offset);
                    vec![p.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::CreateTopics => {
            let t = CreatableTopic::default()
                .with_name(name(&format!("ct-{v}")))
                .with_num_partitions(2)
                .with_replication_factor(1);
            match ask(
                conn,
                &CreateTopicsRequest::default()
                    .with_topics(vec![t])
                    .with_timeout_ms(5000),
            ) {
                ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DeleteTopics => {
            let topic = format!("ct-{}", 7 - (v - 1).min(5));
            let req = if v >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![
                    DeleteTopicState::default().with_name(Some(name(&topic)))
                ])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
            };
            match ask(conn, &req.with_timeout_ms(5000)) {
                ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeConfigs => {
            let res = DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("conf"))
                // null asks for every config (an empty list asks for none)
                .with_configuration_keys(None);
            match ask(
                conn,
                &DescribeConfigsRequest::default().with_resources(vec![res]),
            ) {
                ResponseKind::DescribeConfigs(r) => {
                    assert!(r.results[0]
                        .configs
                        .iter()
                        .any(|c| c.name.as_str() == "retention.ms"));
                    r.results.iter().map(|t| t.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::AlterConfigs => {
            let res = alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("conf"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_string(format!(
                        "{}",
                        3_600_000 + i32::from(v)
                    ))))]);
            match ask(
                conn,
                &AlterConfigsRequest::default().with_resources(vec![res]),
            ) {
                ResponseKind::AlterConfigs(r) => r.responses.iter().map(|t| t.error_code).collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::IncrementalAlterConfigs => {
            let res = incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("conf"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("segment.ms"))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(format!(
                            "{}",
                            60_000 + i32::from(v)
                        )))),
                ]);
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![res]);
            match ask(conn, &req) {
                ResponseKind::IncrementalAlterConfigs(r) => {
                    r.responses.iter().map(|t| t.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DeleteRecords => {
            let t = delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("conf"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0),
                ]);
            let req = DeleteRecordsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(5000);
            match ask(conn, &req) {
                ResponseKind::DeleteRecords(r) => r.topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.error_code)
                    .collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::CreatePartitions => {
            *partitions += 1;
            let t = CreatePartitionsTopic::default()
                .with_name(name("conf"))
                .with_count(*partitions);
            match ask(
                conn,
                &CreatePartitionsRequest::default()
                    .with_topics(vec![t])
                    .with_timeout_ms(5000),
            ) {
                ResponseKind::CreatePartitions(r) => {
                    r.results.iter().map(|t| t.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::InitProducerId => {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            match ask(conn, &req) {
                ResponseKind::InitProducerId(r) => {
                    assert!(
                        r.producer_id.0 >= 0,
                        "v{v}: producer id {:?}",
                        r.producer_id
                    );
                    assert_eq!(r.producer_epoch, 0, "v{v}");
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeProducers => {
            let t = describe_producers_request::TopicRequest::default()
                .with_name(name("conf"))
                .with_partition_indexes(vec![0]);
            match ask(
                conn,
                &DescribeProducersRequest::default().with_topics(vec![t]),
            ) {
                ResponseKind::DescribeProducers(r) => r.topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.error_code)
                    .collect(),
                r => panic!("{r:?}"),
            }
        }
        group_api if group_cases::ORDER.contains(&group_api) => {
            group_cases::exchange(conn, group_api, v)
        }
        txn_api if txn_cases::ORDER.contains(&txn_api) => txn_cases::exchange(conn, txn_api, v),
        other => panic!("no conformance case for {other:?}: add one"),
    }
}

/// Object-safe send, so the cases above can share one call.
trait EncodeDyn {
    fn send(&self, conn: &mut Conn, api: ApiKey, v: i16) -> ResponseKind;
}

impl<T: kafka_protocol::protocol::Encodable> EncodeDyn for T {
    fn send(&self, conn: &mut Conn, api: ApiKey, v: i16) -> ResponseKind {
        conn.request(api, v, self)
    }
}

#[test]
fn every_advertised_version_answers() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(
        dir.path(),
        &[
            "--default-partitions",
            "1",
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    );
    let mut conn = Conn::connect(&strom.addr());
    let mut partitions = 1;
    // Produce first, so that Fetch and ListOffsets find data; CreateTopics before DeleteTopics.
    let mut order = vec![
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DescribeConfigs,
        ApiKey::AlterConfigs,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::DeleteRecords,
        ApiKey::CreatePartitions,
        ApiKey::InitProducerId,
        ApiKey::DescribeProducers,
    ];
    // The group APIs need the topic the cases above created.
    order.extend(group_cases::ORDER);
    order.extend(txn_cases::ORDER);
    assert_eq!(
        order.len() + security_cases::ORDER.len(),
        SUPPORTED.len(),
        "a new API needs a conformance case here"
    );
    for api in order {
        let (_, min, max) = SUPPORTED
            .iter()
            .find(|(k, _, _)| *k == api)
            .copied()
            .unwrap();
        for v in min..=max {
            eprintln!("{api:?} v{v}");
            let codes = exchange(&mut conn, api, v, &mut partitions);
            assert!(
                codes.iter().all(|c| *c == 0),
                "{api:?} v{v}: error codes {codes:?}"
            );
        }
    }
}

/// The SASL, ACL, SCRAM-user and quota APIs need a SASL listener and a super user to answer
/// without error: a node with the authorizer on and a bootstrap admin.
#[test]
fn every_advertised_security_version_answers() {
    let dir = tempfile::tempdir().unwrap();
    let ports = common::free_ports(2);
    let listeners = format!(
        "PLAINTEXT://127.0.0.1:{},SASL_PLAINTEXT://127.0.0.1:{}",
        ports[0], ports[1]
    );
    let _strom = Strom::start_on_with_env(
        dir.path(),
        ports[0],
        &["--kafka-listeners", &listeners],
        vec![
            ("STROM_BOOTSTRAP_USER".into(), "admin".into()),
            ("STROM_BOOTSTRAP_PASSWORD".into(), "admin-secret".into()),
        ],
    );
    let sasl = format!("127.0.0.1:{}", ports[1]);
    // The bootstrap user is created just after the listener opens.
    common::wait_until(
        "the bootstrap admin",
        std::time::Duration::from_secs(20),
        || {
            let mut conn = Conn::connect(&sasl);
            let codes = security_cases::login(&mut conn, "admin", "admin-secret", 2);
            (codes.iter().all(|c| *c == 0), format!("{codes:?}"))
        },
    );
    let mut conn = Conn::connect(&sasl);
    for api in security_cases::ORDER {
        let (_, min, max) = SUPPORTED
            .iter()
            .find(|(k, _, _)| *k == api)
            .copied()
            .unwrap();
        for v in min..=max {
            eprintln!("{api:?} v{v}");
            let codes = security_cases::exchange(&mut conn, api, v, ("admin", "admin-secret"));
            assert!(
                codes.iter().all(|c| *c == 0),
                "{api:?} v{v}: error codes {codes:?}"
            );
        }
    }
}
