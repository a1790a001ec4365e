//! The store against a plain model: the whole key space copied at every revision.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use crate::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(k: &str, v: &str) -> Command {
    Command::Put(PutRequest {
        key: b(k),
        value: b(v),
        prev_kv: true,
        ..PutRequest::default()
    })
}

fn get(store: &Store, k: &str, rev: i64) -> Result<RangeResponse, KvError> {
    store.range(&RangeRequest {
        key: b(k),
        revision: rev,
        ..RangeRequest::default()
    })
}

#[test]
fn revisions_versions_and_history_as_etcd_defines_them() {
    let mut s = Store::new(Limits::default());
    assert_eq!(s.revision(), 1);
    let a = s.apply(1, &put("foo", "1"));
    assert_eq!(a.revision, 2);
    assert!(a.changed);
    s.apply(2, &put("foo", "2"));
    let kv = &get(&s, "foo", 0).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    // The old revision still reads the old value.
    assert_eq!(get(&s, "foo", 2).unwrap().kvs[0].value, b("1"));
    let d = s.apply(
        3,
        &Command::DeleteRange(DeleteRangeRequest {
            key: b("foo"),
            prev_kv: true,
            ..Default::default()
        }),
    );
    assert_eq!(d.revision, 4);
    assert!(get(&s, "foo", 0).unwrap().kvs.is_empty());
    // A re-created key starts a new generation.
    s.apply(4, &put("foo", "3"));
    let kv = &get(&s, "foo", 0).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    // A delete of nothing makes no revision.
    let none = s.apply(
        5,
        &Command::DeleteRange(DeleteRangeRequest {
            key: b("nope"),
            ..Default::default()
        }),
    );
    assert!(!none.changed);
    assert_eq!(none.revision, 5);
    assert_eq!(get(&s, "foo", 6), Err(KvError::FutureRevision));
    s.apply(6, &Command::Compact { revision: 4 });
    assert_eq!(get(&s, "foo", 3), Err(KvError::Compacted));
    assert_eq!(
        s.apply(7, &Command::Compact { revision: 4 }).result,
        Err(KvError::Compacted)
    );
    assert!(get(&s, "foo", 4).unwrap().kvs.is_empty());
}

#[test]
fn leases_own_keys_and_revoke_deletes_them_in_one_revision() {
    let mut s = Store::new(Limits::default());
    let Ok(Output::LeaseGrant { id, ttl }) =
        s.apply(1, &Command::LeaseGrant { id: 0, ttl: 1 }).result
    else {
        panic!("grant failed")
    };
    assert_eq!(ttl, 2, "raised to the minimum TTL");
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        let r = s.apply(
            2 + i as u64,
            &Command::Put(PutRequest {
                key: b(k),
                value: b("v"),
                lease: id,
                ..Default::default()
            }),
        );
        assert!(r.result.is_ok());
    }
    assert_eq!(s.lease(id).unwrap().keys.len(), 3);
    let rev = s.revision();
    let r = s.apply(9, &Command::LeaseRevoke { id });
    assert_eq!(r.revision, rev + 1);
    assert!(s.lease(id).is_none());
    let (events, _) = s.events(rev + 1, b"a", b"\0", usize::MAX);
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == rev + 1));
    let bad = s.apply(
        10,
        &Command::Put(PutRequest {
            key: b("x"),
            lease: id,
            ..Default::default()
        }),
    );
    assert_eq!(bad.result, Err(KvError::LeaseNotFound));
    assert!(!bad.changed);
}

