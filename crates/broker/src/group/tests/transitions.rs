//! Every state transition: Empty → PreparingRebalance → CompletingRebalance → Stable and back,
//! expiry, leaving, and Dead.

use super::*;
use crate::group::types::MemberIdentity;

#[test]
fn empty_to_stable_through_both_rebalance_phases() {
    let mut g = group();
    assert_eq!(g.state(), GroupState::Empty);
    let (a, b, _) = stable_pair(&mut g);
    assert_eq!(g.generation(), 1);
    assert_eq!(g.protocol(), Some("range"));
    let d = g.describe();
    assert_eq!(d.state.name(), "Stable");
    assert_eq!(d.protocol, "range");
    let ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    assert_eq!(d.members[1].assignment, Bytes::from("for-b"));
    assert_eq!(d.members[0].metadata, Bytes::from("meta-range"));
}

#[test]
fn initial_delay_zero_completes_at_once() {
    let mut g = Group::new(
        "g",
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
    );
    let (a, mut j) = join_new(&mut g, 0);
    let r = ok_join(&mut j);
    assert_eq!((r.generation, r.leader.as_str()), (1, a.as_str()));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_is_capped_by_the_rebalance_timeout() {
    let mut g = group();
    let (_, mut j) = join_new(&mut g, 0);
    // Members keep arriving every delay: the join still completes by the rebalance timeout.
    let mut t = 0;
    while j.try_now().is_none() {
        t += DELAY;
        assert!(
            t <= REBALANCE,
            "join not completed by the rebalance timeout"
        );
        let _ = join_new(&mut g, t);
        g.tick(t);
    }
    assert!(t >= DELAY);
}

#[test]
fn a_new_member_rebalances_a_stable_group_and_completes_when_all_rejoin() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    let (_c, mut jc) = join_new(&mut g, t);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&a, None, 1, t),
        Err(GroupError::RebalanceInProgress)
    );
    let mut ja = g.join(req(&a), t);
    assert!(ja.try_now().is_none());
    let mut jb = g.join(req(&b), t);
    // Everyone rejoined: no waiting for the rebalance timeout.
    let ra = ok_join(&mut ja);
    assert_eq!(ra.generation, 2);
    assert_eq!(ra.members.len(), 3);
    assert!(ok_join(&mut jb).members.is_empty());
    assert_eq!(ok_join(&mut jc).generation, 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    // The leader rejoins (a leader rejoin always rebalances); b stays silent.
    let mut ja = g.join(req(&a), t);
    g.tick(t + REBALANCE - 1);
    assert!(ja.try_now().is_none());
    g.tick(t + REBALANCE);
    let r = ok_join(&mut ja);
    assert_eq!((r.generation, r.members.len()), (2, 1));
    assert!(!g.has_member(&b));
    assert_eq!(
        g.heartbeat(&b, None, 2, t + REBALANCE),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    let mut at = t;
    while at < t + SESSION {
        at += 3000;
        if at < t + SESSION {
            assert_eq!(g.heartbeat(&a, None, 1, at), Ok(()));
        }
    }
    g.tick(t + SESSION);
    assert!(!g.has_member(&b));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let at = t + SESSION;
    assert_eq!(
        g.heartbeat(&a, None, 1, at),
        Err(GroupError::RebalanceInProgress)
    );
    let mut ja = g.join(req(&a), at);
    let r = ok_join(&mut ja);
    assert_eq!((r.generation, r.members.len()), (2, 1));
    assert_eq!(g.next_deadline(), Some(at + SESSION));
}

#[test]
fn a_member_leaving_mid_sync_sends_the_others_back_to_join() {
    let mut g = group();
    let (a, mut ja) = join_new(&mut g, 0);
    let (b, mut jb) = join_new(&mut g, 0);
    g.tick(DELAY);
    g.tick(2 * DELAY);
    ok_join(&mut ja);
    ok_join(&mut jb);
    let mut sb = sync(&mut g, &b, &[], 200);
    let left = g.leave(
        &[MemberIdentity {
            member_id: a.clone(),
            instance_id: None,
        }],
        200,
    );
    assert_eq!(left, Ok(vec![Ok(())]));
    assert_eq!(now(&mut sb).error, Some(GroupError::RebalanceInProgress));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut jb = g.join(req(&b), 200);
    let r = ok_join(&mut jb);
    assert_eq!(r.leader, b, "the remaining member leads");
}

#[test]
fn everyone_leaving_makes_the_group_empty() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    let out = g.leave(
        &[
            MemberIdentity {
                member_id: a,
                instance_id: None,
            },
            MemberIdentity {
                member_id: b,
                instance_id: None,
            },
            MemberIdentity {
                member_id: "nobody".into(),
                instance_id: None,
            },
        ],
        t,
    );
    assert_eq!(
        out,
        Ok(vec![Ok(()), Ok(()), Err(GroupError::UnknownMemberId)])
    );
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation(), 2);
    assert_eq!(g.protocol(), None);
    assert_eq!(g.protocol_type(), Some("consumer"));
    assert!(g.is_idle());
}

