//! ListOffsets: earliest, latest (the high watermark; for read_committed the last stable
//! offset), max timestamp, or by timestamp.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strom_broker::Partition;

use crate::Context;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// `isolation_level` of a read_committed consumer.
pub(crate) const READ_COMMITTED: i8 = 1;

pub fn handle(ctx: &Arc<Context>, req: ListOffsetsRequest, version: i16) -> super::Reply {
    let ctx = Arc::clone(ctx);
    // Async: a lookup by time in a tiered partition may read the object store.
    super::Reply::Later(Box::pin(async move {
        Some(answer(&ctx, req, version).await.into())
    }))
}

async fn answer(ctx: &Context, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // Responses before v4 have no leader epoch; the encoder refuses a value there.
    let epoch_of = |p: &strom_broker::Partition, offset: i64| {
        if version >= 4 && offset >= 0 {
            p.leader_epoch()
        } else {
            -1
        }
    };
    let committed = req.isolation_level == READ_COMMITTED;
    let mut topics = Vec::with_capacity(req.topics.len());
    for lt in req.topics {
        let topic = ctx.broker.topic(&lt.name.0);
        let mut partitions = Vec::with_capacity(lt.partitions.len());
        for lp in lt.partitions {
            let resp =
                ListOffsetsPartitionResponse::default().with_partition_index(lp.partition_index);
            let Some(p) = topic.as_ref().and_then(|t| t.partition(lp.partition_index)) else {
                let err = super::cluster::missing_partition(ctx, &lt.name.0, lp.partition_index);
                partitions.push(resp.with_error_code(err.code()));
                continue;
            };
            if let Err(err) = super::cluster::check_serving(&p, lp.current_leader_epoch) {
                partitions.push(resp.with_error_code(err.code()));
                continue;
            }
            partitions.push(match lookup(&p, lp.timestamp, committed).await {
                Ok((offset, ts)) => resp
                    .with_offset(offset)
                    .with_timestamp(ts)
                    .with_leader_epoch(epoch_of(&p, offset)),
                Err(e) => resp.with_error_code(crate::errors::code(&e)),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(lt.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) as Kafka answers them; -1 where there is no such offset.
async fn lookup(
    p: &Partition,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64), strom_broker::BrokerError> {
    let found = |f: Option<(u64, i64)>| f.map_or((-1, -1), |(o, ts)| (o as i64, ts));
    Ok(match timestamp {
        LATEST if committed => (p.last_stable_offset() as i64, -1),
        LATEST => (p.high_watermark() as i64, -1),
        EARLIEST => (p.log_start_offset() as i64, -1),
        EARLIEST_LOCAL => (p.local_log_start_offset() as i64, -1),
        LATEST_TIERED => (p.latest_tiered_offset().map_or(-1, |o| o as i64), -1),
        MAX_TIMESTAMP => found(p.max_timestamp_all().await?),
        ts if ts >= 0 => found(p.offset_for_time(ts).await?),
        _ => (-1, -1),
    })
}
