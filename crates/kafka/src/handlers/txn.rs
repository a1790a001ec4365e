//! The transaction APIs: InitProducerId with a transactional id, AddPartitionsToTxn (the
//! client's v0..=3 and the batched v4+, whose `verify_only` checks without adding),
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit, DescribeTransactions, ListTransactions. The logic
//! is `strom_txn` (the coordinator) and `strom_broker::group` (transactional offsets); these
//! functions translate wire messages to and from it.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    describe_transactions_response, list_transactions_response, AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;
use strom_broker::group::{OffsetCommit, TxnCommitter};
use strom_txn::{AddResults, TxnError, TxnState};

use super::{str_bytes, Reply};
use crate::errors::txn_error;
use crate::Context;

fn code(r: &Result<(), TxnError>) -> i16 {
    r.as_ref().err().map_or(0, |e| txn_error(e).code())
}

fn later<T: Into<kafka_protocol::messages::ResponseKind> + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Reply {
    Reply::Later(Box::pin(async move { Some(f.await.into()) }))
}

/// InitProducerId with `transactional_id` set: (producer id, epoch) or the error code.
pub async fn init_producer_id(
    ctx: Arc<Context>,
    txn_id: String,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), ResponseError> {
    ctx.txn
        .init_producer_id(&txn_id, timeout_ms, expected)
        .await
        .map_err(|e| {
            tracing::debug!(txn_id, "InitProducerId: {e}");
            txn_error(&e)
        })
}

/// The request's partitions, flattened.
fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

/// Results grouped back by topic, in request order.
fn by_topic(results: AddResults) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), r) in results {
        let pr = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(code(&r));
        match out.last_mut().filter(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(pr),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_results_by_partition(vec![pr]),
            ),
        }
    }
    out
}

pub fn add_partitions(ctx: &Arc<Context>, req: AddPartitionsToTxnRequest, version: i16) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        if version <= 3 {
            let parts = flatten(&req.v3_and_below_topics);
            let results = ctx
                .txn
                .add_partitions(
                    &req.v3_and_below_transactional_id.0,
                    req.v3_and_below_producer_id.0,
                    req.v3_and_below_producer_epoch,
                    parts,
                )
                .await;
            return AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(by_topic(results));
        }
        let mut out = Vec::with_capacity(req.transactions.len());
        for t in req.transactions {
            let parts = flatten(&t.topics);
            let results = if t.verify_only {
                ctx.txn
                    .verify_partitions(
                        &t.transactional_id.0,
                        t.producer_id.0,
                        t.producer_epoch,
                        parts,
                    )
                    .await
            } else {
                ctx.txn
                    .add_partitions(
                        &t.transactional_id.0,
                        t.producer_id.0,
                        t.producer_epoch,
                        parts,
                    )
                    .await
            };
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id)
                    .with_topic_results(by_topic(results)),
            );
        }
        AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
    })
}

pub fn add_offsets(ctx: &Arc<Context>, req: AddOffsetsToTxnRequest) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let r = ctx
            .txn
            .add_offsets(
                &req.transactional_id.0,
                req.producer_id.0,
                req.producer_epoch,
                &req.group_id.0,
            )
            .await;
        AddOffsetsToTxnResponse::default().with_error_code(code(&r))
    })
}

/// The first versions of EndTxn, Produce and TxnOffsetCommit of transaction version 2
/// (KIP-890 part 2): the epoch is bumped at every EndTxn, and a transaction's partitions are
/// added by the partition leader and the group coordinator instead of by the client.
pub const TV2_END_TXN: i16 = 5;
pub const TV2_PRODUCE: i16 = 12;
pub const TV2_TXN_OFFSET_COMMIT: i16 = 5;

pub fn end_txn(ctx: &Arc<Context>, req: EndTxnRequest, version: i16) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let r = ctx
            .txn
            .end_txn(
                &req.transactional_id.0,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                version >= TV2_END_TXN,
            )
            .await;
        if let Err(e) = &r {
            tracing::debug!(txn_id = %req.transactional_id.0, "EndTxn: {e}");
        }
        // Before v5 the client keeps its epoch; -1 says so.
        let (producer_id, epoch) = match &r {
            Ok(next) if version >= TV2_END_TXN => *next,
            _ => (-1, -1),
        };
        EndTxnResponse::default()
            .with_error_code(code(&r.map(|_| ())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
    })
}

