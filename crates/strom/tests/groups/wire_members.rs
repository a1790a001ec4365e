//! Group members spoken on the raw wire, so a test can make one vanish at an exact step.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::common::wire::Conn;

const JOIN_V: i16 = 5;
const SYNC_V: i16 = 3;
const SESSION_MS: i32 = 6000;
const REBALANCE_MS: i32 = 1500;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

fn sync_request(group: &str, member: &str, generation: i32, assign: &[&str]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assign
                .iter()
                .map(|m| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from(format!("for {m}")))
                })
                .collect(),
        )
}

/// The answer to a request sent earlier with `Conn::send`.
fn read(conn: &mut Conn, api: ApiKey, v: i16) -> ResponseKind {
    let mut frame = conn.read_frame().expect("a response");
    ResponseHeader::decode(&mut frame, api.response_header_version(v)).unwrap();
    ResponseKind::decode(api, &mut frame, v).unwrap()
}

fn join_response(r: ResponseKind) -> JoinGroupResponse {
    match r {
        ResponseKind::JoinGroup(r) => r,
        r => panic!("{r:?}"),
    }
}

/// MEMBER_ID_REQUIRED round trip: the member id to join with.
fn member_id(conn: &mut Conn, group: &str) -> String {
    let r = join_response(conn.request(ApiKey::JoinGroup, JOIN_V, &join_request(group, "")));
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    r.member_id.to_string()
}

/// Two members that have just formed generation 1 of `group`; on return `a` is the leader.
fn form_pair(group: &str, a: &mut Conn, b: &mut Conn) -> (String, String) {
    let (ida, idb) = (member_id(a, group), member_id(b, group));
    a.send(ApiKey::JoinGroup, JOIN_V, &join_request(group, &ida));
    b.send(ApiKey::JoinGroup, JOIN_V, &join_request(group, &idb));
    let ra = join_response(read(a, ApiKey::JoinGroup, JOIN_V));
    let rb = join_response(read(b, ApiKey::JoinGroup, JOIN_V));
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.leader, rb.leader);
    // The first member the broker saw leads; the two joins raced, so name the leader a.
    if ra.leader.as_str() == ida {
        assert_eq!((ra.members.len(), rb.members.len()), (2, 0));
        (ida, idb)
    } else {
        assert_eq!((ra.members.len(), rb.members.len()), (0, 2));
        std::mem::swap(a, b);
        (idb, ida)
    }
}

pub fn heartbeat(conn: &mut Conn, group: &str, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    match conn.request(ApiKey::Heartbeat, 4, &req) {
        ResponseKind::Heartbeat(r) => r.error_code,
        r => panic!("{r:?}"),
    }
}

/// Two members that have just made generation 1 of `group` Stable, each with its assignment;
/// on return `a` is the leader.
pub fn form_stable_pair(group: &str, a: &mut Conn, b: &mut Conn) -> (String, String) {
    let (ida, idb) = form_pair(group, a, b);
    b.send(
        ApiKey::SyncGroup,
        SYNC_V,
        &sync_request(group, &idb, 1, &[]),
    );
    match a.request(
        ApiKey::SyncGroup,
        SYNC_V,
        &sync_request(group, &ida, 1, &[&ida, &idb]),
    ) {
        ResponseKind::SyncGroup(r) => assert_eq!(
            (r.error_code, &r.assignment[..]),
            (0, format!("for {ida}").as_bytes())
        ),
        r => panic!("{r:?}"),
    }
    match read(b, ApiKey::SyncGroup, SYNC_V) {
        ResponseKind::SyncGroup(r) => assert_eq!(
            (r.error_code, &r.assignment[..]),
            (0, format!("for {idb}").as_bytes())
        ),
        r => panic!("{r:?}"),
    }
    (ida, idb)
}

/// A Stable pair; b disconnects; a rejoins. The join phase ends at the rebalance timeout
/// without b (long before b's session would expire), and the group is Stable again.
pub fn follower_vanishes_before_rejoining(addr: &str) {
    let group = "wire-follower";
    let (mut a, mut b) = (Conn::connect(addr), Conn::connect(addr));
    let (ida, _) = form_stable_pair(group, &mut a, &mut b);
    drop(b);

    let started = Instant::now();
    let r = join_response(a.request(ApiKey::JoinGroup, JOIN_V, &join_request(group, &ida)));
    let took = started.elapsed();
    assert_eq!(r.error_code, 0);
    assert_eq!((r.generation_id, r.members.len()), (2, 1), "{r:?}");
    assert!(
        took >= Duration::from_millis(REBALANCE_MS as u64 - 200),
        "completed after {took:?}"
    );
    assert!(
        took < Duration::from_millis(SESSION_MS as u64),
        "waited for the session: {took:?}"
    );
    match a.request(
        ApiKey::SyncGroup,
        SYNC_V,
        &sync_request(group, &ida, 2, &[&ida]),
    ) {
        ResponseKind::SyncGroup(r) => assert_eq!(r.error_code, 0),
        r => panic!("{r:?}"),
    }
    assert_eq!(heartbeat(&mut a, group, &ida, 2), 0);
    let described = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    match a.request(ApiKey::DescribeGroups, 5, &described) {
        ResponseKind::DescribeGroups(r) => {
            assert_eq!(r.groups[0].group_state.as_str(), "Stable");
            assert_eq!(r.groups[0].members.len(), 1);
            assert_eq!(r.groups[0].members[0].client_host.as_str(), "/127.0.0.1");
        }
        r => panic!("{r:?}"),
    }
}

/// The leader disconnects without sending the assignment while b waits in SyncGroup: the
/// leader's session expires, b is told to rejoin, and leads generation 2 alone.
pub fn leader_vanishes_before_assigning(addr: &str) {
    let group = "wire-leader";
    let (mut a, mut b) = (Conn::connect(addr), Conn::connect(addr));
    let (_ida, idb) = form_pair(group, &mut a, &mut b);
    drop(a);
    let started = Instant::now();
    match b.request(
        ApiKey::SyncGroup,
        SYNC_V,
        &sync_request(group, &idb, 1, &[]),
    ) {
        ResponseKind::SyncGroup(r) => assert_eq!(r.error_code, 27, "REBALANCE_IN_PROGRESS"),
        r => panic!("{r:?}"),
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(SESSION_MS as u64 + 2000),
        "took {took:?}"
    );
    let r = join_response(b.request(ApiKey::JoinGroup, JOIN_V, &join_request(group, &idb)));
    assert_eq!(r.error_code, 0, "{r:?} after {took:?}");
    assert_eq!(
        (r.generation_id, r.leader.as_str(), r.members.len()),
        (2, idb.as_str(), 1)
    );
    match b.request(
        ApiKey::SyncGroup,
        SYNC_V,
        &sync_request(group, &idb, 2, &[&idb]),
    ) {
        ResponseKind::SyncGroup(r) => assert_eq!(
            (r.error_code, &r.assignment[..]),
            (0, format!("for {idb}").as_bytes())
        ),
        r => panic!("{r:?}"),
    }
}
