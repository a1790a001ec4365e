//! InitProducerId (v0..=5): producer ids for idempotent producers.
//!
//! - `transactional_id` null: a fresh producer id with epoch 0 ([`strom_broker::Broker::init_producer_id`]).
//!   From v3 the producer may name its current id and epoch (KIP-360, after an error left its
//!   sequences unknown): it gets the same id with the next epoch, which fences its old batches.
//!   Setting only one of the two is `INVALID_REQUEST`, as in Kafka.
//! - `transactional_id` set: transactions are not supported yet, so the answer is
//!   `INVALID_REQUEST`. InitProducerId responses have no error-message field, so the reason
//!   ("transactions are not supported yet") goes to the broker log. Clients treat it as fatal for
//!   a transactional producer, which is the honest outcome; idempotent producers never send one.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::Context;

pub fn handle(
    ctx: &Arc<Context>,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let failed = |err: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(err.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = &req.transactional_id {
        tracing::info!(transactional_id = %id.0, "InitProducerId refused: transactions are not supported yet");
        return failed(ResponseError::InvalidRequest);
    }
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
            return failed(ResponseError::InvalidRequest);
        }
    };
    match ctx.broker.init_producer_id(current) {
        Ok((id, epoch)) => {
            tracing::debug!(
                producer_id = id,
                epoch,
                bumped = current.is_some(),
                "InitProducerId"
            );
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch)
        }
        Err(e) => {
            tracing::error!("InitProducerId failed: {e}");
            failed(crate::errors::kafka_error(&e))
        }
    }
}
