//! The coordinator with a real broker: commits are durable records, rebuilt on reopen; group
//! deletion and expiry write tombstones.

use std::sync::Arc;
use strom_storage::FirstBatch;

use crate::group::{CommittedOffset, GroupError, OffsetCommit, OFFSETS_TOPIC};
use crate::{Broker, BrokerConfig};

fn open(dir: &std::path::Path) -> Arc<Broker> {
    Broker::open(BrokerConfig {
        data_dir: dir.to_path_buf(),
        default_partitions: 2,
        group_initial_rebalance_delay_ms: 0,
        ..BrokerConfig::default()
    })
    .expect("open broker")
}

fn commit(topic: &str, partition: i32, offset: i64, metadata: &str) -> OffsetCommit {
    OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 0,
        metadata: Some(metadata.into()),
    }
}

fn fetched(b: &Broker, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
    let wanted = [(topic.to_string(), vec![partition])];
    let mut out = b.groups().fetch_offsets(group, Some(&wanted));
    out.pop()
        .and_then(|(_, mut parts)| parts.pop())
        .and_then(|(_, c)| c)
}

#[tokio::test]
async fn commits_are_durable_and_rebuilt_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        b.create_topic("t", 2, -1, Default::default(), false)
            .unwrap();
        assert!(
            b.topic(OFFSETS_TOPIC).is_none(),
            "created on first use only"
        );
        let results = b
            .groups()
            .commit(
                &b,
                "g",
                "",
                None,
                -1,
                vec![
                    commit("t", 0, 5, "m0"),
                    commit("t", 1, 7, ""),
                    commit("nope", 0, 1, ""),
                ],
            )
            .await;
        assert_eq!(
            results,
            vec![Ok(()), Ok(()), Err(GroupError::UnknownTopicOrPartition)]
        );
        let offsets = b.topic(OFFSETS_TOPIC).expect("offsets topic");
        assert_eq!(offsets.partition_count(), 8);
        assert_eq!(offsets.settings().config.retention_ms, -1);
        let c = fetched(&b, "g", "t", 0).unwrap();
        assert_eq!(
            (c.offset, c.metadata.as_str(), c.leader_epoch),
            (5, "m0", 0)
        );
        // A later commit wins; a second group is independent.
        let r = b
            .groups()
            .commit(&b, "g", "", None, -1, vec![commit("t", 0, 9, "m1")])
            .await;
        assert_eq!(r, vec![Ok(())]);
        let r = b
            .groups()
            .commit(&b, "other", "", None, -1, vec![commit("t", 0, 1, "")])
            .await;
        assert_eq!(r, vec![Ok(())]);
        let long = "x".repeat(4097);
        let r = b
            .groups()
            .commit(&b, "g", "", None, -1, vec![commit("t", 1, 1, &long)])
            .await;
        assert!(matches!(r[0], Err(GroupError::OffsetMetadataTooLarge(_))));
        b.shutdown();
    }
    let b = open(dir.path());
    assert_eq!(fetched(&b, "g", "t", 0).map(|c| c.offset), Some(9));
    assert_eq!(fetched(&b, "g", "t", 1).map(|c| c.offset), Some(7));
    assert_eq!(fetched(&b, "other", "t", 0).map(|c| c.offset), Some(1));
    assert_eq!(fetched(&b, "g", "t", 2), None);
    let all = b.groups().fetch_offsets("g", None);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.len(), 2);
    let listed: Vec<String> = b.groups().list().into_iter().map(|l| l.group_id).collect();
    assert_eq!(listed, ["g", "other"]);
    b.shutdown();
}

#[tokio::test]
async fn commits_check_membership() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", 1, -1, Default::default(), false)
        .unwrap();
    let r = b
        .groups()
        .commit(&b, "g", "m", None, 3, vec![commit("t", 0, 1, "")])
        .await;
    assert_eq!(
        r,
        vec![Err(GroupError::IllegalGeneration)],
        "unknown group, managed commit"
    );
    let r = b
        .groups()
        .commit(&b, "", "", None, -1, vec![commit("t", 0, 1, "")])
        .await;
    assert_eq!(r, vec![Err(GroupError::InvalidGroupId)]);
    b.shutdown();
}