#[test]
fn txn_compares_nested_branches_and_duplicate_keys() {
    let mut s = Store::new(Limits::default());
    s.apply(1, &put("k", "v1"));
    let cas = |expect: i64, value: &str| {
        Command::Txn(TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Mod(expect),
                key: b("k"),
                range_end: Bytes::new(),
            }],
            success: vec![Op::Put(PutRequest {
                key: b("k"),
                value: b(value),
                ..Default::default()
            })],
            failure: vec![Op::Range(RangeRequest {
                key: b("k"),
                ..Default::default()
            })],
        })
    };
    let ok = s.apply(2, &cas(2, "v2"));
    assert!(matches!(
        ok.result,
        Ok(Output::Txn(TxnResponse {
            succeeded: true,
            ..
        }))
    ));
    let stale = s.apply(3, &cas(2, "v3"));
    let Ok(Output::Txn(t)) = stale.result else {
        panic!()
    };
    assert!(!t.succeeded);
    let OpResponse::Range(r) = &t.responses[0] else {
        panic!()
    };
    assert_eq!(r.kvs[0].value, b("v2"));
    // A create-if-absent compare (create_revision = 0), as etcdctl lock uses.
    let absent = Command::Txn(TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
            key: b("lock/1"),
            range_end: Bytes::new(),
        }],
        success: vec![Op::Put(PutRequest {
            key: b("lock/1"),
            ..Default::default()
        })],
        failure: vec![],
    });
    assert!(matches!(
        s.apply(4, &absent).result,
        Ok(Output::Txn(TxnResponse {
            succeeded: true,
            ..
        }))
    ));
    // A value compare on a missing key always fails.
    let missing = Command::Txn(TxnRequest {
        compare: vec![Compare {
            result: CompareResult::NotEqual,
            target: CompareTarget::Value(b("x")),
            key: b("missing"),
            range_end: Bytes::new(),
        }],
        ..Default::default()
    });
    assert!(matches!(
        s.apply(5, &missing).result,
        Ok(Output::Txn(TxnResponse {
            succeeded: false,
            ..
        }))
    ));
    let dup = Command::Txn(TxnRequest {
        success: vec![
            Op::Put(PutRequest {
                key: b("d"),
                ..Default::default()
            }),
            Op::Delete(DeleteRangeRequest {
                key: b("a"),
                range_end: b("z"),
                prev_kv: false,
            }),
        ],
        ..Default::default()
    });
    assert_eq!(txn::validate(&dup, 128), Err(KvError::DuplicateKey));
    let many = Command::Txn(TxnRequest {
        success: (0..129)
            .map(|i| {
                Op::Put(PutRequest {
                    key: b(&format!("k{i}")),
                    ..Default::default()
                })
            })
            .collect(),
        ..Default::default()
    });
    assert_eq!(txn::validate(&many, 128), Err(KvError::TooManyOps));
}

#[test]
fn range_options_match_etcd() {
    let mut s = Store::new(Limits::default());
    for (i, k) in ["b", "a", "d", "c"].iter().enumerate() {
        s.apply(i as u64 + 1, &put(k, &format!("{}", 9 - i)));
    }
    s.apply(5, &put("a", "0"));
    let all = |f: &dyn Fn(&mut RangeRequest)| {
        let mut r = RangeRequest {
            key: b("a"),
            range_end: b("\0"),
            ..Default::default()
        };
        f(&mut r);
        s.range(&r).unwrap()
    };
    let keys = |r: &RangeResponse| {
        r.kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect::<Vec<_>>()
    };
    let r = all(&|r| r.limit = 2);
    assert_eq!(
        (keys(&r), r.more, r.count),
        (vec!["a".into(), "b".into()], true, 4)
    );
    let r = all(&|r| {
        r.sort_order = SortOrder::Descend;
        r.sort_target = SortTarget::Create;
        r.limit = 1;
    });
    assert_eq!(keys(&r), vec!["c"]);
    // A non-key target without an order sorts ascending.
    let r = all(&|r| r.sort_target = SortTarget::Mod);
    assert_eq!(keys(&r), vec!["b", "d", "c", "a"]);
    let r = all(&|r| r.max_create_revision = 3);
    assert_eq!(keys(&r), vec!["a", "b"]);
    let r = all(&|r| r.min_mod_revision = 5);
    assert_eq!(keys(&r), vec!["a", "c"]);
    let r = all(&|r| r.count_only = true);
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 4);
    let r = all(&|r| r.keys_only = true);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = all(&|r| r.range_end = b("c"));
    assert_eq!(keys(&r), vec!["a", "b"]);
}

