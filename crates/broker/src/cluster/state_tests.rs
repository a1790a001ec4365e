//! Tests of the controller's state machine: deterministic apply, validation, placement.

use super::*;

fn node(id: NodeId) -> NodeInfo {
    NodeInfo {
        id,
        kafka_host: format!("host{id}"),
        kafka_port: 9092,
        raft_addr: format!("host{id}:7000"),
        registered_ms: 1000 + id as i64,
        endpoints: Default::default(),
    }
}

fn create(name: &str, partitions: u32, rf: u32) -> Command {
    Command::CreateTopic {
        name: name.to_string(),
        id: Uuid::from_u128(u128::from(partitions) << 64 | name.len() as u128),
        partitions,
        replication_factor: rf,
        config: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        now_ms: 42,
    }
}

fn cluster(nodes: u64) -> ClusterState {
    let mut s = ClusterState::new("c1".to_string());
    for id in 1..=nodes {
        s.apply(&Command::RegisterNode(node(id))).unwrap();
    }
    s
}

fn part(s: &ClusterState, group: GroupId) -> &PartitionAssignment {
    s.partition_by_group(group).unwrap().2
}

/// Applies `cmd` expecting an error, and checks that it changed nothing.
fn rejected(s: &mut ClusterState, cmd: Command) -> ApplyError {
    let before = s.clone();
    let err = s.apply(&cmd).unwrap_err();
    assert_eq!(
        *s, before,
        "{cmd:?} failed with {err} yet changed the state"
    );
    err
}

/// One of each command, some failing, some stale.
fn history() -> Vec<Command> {
    let mut cmds: Vec<Command> = (1..=5).map(|id| Command::RegisterNode(node(id))).collect();
    cmds.extend([
        create("orders", 6, 3),
        create("events", 4, 2),
        create("orders", 1, 1),
        Command::SetLeader {
            group: 1,
            leader: 2,
            epoch: 3,
        },
        Command::SetLeader {
            group: 1,
            leader: 3,
            epoch: 2,
        },
        Command::SetIsr {
            group: 1,
            leader: 2,
            epoch: 3,
            isr: vec![2, 1],
        },
        Command::CreatePartitions {
            name: "events".to_string(),
            count: 7,
        },
        Command::RemoveNode { node: 5 },
        Command::Reassign {
            group: 2,
            target: vec![1, 2, 3],
        },
        Command::ReassignDone {
            group: 2,
            replicas: vec![1, 2, 3],
        },
        Command::AlterTopicConfig {
            name: "events".to_string(),
            config: BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]),
        },
        Command::SetFenced {
            node: 2,
            fenced: true,
        },
        Command::SetLogStart {
            group: 1,
            offset: 10,
        },
        Command::RegisterNode(NodeInfo {
            kafka_port: 9093,
            ..node(3)
        }),
        Command::DeleteTopic {
            name: "orders".to_string(),
        },
        create("more", 3, 3),
    ]);
    cmds
}

#[test]
fn same_commands_same_state() {
    let mut a = ClusterState::new("c1".to_string());
    let mut b = ClusterState::new("c1".to_string());
    for cmd in history() {
        // Through the log's bytes, as a follower sees it.
        let decoded = Command::decode(&cmd.encode()).unwrap();
        assert_eq!(decoded, cmd);
        assert_eq!(a.apply(&cmd), b.apply(&decoded));
    }
    assert_eq!(a, b);
    assert_eq!(a.encode(), b.encode());
    assert_eq!(a.next_group_id, 1 + 6 + 4 + 3 + 3);
    assert!(a.topics.contains_key("events") && a.topics.contains_key("more"));
}

#[test]
fn snapshot_round_trip_rebuilds_the_index() {
    let mut s = ClusterState::new("c1".to_string());
    for cmd in history() {
        let _ = s.apply(&cmd);
    }
    let back = ClusterState::decode(&s.encode()).unwrap();
    assert_eq!(back, s);
    for g in 0..s.next_group_id + 1 {
        assert_eq!(
            back.partition_by_group(g),
            s.partition_by_group(g),
            "group {g}"
        );
    }
    let (topic, index, _) = back.partition_by_group(8).unwrap();
    assert_eq!((topic, index), ("events", 1));
    assert_eq!(
        ClusterState::decode(&ClusterState::default().encode()).unwrap(),
        ClusterState::default()
    );
}