#[tokio::test]
async fn deleting_a_group_deletes_its_offsets_for_good() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        b.create_topic("t", 1, -1, Default::default(), false)
            .unwrap();
        let r = b
            .groups()
            .commit(&b, "g", "", None, -1, vec![commit("t", 0, 5, "")])
            .await;
        assert_eq!(r, vec![Ok(())]);
        let r = b
            .groups()
            .delete_groups(&b, &["g".into(), "missing".into()])
            .await;
        assert_eq!(r, vec![Ok(()), Err(GroupError::GroupIdNotFound)]);
        assert_eq!(fetched(&b, "g", "t", 0), None);
        let key = crate::group::metadata_record::encode_key("g");
        assert_eq!(last_stored(&b, &key), Some(None), "a membership tombstone");
        assert_eq!(b.groups().describe("g").state.name(), "Dead");
        b.shutdown();
    }
    let b = open(dir.path());
    assert_eq!(fetched(&b, "g", "t", 0), None, "tombstones replayed");
    assert!(b.groups().list().is_empty());
    b.shutdown();
}

#[tokio::test]
async fn offsets_of_long_empty_groups_expire() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", 1, -1, Default::default(), false)
        .unwrap();
    let r = b
        .groups()
        .commit(&b, "g", "", None, -1, vec![commit("t", 0, 5, "")])
        .await;
    assert_eq!(r, vec![Ok(())]);
    let now = crate::now_ms();
    b.groups().expire(&b, now);
    assert!(fetched(&b, "g", "t", 0).is_some(), "not yet");
    let week = 7 * 24 * 3600 * 1000;
    b.groups().expire(&b, now + week + 1);
    // The tombstones apply once durable; then the idle group goes.
    wait_all_durable(&b).await;
    assert_eq!(fetched(&b, "g", "t", 0), None);
    b.groups().expire(&b, now + week + 2);
    assert!(b.groups().list().is_empty());
    b.shutdown();
}

#[tokio::test]
async fn offset_delete_refuses_topics_a_member_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", 1, -1, Default::default(), false)
        .unwrap();
    b.create_topic("u", 1, -1, Default::default(), false)
        .unwrap();
    let r = b
        .groups()
        .commit(
            &b,
            "g",
            "",
            None,
            -1,
            vec![commit("t", 0, 5, ""), commit("u", 0, 6, "")],
        )
        .await;
    assert_eq!(r, vec![Ok(()), Ok(())]);
    let mut join = super::req("");
    join.require_known_member_id = false;
    join.protocols[0].metadata = bytes::Bytes::from_static(b"t");
    let mut j = b.groups().join(&b, "g", join);
    let member = super::ok_join(&mut j);
    let s = b.groups().sync(
        &b,
        "g",
        crate::group::SyncRequest {
            member_id: member.member_id.clone(),
            instance_id: None,
            generation: member.generation,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        },
    );
    // Answered once the membership record is durable.
    let synced = s.resolve(|| panic!("the sync was dropped")).await;
    assert_eq!(synced.error, None);
    // The test "subscription" is the metadata as a topic name.
    let subscriptions = |m: &bytes::Bytes| Some(vec![String::from_utf8_lossy(m).to_string()]);
    let parts = [
        ("t".to_string(), 0),
        ("u".to_string(), 0),
        ("x".to_string(), 0),
    ];
    let r = b
        .groups()
        .delete_offsets(&b, "g", &parts, &subscriptions)
        .unwrap()
        .await;
    assert_eq!(
        r,
        vec![
            Err(GroupError::GroupSubscribedToTopic),
            Ok(()),
            Err(GroupError::UnknownTopicOrPartition)
        ]
    );
    assert!(fetched(&b, "g", "t", 0).is_some());
    assert_eq!(fetched(&b, "g", "u", 0), None);
    assert!(matches!(
        b.groups()
            .delete_offsets(&b, "none", &parts, &subscriptions),
        Err(GroupError::GroupIdNotFound)
    ));
    let r = b.groups().delete_groups(&b, &["g".into()]).await;
    assert_eq!(r, vec![Err(GroupError::NonEmptyGroup)]);
    b.shutdown();
}

