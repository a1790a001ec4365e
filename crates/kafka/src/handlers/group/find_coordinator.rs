//! FindCoordinator: a single node coordinates every group; in a cluster, the leader of the
//! group's `__consumer_offsets` partition does. Transactions do not exist yet: a transaction
//! coordinator lookup gets an error clients treat as fatal, so `init_transactions()` fails at
//! once with the message instead of retrying COORDINATOR_NOT_AVAILABLE until its timeout.

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
        KEY_TYPE_GROUP if ctx.broker.cluster().is_some() => {
            match ctx
                .broker
                .cluster()
                .and_then(|c| crate::handlers::cluster::coordinator_for(c, key))
            {
                Some((node, host, port)) => (0, None, node, host, port),
                None => (
                    ResponseError::CoordinatorNotAvailable.code(),
                    Some("the group's offsets partition has no leader yet".into()),
                    -1,
                    String::new(),
                    -1,
                ),
            }
        }
        KEY_TYPE_GROUP => (
            0,
            None,
            ctx.broker.node_id(),
            ctx.config.advertised_host.clone(),
            ctx.config.advertised_port,
        ),
        // librdkafka and the Java client both fail the transactional producer for good on
        // TRANSACTIONAL_ID_AUTHORIZATION_FAILED; the message says the real reason.
        KEY_TYPE_TRANSACTION => (
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            Some("Strom does not support transactions yet; use an idempotent producer".into()),
            -1,
            String::new(),
            -1,
        ),
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
