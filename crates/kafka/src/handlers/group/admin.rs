//! ListGroups, DescribeGroups, DeleteGroups.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};
use strom_broker::group::GroupState;

use super::result_code;
use crate::handlers::{str_bytes, Reply};
use crate::Context;

/// KIP-848 group types; every group here speaks the classic protocol.
const GROUP_TYPE: &str = "classic";

pub fn list(ctx: &Arc<Context>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    // Unknown state names match nothing, as in Kafka.
    let states: Vec<Option<GroupState>> = req
        .states_filter
        .iter()
        .map(|s| GroupState::parse(s))
        .collect();
    let type_ok = req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(GROUP_TYPE));
    let groups = ctx
        .broker
        .groups()
        .list()
        .into_iter()
        .filter(|g| type_ok && (states.is_empty() || states.contains(&Some(g.state))))
        .map(|g| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            let listed = if version >= 4 {
                listed.with_group_state(str_bytes(g.state.name()))
            } else {
                listed
            };
            if version >= 5 {
                listed.with_group_type(str_bytes(GROUP_TYPE))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe(
    ctx: &Arc<Context>,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if let Err(e) = ctx.broker.groups().check_owner(&id.0) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(super::kafka_error(&e).code());
            }
            let d = ctx.broker.groups().describe(&id.0);
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    let member = DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if version >= 4 {
                        member.with_group_instance_id(m.instance_id.map(str_bytes))
                    } else {
                        member
                    }
                })
                .collect();
            let described = DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(d.state.name()))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol))
                .with_members(members);
            if version >= 3 && req.include_authorized_operations {
                described.with_authorized_operations(crate::handlers::authorized::GROUP)
            } else {
                described
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete(ctx: &Arc<Context>, req: DeleteGroupsRequest) -> Reply {
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    let durable = ctx.broker.groups().delete_groups(&ctx.broker, &ids);
    Reply::Later(Box::pin(async move {
        let results = durable.await;
        let results = req
            .groups_names
            .into_iter()
            .zip(&results)
            .map(|(id, r)| {
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(result_code(r))
            })
            .collect();
        Some(DeleteGroupsResponse::default().with_results(results).into())
    }))
}