#[test]
fn garbage_does_not_decode() {
    let inputs: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00garbage",
        b"{\"cluster_id\":",
        b"[1,2,3]",
        b"{\"RegisterNode\":{\"id\":\"one\"}}",
        b"{\"Explode\":{}}",
    ];
    for bytes in inputs {
        assert!(Command::decode(bytes).is_err(), "{bytes:?}");
        assert!(ClusterState::decode(bytes).is_err(), "{bytes:?}");
    }
    let snapshot = cluster(3).encode();
    assert!(ClusterState::decode(&snapshot[..snapshot.len() - 1]).is_err());
    assert!(Command::decode(&snapshot).is_err());
}

#[test]
fn create_topic_allocates_groups_and_places_replicas() {
    let mut s = cluster(3);
    assert_eq!(
        s.apply(&create("a", 3, 2)),
        Ok(Applied::TopicCreated("a".to_string()))
    );
    assert_eq!(
        s.apply(&create("b", 2, 3)),
        Ok(Applied::TopicCreated("b".to_string()))
    );
    let a = &s.topics["a"];
    assert_eq!(a.replication_factor, 2);
    assert_eq!(a.created_ms, 42);
    assert_eq!(a.config["retention.ms"], "1000");
    let groups: Vec<GroupId> = s.topics["a"]
        .partitions
        .iter()
        .chain(&s.topics["b"].partitions)
        .map(|p| p.group)
        .collect();
    assert_eq!(groups, vec![1, 2, 3, 4, 5]);
    assert_eq!(s.next_group_id, 6);
    for g in 1..=5 {
        let p = part(&s, g);
        assert_eq!(p.leader, None);
        assert_eq!(p.leader_epoch, 0);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.target_replicas, None);
    }
    assert_eq!(
        s.partition_by_group(2).map(|(t, i, _)| (t, i)),
        Some(("a", 1))
    );
    assert_eq!(
        s.partition_by_group(5).map(|(t, i, _)| (t, i)),
        Some(("b", 1))
    );
    assert!(s.partition_by_group(0).is_none());
    assert!(s.partition_by_group(6).is_none());
    // 3*2 + 2*3 = 12 replicas over 3 nodes.
    assert_eq!(s.replica_load(), BTreeMap::from([(1, 4), (2, 4), (3, 4)]));
}

#[test]
fn create_topic_validation() {
    let mut s = cluster(3);
    s.apply(&create("t", 1, 1)).unwrap();
    assert_eq!(
        rejected(&mut s, create("t", 1, 1)),
        ApplyError::TopicExists("t".to_string())
    );
    for name in ["", ".", "..", "a/b", "ü", &"x".repeat(250)] {
        assert!(matches!(
            rejected(&mut s, create(name, 1, 1)),
            ApplyError::InvalidTopicName(_)
        ));
    }
    for n in [0, PARTITIONS_MAX + 1] {
        assert!(matches!(
            rejected(&mut s, create("u", n, 1)),
            ApplyError::InvalidPartitions(_)
        ));
    }
    assert_eq!(
        rejected(&mut s, create("u", 1, 0)),
        ApplyError::InvalidReplicationFactor {
            requested: 0,
            available: 3
        }
    );
    s.apply(&Command::RemoveNode { node: 3 }).unwrap();
    assert_eq!(
        rejected(&mut s, create("u", 1, 3)),
        ApplyError::InvalidReplicationFactor {
            requested: 3,
            available: 2
        }
    );
    assert!(s
        .apply(&create(&"x".repeat(249), PARTITIONS_MAX, 2))
        .is_ok());
    assert_eq!(s.next_group_id, 2 + u64::from(PARTITIONS_MAX));
}

#[test]
fn deleted_groups_are_never_reused() {
    let mut s = cluster(1);
    s.apply(&create("t", 2, 1)).unwrap();
    assert_eq!(
        s.apply(&Command::DeleteTopic {
            name: "t".to_string()
        }),
        Ok(Applied::TopicDeleted("t".to_string()))
    );
    assert!(s.partition_by_group(1).is_none() && s.partition_by_group(2).is_none());
    assert_eq!(
        rejected(
            &mut s,
            Command::DeleteTopic {
                name: "t".to_string()
            }
        ),
        ApplyError::UnknownTopic("t".to_string())
    );
    s.apply(&create("t", 1, 1)).unwrap();
    assert_eq!(s.topics["t"].partitions[0].group, 3);
    assert_eq!(
        rejected(
            &mut s,
            Command::SetLeader {
                group: 1,
                leader: 1,
                epoch: 1
            }
        ),
        ApplyError::UnknownGroup(1)
    );
}

