//! DeleteRecords (`kafka-delete-records.sh`, AdminClient `deleteRecords`): moves a partition's
//! log start offset forward. Nothing below it is served from then on, and whole segments below
//! it are deleted. Answered once the new start is durable: on a single node its file, in a
//! cluster the controller's log (every replica then takes it, and deletes committed segments).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use strom_broker::cluster::Command;
use strom_broker::{BrokerError, Partition};

use super::Reply;
use crate::errors::kafka_error;
use crate::Context;

/// `offset` -1 in a request: up to the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub fn handle(ctx: &Arc<Context>, req: DeleteRecordsRequest) -> Reply {
    let ctx = Arc::clone(ctx);
    Reply::Later(Box::pin(async move {
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let topic = ctx.broker.topic(&t.name.0);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for rp in t.partitions {
                let result = DeleteRecordsPartitionResult::default()
                    .with_partition_index(rp.partition_index);
                let partition = topic
                    .as_ref()
                    .and_then(|t| t.partition(rp.partition_index))
                    .ok_or_else(|| {
                        super::cluster::missing_partition(&ctx, &t.name.0, rp.partition_index)
                    })
                    .and_then(|p| super::cluster::check_serving(&p, -1).map(|_| p));
                let outcome = match partition {
                    Err(e) => Err(e),
                    Ok(p) => delete(&ctx, &t.name.0, rp.partition_index, &p, rp.offset)
                        .await
                        .map_err(|e| kafka_error(&e)),
                };
                partitions.push(match outcome {
                    Ok(low_watermark) => result.with_low_watermark(low_watermark as i64),
                    Err(e) => result.with_low_watermark(-1).with_error_code(e.code()),
                });
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        Some(DeleteRecordsResponse::default().with_topics(topics).into())
    }))
}

/// Deletes the records of one partition below `offset`; returns the new log start.
async fn delete(
    ctx: &Context,
    topic: &str,
    index: i32,
    p: &Partition,
    offset: i64,
) -> Result<u64, BrokerError> {
    let high_watermark = p.high_watermark();
    let offset = match offset {
        HIGH_WATERMARK => high_watermark,
        o => u64::try_from(o).map_err(|_| BrokerError::OffsetOutOfRange {
            offset: 0,
            start: p.log_start_offset(),
            end: high_watermark,
        })?,
    };
    let Some(cluster) = ctx.broker.cluster() else {
        return p.delete_records(offset);
    };
    if offset > high_watermark {
        return Err(BrokerError::OffsetOutOfRange {
            offset,
            start: p.log_start_offset(),
            end: high_watermark,
        });
    }
    let group = cluster
        .with_state(|s| {
            let i = usize::try_from(index).ok()?;
            Some(s.topics.get(topic)?.partitions.get(i)?.group)
        })
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    super::cluster::propose_patiently(cluster, Command::SetLogStart { group, offset }).await?;
    // The reconciler hands the new start to this replica once the command is applied here.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.log_start_offset() < offset {
        if tokio::time::Instant::now() >= deadline {
            return Err(BrokerError::Timeout);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(p.log_start_offset())
}
