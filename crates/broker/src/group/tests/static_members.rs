//! Static membership (KIP-345): group.instance.id survives restarts without a rebalance.

use super::*;
use crate::group::metadata_record::StoredGroup;
use crate::group::types::MemberIdentity;

fn static_req(instance: &str, member_id: &str) -> JoinRequest {
    JoinRequest {
        instance_id: Some(instance.to_string()),
        ..req(member_id)
    }
}

fn static_sync(
    g: &mut Group,
    member: &str,
    instance: &str,
    assignments: Vec<(String, Bytes)>,
    at: u64,
) -> Pending<SyncResponse> {
    let pending = g.sync(
        SyncRequest {
            member_id: member.to_string(),
            instance_id: Some(instance.to_string()),
            generation: g.generation(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        },
        at,
    );
    report_stored(g, at);
    pending
}

/// A Stable group of static members i-1 (leader) and i-2; returns their member ids.
fn stable_static(g: &mut Group) -> (String, String) {
    let mut j1 = g.join(static_req("i-1", ""), 0);
    let mut j2 = g.join(static_req("i-2", ""), 0);
    g.tick(DELAY);
    g.tick(2 * DELAY);
    let (r1, r2) = (ok_join(&mut j1), ok_join(&mut j2));
    assert!(
        r1.member_id.starts_with("i-1-"),
        "static ids need no MEMBER_ID_REQUIRED"
    );
    assert_eq!(r1.leader, r1.member_id);
    let assignments = vec![
        (r1.member_id.clone(), Bytes::from("a1")),
        (r2.member_id.clone(), Bytes::from("a2")),
    ];
    let mut s2 = static_sync(g, &r2.member_id, "i-2", vec![], 200);
    let mut s1 = static_sync(g, &r1.member_id, "i-1", assignments, 200);
    assert_eq!(now(&mut s1).assignment, Bytes::from("a1"));
    assert_eq!(now(&mut s2).assignment, Bytes::from("a2"));
    (r1.member_id, r2.member_id)
}

#[test]
fn an_unchanged_static_rejoin_replaces_the_member_without_rebalance() {
    let mut g = group();
    let (_m1, m2) = stable_static(&mut g);
    let mut j = g.join(static_req("i-2", ""), 300);
    assert!(j.try_now().is_none(), "answered once the new id is stored");
    report_stored(&mut g, 300);
    let r = ok_join(&mut j);
    assert_ne!(r.member_id, m2);
    assert!(r.member_id.starts_with("i-2-"));
    assert_eq!(r.generation, 1);
    assert!(r.members.is_empty());
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");
    // The old incarnation is fenced everywhere.
    assert_eq!(
        g.heartbeat(&m2, Some("i-2"), 1, 300),
        Err(GroupError::FencedInstanceId)
    );
    let mut j = g.join(static_req("i-2", &m2), 300);
    assert_eq!(now(&mut j).error, Some(GroupError::FencedInstanceId));
    assert_eq!(
        g.check_commit(&m2, Some("i-2"), 1, 300),
        Err(GroupError::FencedInstanceId)
    );
    // The new one carries on with the old assignment.
    assert_eq!(g.heartbeat(&r.member_id, Some("i-2"), 1, 300), Ok(()));
    let mut s = static_sync(&mut g, &r.member_id, "i-2", vec![], 300);
    assert_eq!(now(&mut s).assignment, Bytes::from("a2"));
}

#[test]
fn a_static_leader_rejoining_unchanged_is_told_to_skip_assignment() {
    let mut g = group();
    let (m1, _m2) = stable_static(&mut g);
    let mut j = g.join(static_req("i-1", ""), 300);
    report_stored(&mut g, 300);
    let r = ok_join(&mut j);
    assert_ne!(r.member_id, m1);
    assert_eq!(
        r.leader, r.member_id,
        "leadership moves to the new incarnation"
    );
    assert!(r.skip_assignment);
    assert_eq!(r.members.len(), 2);
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn a_static_rejoin_with_new_metadata_rebalances() {
    let mut g = group();
    let (m1, _m2) = stable_static(&mut g);
    let mut changed = static_req("i-2", "");
    changed.protocols[0].metadata = Bytes::from("new subscription");
    let mut j = g.join(changed, 300);
    assert!(j.try_now().is_none());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut j1 = g.join(static_req("i-1", &m1), 300);
    let r1 = ok_join(&mut j1);
    assert_eq!(r1.generation, 2);
    let metadata: Vec<&[u8]> = r1.members.iter().map(|m| &m.metadata[..]).collect();
    assert!(metadata.contains(&&b"new subscription"[..]));
    assert_eq!(ok_join(&mut j).generation, 2);
}

#[test]
fn a_static_member_that_does_not_rejoin_keeps_its_place_until_its_session_ends() {
    let mut g = group();
    let (m1, m2) = stable_static(&mut g);
    let mut j1 = g.join(static_req("i-1", &m1), 300);
    g.tick(300 + REBALANCE);
    let r = ok_join(&mut j1);
    assert_eq!(r.members.len(), 2, "i-2 is still a member");
    assert!(g.has_member(&m2));
    // Its session (from its last sync at 200) ends it.
    g.tick(200 + SESSION);
    assert!(!g.has_member(&m2));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_static_member_can_be_removed_by_instance_id() {
    let mut g = group();
    let (_m1, m2) = stable_static(&mut g);
    let out = g.leave(
        &[
            MemberIdentity {
                member_id: String::new(),
                instance_id: Some("i-2".into()),
            },
            MemberIdentity {
                member_id: "stale".into(),
                instance_id: Some("i-1".into()),
            },
        ],
        300,
    );
    assert_eq!(out, Ok(vec![Ok(()), Err(GroupError::FencedInstanceId)]));
    assert!(!g.has_member(&m2));
}

/// The replacement a static member's rejoin asked to store: (record, the member's new id).
fn replacement_request(g: &mut Group, instance: &str) -> (StoredGroup, String) {
    let stored = match g.take_store() {
        Some(StoreRequest::Replacement(s)) => s,
        other => panic!("expected a replacement to store, got {other:?}"),
    };
    let new_id = stored
        .members
        .iter()
        .find(|m| m.instance_id.as_deref() == Some(instance))
        .map(|m| m.id.clone())
        .expect("the instance is in the record");
    (stored, new_id)
}

#[test]
fn a_static_replacement_is_stored_before_it_is_answered() {
    let mut g = group();
    let (old, _) = stable_static(&mut g);
    let mut j = g.join(static_req("i-1", ""), 300);
    let (stored, new_id) = replacement_request(&mut g, "i-1");
    assert!(j.try_now().is_none());
    assert_ne!(new_id, old);
    // A new coordinator restoring this record knows the new incarnation, not the fenced one.
    let mut r = Group::restore("g", g.config, stored.clone(), 400);
    assert_eq!(r.heartbeat(&new_id, Some("i-1"), 1, 400), Ok(()));
    assert_eq!(
        r.heartbeat(&old, Some("i-1"), 1, 400),
        Err(GroupError::FencedInstanceId)
    );
    g.replacement_stored(stored.generation, Ok(()), 300);
    let answer = ok_join(&mut j);
    assert_eq!(
        (answer.member_id.as_str(), answer.generation),
        (new_id.as_str(), 1)
    );
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn a_failed_static_replacement_restores_the_old_member_id() {
    let mut g = group();
    let (old, _) = stable_static(&mut g);
    let mut j = g.join(static_req("i-1", ""), 300);
    let (stored, _) = replacement_request(&mut g, "i-1");
    g.replacement_stored(stored.generation, Err(GroupError::NotCoordinator), 300);
    assert_eq!(now(&mut j).error, Some(GroupError::NotCoordinator));
    // What the last stored record says is what this coordinator says.
    assert_eq!(g.heartbeat(&old, Some("i-1"), 1, 300), Ok(()));
    assert_eq!(g.leader(), Some(old.as_str()));
    assert_eq!(g.state(), GroupState::Stable);
}