#[test]
fn create_partitions_only_grows() {
    let mut s = cluster(3);
    s.apply(&create("t", 2, 2)).unwrap();
    s.apply(&create("u", 1, 1)).unwrap();
    for count in [1, 2] {
        let cmd = Command::CreatePartitions {
            name: "t".to_string(),
            count,
        };
        assert!(matches!(
            rejected(&mut s, cmd),
            ApplyError::InvalidPartitions(_)
        ));
    }
    let cmd = Command::CreatePartitions {
        name: "t".to_string(),
        count: PARTITIONS_MAX + 1,
    };
    assert!(matches!(
        rejected(&mut s, cmd),
        ApplyError::InvalidPartitions(_)
    ));
    let cmd = Command::CreatePartitions {
        name: "nope".to_string(),
        count: 3,
    };
    assert_eq!(
        rejected(&mut s, cmd),
        ApplyError::UnknownTopic("nope".to_string())
    );

    let cmd = Command::CreatePartitions {
        name: "t".to_string(),
        count: 5,
    };
    assert_eq!(
        s.apply(&cmd),
        Ok(Applied::PartitionsCreated {
            topic: "t".to_string(),
            from: 2,
            to: 5
        })
    );
    let t = &s.topics["t"];
    assert_eq!(t.partitions.len(), 5);
    assert!(t.partitions.iter().all(|p| p.replicas.len() == 2));
    assert_eq!(t.partitions[2].group, 4);
    assert_eq!(
        s.partition_by_group(6).map(|(t, i, _)| (t, i)),
        Some(("t", 4))
    );
    assert_eq!(s.next_group_id, 7);
}

#[test]
fn stale_set_leader_is_ignored() {
    let mut s = cluster(3);
    s.apply(&create("t", 1, 3)).unwrap();
    let set = |leader, epoch| Command::SetLeader {
        group: 1,
        leader,
        epoch,
    };
    assert_eq!(s.apply(&set(2, 5)), Ok(Applied::LeaderChanged(1)));
    assert_eq!(s.apply(&set(3, 4)), Ok(Applied::Nothing));
    assert_eq!((part(&s, 1).leader, part(&s, 1).leader_epoch), (Some(2), 5));
    assert_eq!(s.apply(&set(2, 5)), Ok(Applied::Nothing));
    // Re-elected in a new term: the epoch still moves.
    assert_eq!(s.apply(&set(2, 6)), Ok(Applied::LeaderChanged(1)));
    assert_eq!(s.apply(&set(3, 7)), Ok(Applied::LeaderChanged(1)));
    assert_eq!((part(&s, 1).leader, part(&s, 1).leader_epoch), (Some(3), 7));
    assert_eq!(rejected(&mut s, set(9, 8)), ApplyError::UnknownNode(9));
    let cmd = Command::SetLeader {
        group: 2,
        leader: 1,
        epoch: 9,
    };
    assert_eq!(rejected(&mut s, cmd), ApplyError::UnknownGroup(2));
}

#[test]
fn new_leader_joins_the_isr() {
    let mut s = cluster(3);
    s.apply(&create("t", 1, 3)).unwrap();
    s.apply(&Command::SetLeader {
        group: 1,
        leader: 1,
        epoch: 1,
    })
    .unwrap();
    s.apply(&Command::SetIsr {
        group: 1,
        leader: 1,
        epoch: 1,
        isr: vec![1],
    })
    .unwrap();
    s.apply(&Command::SetLeader {
        group: 1,
        leader: 2,
        epoch: 2,
    })
    .unwrap();
    assert_eq!(part(&s, 1).isr, vec![1, 2]);
}

