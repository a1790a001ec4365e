//! Conformance cases of the transaction APIs for `every_version`: one exchange per version.
//!
//! Running a transaction through every version of every API is `transactions.rs`'s job; here
//! each version must get a well-formed answer of the right kind. So the requests that change a
//! transaction name a transactional id nobody initialised, and each case checks the error
//! Kafka gives for that itself (INVALID_PRODUCER_ID_MAPPING; TxnOffsetCommit names an unknown
//! topic instead, as it does not consult the transaction coordinator). DescribeTransactions
//! and ListTransactions see one id a transactional InitProducerId made. Each case returns the
//! codes that must be 0.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::common::wire::Conn;
use super::name;

pub const ORDER: [ApiKey; 6] = [
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
];

/// INVALID_PRODUCER_ID_MAPPING: the transactional id has no producer id.
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
/// UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// TRANSACTIONAL_ID_NOT_FOUND.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// The id `known` initialises; the others are never initialised.
const KNOWN: &str = "every-version-txn";

fn txn_id(v: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(v.to_string()))
}

/// A transactional InitProducerId for [`KNOWN`]: its (producer id, epoch).
fn known(conn: &mut Conn) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(KNOWN)))
        .with_transaction_timeout_ms(60_000);
    match conn.request(ApiKey::InitProducerId, 4, &req) {
        ResponseKind::InitProducerId(r) => {
            assert_eq!(r.error_code, 0, "{r:?}");
            assert!(r.producer_id.0 >= 0, "{r:?}");
            (r.producer_id.0, r.producer_epoch)
        }
        r => panic!("{r:?}"),
    }
}

/// Partition 0 of `conf`, as AddPartitionsToTxn names it.
fn conf_partition() -> Vec<AddPartitionsToTxnTopic> {
    vec![AddPartitionsToTxnTopic::default()
        .with_name(name("conf"))
        .with_partitions(vec![0])]
}

