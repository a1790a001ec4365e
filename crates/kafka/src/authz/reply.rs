//! The pieces every authorization arm shares: building and patching replies, and the
//! refusals whose shape several APIs repeat.

use kafka_protocol::messages::*;
use strom_auth::Operation;
use strom_auth::ResourceType::{self, Cluster, Topic};

use super::CLUSTER;
use crate::errors::denied;
use crate::handlers::Reply;
use crate::Context;

pub(super) fn topic_exists(ctx: &Context, name: &str) -> bool {
    match ctx.broker.cluster() {
        Some(c) => c.with_state(|s| s.topics.contains_key(name)),
        None => ctx.broker.topic(name).is_some(),
    }
}

pub(super) fn now(resp: impl Into<ResponseKind>) -> Reply {
    Reply::Now(Box::new(resp.into()))
}

/// Applies `f` to the response once it exists.
pub(super) fn map(
    reply: Reply,
    f: impl FnOnce(ResponseKind) -> ResponseKind + Send + 'static,
) -> Reply {
    match reply {
        Reply::Now(r) => Reply::Now(Box::new(f(*r))),
        Reply::Later(fut) => Reply::Later(Box::pin(async move { fut.await.map(f) })),
        Reply::Nothing => Reply::Nothing,
    }
}

/// Adds the refused resources `no` to the response (nothing to do when none were refused).
pub(super) fn patch<T: Send + 'static>(
    reply: Reply,
    no: Vec<T>,
    f: impl FnOnce(&mut ResponseKind, &[T]) + Send + 'static,
) -> Reply {
    if no.is_empty() {
        return reply;
    }
    map(reply, move |mut resp| {
        f(&mut resp, &no);
        resp
    })
}

pub(super) fn produce_denied(
    topics: &[produce_request::TopicProduceData],
    code: i16,
) -> ProduceResponse {
    ProduceResponse::default().with_responses(
        topics
            .iter()
            .map(|t| {
                produce_response::TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_partition_responses(
                        t.partition_data
                            .iter()
                            .map(|p| {
                                produce_response::PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// Config resources: 2 is a topic, 4 a broker and 8 a broker logger (both the cluster's).
pub(super) fn config_allowed(
    can: &impl Fn(Operation, ResourceType, &str) -> bool,
    op: Operation,
    resource_type: i8,
    name: &str,
) -> bool {
    match resource_type {
        2 => can(op, Topic, name),
        _ => can(op, Cluster, CLUSTER),
    }
}

pub(super) fn config_denied(resource_type: i8) -> i16 {
    match resource_type {
        2 => denied::TOPIC,
        _ => denied::CLUSTER,
    }
}