#[test]
fn set_isr_needs_current_leader_and_epoch() {
    let mut s = cluster(3);
    s.apply(&create("t", 1, 3)).unwrap();
    let before = part(&s, 1).isr.clone();
    let isr = |leader, epoch, isr: Vec<NodeId>| Command::SetIsr {
        group: 1,
        leader,
        epoch,
        isr,
    };
    // No leader reported yet.
    assert_eq!(s.apply(&isr(1, 0, vec![1])), Ok(Applied::Nothing));
    s.apply(&Command::SetLeader {
        group: 1,
        leader: 2,
        epoch: 4,
    })
    .unwrap();
    assert_eq!(s.apply(&isr(1, 4, vec![1])), Ok(Applied::Nothing));
    assert_eq!(s.apply(&isr(2, 3, vec![2])), Ok(Applied::Nothing));
    assert_eq!(s.apply(&isr(2, 5, vec![2])), Ok(Applied::Nothing));
    assert_eq!(part(&s, 1).isr, before);
    assert_eq!(
        s.apply(&isr(2, 4, vec![2, 3, 2])),
        Ok(Applied::IsrChanged(1))
    );
    assert_eq!(part(&s, 1).isr, vec![2, 3]);
    assert_eq!(s.apply(&isr(2, 4, vec![2, 3])), Ok(Applied::Nothing));
    assert_eq!(
        rejected(&mut s, isr(2, 4, vec![2, 8])),
        ApplyError::UnknownNode(8)
    );
}

#[test]
fn reassignment_lifecycle() {
    let mut s = cluster(5);
    s.apply(&create("t", 1, 3)).unwrap();
    let old = part(&s, 1).replicas.clone();
    let spare: Vec<NodeId> = (1..=5).filter(|n| !old.contains(n)).collect();
    s.apply(&Command::SetLeader {
        group: 1,
        leader: old[0],
        epoch: 1,
    })
    .unwrap();

    // Move the last replica to a spare node, keeping the preferred leader.
    let target = vec![old[0], old[1], spare[0]];
    let cmd = Command::Reassign {
        group: 1,
        target: target.clone(),
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::ReassignmentChanged(1)));
    assert_eq!(s.apply(&cmd), Ok(Applied::Nothing));
    assert_eq!(part(&s, 1).target_replicas.as_ref(), Some(&target));
    assert!(s
        .partitions_on(spare[0])
        .iter()
        .any(|(t, i, _)| t == "t" && *i == 0));
    assert!(s.partitions_on(spare[1]).is_empty());
    assert_eq!(s.replica_load()[&spare[0]], 1);

    // Intermediate configuration: the newcomer joined, nobody left yet.
    let joint = vec![spare[0], old[2], old[1], old[0]];
    let cmd = Command::ReassignDone {
        group: 1,
        replicas: joint,
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::ReassignmentChanged(1)));
    let p = part(&s, 1);
    assert_eq!(p.replicas, vec![old[0], old[1], old[2], spare[0]]);
    assert_eq!(p.target_replicas.as_ref(), Some(&target));

    // Target reached, reported in another order: the target's order stands.
    let cmd = Command::ReassignDone {
        group: 1,
        replicas: vec![spare[0], old[1], old[0]],
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::ReassignmentChanged(1)));
    let p = part(&s, 1);
    assert_eq!(p.replicas, target);
    assert_eq!(p.target_replicas, None);
    assert!(!p.isr.contains(&old[2]));
    assert_eq!(p.leader, Some(old[0]));
    assert!(s.partitions_on(old[2]).is_empty());
}

#[test]
fn reassign_to_same_set_needs_no_raft_change() {
    let mut s = cluster(4);
    s.apply(&create("t", 1, 3)).unwrap();
    let old = part(&s, 1).replicas.clone();
    let spare = (1..=4).find(|n| !old.contains(n)).unwrap();
    let cmd = Command::Reassign {
        group: 1,
        target: old.clone(),
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::Nothing));
    let moved = vec![old[0], old[1], spare];
    s.apply(&Command::Reassign {
        group: 1,
        target: moved,
    })
    .unwrap();
    // Back to the current set: cancels the reassignment.
    assert_eq!(s.apply(&cmd), Ok(Applied::ReassignmentChanged(1)));
    assert_eq!(part(&s, 1).target_replicas, None);
    // A reordering only moves the preferred leader.
    let reordered = vec![old[2], old[0], old[1]];
    let cmd = Command::Reassign {
        group: 1,
        target: reordered.clone(),
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::ReassignmentChanged(1)));
    assert_eq!(part(&s, 1).replicas, reordered);
    assert_eq!(part(&s, 1).target_replicas, None);
}

