//! Kafka's authorized-operation bit sets (Metadata v8+, DescribeCluster, DescribeGroups v3+)
//! for the caller: the handlers answer every operation a resource type supports, and with the
//! authorizer on only those the caller's ACLs allow (implications included) are kept.

use kafka_protocol::messages::{RequestKind, ResponseKind};
use strom_auth::{Operation, ResourceType};

use super::CLUSTER;
use crate::handlers::Client;
use crate::Context;

/// Kafka's value for "not asked".
const NOT_ASKED: i32 = i32::MIN;

/// Whether `request` asks for authorized operations (so its answer has sets to narrow).
pub(super) fn asked(request: &RequestKind) -> bool {
    match request {
        RequestKind::Metadata(r) => {
            r.include_cluster_authorized_operations || r.include_topic_authorized_operations
        }
        RequestKind::DescribeCluster(r) => r.include_cluster_authorized_operations,
        RequestKind::DescribeGroups(r) => r.include_authorized_operations,
        _ => false,
    }
}

/// Narrows every asked-for set in `response` to what `client` may do.
pub(super) fn narrow(ctx: &Context, client: &Client, response: &mut ResponseKind) {
    let allowed = |set: &mut i32, rt: ResourceType, name: &str| {
        if *set != NOT_ASKED {
            *set = allowed_set(*set, |op| ctx.allowed(client, op, rt, name));
        }
    };
    match response {
        ResponseKind::Metadata(m) => {
            allowed(
                &mut m.cluster_authorized_operations,
                ResourceType::Cluster,
                CLUSTER,
            );
            for t in &mut m.topics {
                if let Some(name) = &t.name {
                    allowed(
                        &mut t.topic_authorized_operations,
                        ResourceType::Topic,
                        name,
                    );
                }
            }
        }
        ResponseKind::DescribeCluster(d) => {
            allowed(
                &mut d.cluster_authorized_operations,
                ResourceType::Cluster,
                CLUSTER,
            );
        }
        ResponseKind::DescribeGroups(d) => {
            for g in &mut d.groups {
                allowed(
                    &mut g.authorized_operations,
                    ResourceType::Group,
                    &g.group_id,
                );
            }
        }
        _ => {}
    }
}

/// The operations of `set` (bit n is operation code n) that `allows` grants.
fn allowed_set(set: i32, allows: impl Fn(Operation) -> bool) -> i32 {
    (0..31i8)
        .filter(|code| set & (1 << code) != 0)
        .filter(|&code| Operation::from_code(code).is_some_and(&allows))
        .fold(0, |kept, code| kept | 1 << code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_allowed_operations() {
        let topic = crate::handlers::authorized::TOPIC;
        assert_eq!(allowed_set(topic, |_| true), topic);
        assert_eq!(allowed_set(topic, |_| false), 0);
        let read_describe = allowed_set(topic, |op| {
            matches!(op, Operation::Read | Operation::Describe)
        });
        assert_eq!(read_describe, 1 << 3 | 1 << 8);
        // An operation the resource type does not have is never added.
        assert_eq!(allowed_set(1 << 3, |_| true), 1 << 3);
    }
}