/// One member joins and syncs `group` reading topic `t`; returns (member id, generation).
async fn form_group(b: &Broker, group: &str) -> (String, i32) {
    let mut join = super::req("");
    join.require_known_member_id = false;
    let mut j = b.groups().join(b, group, join);
    let member = super::ok_join(&mut j);
    let sync = crate::group::SyncRequest {
        member_id: member.member_id.clone(),
        instance_id: None,
        generation: member.generation,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(member.member_id.clone(), bytes::Bytes::from("t-0"))],
    };
    let synced = b
        .groups()
        .sync(b, group, sync)
        .resolve(|| panic!("the sync was dropped"))
        .await;
    assert_eq!(synced.error, None);
    (member.member_id, member.generation)
}

/// Member `member` of group "g" commits offset 3 of t-0 in `generation`.
async fn commit_as_member(b: &Broker, member: &str, generation: i32) {
    let r = b
        .groups()
        .commit(
            b,
            "g",
            member,
            None,
            generation,
            vec![commit("t", 0, 3, "")],
        )
        .await;
    assert_eq!(r, vec![Ok(())]);
}

fn leave(b: &Broker, group: &str, member_id: String) {
    let who = crate::group::MemberIdentity {
        member_id,
        instance_id: None,
    };
    assert_eq!(b.groups().leave(b, group, &[who]).unwrap(), vec![Ok(())]);
}

#[tokio::test]
async fn a_group_goes_on_in_its_generation_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (member, generation) = {
        let b = open(dir.path());
        b.create_topic("t", 1, -1, Default::default(), false)
            .unwrap();
        let formed = form_group(&b, "g").await;
        // A group whose only member left is stored Empty and comes back without members.
        let (gone, _) = form_group(&b, "left").await;
        leave(&b, "left", gone);
        b.shutdown();
        formed
    };
    let b = open(dir.path());
    assert_eq!(
        b.groups().heartbeat(&b, "g", &member, None, generation),
        Ok(())
    );
    commit_as_member(&b, &member, generation).await;
    let d = b.groups().describe("g");
    assert_eq!(d.state.name(), "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].assignment, bytes::Bytes::from("t-0"));
    assert_eq!(b.groups().describe("left").state.name(), "Dead");
    b.shutdown();
}

/// The value of the last record under `key` in the offsets log (`Some(None)`: a tombstone).
fn last_stored(b: &Broker, key: &[u8]) -> Option<Option<bytes::Bytes>> {
    let mut last = None;
    for p in b.topic(OFFSETS_TOPIC)?.partitions() {
        let data = p
            .read(p.log_start_offset(), 64 << 20, FirstBatch::Whole)
            .expect("read");
        for batch in strom_storage::batch::split(&data.records).expect("split") {
            let (_, records) = strom_storage::records::decode_batch(&batch).expect("decode");
            for kv in records.into_iter().filter(|kv| kv.key == key) {
                last = Some(kv.value);
            }
        }
    }
    last
}

async fn wait_all_durable(b: &Broker) {
    for p in b.topic(OFFSETS_TOPIC).unwrap().partitions() {
        p.wait_durable(p.log_end_offset()).await;
    }
}

#[tokio::test]
async fn an_expired_group_leaves_no_membership_behind() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", 1, -1, Default::default(), false)
        .unwrap();
    let (member, generation) = form_group(&b, "g").await;
    commit_as_member(&b, &member, generation).await;
    leave(&b, "g", member);
    wait_all_durable(&b).await;
    let key = crate::group::metadata_record::encode_key("g");
    assert!(
        matches!(last_stored(&b, &key), Some(Some(_))),
        "the Empty record"
    );
    let week = 7 * 24 * 3600 * 1000;
    b.groups().expire(&b, crate::now_ms() + week + 1);
    wait_all_durable(&b).await;
    assert_eq!(last_stored(&b, &key), Some(None), "a membership tombstone");
    assert_eq!(fetched(&b, "g", "t", 0), None);
    b.shutdown();
}
