//! FindCoordinator: a single node coordinates every group and transactional id; in a cluster,
//! the leader of the key's partition of `__consumer_offsets` (groups) or `__transaction_state`
//! (transactional ids) does.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::handlers::str_bytes;
use crate::Context;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// (error code, message, node id, host, port) for one key.
fn locate(ctx: &Context, key_type: i8, key: &str) -> (i16, Option<String>, i32, String, i32) {
    match key_type {
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION if ctx.broker.cluster().is_some() => {
            let (topic, partition) = if key_type == KEY_TYPE_GROUP {
                (
                    strom_broker::internal::OFFSETS_TOPIC,
                    strom_broker::group::offsets_partition(key),
                )
            } else {
                (
                    strom_broker::internal::TXN_STATE_TOPIC,
                    strom_txn::TxnCoordinator::partition_of(key),
                )
            };
            match ctx
                .broker
                .cluster()
                .and_then(|c| crate::handlers::cluster::coordinator_for(ctx, c, topic, partition))
            {
                Some((node, host, port)) => (0, None, node, host, port),
                None => (
                    ResponseError::CoordinatorNotAvailable.code(),
                    Some(format!("{topic} has no leader for this key yet")),
                    -1,
                    String::new(),
                    -1,
                ),
            }
        }
        KEY_TYPE_TRANSACTION if key.is_empty() => (
            ResponseError::InvalidRequest.code(),
            Some("empty transactional id".into()),
            -1,
            String::new(),
            -1,
        ),
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => {
            // On first use, so the coordinator's state has somewhere to go.
            if key_type == KEY_TYPE_TRANSACTION {
                if let Err(e) = strom_broker::internal::ensure(
                    &ctx.broker,
                    strom_broker::internal::TXN_STATE_TOPIC,
                ) {
                    return (
                        ResponseError::CoordinatorNotAvailable.code(),
                        Some(e.to_string()),
                        -1,
                        String::new(),
                        -1,
                    );
                }
            }
            (
                0,
                None,
                ctx.broker.node_id(),
                ctx.config.advertised_host.clone(),
                ctx.config.advertised_port,
            )
        }
        other => (
            ResponseError::InvalidRequest.code(),
            Some(format!("unknown coordinator key type {other}")),
            -1,
            String::new(),
            -1,
        ),
    }
}

pub fn handle(
    ctx: &Arc<Context>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (err, msg, node, host, port) = locate(ctx, req.key_type, key.as_str());
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(err)
                    .with_error_message(msg.map(str_bytes))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (err, msg, node, host, port) = locate(ctx, req.key_type, req.key.as_str());
    let resp = FindCoordinatorResponse::default()
        .with_error_code(err)
        .with_node_id(BrokerId(node))
        .with_host(StrBytes::from_string(host))
        .with_port(port);
    if version >= 1 {
        resp.with_error_message(msg.map(str_bytes))
    } else {
        resp
    }
}
