//! Kafka's error answers: unknown members, generations, protocols, sizes and limits.

use super::*;

#[test]
fn unknown_members_and_generations() {
    let mut g = group();
    assert_eq!(
        g.heartbeat("nobody", None, 0, 0),
        Err(GroupError::UnknownMemberId)
    );
    let mut j = g.join(req("nobody"), 0);
    assert_eq!(now(&mut j).error, Some(GroupError::UnknownMemberId));
    let (a, _b, t) = stable_pair(&mut g);
    assert_eq!(
        g.heartbeat(&a, None, 7, t),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.heartbeat("nobody", None, 1, t),
        Err(GroupError::UnknownMemberId)
    );
    let mut s = g.sync(
        SyncRequest {
            member_id: a.clone(),
            instance_id: None,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        },
        t,
    );
    assert_eq!(now(&mut s).error, Some(GroupError::IllegalGeneration));
    let mut s = g.sync(
        SyncRequest {
            member_id: a.clone(),
            instance_id: None,
            generation: 1,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("roundrobin".into()),
            assignments: vec![],
        },
        t,
    );
    assert_eq!(
        now(&mut s).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn sync_during_the_join_phase_is_told_to_rejoin() {
    let mut g = group();
    let (a, _b, t) = stable_pair(&mut g);
    let _c = join_new(&mut g, t);
    let mut s = sync(&mut g, &a, &[], t);
    assert_eq!(now(&mut s).error, Some(GroupError::RebalanceInProgress));
}

#[test]
fn session_timeouts_outside_the_range_are_refused() {
    let mut g = group();
    for bad in [0, 5999, 1_800_001] {
        let mut j = g.join(
            JoinRequest {
                session_timeout_ms: bad,
                ..req("")
            },
            0,
        );
        assert_eq!(
            now(&mut j).error,
            Some(GroupError::InvalidSessionTimeout(bad))
        );
    }
    assert!(g.is_idle());
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut g = group();
    let _ = join_new(&mut g, 0);
    let mut other_type = g.join(
        JoinRequest {
            protocol_type: "connect".into(),
            ..req("")
        },
        0,
    );
    assert_eq!(
        now(&mut other_type).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut no_common = g.join(
        JoinRequest {
            protocols: protocols(&["roundrobin"]),
            ..req("")
        },
        0,
    );
    assert_eq!(
        now(&mut no_common).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut none = g.join(
        JoinRequest {
            protocols: vec![],
            ..req("")
        },
        0,
    );
    assert_eq!(
        now(&mut none).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut empty_type = Group::new("h", GroupConfig::default());
    let mut j = empty_type.join(
        JoinRequest {
            protocol_type: String::new(),
            ..req("")
        },
        0,
    );
    assert_eq!(
        now(&mut j).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn oversized_metadata_and_assignments_are_refused() {
    let mut g = group();
    let mut big = req("");
    big.protocols[0].metadata = Bytes::from(vec![0u8; (1 << 20) + 1]);
    let mut j = g.join(big, 0);
    assert!(matches!(
        now(&mut j).error,
        Some(GroupError::InvalidRequest(_))
    ));
    assert!(g.is_idle());

    let mut g = Group::new(
        "g",
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
    );
    let (a, mut ja) = join_new(&mut g, 0);
    ok_join(&mut ja);
    let huge = "x".repeat((1 << 20) + 1);
    let mut s = sync(&mut g, &a, &[(&a, &huge)], 0);
    assert!(matches!(
        now(&mut s).error,
        Some(GroupError::InvalidRequest(_))
    ));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn the_group_size_is_capped() {
    let mut g = Group::new(
        "g",
        GroupConfig {
            max_members: 2,
            ..GroupConfig::default()
        },
    );
    let _ = join_new(&mut g, 0);
    let _ = join_new(&mut g, 0);
    let mut third = g.join(req(""), 0);
    assert_eq!(now(&mut third).error, Some(GroupError::GroupMaxSizeReached));
}

#[test]
fn commits_need_the_current_member_and_generation() {
    let mut g = group();
    // assign() + commit: no membership, group Empty.
    assert_eq!(g.check_commit("", None, -1, 0), Ok(()));
    let (a, _b, t) = stable_pair(&mut g);
    assert_eq!(
        g.check_commit("", None, -1, t),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.check_commit(&a, None, 0, t),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(g.check_commit(&a, None, 1, t), Ok(()));
    // Still allowed while the group prepares a rebalance: the member owns its partitions.
    let (_c, _jc) = join_new(&mut g, t);
    assert_eq!(g.check_commit(&a, None, 1, t), Ok(()));
    let mut ja = g.join(req(&a), t);
    let mut jb = g.join(req(&_b), t);
    ok_join(&mut ja);
    ok_join(&mut jb);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        g.check_commit(&a, None, 2, t),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn a_second_join_before_the_answer_replaces_the_first() {
    let mut g = group();
    let (a, mut first) = join_new(&mut g, 0);
    let mut second = g.join(req(&a), 0);
    assert_eq!(now(&mut first).error, Some(GroupError::RebalanceInProgress));
    g.tick(DELAY);
    assert_eq!(ok_join(&mut second).generation, 1);
}
