//! InitProducerId (v0..=5): producer ids for idempotent and transactional producers.
//!
//! - `transactional_id` null: a fresh producer id with epoch 0 ([`strom_broker::Broker::init_producer_id`]).
//!   From v3 the producer may name its current id and epoch (KIP-360, after an error left its
//!   sequences unknown): it gets the same id with the next epoch, which fences its old batches.
//!   Setting only one of the two is `INVALID_REQUEST`, as in Kafka.
//! - `transactional_id` set: the transaction coordinator answers (`strom_txn`): the id's
//!   producer id with a bumped epoch, fencing older instances of the same id.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::Reply;
use crate::Context;

fn failed(err: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(err.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

fn ok(id: i64, epoch: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

pub fn handle(ctx: &Arc<Context>, req: InitProducerIdRequest, version: i16) -> Reply {
    // v0..=2 carry no producer id: the fields keep their defaults (-1).
    let current = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => None,
        (id, epoch) if version >= 3 && id >= 0 && epoch >= 0 => Some((id, epoch)),
        (id, epoch) => {
            tracing::debug!(
                id,
                epoch,
                "InitProducerId with an invalid producer id/epoch pair"
            );
            return Reply::Now(Box::new(failed(ResponseError::InvalidRequest).into()));
        }
    };
    if let Some(id) = req.transactional_id {
        let ctx = Arc::clone(ctx);
        let timeout_ms = req.transaction_timeout_ms;
        return Reply::Later(Box::pin(async move {
            let r = super::txn::init_producer_id(ctx, id.0.to_string(), timeout_ms, current).await;
            let resp = match r {
                Ok((id, epoch)) => ok(id, epoch),
                Err(e) => failed(e),
            };
            Some(resp.into())
        }));
    }
    let resp = match ctx.broker.init_producer_id(current) {
        Ok((id, epoch)) => {
            tracing::debug!(
                producer_id = id,
                epoch,
                bumped = current.is_some(),
                "InitProducerId"
            );
            ok(id, epoch)
        }
        Err(e) => {
            tracing::error!("InitProducerId failed: {e}");
            failed(crate::errors::kafka_error(&e))
        }
    };
    Reply::Now(Box::new(resp.into()))
}
