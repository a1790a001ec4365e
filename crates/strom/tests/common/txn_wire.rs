//! Transactions request by request, for the wire tests: the coordinator's requests, a
//! transactional Produce, and what a partition shows a read_committed reader.

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, BrokerId, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId,
    ResponseKind, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::txn::{eventually, Sent};
use super::wire::{produce_request, Conn};

pub const RETRY_DEADLINE: Duration = Duration::from_secs(20);

pub fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

pub fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// Waits until the node answers FindCoordinator(TRANSACTION) for `id` without error (the
/// transaction state topic may be being created); returns the coordinator's node id.
pub fn find_coordinator(conn: &mut Conn, id: &str) -> i32 {
    find_coordinator_of(conn, id, 1)
}

/// FindCoordinator for `key` of `key_type` (0 group, 1 transaction), retried until answered
/// without error: the coordinator's node id.
pub fn find_coordinator_of(conn: &mut Conn, key: &str, key_type: i8) -> i32 {
    let req = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())]);
    let mut node = -1;
    eventually("FindCoordinator", RETRY_DEADLINE, || {
        match conn.request(ApiKey::FindCoordinator, 4, &req) {
            ResponseKind::FindCoordinator(r) => {
                node = r.coordinators[0].node_id.0;
                (r.coordinators[0].error_code == 0, r)
            }
            other => panic!("{other:?}"),
        }
    });
    node
}

/// InitProducerId for transactional id `id`, retried while the coordinator is loading or the
/// id's previous transaction is being completed (CONCURRENT_TRANSACTIONS): (producer id, epoch).
pub fn init_txn_producer(conn: &mut Conn, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let retriable = [
        ResponseError::ConcurrentTransactions.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::CoordinatorNotAvailable.code(),
    ];
    let deadline = Instant::now() + RETRY_DEADLINE;
    loop {
        let r = match conn.request(ApiKey::InitProducerId, 4, &req) {
            ResponseKind::InitProducerId(r) => r,
            other => panic!("{other:?}"),
        };
        if r.error_code == 0 {
            return (r.producer_id.0, r.producer_epoch);
        }
        assert!(
            retriable.contains(&r.error_code) && Instant::now() < deadline,
            "InitProducerId({id}): error {}",
            r.error_code
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// AddPartitionsToTxn (v3): the error code of every partition, in request order.
pub fn add_partitions(
    conn: &mut Conn,
    id: &str,
    (pid, epoch): (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name(topic))
            .with_partitions(partitions.to_vec())]);
    match conn.request(ApiKey::AddPartitionsToTxn, 3, &req) {
        ResponseKind::AddPartitionsToTxn(r) => r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// EndTxn (v3): the error code.
pub fn end_txn(conn: &mut Conn, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    end_txn_at(conn, 3, id, producer, commit).0
}

/// EndTxn at `version`: (error code, the answer's producer id and epoch).
pub fn end_txn_at(
    conn: &mut Conn,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    match conn.request(ApiKey::EndTxn, version, &req) {
        ResponseKind::EndTxn(r) => (r.error_code, r.producer_id.0, r.producer_epoch),
        other => panic!("{other:?}"),
    }
}

/// A transactional Produce (acks=all) of `batch` to one partition, on behalf of `id`.
pub fn txn_produce_request(
    id: &str,
    topic: &str,
    partition: i32,
    batch: bytes::Bytes,
) -> ProduceRequest {
    produce_request(topic, partition, batch).with_transactional_id(Some(txn_id(id)))
}

/// Sends a Produce request (v9): (error code, base offset).
pub fn send_produce(conn: &mut Conn, req: &ProduceRequest) -> (i16, i64) {
    send_produce_at(conn, 9, req)
}

/// Sends a Produce request at `version`: (error code, base offset).
pub fn send_produce_at(conn: &mut Conn, version: i16, req: &ProduceRequest) -> (i16, i64) {
    match conn.request(ApiKey::Produce, version, req) {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// The log end (ListOffsets latest, read_uncommitted: the high watermark) of a partition.
pub fn log_end(conn: &mut Conn, topic: &str, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    match conn.request(ApiKey::ListOffsets, 5, &req) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "ListOffsets {topic}/{partition}");
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

/// What a read_committed Fetch from offset 0 says about a partition.
#[derive(Debug, PartialEq, Eq)]
pub struct CommittedView {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// (producer id, first offset) of every aborted transaction listed.
    pub aborted: Vec<(i64, i64)>,
}

pub fn fetch_committed(conn: &mut Conn, topic: &str, partition: i32) -> CommittedView {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    match conn.request(ApiKey::Fetch, 11, &req) {
        ResponseKind::Fetch(r) => {
            assert_eq!(r.error_code, 0, "Fetch");
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "Fetch {topic}/{partition}");
            CommittedView {
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                aborted: p
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect(),
            }
        }
        other => panic!("{other:?}"),
    }
}

/// Notes each of `values`, stored from `base` on in `topic`/`partition`, in `sent`.
pub fn note(sent: &mut Sent, topic: &str, partition: i32, base: i64, values: &[&str]) {
    for (i, v) in values.iter().enumerate() {
        sent.insert(
            v.to_string(),
            (topic.to_string(), partition, base + i as i64),
        );
    }
}

pub fn is_fenced_code(code: i16) -> bool {
    code == ResponseError::InvalidProducerEpoch.code()
        || code == ResponseError::ProducerFenced.code()
}