#[test]
fn space_quota_raises_the_alarm_and_deletes_still_work() {
    let mut s = Store::new(Limits {
        quota_bytes: 1000,
        ..Limits::default()
    });
    let big = "x".repeat(400);
    assert!(s.apply(1, &put("a", &big)).result.is_ok());
    assert!(s.apply(2, &put("b", &big)).result.is_ok());
    assert_eq!(s.apply(3, &put("c", &big)).result, Err(KvError::NoSpace));
    assert_eq!(s.alarms(), vec![(0, AlarmType::NoSpace)]);
    assert_eq!(s.apply(4, &put("tiny", "")).result, Err(KvError::NoSpace));
    let del = Command::DeleteRange(DeleteRangeRequest {
        key: b("a"),
        ..Default::default()
    });
    assert!(s.apply(5, &del).result.is_ok());
    let rev = s.revision();
    assert!(s
        .apply(6, &Command::Compact { revision: rev })
        .result
        .is_ok());
    s.apply(
        7,
        &Command::Alarm {
            action: AlarmAction::Deactivate,
            member: 0,
            alarm: AlarmType::NoSpace,
        },
    );
    assert!(s.apply(8, &put("c", &big)).result.is_ok());
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Put(u8, u8),
    Delete(u8, u8),
    CasVersion(u8, i64, u8),
    Compact(i64),
    Grant,
    PutWithLease(u8, u8),
    Revoke,
    Snapshot,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
        1 => (0u8..6, 0u8..3).prop_map(|(k, n)| Step::Delete(k, n)),
        2 => (0u8..6, 0i64..4, any::<u8>()).prop_map(|(k, ver, v)| Step::CasVersion(k, ver, v)),
        1 => (0i64..8).prop_map(Step::Compact),
        1 => Just(Step::Grant),
        2 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Step::PutWithLease(k, v)),
        1 => Just(Step::Revoke),
        1 => Just(Step::Snapshot),
    ]
}

fn key(k: u8) -> Bytes {
    Bytes::from(vec![b'k', b'0' + k])
}

#[derive(Default, Clone)]
struct Model {
    /// The key space after each revision (index = revision - 1).
    history: Vec<BTreeMap<Bytes, KeyValue>>,
    leases: BTreeMap<i64, Vec<Bytes>>,
    compacted: i64,
}

