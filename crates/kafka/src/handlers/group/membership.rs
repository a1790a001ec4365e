//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use strom_broker::group::{
    GroupError, JoinRequest, JoinResponse, MemberIdentity, Protocol, SyncRequest, SyncResponse,
};

use super::{code, kafka_error, result_code};
use crate::handlers::{str_bytes, Client, Reply};
use crate::Context;

pub fn join(ctx: &Arc<Context>, req: JoinGroupRequest, version: i16, client: &Client) -> Reply {
    let group_id = req.group_id.0.to_string();
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: client.id.clone(),
        client_host: client.host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    let pending = ctx.broker.groups().join(&ctx.broker, &group_id, join);
    Reply::Later(Box::pin(async move {
        let resp = pending
            .resolve(|| JoinResponse::failed(group_removed(), member_id))
            .await;
        Some(join_response(resp, version).into())
    }))
}

/// Not every field exists in every version, and the encoder refuses a set field the version
/// cannot carry.
fn join_response(r: JoinResponse, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.with_group_instance_id(m.instance_id.map(str_bytes))
            } else {
                member
            }
        })
        .collect();
    let protocol_name = match r.protocol_name {
        Some(p) => Some(str_bytes(p)),
        // Nullable only from v7.
        None if version < 7 => Some(str_bytes("")),
        None => None,
    };
    let resp = JoinGroupResponse::default()
        .with_error_code(code(r.error.as_ref()))
        .with_generation_id(r.generation)
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(r.leader))
        .with_member_id(str_bytes(r.member_id))
        .with_members(members);
    let resp = if version >= 7 {
        resp.with_protocol_type(r.protocol_type.map(str_bytes))
    } else {
        resp
    };
    if version >= 9 {
        resp.with_skip_assignment(r.skip_assignment)
    } else {
        resp
    }
}

/// The group dropped the waiter without answering (it was deleted): look it up again.
fn group_removed() -> GroupError {
    GroupError::CoordinatorNotAvailable("the group was removed".into())
}

pub fn sync(ctx: &Arc<Context>, req: SyncGroupRequest, version: i16) -> Reply {
    let group_id = req.group_id.0.to_string();
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let pending = ctx.broker.groups().sync(&ctx.broker, &group_id, sync);
    Reply::Later(Box::pin(async move {
        let r = pending
            .resolve(|| SyncResponse::failed(group_removed()))
            .await;
        let resp = SyncGroupResponse::default()
            .with_error_code(code(r.error.as_ref()))
            .with_assignment(r.assignment);
        let resp = if version >= 5 {
            resp.with_protocol_type(r.protocol_type.map(str_bytes))
                .with_protocol_name(r.protocol_name.map(str_bytes))
        } else {
            resp
        };
        Some(resp.into())
    }))
}

pub fn heartbeat(ctx: &Arc<Context>, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = req.group_instance_id.as_ref().map(|i| i.as_str());
    let r = ctx.broker.groups().heartbeat(
        &ctx.broker,
        &req.group_id.0,
        &req.member_id,
        instance,
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result_code(&r))
}

pub fn leave(ctx: &Arc<Context>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<MemberIdentity> = if version >= 3 {
        req.members
            .iter()
            .map(|m| MemberIdentity {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![MemberIdentity {
            member_id: req.member_id.to_string(),
            instance_id: None,
        }]
    };
    match ctx
        .broker
        .groups()
        .leave(&ctx.broker, &req.group_id.0, &members)
    {
        Err(e) => LeaveGroupResponse::default().with_error_code(kafka_error(&e).code()),
        // Before v3 the one member's error is the response's error.
        Ok(results) if version < 3 => {
            LeaveGroupResponse::default().with_error_code(results.first().map_or(0, result_code))
        }
        Ok(results) => {
            let members = members
                .into_iter()
                .zip(&results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.instance_id.map(str_bytes))
                        .with_error_code(result_code(r))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
    }
}
