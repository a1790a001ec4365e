//! etcd's Lock and Election services (`v3lockpb`, `v3electionpb`), through the etcd-client
//! library: a lock is held by one lease at a time and passes on unlock, lease revoke or a
//! waiter giving up; an election has one leader whose value observers follow.

mod common;

use std::time::Duration;

use common::etcd::{client, grpc_status, start};
use etcd_client::{Client, GetOptions, LeaderKey, LockOptions, ProclaimOptions, ResignOptions};
use tonic::Code;

/// Keys under `prefix`, in create order.
async fn keys(c: &mut Client, prefix: &str) -> Vec<String> {
    let opts = GetOptions::new().with_prefix().with_sort(
        etcd_client::SortTarget::Create,
        etcd_client::SortOrder::Ascend,
    );
    c.get(prefix, Some(opts))
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect()
}

/// Waits for a lock in the background; its key once held.
fn lock_later(c: &Client, name: &str, lease: i64) -> tokio::task::JoinHandle<Vec<u8>> {
    let (mut c, name) = (c.clone(), name.to_string());
    tokio::spawn(async move {
        let opts = LockOptions::new().with_lease(lease);
        c.lock(name, Some(opts)).await.unwrap().key().to_vec()
    })
}

async fn next_value(observe: &mut etcd_client::ObserveStream) -> String {
    let resp = tokio::time::timeout(Duration::from_secs(5), observe.message())
        .await
        .expect("an observed change")
        .unwrap()
        .unwrap();
    resp.kv().unwrap().value_str().unwrap().to_string()
}

async fn still_waiting<T>(task: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(Duration::from_millis(500), task)
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_has_one_holder_and_passes_on_unlock_revoke_and_abandon() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start(dir.path(), &[]);
    let mut c = client(&etcd.endpoint).await;
    let l1 = c.lease_grant(60, None).await.unwrap().id();
    let l2 = c.lease_grant(60, None).await.unwrap().id();
    let l3 = c.lease_grant(60, None).await.unwrap().id();

    let first = c
        .lock("job", Some(LockOptions::new().with_lease(l1)))
        .await
        .unwrap();
    assert_eq!(first.key(), format!("job/{l1:x}").as_bytes());
    // Lock takes a place in line: l2 waits, and l3 behind it gives up.
    let mut second = lock_later(&c, "job", l2);
    assert!(still_waiting(&mut second).await, "two holders at once");
    let mut third = lock_later(&c, "job", l3);
    assert!(still_waiting(&mut third).await);
    third.abort();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while keys(&mut c, "job/").await.len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "an abandoned waiter's key stayed: {:?}",
            keys(&mut c, "job/").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    c.unlock(first.key()).await.unwrap();
    let key2 = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the next waiter gets the lock on unlock")
        .unwrap();
    assert_eq!(key2, format!("job/{l2:x}").as_bytes());

    // A holder's lease ends: its key goes and the lock passes.
    let mut fourth = lock_later(&c, "job", l1);
    assert!(still_waiting(&mut fourth).await);
    c.lease_revoke(l2).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), fourth)
        .await
        .expect("the lock passes when the holder's lease is revoked")
        .unwrap();

    // Errors: no lease, a lease that does not exist.
    let e = grpc_status(c.lock("job", None).await.unwrap_err());
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = grpc_status(
        c.lock("job", Some(LockOptions::new().with_lease(12345)))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "etcdserver: requested lease not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_has_one_leader_whose_values_observers_follow() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start(dir.path(), &[]);
    let mut c = client(&etcd.endpoint).await;
    let e = grpc_status(c.leader("pick").await.unwrap_err());
    assert_eq!(e.message(), "election: no leader");

    let l1 = c.lease_grant(60, None).await.unwrap().id();
    let l2 = c.lease_grant(60, None).await.unwrap().id();
    let won = c.campaign("pick", "one", l1).await.unwrap();
    let leader1: LeaderKey = won.leader().unwrap().clone();
    assert_eq!(leader1.key(), format!("pick/{l1:x}").as_bytes());
    assert_eq!(leader1.lease(), l1);
    let now = c.leader("pick").await.unwrap();
    assert_eq!(now.kv().unwrap().value(), b"one");
    assert_eq!(now.kv().unwrap().create_revision(), leader1.rev());

    let mut observe = c.observe("pick").await.unwrap();
    assert_eq!(next_value(&mut observe).await, "one");
    c.proclaim(
        "two",
        Some(ProclaimOptions::new().with_leader(leader1.clone())),
    )
    .await
    .unwrap();
    assert_eq!(next_value(&mut observe).await, "two");

    // A second candidate waits until the leader resigns, then leads.
    let mut c2 = c.clone();
    let mut candidate = tokio::spawn(async move { c2.campaign("pick", "three", l2).await });
    assert!(still_waiting(&mut candidate).await, "two leaders at once");
    c.resign(Some(ResignOptions::new().with_leader(leader1.clone())))
        .await
        .unwrap();
    let won2 = tokio::time::timeout(Duration::from_secs(5), candidate)
        .await
        .expect("the candidate leads after a resign")
        .unwrap()
        .unwrap();
    assert_eq!(won2.leader().unwrap().lease(), l2);
    assert_eq!(next_value(&mut observe).await, "three");

    // The resigned leader's key no longer proclaims.
    let e = grpc_status(
        c.proclaim("stale", Some(ProclaimOptions::new().with_leader(leader1)))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message(), "election: not leader");
    assert_eq!(
        c.leader("pick").await.unwrap().kv().unwrap().value(),
        b"three"
    );
}
