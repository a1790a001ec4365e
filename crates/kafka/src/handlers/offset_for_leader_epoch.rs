//! OffsetForLeaderEpoch: where a leader epoch ends, so a consumer can tell whether the log it
//! read from was truncated. A single node writes only epoch 0 (`SINGLE_NODE_LEADER_EPOCH`),
//! which is the current epoch, so it ends at the log end offset.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

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
                        let err = super::cluster::missing_partition(ctx, &t.topic.0, p.partition);
                        return resp.with_error_code(err.code());
                    };
                    // The client's view of the current leader epoch must be ours (or unknown).
                    if let Err(err) = super::cluster::check_serving(&part, p.current_leader_epoch) {
                        return resp.with_error_code(err.code());
                    }
                    match part.epoch_end(p.leader_epoch) {
                        // Before the first epoch: undefined, as Kafka answers.
                        None => resp,
                        Some((epoch, end)) => {
                            resp.with_leader_epoch(epoch).with_end_offset(end as i64)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
