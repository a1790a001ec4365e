//! Conformance cases of the group coordinator's APIs for `every_version`: one valid exchange
//! per version, each in its own group so versions cannot disturb each other. The broker runs
//! with `--group-initial-rebalance-delay-ms 0`, so a lone member's join completes at once.

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::common::wire::Conn;
use super::name;

pub const ORDER: [ApiKey; 12] = [
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::LeaveGroup,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::OffsetDelete,
    ApiKey::DeleteGroups,
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn join_request(group: &str, member: &str, v: i16) -> JoinGroupRequest {
    let req = JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(30_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x04conf"))]);
    if v >= 1 {
        req.with_rebalance_timeout_ms(30_000)
    } else {
        req
    }
}

fn join(conn: &mut Conn, group: &str, v: i16) -> JoinGroupResponse {
    let mut member = String::new();
    loop {
        match conn.request(ApiKey::JoinGroup, v, &join_request(group, &member, v)) {
            // KIP-394: the first join of v4+ only hands out a member id.
            ResponseKind::JoinGroup(r) if r.error_code == 79 && member.is_empty() && v >= 4 => {
                member = r.member_id.to_string();
            }
            ResponseKind::JoinGroup(r) => return r,
            r => panic!("{r:?}"),
        }
    }
}

/// A member of a Stable one-member group: (member id, generation).
fn stable_member(conn: &mut Conn, group: &str) -> (String, i32) {
    let j = join(conn, group, 5);
    assert_eq!(j.error_code, 0, "{j:?}");
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(j.generation_id)
        .with_member_id(j.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(j.member_id.clone())
            .with_assignment(Bytes::from_static(b"assigned"))]);
    match conn.request(ApiKey::SyncGroup, 3, &req) {
        ResponseKind::SyncGroup(r) => assert_eq!(r.error_code, 0),
        r => panic!("{r:?}"),
    }
    (j.member_id.to_string(), j.generation_id)
}

fn simple_commit(conn: &mut Conn, group: &str, offset: i64) {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("conf"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    match conn.request(ApiKey::OffsetCommit, 2, &req) {
        ResponseKind::OffsetCommit(r) => assert_eq!(r.topics[0].partitions[0].error_code, 0),
        r => panic!("{r:?}"),
    }
}

/// One valid exchange of a group API at version `v`; returns the error codes of the answer.
pub fn exchange(conn: &mut Conn, api: ApiKey, v: i16) -> Vec<i16> {
    match api {
        ApiKey::FindCoordinator => {
            let req = if v >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")])
            } else {
                FindCoordinatorRequest::default().with_key(s("a"))
            };
            match conn.request(api, v, &req) {
                ResponseKind::FindCoordinator(r) if v >= 4 => {
                    assert_eq!(r.coordinators.len(), 2);
                    assert!(r
                        .coordinators
                        .iter()
                        .all(|c| c.port > 0 && c.node_id.0 == 0));
                    r.coordinators.iter().map(|c| c.error_code).collect()
                }
                ResponseKind::FindCoordinator(r) => {
                    assert!(r.port > 0, "{r:?}");
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::JoinGroup => {
            let r = join(conn, &format!("join-{v}"), v);
            assert_eq!(
                (r.generation_id, &r.leader),
                (1, &r.member_id),
                "v{v}: {r:?}"
            );
            assert_eq!(r.members.len(), 1);
            vec![r.error_code]
        }
        ApiKey::SyncGroup => {
            let group = format!("sync-{v}");
            let j = join(conn, &group, 5);
            let mut req = SyncGroupRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id(j.generation_id)
                .with_member_id(j.member_id.clone())
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(j.member_id.clone())
                    .with_assignment(Bytes::from_static(b"mine"))]);
            if v >= 5 {
                req = req
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            match conn.request(api, v, &req) {
                ResponseKind::SyncGroup(r) => {
                    assert_eq!(&r.assignment[..], b"mine", "v{v}");
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::Heartbeat => {
            let group = format!("hb-{v}");
            let (member, generation) = stable_member(conn, &group);
            let req = HeartbeatRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id(generation)
                .with_member_id(s(&member));
            let unknown = req.clone().with_member_id(s("nobody"));
            match conn.request(api, v, &unknown) {
                ResponseKind::Heartbeat(r) => assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID"),
                r => panic!("{r:?}"),
            }
            match conn.request(api, v, &req) {
                ResponseKind::Heartbeat(r) => vec![r.error_code],
                r => panic!("{r:?}"),
            }
        }
        ApiKey::OffsetCommit => {
            let group = format!("commit-{v}");
            let (member, generation) = stable_member(conn, &group);
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)
                .with_committed_metadata(Some(s("meta")));
            let partition = if v >= 6 {
                partition.with_committed_leader_epoch(0)
            } else {
                partition
            };
            let req = OffsetCommitRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(&member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name("conf"))
                    .with_partitions(vec![partition])]);
            match conn.request(api, v, &req) {
                ResponseKind::OffsetCommit(r) => r.topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.error_code)
                    .collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::OffsetFetch => {
            let group = format!("fetch-{v}");
            simple_commit(conn, &group, 42);
            let req = if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(gid(&group))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(name("conf"))
                        .with_partition_indexes(vec![0, 99])]))])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(gid(&group))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(name("conf"))
                        .with_partition_indexes(vec![0, 99])]))
            };
            match conn.request(api, v, &req) {
                ResponseKind::OffsetFetch(r) if v >= 8 => {
                    let parts = &r.groups[0].topics[0].partitions;
                    assert_eq!(
                        (parts[0].committed_offset, parts[1].committed_offset),
                        (42, -1)
                    );
                    let mut codes = vec![r.groups[0].error_code];
                    codes.extend(parts.iter().map(|p| p.error_code));
                    codes
                }
                ResponseKind::OffsetFetch(r) => {
                    let parts = &r.topics[0].partitions;
                    assert_eq!(
                        (parts[0].committed_offset, parts[1].committed_offset),
                        (42, -1)
                    );
                    let mut codes = vec![r.error_code];
                    codes.extend(parts.iter().map(|p| p.error_code));
                    codes
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name("conf"))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0)]),
            ]);
            match conn.request(api, v, &req) {
                ResponseKind::OffsetForLeaderEpoch(r) => {
                    let p = &r.topics[0].partitions[0];
                    assert!(p.end_offset > 0 && p.leader_epoch == 0, "v{v}: {p:?}");
                    vec![p.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::LeaveGroup => {
            let group = format!("leave-{v}");
            let j = join(conn, &group, 5);
            let req = if v >= 3 {
                LeaveGroupRequest::default()
                    .with_group_id(gid(&group))
                    .with_members(vec![MemberIdentity::default().with_member_id(j.member_id)])
            } else {
                LeaveGroupRequest::default()
                    .with_group_id(gid(&group))
                    .with_member_id(j.member_id)
            };
            match conn.request(api, v, &req) {
                ResponseKind::LeaveGroup(r) => {
                    let mut codes = vec![r.error_code];
                    codes.extend(r.members.iter().map(|m| m.error_code));
                    codes
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::ListGroups => {
            let req = if v >= 4 {
                ListGroupsRequest::default().with_states_filter(vec![s("Stable")])
            } else {
                ListGroupsRequest::default()
            };
            match conn.request(api, v, &req) {
                ResponseKind::ListGroups(r) => {
                    assert!(
                        r.groups.iter().any(|g| g.group_id.0.as_str() == "hb-0"),
                        "v{v}: {r:?}"
                    );
                    if v >= 4 {
                        assert!(r.groups.iter().all(|g| g.group_state.as_str() == "Stable"));
                    }
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeGroups => {
            let req = DescribeGroupsRequest::default().with_groups(vec![gid("hb-0"), gid("none")]);
            match conn.request(api, v, &req) {
                ResponseKind::DescribeGroups(r) => {
                    let (g, none) = (&r.groups[0], &r.groups[1]);
                    assert_eq!(g.group_state.as_str(), "Stable");
                    assert_eq!(g.protocol_data.as_str(), "range");
                    assert_eq!(g.members.len(), 1);
                    assert_eq!(&g.members[0].member_assignment[..], b"assigned");
                    assert_eq!(none.group_state.as_str(), "Dead");
                    r.groups.iter().map(|g| g.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::OffsetDelete => {
            let req = OffsetDeleteRequest::default()
                .with_group_id(gid("fetch-1"))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(name("conf"))
                    .with_partitions(vec![OffsetDeleteRequestPartition::default()])]);
            match conn.request(api, v, &req) {
                ResponseKind::OffsetDelete(r) => {
                    let mut codes = vec![r.error_code];
                    codes.extend(r.topics[0].partitions.iter().map(|p| p.error_code));
                    codes
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DeleteGroups => {
            let group = format!("del-{v}");
            simple_commit(conn, &group, 7);
            let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]);
            match conn.request(api, v, &req) {
                ResponseKind::DeleteGroups(r) => r.results.iter().map(|g| g.error_code).collect(),
                r => panic!("{r:?}"),
            }
        }
        other => panic!("not a group api: {other:?}"),
    }
}