#[test]
fn reassign_validation() {
    let mut s = cluster(4);
    s.apply(&create("t", 1, 2)).unwrap();
    s.apply(&Command::RemoveNode { node: 4 }).unwrap();
    let re = |target: Vec<NodeId>| Command::Reassign { group: 1, target };
    assert!(matches!(
        rejected(&mut s, re(vec![])),
        ApplyError::InvalidReplicas(_)
    ));
    assert!(matches!(
        rejected(&mut s, re(vec![1, 1])),
        ApplyError::InvalidReplicas(_)
    ));
    assert_eq!(rejected(&mut s, re(vec![1, 0])), ApplyError::InvalidNodeId);
    assert_eq!(rejected(&mut s, re(vec![1, 7])), ApplyError::UnknownNode(7));
    assert_eq!(rejected(&mut s, re(vec![1, 4])), ApplyError::NodeRemoved(4));
    let cmd = Command::Reassign {
        group: 9,
        target: vec![1],
    };
    assert_eq!(rejected(&mut s, cmd), ApplyError::UnknownGroup(9));
    let done = |replicas: Vec<NodeId>| Command::ReassignDone { group: 1, replicas };
    assert!(matches!(
        rejected(&mut s, done(vec![2, 2])),
        ApplyError::InvalidReplicas(_)
    ));
    assert_eq!(
        rejected(&mut s, done(vec![1, 7])),
        ApplyError::UnknownNode(7)
    );
    // A removed node may still be in the Raft configuration while its data moves away.
    assert_eq!(
        s.apply(&done(vec![1, 2, 4])),
        Ok(Applied::ReassignmentChanged(1))
    );
}

#[test]
fn leader_leaving_the_configuration_is_forgotten() {
    let mut s = cluster(4);
    s.apply(&create("t", 1, 3)).unwrap();
    let old = part(&s, 1).replicas.clone();
    let spare = (1..=4).find(|n| !old.contains(n)).unwrap();
    s.apply(&Command::SetLeader {
        group: 1,
        leader: old[0],
        epoch: 3,
    })
    .unwrap();
    let target = vec![old[1], old[2], spare];
    s.apply(&Command::Reassign {
        group: 1,
        target: target.clone(),
    })
    .unwrap();
    s.apply(&Command::ReassignDone {
        group: 1,
        replicas: target.clone(),
    })
    .unwrap();
    let p = part(&s, 1);
    assert_eq!((p.leader, p.leader_epoch), (None, 3));
    assert_eq!(p.replicas, target);
    // The old leader's report from its term cannot come back... but a new term's can.
    let cmd = Command::SetLeader {
        group: 1,
        leader: old[0],
        epoch: 2,
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::Nothing));
    let cmd = Command::SetLeader {
        group: 1,
        leader: old[1],
        epoch: 4,
    };
    assert_eq!(s.apply(&cmd), Ok(Applied::LeaderChanged(1)));
}

#[test]
fn removed_nodes_leave_placement() {
    let mut s = cluster(4);
    assert_eq!(
        s.apply(&Command::RemoveNode { node: 2 }),
        Ok(Applied::NodeRemoved(2))
    );
    assert_eq!(
        s.apply(&Command::RemoveNode { node: 2 }),
        Ok(Applied::Nothing)
    );
    assert_eq!(
        rejected(&mut s, Command::RemoveNode { node: 9 }),
        ApplyError::UnknownNode(9)
    );
    assert_eq!(s.live_nodes(), vec![1, 3, 4]);
    s.apply(&create("t", 30, 3)).unwrap();
    s.apply(&Command::CreatePartitions {
        name: "t".to_string(),
        count: 60,
    })
    .unwrap();
    assert!(s.partitions_on(2).is_empty());
    // Re-registering (a restart) updates the address but does not bring it back.
    let moved = NodeInfo {
        raft_addr: "elsewhere:7000".to_string(),
        ..node(2)
    };
    assert_eq!(
        s.apply(&Command::RegisterNode(moved.clone())),
        Ok(Applied::NodeChanged(2))
    );
    assert_eq!(s.nodes[&2], moved);
    assert_eq!(s.live_nodes(), vec![1, 3, 4]);
}