/// Every partition error code of AddPartitionsToTxn topic results.
fn partition_codes(topics: &[AddPartitionsToTxnTopicResult]) -> Vec<i16> {
    topics
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

/// One exchange of a transaction API at version `v`; returns the codes that must be 0.
pub fn exchange(conn: &mut Conn, api: ApiKey, v: i16) -> Vec<i16> {
    let unknown = format!("txn-unknown-{api:?}-{v}");
    match api {
        ApiKey::AddPartitionsToTxn if v >= 4 => {
            // The batched form: one transaction adding, one only verifying.
            let transaction = |id: String, verify_only: bool| {
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(txn_id(&id))
                    .with_producer_id(ProducerId(1000))
                    .with_producer_epoch(0)
                    .with_verify_only(verify_only)
                    .with_topics(conf_partition())
            };
            let ids = [unknown.clone(), format!("{unknown}-verify")];
            let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
                transaction(ids[0].clone(), false),
                transaction(ids[1].clone(), true),
            ]);
            match conn.request(api, v, &req) {
                ResponseKind::AddPartitionsToTxn(r) => {
                    let answered: Vec<&str> = r
                        .results_by_transaction
                        .iter()
                        .map(|t| t.transactional_id.0.as_str())
                        .collect();
                    assert_eq!(answered, ids, "v{v}: {r:?}");
                    for t in &r.results_by_transaction {
                        assert_eq!(
                            partition_codes(&t.topic_results),
                            [INVALID_PRODUCER_ID_MAPPING],
                            "v{v}: {r:?}"
                        );
                    }
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::AddPartitionsToTxn => {
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(&unknown))
                .with_v3_and_below_producer_id(ProducerId(1000))
                .with_v3_and_below_producer_epoch(0)
                .with_v3_and_below_topics(conf_partition());
            match conn.request(api, v, &req) {
                ResponseKind::AddPartitionsToTxn(r) => {
                    let topics = &r.results_by_topic_v3_and_below;
                    assert_eq!(topics.len(), 1, "v{v}: {r:?}");
                    assert_eq!(topics[0].name.0.as_str(), "conf");
                    assert_eq!(topics[0].results_by_partition[0].partition_index, 0);
                    assert_eq!(
                        partition_codes(topics),
                        [INVALID_PRODUCER_ID_MAPPING],
                        "v{v}: {r:?}"
                    );
                    vec![]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::AddOffsetsToTxn => {
            let req = AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id(&unknown))
                .with_producer_id(ProducerId(1000))
                .with_producer_epoch(0)
                .with_group_id(GroupId(StrBytes::from_static_str("txn-group")));
            match conn.request(api, v, &req) {
                ResponseKind::AddOffsetsToTxn(r) => {
                    assert_eq!(r.error_code, INVALID_PRODUCER_ID_MAPPING, "v{v}: {r:?}");
                    vec![]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::TxnOffsetCommit => {
            let partition = TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)
                .with_committed_metadata(Some(StrBytes::from_static_str("meta")));
            let partition = if v >= 2 {
                partition.with_committed_leader_epoch(0)
            } else {
                partition
            };
            let req = TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(&unknown))
                .with_group_id(GroupId(StrBytes::from_string(format!("txn-commit-{v}"))))
                .with_producer_id(ProducerId(1000))
                .with_producer_epoch(0)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(name("txn-no-such-topic"))
                    .with_partitions(vec![partition])]);
            match conn.request(api, v, &req) {
                ResponseKind::TxnOffsetCommit(r) => {
                    assert_eq!(r.topics.len(), 1, "v{v}: {r:?}");
                    assert_eq!(r.topics[0].name.0.as_str(), "txn-no-such-topic");
                    let codes: Vec<(i32, i16)> = r.topics[0]
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, p.error_code))
                        .collect();
                    assert_eq!(codes, [(0, UNKNOWN_TOPIC_OR_PARTITION)], "v{v}: {r:?}");
                    vec![]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::EndTxn => {
            let req = EndTxnRequest::default()
                .with_transactional_id(txn_id(&unknown))
                .with_producer_id(ProducerId(1000))
                .with_producer_epoch(0)
                .with_committed(true);
            match conn.request(api, v, &req) {
                ResponseKind::EndTxn(r) => {
                    assert_eq!(r.error_code, INVALID_PRODUCER_ID_MAPPING, "v{v}: {r:?}");
                    vec![]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeTransactions => {
            let (producer_id, epoch) = known(conn);
            let req = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id(KNOWN), txn_id(&unknown)]);
            match conn.request(api, v, &req) {
                ResponseKind::DescribeTransactions(r) => {
                    let [k, u] = &r.transaction_states[..] else {
                        panic!("v{v}: {r:?}")
                    };
                    assert_eq!(
                        (k.transactional_id.0.as_str(), k.transaction_state.as_str()),
                        (KNOWN, "Empty"),
                        "v{v}: {r:?}"
                    );
                    assert_eq!((k.producer_id.0, k.producer_epoch), (producer_id, epoch));
                    assert_eq!(k.transaction_timeout_ms, 60_000);
                    assert!(k.topics.is_empty(), "v{v}: {r:?}");
                    assert_eq!(u.transactional_id.0.as_str(), unknown);
                    assert_eq!(u.error_code, TRANSACTIONAL_ID_NOT_FOUND, "v{v}: {r:?}");
                    vec![k.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::ListTransactions => {
            let (producer_id, _) = known(conn);
            let req = ListTransactionsRequest::default().with_state_filters(vec![
                StrBytes::from_static_str("Empty"),
                StrBytes::from_static_str("NoSuchState"),
            ]);
            match conn.request(api, v, &req) {
                ResponseKind::ListTransactions(r) => {
                    let unknown_filters: Vec<&str> =
                        r.unknown_state_filters.iter().map(|s| s.as_str()).collect();
                    assert_eq!(unknown_filters, ["NoSuchState"], "v{v}: {r:?}");
                    let listed = r
                        .transaction_states
                        .iter()
                        .find(|t| t.transactional_id.0.as_str() == KNOWN)
                        .unwrap_or_else(|| panic!("v{v}: {KNOWN} not listed: {r:?}"));
                    assert_eq!(
                        (listed.producer_id.0, listed.transaction_state.as_str()),
                        (producer_id, "Empty"),
                        "v{v}: {r:?}"
                    );
                    assert!(
                        r.transaction_states
                            .iter()
                            .all(|t| t.transaction_state.as_str() == "Empty"),
                        "v{v}: the state filter let others through: {r:?}"
                    );
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        other => panic!("{other:?} is not a transaction API"),
    }
}