impl Model {
    fn rev(&self) -> i64 {
        self.history.len() as i64
    }
    fn now(&self) -> BTreeMap<Bytes, KeyValue> {
        self.history.last().cloned().unwrap_or_default()
    }
    fn write(&mut self, changes: Vec<(Bytes, Option<(Bytes, i64)>)>) {
        if changes.is_empty() {
            return;
        }
        let rev = self.rev() + 1;
        let mut next = self.now();
        for (k, change) in changes {
            match change {
                Some((value, lease)) => {
                    let prev = next.get(&k).cloned();
                    if let Some(p) = &prev {
                        if let Some(keys) = self.leases.get_mut(&p.lease) {
                            keys.retain(|x| *x != k);
                        }
                    }
                    if let Some(keys) = self.leases.get_mut(&lease) {
                        keys.push(k.clone());
                    }
                    next.insert(
                        k.clone(),
                        KeyValue {
                            key: k,
                            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                            mod_revision: rev,
                            version: prev.as_ref().map_or(1, |p| p.version + 1),
                            value,
                            lease,
                        },
                    );
                }
                None => {
                    if let Some(p) = next.remove(&k) {
                        if let Some(keys) = self.leases.get_mut(&p.lease) {
                            keys.retain(|x| *x != k);
                        }
                    }
                }
            }
        }
        self.history.push(next);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn store_matches_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        let mut s = Store::new(Limits::default());
        let mut m = Model::default();
        m.history.push(BTreeMap::new()); // revision 1: empty
        let mut index = 0u64;
        let mut watched = Vec::new();
        for st in steps {
            index += 1;
            match st {
                Step::Put(k, v) => {
                    s.apply(index, &put(std::str::from_utf8(&key(k)).unwrap(), &v.to_string()));
                    m.write(vec![(key(k), Some((Bytes::from(v.to_string()), 0)))]);
                }
                Step::Delete(k, n) => {
                    let end = Bytes::from(vec![b'k', b'0' + k + n]);
                    let req = DeleteRangeRequest { key: key(k), range_end: if n == 0 { Bytes::new() } else { end.clone() }, prev_kv: false };
                    let r = s.apply(index, &Command::DeleteRange(req));
                    let doomed: Vec<_> = m.now().keys().filter(|x| if n == 0 { **x == key(k) } else { **x >= key(k) && **x < end }).cloned().collect();
                    let Ok(Output::DeleteRange(d)) = r.result else { panic!() };
                    prop_assert_eq!(d.deleted as usize, doomed.len());
                    m.write(doomed.into_iter().map(|k| (k, None)).collect());
                }
                Step::CasVersion(k, ver, v) => {
                    let cmd = Command::Txn(TxnRequest {
                        compare: vec![Compare { result: CompareResult::Equal, target: CompareTarget::Version(ver), key: key(k), range_end: Bytes::new() }],
                        success: vec![Op::Put(PutRequest { key: key(k), value: Bytes::from(v.to_string()), ..Default::default() })],
                        failure: vec![],
                    });
                    let r = s.apply(index, &cmd);
                    let current = m.now().get(&key(k)).map_or(0, |kv| kv.version);
                    let Ok(Output::Txn(t)) = r.result else { panic!() };
                    prop_assert_eq!(t.succeeded, current == ver);
                    if current == ver {
                        m.write(vec![(key(k), Some((Bytes::from(v.to_string()), 0)))]);
                    }
                }
                Step::Compact(back) => {
                    let rev = (m.rev() - back).max(1);
                    let r = s.apply(index, &Command::Compact { revision: rev });
                    if rev <= m.compacted {
                        prop_assert_eq!(r.result, Err(KvError::Compacted));
                    } else {
                        prop_assert!(r.result.is_ok());
                        m.compacted = rev;
                    }
                }
                Step::Grant => {
                    let r = s.apply(index, &Command::LeaseGrant { id: 0, ttl: 10 });
                    let Ok(Output::LeaseGrant { id, .. }) = r.result else { panic!() };
                    m.leases.insert(id, Vec::new());
                }
                Step::PutWithLease(k, v) => {
                    let Some(&id) = m.leases.keys().next() else { continue };
                    let cmd = Command::Put(PutRequest { key: key(k), value: Bytes::from(v.to_string()), lease: id, ..Default::default() });
                    prop_assert!(s.apply(index, &cmd).result.is_ok());
                    m.write(vec![(key(k), Some((Bytes::from(v.to_string()), id)))]);
                }
                Step::Revoke => {
                    let Some(&id) = m.leases.keys().next() else { continue };
                    let revoked = s.apply(index, &Command::LeaseRevoke { id });
                    prop_assert!(revoked.result.is_ok());
                    let keys = m.leases.remove(&id).unwrap_or_default();
                    m.write(keys.into_iter().map(|k| (k, None)).collect());
                }
                Step::Snapshot => {
                    let mut copy = Store::new(Limits::default());
                    copy.restore(&s.snapshot()).unwrap();
                    prop_assert_eq!(copy.hash(0), s.hash(0));
                    s = copy;
                }
            }
            prop_assert_eq!(s.revision(), m.rev());
            watched.push(m.rev());
        }
        // Every readable revision reads what the model held then.
        for rev in m.compacted.max(1)..=m.rev() {
            let r = s.range(&RangeRequest { key: Bytes::from_static(b"\0"), range_end: Bytes::from_static(b"\0"), revision: rev, ..Default::default() }).unwrap();
            let want: Vec<KeyValue> = m.history[(rev - 1) as usize].values().cloned().collect();
            prop_assert_eq!(r.kvs, want, "revision {}", rev);
        }
        // The event history from just after the compaction point replays every change.
        let from = m.compacted.max(1) + 1;
        let (events, next) = s.events(from, b"\0", b"\0", usize::MAX);
        prop_assert_eq!(next, m.rev() + 1);
        let mut replay = m.history[(from - 2) as usize].clone();
        for e in &events {
            match e.kind {
                EventKind::Put => { replay.insert(e.kv.key.clone(), e.kv.clone()); }
                EventKind::Delete => { replay.remove(&e.kv.key); }
            }
        }
        prop_assert_eq!(replay, m.now());
        let leases: Vec<i64> = s.leases().into_iter().map(|(id, _)| id).collect();
        prop_assert_eq!(leases, m.leases.keys().copied().collect::<Vec<_>>());
    }
}