#[test]
fn register_node() {
    let mut s = ClusterState::default();
    assert_eq!(
        s.apply(&Command::RegisterNode(node(1))),
        Ok(Applied::NodeChanged(1))
    );
    assert_eq!(
        s.apply(&Command::RegisterNode(node(1))),
        Ok(Applied::Nothing)
    );
    let moved = NodeInfo {
        kafka_host: "new".to_string(),
        ..node(1)
    };
    assert_eq!(
        s.apply(&Command::RegisterNode(moved.clone())),
        Ok(Applied::NodeChanged(1))
    );
    assert_eq!(s.nodes[&1], moved);
    assert_eq!(
        rejected(&mut s, Command::RegisterNode(node(0))),
        ApplyError::InvalidNodeId
    );
    // A `Default` state still starts partitions at group 1.
    s.apply(&create("t", 1, 1)).unwrap();
    assert_eq!(s.topics["t"].partitions[0].group, 1);
}

#[test]
fn alter_topic_config_replaces_overrides() {
    let mut s = cluster(1);
    s.apply(&create("t", 1, 1)).unwrap();
    let config = BTreeMap::from([("retention.bytes".to_string(), "5".to_string())]);
    let cmd = Command::AlterTopicConfig {
        name: "t".to_string(),
        config: config.clone(),
    };
    assert_eq!(
        s.apply(&cmd),
        Ok(Applied::TopicConfigChanged("t".to_string()))
    );
    assert_eq!(s.topics["t"].config, config);
    assert_eq!(s.apply(&cmd), Ok(Applied::Nothing));
    let cmd = Command::AlterTopicConfig {
        name: "u".to_string(),
        config,
    };
    assert_eq!(
        rejected(&mut s, cmd),
        ApplyError::UnknownTopic("u".to_string())
    );
}

#[test]
fn partitions_on_lists_replicas_and_targets() {
    let mut s = cluster(3);
    s.apply(&create("a", 2, 3)).unwrap();
    s.apply(&create("b", 3, 3)).unwrap();
    let on: Vec<(String, u32)> = s
        .partitions_on(2)
        .into_iter()
        .map(|(t, i, _)| (t, i))
        .collect();
    let expected: Vec<(String, u32)> = [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)]
        .iter()
        .map(|(t, i)| (t.to_string(), *i))
        .collect();
    assert_eq!(on, expected);
    assert!(s.partitions_on(4).is_empty());
}

#[test]
fn tier_manifest_changes_apply_once_and_survive_a_snapshot() {
    let mut s = cluster(3);
    s.apply(&create("t", 1, 3)).unwrap();
    let group = s.topics["t"].partitions[0].group;
    let segment = |base: u64, end: u64, object: &str| strom_tier::RemoteSegment {
        base_offset: base,
        end_offset: end,
        size_bytes: 100,
        max_timestamp: 5,
        object: object.to_string(),
        aborted: Vec::new(),
    };
    let append = |seg| Command::TierManifest {
        group,
        change: strom_tier::ManifestChange::Append(seg),
    };
    assert_eq!(
        s.apply(&append(segment(0, 10, "a"))),
        Ok(Applied::LogStartChanged(group))
    );
    // A deposed leader's upload of the same range is refused; the first one stays recorded.
    assert_eq!(s.apply(&append(segment(0, 12, "b"))), Ok(Applied::Nothing));
    s.apply(&append(segment(10, 20, "c"))).unwrap();
    let trim = Command::TierManifest {
        group,
        change: strom_tier::ManifestChange::Trim { below: 10 },
    };
    s.apply(&trim).unwrap();
    let remote = &part(&s, group).remote;
    assert_eq!(remote.uploaded_end, 20);
    assert_eq!(
        remote
            .segments
            .iter()
            .map(|s| s.object.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    let restored = ClusterState::decode(&s.encode()).unwrap();
    assert_eq!(part(&restored, group).remote, *remote);
    let missing = Command::TierManifest {
        group: group + 100,
        change: strom_tier::ManifestChange::Trim { below: 1 },
    };
    assert!(s.apply(&missing).is_err());
}
