//! The membership record: members hear of an assignment only once it is stored, a failed store
//! sends them back to rejoin, and a group restored from its record serves the same generation.

use super::*;
use crate::group::metadata_record::{self, StoredGroup};

/// A group of two in CompletingRebalance (generation 1): (leader, follower, time).
fn completing_pair(g: &mut Group) -> (String, String, u64) {
    let (a, mut ja) = join_new(g, 0);
    let (b, mut jb) = join_new(g, 0);
    g.tick(DELAY);
    g.tick(2 * DELAY);
    let (ra, _) = (ok_join(&mut ja), ok_join(&mut jb));
    assert_eq!(ra.leader, a);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    (a, b, 2 * DELAY)
}

fn assignment_request(g: &mut Group) -> StoredGroup {
    match g.take_store() {
        Some(StoreRequest::Assignment(s)) => s,
        other => panic!("expected an assignment to store, got {other:?}"),
    }
}

#[test]
fn members_hear_of_the_assignment_only_once_it_is_stored() {
    let mut g = group();
    let (a, b, t) = completing_pair(&mut g);
    let mut sb = sync_unstored(&mut g, &b, &[], t);
    let mut sa = sync_unstored(&mut g, &a, &[(&a, "for-a"), (&b, "for-b")], t);
    let stored = assignment_request(&mut g);
    assert_eq!(stored.generation, 1);
    assert_eq!(stored.leader.as_deref(), Some(a.as_str()));
    let assignments: Vec<(&str, &[u8])> = stored
        .members
        .iter()
        .map(|m| (m.id.as_str(), &m.assignment[..]))
        .collect();
    assert_eq!(
        assignments,
        [(a.as_str(), &b"for-a"[..]), (b.as_str(), &b"for-b"[..])]
    );
    assert_eq!(stored.members[0].protocols, protocols(&["range"]));
    // Not yet: the record is not durable.
    assert!(sa.try_now().is_none() && sb.try_now().is_none());
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    // The leader sending its SyncGroup again does not store a second time.
    let _again = sync_unstored(&mut g, &a, &[(&a, "other")], t);
    assert!(g.take_store().is_none());
    // An answer for another generation changes nothing.
    g.assignment_stored(7, Ok(()), t);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    g.assignment_stored(1, Ok(()), t);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(now(&mut sb).assignment, Bytes::from("for-b"));
}

#[test]
fn a_failed_store_sends_the_members_back_to_rejoin() {
    let mut g = group();
    let (a, b, t) = completing_pair(&mut g);
    let mut sb = sync_unstored(&mut g, &b, &[], t);
    let mut sa = sync_unstored(&mut g, &a, &[(&a, "for-a"), (&b, "for-b")], t);
    let _ = assignment_request(&mut g);
    g.assignment_stored(1, Err(GroupError::NotCoordinator), t);
    assert_eq!(now(&mut sa).error, Some(GroupError::NotCoordinator));
    assert_eq!(now(&mut sb).error, Some(GroupError::NotCoordinator));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&a, None, 1, t),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn a_rebalance_while_storing_drops_the_stored_answer() {
    let mut g = group();
    let (a, b, t) = completing_pair(&mut g);
    let _sa = sync_unstored(&mut g, &a, &[(&a, "for-a"), (&b, "for-b")], t);
    let _ = assignment_request(&mut g);
    // A newcomer starts the next rebalance before the record is durable.
    let _c = join_new(&mut g, t);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.assignment_stored(1, Ok(()), t);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_restored_group_serves_its_generation_without_a_rebalance() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    let bytes = metadata_record::encode_value(&g.to_stored(None));
    let stored = metadata_record::decode_value(&bytes).expect("decodes");
    assert_eq!(stored, g.to_stored(None));
    let later = t + 60_000;
    let mut r = Group::restore("g", g.config, stored, later);
    assert_eq!(r.state(), GroupState::Stable);
    assert_eq!((r.generation(), r.leader()), (1, Some(a.as_str())));
    // Sessions run from the restore, not from when the old coordinator last heard of them.
    assert_eq!(r.heartbeat(&a, None, 1, later + SESSION - 1), Ok(()));
    assert_eq!(r.heartbeat(&b, None, 1, later + SESSION - 1), Ok(()));
    assert_eq!(
        r.heartbeat(&a, None, 0, later),
        Err(GroupError::IllegalGeneration)
    );
    let mut s = sync(&mut r, &b, &[], later + 1);
    assert_eq!(now(&mut s).assignment, Bytes::from("for-b"));
    assert!(r.check_commit(&b, None, 1, later + 1).is_ok());
    // Every protocol was kept: rejoining unchanged is no change, so no rebalance.
    let mut j = r.join(req(&b), later + 1);
    assert_eq!(ok_join(&mut j).generation, 1);
    assert_eq!(r.state(), GroupState::Stable);
    // A member that is not heard from again expires as usual.
    r.tick(later + 2 * SESSION);
    assert_eq!(r.state(), GroupState::Empty);
}

#[test]
fn the_last_member_leaving_stores_an_empty_group() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    let leave = |id: &str| crate::group::MemberIdentity {
        member_id: id.to_string(),
        instance_id: None,
    };
    g.leave(&[leave(&a), leave(&b)], t).expect("leave");
    assert_eq!(g.state(), GroupState::Empty);
    let stored = match g.take_store() {
        Some(StoreRequest::Empty(s)) => s,
        other => panic!("expected an empty group to store, got {other:?}"),
    };
    assert_eq!((stored.generation, stored.members.len()), (2, 0));
    let r = Group::restore("g", g.config, stored, t);
    assert!(r.is_idle());
    assert_eq!(r.generation(), 2);
}

#[test]
fn damaged_values_are_refused() {
    let mut g = group();
    stable_pair(&mut g);
    let bytes = metadata_record::encode_value(&g.to_stored(None));
    for cut in 0..bytes.len() {
        assert!(
            metadata_record::decode_value(&bytes[..cut]).is_none(),
            "{cut}"
        );
    }
    let mut newer = bytes.to_vec();
    newer[0] = 2;
    assert!(metadata_record::decode_value(&newer).is_none());
    assert_eq!(
        metadata_record::decode_key(&metadata_record::encode_key("g")).as_deref(),
        Some("g")
    );
    assert!(metadata_record::decode_key(&crate::group::offsets::encode_key("g", "t", 0)).is_none());
}

#[test]
fn a_rebalance_drops_an_unwritten_assignment_record() {
    let mut g = group();
    let (a, b, t) = completing_pair(&mut g);
    let _sa = sync_unstored(&mut g, &a, &[(&a, "for-a"), (&b, "for-b")], t);
    // b leaves in the same moment, before the coordinator took the record.
    let leave = crate::group::MemberIdentity {
        member_id: b.clone(),
        instance_id: None,
    };
    g.leave(&[leave], t).expect("leave");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(g.take_store().is_none());
}
