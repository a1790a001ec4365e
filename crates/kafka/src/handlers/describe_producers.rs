//! DescribeProducers (`kafka-transactions.sh describe-producers`, AdminClient
//! `describeProducers`): the idempotent producers a partition's leader tracks, with the epoch
//! and last sequence its duplicate detection holds for each, and the first offset of its open
//! transaction there (`current_txn_start_offset`, -1 when none is open; `coordinator_epoch`
//! is not tracked per producer: -1).

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::Context;

pub fn handle(ctx: &Arc<Context>, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(&t.name.0);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let partition = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(index))
                        .ok_or_else(|| super::cluster::missing_partition(ctx, &t.name.0, index))
                        .and_then(|p| super::cluster::check_serving(&p, -1).map(|_| p));
                    let result = PartitionResponse::default().with_partition_index(index);
                    match partition {
                        Err(e) => result.with_error_code(e.code()),
                        Ok(p) => {
                            let open: std::collections::HashMap<i64, u64> =
                                p.open_transactions().into_iter().collect();
                            result.with_active_producers(
                                p.producers()
                                    .into_iter()
                                    .map(|(id, e)| {
                                        ProducerState::default()
                                            .with_producer_id(ProducerId(id))
                                            .with_producer_epoch(i32::from(e.epoch))
                                            .with_last_sequence(
                                                e.batches.back().map_or(-1, |b| b.last_seq),
                                            )
                                            .with_last_timestamp(e.last_timestamp_ms)
                                            .with_coordinator_epoch(-1)
                                            .with_current_txn_start_offset(
                                                open.get(&id).map_or(-1, |o| *o as i64),
                                            )
                                    })
                                    .collect(),
                            )
                        }
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