#[test]
fn a_follower_rejoining_unchanged_gets_the_current_generation_without_rebalance() {
    let mut g = group();
    let (a, b, t) = stable_pair(&mut g);
    let mut jb = g.join(req(&b), t);
    let r = ok_join(&mut jb);
    assert_eq!((r.generation, r.leader.as_str()), (1, a.as_str()));
    assert_eq!(g.state(), GroupState::Stable);
    let mut sb = sync(&mut g, &b, &[], t);
    assert_eq!(now(&mut sb).assignment, Bytes::from("for-b"));
}

#[test]
fn protocol_is_chosen_by_votes_among_common_protocols() {
    let mut g = Group::new(
        "g",
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
    );
    let mut joins = Vec::new();
    for names in [
        &["range", "roundrobin", "sticky"][..],
        &["roundrobin", "range"],
        &["roundrobin", "range"],
    ] {
        let mut r = req("");
        r.require_known_member_id = false;
        r.protocols = protocols(names);
        joins.push(g.join(r, 0));
    }
    // The first join completed alone (no delay); the others rebalance the group.
    for (i, j) in joins.iter_mut().enumerate().skip(1) {
        assert!(j.try_now().is_none(), "join {i}");
    }
    let first = ok_join(&mut joins[0]);
    let mut again = g.join(
        JoinRequest {
            protocols: protocols(&["range", "roundrobin", "sticky"]),
            ..req(&first.member_id)
        },
        0,
    );
    let r = ok_join(&mut again);
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(r.members.len(), 3);
}

#[test]
fn pending_member_ids_are_forgotten_after_the_session_timeout() {
    let mut g = group();
    let r = now(&mut g.join(req(""), 0));
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert_eq!(g.next_deadline(), Some(SESSION));
    g.tick(SESSION);
    let mut late = g.join(req(&r.member_id), SESSION);
    assert_eq!(now(&mut late).error, Some(GroupError::UnknownMemberId));
    assert!(g.is_idle());
}

#[test]
fn dead_groups_fail_waiters_and_refuse_everything() {
    let mut g = group();
    let (a, mut ja) = join_new(&mut g, 0);
    g.mark_dead();
    assert!(matches!(
        now(&mut ja).error,
        Some(GroupError::CoordinatorNotAvailable(_))
    ));
    assert_eq!(g.state(), GroupState::Dead);
    assert!(matches!(
        now(&mut g.join(req(""), 1)).error,
        Some(GroupError::CoordinatorNotAvailable(_))
    ));
    assert!(matches!(
        g.heartbeat(&a, None, 0, 1),
        Err(GroupError::CoordinatorNotAvailable(_))
    ));
    assert!(matches!(
        g.check_commit("", None, -1, 1),
        Err(GroupError::CoordinatorNotAvailable(_))
    ));
}

#[test]
fn a_member_answered_after_waiting_gets_a_full_session() {
    let mut g = group();
    let (a, mut ja) = join_new(&mut g, 0);
    let (b, mut jb) = join_new(&mut g, 0);
    g.tick(DELAY);
    g.tick(2 * DELAY);
    ok_join(&mut ja);
    ok_join(&mut jb);
    // The follower waits for an assignment the leader never sends; the leader's session ends.
    let t = 2 * DELAY;
    let mut sb = sync(&mut g, &b, &[], t);
    g.tick(t + SESSION);
    assert!(!g.has_member(&a));
    assert_eq!(now(&mut sb).error, Some(GroupError::RebalanceInProgress));
    // The follower was waiting on the group until now, so its session starts now.
    g.tick(t + SESSION + 1);
    assert!(g.has_member(&b));
    let mut jb = g.join(req(&b), t + SESSION + 10);
    assert_eq!(ok_join(&mut jb).leader, b);
}
