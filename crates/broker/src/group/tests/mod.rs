//! Unit tests of the group state machine, driven with an explicit clock and no runtime.

mod errors;
mod persisted;
mod static_members;
mod store;
mod transitions;

use bytes::Bytes;

use super::state::{Group, GroupConfig, StoreRequest};
use super::types::{
    GroupError, GroupState, JoinRequest, JoinResponse, Pending, Protocol, SyncRequest, SyncResponse,
};

pub(super) const SESSION: u64 = 10_000;
pub(super) const REBALANCE: u64 = 5_000;
pub(super) const DELAY: u64 = 100;

pub(super) fn group() -> Group {
    Group::new(
        "g",
        GroupConfig {
            initial_rebalance_delay_ms: DELAY,
            ..GroupConfig::default()
        },
    )
}

pub(super) fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: n.to_string(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

pub(super) fn req(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION as i32,
        rebalance_timeout_ms: REBALANCE as i32,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        require_known_member_id: true,
    }
}

/// The answer, which must be there now.
pub(super) fn now<T: Clone + std::fmt::Debug>(p: &mut Pending<T>) -> T {
    p.try_now().expect("an answer by now")
}

pub(super) fn ok_join(p: &mut Pending<JoinResponse>) -> JoinResponse {
    let r = now(p);
    assert_eq!(r.error, None, "{r:?}");
    r
}

/// A first join the KIP-394 way: MEMBER_ID_REQUIRED, then the real join, which waits.
pub(super) fn join_new(g: &mut Group, at: u64) -> (String, Pending<JoinResponse>) {
    let mut first = g.join(req(""), at);
    let r = now(&mut first);
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    let second = g.join(req(&r.member_id), at);
    (r.member_id, second)
}

/// A SyncGroup; a leader's assignment is then reported stored, as the coordinator does once
/// its record is durable (`persisted.rs` tests the wait itself).
pub(super) fn sync(
    g: &mut Group,
    member: &str,
    assignments: &[(&str, &str)],
    at: u64,
) -> Pending<SyncResponse> {
    let pending = sync_unstored(g, member, assignments, at);
    report_stored(g, at);
    pending
}

/// Reports a record the group asked to store and waits for as durable, as the coordinator does.
pub(super) fn report_stored(g: &mut Group, at: u64) {
    match g.take_store() {
        Some(StoreRequest::Assignment(stored)) => {
            g.assignment_stored(stored.generation, Ok(()), at)
        }
        Some(StoreRequest::Replacement(stored)) => {
            g.replacement_stored(stored.generation, Ok(()), at)
        }
        _ => {}
    }
}

pub(super) fn sync_unstored(
    g: &mut Group,
    member: &str,
    assignments: &[(&str, &str)],
    at: u64,
) -> Pending<SyncResponse> {
    g.sync(
        SyncRequest {
            member_id: member.to_string(),
            instance_id: None,
            generation: g.generation(),
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        },
        at,
    )
}

/// A Stable group of two dynamic members formed at time 0; returns (leader, follower, time).
pub(super) fn stable_pair(g: &mut Group) -> (String, String, u64) {
    let (a, mut ja) = join_new(g, 0);
    let (b, mut jb) = join_new(g, 0);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // The initial delay is extended once because b arrived during it, then completes.
    g.tick(DELAY);
    assert!(ja.try_now().is_none());
    g.tick(2 * DELAY);
    let (ra, rb) = (ok_join(&mut ja), ok_join(&mut jb));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(ra.leader, a);
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty());
    let t = 2 * DELAY;
    let mut sb = sync(g, &b, &[], t);
    assert!(sb.try_now().is_none(), "followers wait for the leader");
    let mut sa = sync(g, &a, &[(&a, "for-a"), (&b, "for-b")], t);
    assert_eq!(now(&mut sa).assignment, Bytes::from("for-a"));
    assert_eq!(now(&mut sb).assignment, Bytes::from("for-b"));
    assert_eq!(g.state(), GroupState::Stable);
    (a, b, t)
}
