//! OffsetForLeaderEpoch: where a leader epoch ends, so a consumer can tell whether the log it
//! read from was truncated. A single node writes only epoch 0 (`SINGLE_NODE_LEADER_EPOCH`),
//! which is the current epoch, so it ends at the log end offset.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;
use strom_broker::partition::SINGLE_NODE_LEADER_EPOCH;

use crate::Context;

pub fn handle(
    ctx: &Arc<Context>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(&t.topic.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    // The client's view of the current leader epoch must be ours (or unknown).
                    match p.current_leader_epoch {
                        -1 => {}
                        e if e == SINGLE_NODE_LEADER_EPOCH => {}
                        e if e > SINGLE_NODE_LEADER_EPOCH => {
                            return resp.with_error_code(ResponseError::UnknownLeaderEpoch.code())
                        }
                        _ => return resp.with_error_code(ResponseError::FencedLeaderEpoch.code()),
                    }
                    if p.leader_epoch < SINGLE_NODE_LEADER_EPOCH {
                        // Before the first epoch: undefined, as Kafka answers.
                        return resp;
                    }
                    resp.with_leader_epoch(SINGLE_NODE_LEADER_EPOCH)
                        .with_end_offset(part.log_end_offset() as i64)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