pub fn txn_offset_commit(
    ctx: &Arc<Context>,
    mut req: TxnOffsetCommitRequest,
    version: i16,
) -> Reply {
    let shape: Vec<(TopicName, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let commits: Vec<OffsetCommit> = std::mem::take(&mut req.topics)
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| OffsetCommit {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|m| m.to_string()),
            })
        })
        .collect();
    let n = commits.len();
    let durable: std::pin::Pin<Box<dyn std::future::Future<Output = Vec<i16>> + Send>> =
        if version < TV2_TXN_OFFSET_COMMIT {
            // Started now, so pipelined commits of one producer are written in order.
            Box::pin(store_txn_offsets(ctx, &req, commits))
        } else {
            // Transaction version 2: the client sent no AddOffsetsToTxn; the group's partition
            // of `__consumer_offsets` joins the transaction here, before the offsets are
            // written.
            let ctx = Arc::clone(ctx);
            // As Kafka: partitions of unknown topics are answered as such, whatever the
            // transaction; with none known there is nothing to add.
            let any_known = commits.iter().any(|c| {
                ctx.broker
                    .topic(&c.topic)
                    .and_then(|t| t.partition(c.partition))
                    .is_some()
            });
            Box::pin(async move {
                if any_known {
                    let joined = ctx
                        .txn
                        .join_offsets_partition(
                            &req.transactional_id.0,
                            req.producer_id.0,
                            req.producer_epoch,
                            &req.group_id.0,
                        )
                        .await;
                    if let Err(e) = joined {
                        tracing::debug!(txn_id = %req.transactional_id.0, "TxnOffsetCommit: {e}");
                        return vec![txn_error(&e).code(); n];
                    }
                }
                store_txn_offsets(&ctx, &req, commits).await
            })
        };
    Reply::Later(Box::pin(async move {
        let mut results = durable.await.into_iter();
        let topics = shape
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|index| {
                        let code = results.next().unwrap_or(0);
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(code)
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(
            TxnOffsetCommitResponse::default()
                .with_topics(topics)
                .into(),
        )
    }))
}

pub fn describe(ctx: &Arc<Context>, req: DescribeTransactionsRequest) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let ids: Vec<String> = req
            .transactional_ids
            .iter()
            .map(|i| i.0.to_string())
            .collect();
        let states = ctx
            .txn
            .describe(&ids)
            .await
            .into_iter()
            .map(|d| {
                let base = describe_transactions_response::TransactionState::default()
                    .with_transactional_id(TransactionalId(str_bytes(d.txn_id)));
                match d.result {
                    Err(e) => base
                        .with_error_code(txn_error(&e).code())
                        .with_transaction_state(str_bytes(String::new()))
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1)
                        .with_transaction_start_time_ms(-1),
                    Ok(m) => {
                        let mut topics: Vec<describe_transactions_response::TopicData> = Vec::new();
                        for (topic, p) in &m.partitions {
                            match topics.last_mut().filter(|t| t.topic.0.as_str() == topic) {
                                Some(t) => t.partitions.push(*p),
                                None => topics.push(
                                    describe_transactions_response::TopicData::default()
                                        .with_topic(TopicName(str_bytes(topic.clone())))
                                        .with_partitions(vec![*p]),
                                ),
                            }
                        }
                        base.with_transaction_state(str_bytes(m.state.name().to_string()))
                            .with_transaction_timeout_ms(m.timeout_ms)
                            .with_transaction_start_time_ms(m.txn_start_ms)
                            .with_producer_id(ProducerId(m.producer_id))
                            .with_producer_epoch(m.producer_epoch)
                            .with_topics(topics)
                    }
                }
            })
            .collect();
        DescribeTransactionsResponse::default().with_transaction_states(states)
    })
}

const STATE_NAMES: [TxnState; 7] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
];

pub fn list(ctx: &Arc<Context>, req: ListTransactionsRequest) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
        let unknown: Vec<_> = req
            .state_filters
            .iter()
            .filter(|s| !STATE_NAMES.iter().any(|n| n.name() == s.as_str()))
            .cloned()
            .collect();
        let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
        let now = strom_broker::now_ms();
        let listed = ctx
            .txn
            .list(&states, &pids)
            .await
            .into_iter()
            // v1: only transactions running longer than the filter (-1: no filter).
            .filter(|l| {
                req.duration_filter < 0
                    || (l.txn_start_ms >= 0
                        && now.saturating_sub(l.txn_start_ms) > req.duration_filter)
            })
            .map(|l| {
                list_transactions_response::TransactionState::default()
                    .with_transactional_id(TransactionalId(str_bytes(l.txn_id)))
                    .with_producer_id(ProducerId(l.producer_id))
                    .with_transaction_state(str_bytes(l.state.name().to_string()))
            })
            .collect();
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed)
    })
}

/// Writes `commits` as the producer's transactional offsets; resolves to each partition's
/// error code once they are durable.
fn store_txn_offsets(
    ctx: &Context,
    req: &TxnOffsetCommitRequest,
    commits: Vec<OffsetCommit>,
) -> impl std::future::Future<Output = Vec<i16>> + Send + 'static {
    let who = TxnCommitter {
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        member_id: &req.member_id,
        instance_id: req.group_instance_id.as_deref(),
        generation: req.generation_id,
    };
    let durable = ctx
        .broker
        .groups()
        .txn_commit(&ctx.broker, &req.group_id.0, who, commits);
    async move {
        durable
            .await
            .iter()
            .map(super::group::result_code)
            .collect()
    }
}
