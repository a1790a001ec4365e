//! The etcd v3 API, driven by the real `etcdctl` (Debian's etcd-client 3.4) and by the
//! etcd-client Rust library for exact revisions, error codes and watch streams.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::etcd::{client, ctl_ok, etcdctl, grpc_status, json_field, start, wait_listening};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};

#[test]
fn etcdctl_kv_txn_compaction_status_and_members() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), &[]);
    let ep = e.endpoint.as_str();
    assert_eq!(ctl_ok(ep, &["put", "foo", "bar"]).trim(), "OK");
    let got = ctl_ok(ep, &["get", "foo", "-w", "json"]);
    // A fresh store is at revision 1: the first write makes revision 2.
    assert_eq!(json_field(&got, "/kvs/0/create_revision"), 2);
    assert_eq!(json_field(&got, "/kvs/0/version"), 1);
    assert_eq!(
        ctl_ok(ep, &["put", "foo", "baz", "--prev-kv"]),
        "OK\nfoo\nbar\n"
    );
    let got = ctl_ok(ep, &["get", "foo", "-w", "json"]);
    assert_eq!(json_field(&got, "/kvs/0/mod_revision"), 3);
    assert_eq!(json_field(&got, "/kvs/0/version"), 2);
    assert_eq!(
        ctl_ok(ep, &["get", "foo", "--rev", "2", "--print-value-only"]),
        "bar\n"
    );
    // Interactive txn: compare, success branch, failure branch.
    let (ok, out, err) = etcdctl(
        ep,
        &["txn"],
        "value(\"foo\") = \"baz\"\n\nput foo qux\nput other 1\n\nput foo never\n\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "SUCCESS\n\nOK\n\nOK\n");
    let (ok, out, _) = etcdctl(ep, &["txn"], "mod(\"foo\") = \"2\"\n\n\nget foo\n\n");
    assert!(ok);
    assert_eq!(out, "FAILURE\n\nfoo\nqux\n");
    assert_eq!(ctl_ok(ep, &["del", "foo", "--prev-kv"]), "1\nfoo\nqux\n");
    assert_eq!(ctl_ok(ep, &["get", "foo"]), "");
    for i in 0..5 {
        ctl_ok(ep, &["put", &format!("k{i}"), &format!("v{i}")]);
    }
    assert_eq!(
        ctl_ok(
            ep,
            &[
                "get",
                "k",
                "--prefix",
                "--keys-only",
                "--limit",
                "2",
                "--order",
                "DESCEND"
            ]
        ),
        "k4\n\nk3\n\n"
    );
    let status = ctl_ok(ep, &["endpoint", "status", "-w", "json"]);
    let rev = json_field(&status, "/0/Status/header/revision");
    assert_eq!(rev, 10);
    assert_eq!(ctl_ok(ep, &["compaction", "6"]), "compacted revision 6\n");
    let (ok, _, err) = etcdctl(ep, &["get", "k0", "--rev", "5"], "");
    assert!(!ok);
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    let (ok, _, err) = etcdctl(ep, &["get", "k0", "--rev", "99"], "");
    assert!(
        !ok && err.contains("required revision is a future revision"),
        "{err}"
    );
    let members = ctl_ok(ep, &["member", "list"]);
    assert!(members.contains(&format!("http://{ep}")), "{members}");
    let (ok, _, err) = etcdctl(
        ep,
        &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"],
        "",
    );
    assert!(!ok && err.contains("--join"), "{err}");
    assert!(ctl_ok(ep, &["endpoint", "hashkv"]).starts_with(ep));
    let (ok, out, err) = etcdctl(ep, &["endpoint", "health"], "");
    assert!(ok && (out + &err).contains("is healthy"), "not healthy");
}

#[test]
fn etcdctl_watch_lease_lock_and_election() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), &[]);
    let ep = e.endpoint.clone();
    ctl_ok(&ep, &["put", "w/a", "1"]);
    // A watch from revision 1 replays history, then follows live events.
    let watcher = {
        let ep = ep.clone();
        std::thread::spawn(move || {
            let out = Command::new("timeout")
                .args([
                    "4",
                    "etcdctl",
                    &format!("--endpoints={ep}"),
                    "watch",
                    "--prefix",
                    "w/",
                    "--rev",
                    "1",
                    "--prev-kv",
                ])
                .env("ETCDCTL_API", "3")
                .output()
                .expect("etcdctl watch");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    ctl_ok(&ep, &["put", "w/a", "2"]);
    ctl_ok(&ep, &["del", "w/a"]);
    let seen = watcher.join().unwrap();
    assert_eq!(
        seen,
        "PUT\nw/a\n1\nPUT\nw/a\n1\nw/a\n2\nDELETE\nw/a\n2\nw/a\n\n"
    );

    // Leases: attached keys go with the lease; TimeToLive of a gone lease is TTL -1.
    let granted = ctl_ok(&ep, &["lease", "grant", "60"]);
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ctl_ok(&ep, &["put", "leased", "x", &format!("--lease={id}")]);
    let ttl = ctl_ok(&ep, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("[leased]"),
        "{ttl}"
    );
    assert!(ctl_ok(&ep, &["lease", "list"]).contains(&id));
    ctl_ok(&ep, &["lease", "revoke", &id]);
    assert_eq!(ctl_ok(&ep, &["get", "leased"]), "");
    let ttl = ctl_ok(&ep, &["lease", "timetolive", &id]);
    assert!(ttl.contains("already expired"), "{ttl}");

    // etcdctl lock: the second holder gets the lock only after the first let go.
    let log = dir.path().join("lock.log");
    let holder = |name: &'static str| {
        let ep = ep.clone();
        let log = log.clone();
        std::thread::spawn(move || {
            let script = format!(
                "echo {name}-in >> {l}; sleep 1; echo {name}-out >> {l}",
                l = log.display()
            );
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    &format!("--endpoints={ep}"),
                    "lock",
                    "mylock",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ])
                .output()
                .expect("etcdctl lock");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
    };
    let first = holder("one");
    std::thread::sleep(Duration::from_millis(300));
    let second = holder("two");
    first.join().unwrap();
    second.join().unwrap();
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(order, "one-in\none-out\ntwo-in\ntwo-out\n");
    assert_eq!(
        ctl_ok(&ep, &["get", "mylock", "--prefix"]),
        "",
        "lock keys are cleaned up"
    );

    // etcdctl elect: a campaigner leads; an observer sees its proclamation.
    let mut campaign = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([&format!("--endpoints={ep}"), "elect", "election", "alice"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl elect");
    std::thread::sleep(Duration::from_millis(800));
    let out = Command::new("timeout")
        .args([
            "2",
            "etcdctl",
            &format!("--endpoints={ep}"),
            "elect",
            "-l",
            "election",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    let _ = campaign.kill();
    let _ = campaign.wait();
    let observed = String::from_utf8_lossy(&out.stdout);
    assert!(
        observed.starts_with("election/") && observed.contains("\nalice\n"),
        "{observed}"
    );
}

async fn watch_prefix(c: &mut Client, prefix: &str, from: i64) -> etcd_client::WatchStream {
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    c.watch(prefix, Some(options)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sees_exact_revisions_errors_and_watch_streams() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), &[]);
    let mut c = client(&e.endpoint).await;
    let r = c.put("a", "1", None).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), 2);
    let r = c
        .put("a", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"1");
    // Compare-and-swap on mod_revision, as every etcd lock and leader election does.
    let cas = |expect: i64, v: &'static str| {
        Txn::new()
            .when([Compare::mod_revision("a", CompareOp::Equal, expect)])
            .and_then([TxnOp::put("a", v, None)])
            .or_else([TxnOp::get("a", None)])
    };
    assert!(c.txn(cas(3, "3")).await.unwrap().succeeded());
    let stale = c.txn(cas(3, "4")).await.unwrap();
    assert!(!stale.succeeded());
    assert_eq!(stale.header().unwrap().revision(), 4);

    // etcd's errors, codes and messages.
    let err = grpc_status(
        c.get("a", Some(GetOptions::new().with_revision(50)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code(), err.message()),
        (
            tonic::Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    let err = grpc_status(
        c.put("x", "y", Some(PutOptions::new().with_lease(12345)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code(), err.message()),
        (
            tonic::Code::NotFound,
            "etcdserver: requested lease not found"
        )
    );
    let err = grpc_status(c.put("", "y", None).await.unwrap_err());
    assert_eq!(err.message(), "etcdserver: key is not provided");
    let many = Txn::new().and_then(
        (0..129)
            .map(|i| TxnOp::put(format!("m{i}"), "v", None))
            .collect::<Vec<_>>(),
    );
    let err = grpc_status(c.txn(many).await.unwrap_err());
    assert_eq!(
        (err.code(), err.message()),
        (
            tonic::Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    let dup = Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    let err = grpc_status(c.txn(dup).await.unwrap_err());
    assert_eq!(
        err.message(),
        "etcdserver: duplicate key given in txn request"
    );
    // A 3 MiB value is refused; the connection and the server carry on.
    let err = c.put("big", vec![b'x'; 3 << 20], None).await.unwrap_err();
    assert!(matches!(err, etcd_client::Error::GRpcStatus(_)), "{err:?}");
    let just_over = c
        .put("big", vec![b'x'; 3 * 512 * 1024], None)
        .await
        .unwrap_err();
    assert_eq!(
        grpc_status(just_over).message(),
        "etcdserver: request is too large"
    );
    // Garbage on the port costs only that connection.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&e.endpoint).unwrap();
        let _ = s.write_all(&[0xde; 4096]);
    }
    assert_eq!(c.get("a", None).await.unwrap().kvs()[0].value(), b"3");

    // Watch: history from a revision, then live, each event once and in order; a client
    // that reconnects from last_revision + 1 misses nothing.
    for i in 0..20 {
        c.put(format!("w/{i:02}"), format!("{i}"), None)
            .await
            .unwrap();
    }
    let first_rev = c.get("w/00", None).await.unwrap().kvs()[0].mod_revision();
    let mut stream = watch_prefix(&mut c, "w/", first_rev).await;
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let resp = stream.message().await.unwrap().unwrap();
        for ev in resp.events() {
            seen.push(ev.kv().unwrap().mod_revision());
        }
    }
    drop(stream);
    let last = *seen.last().unwrap();
    let mut stream = watch_prefix(&mut c, "w/", last + 1).await;
    assert!(stream.message().await.unwrap().unwrap().created());
    for i in 20..25 {
        c.put(format!("w/{i:02}"), format!("{i}"), None)
            .await
            .unwrap();
    }
    while seen.len() < 25 {
        let resp = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("events")
            .unwrap()
            .unwrap();
        for ev in resp.events() {
            assert_eq!(ev.event_type(), EventType::Put);
            seen.push(ev.kv().unwrap().mod_revision());
        }
    }
    let want: Vec<i64> = (first_rev..first_rev + 25).collect();
    assert_eq!(seen, want, "every revision once, in order");

    // A watch from a compacted revision: created, then canceled with compact_revision.
    let now = c.get("a", None).await.unwrap().header().unwrap().revision();
    c.compact(now, None).await.unwrap();
    let mut stream = watch_prefix(&mut c, "w/", first_rev).await;
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created() && !created.canceled());
    let canceled = stream.message().await.unwrap().unwrap();
    assert!(canceled.canceled());
    assert_eq!(canceled.compact_revision(), now);
    let err = grpc_status(c.compact(now, None).await.unwrap_err());
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_sigkill_and_snapshots_bound_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = start(dir.path(), &["--etcd-snapshot-entries", "50"]);
    // 100 KiB values: the journal's 16 MiB segments roll, so snapshots can delete whole ones.
    let value = vec![b'v'; 100 << 10];
    let mut tasks = Vec::new();
    for t in 0..4 {
        let ep = e.endpoint.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = client(&ep).await;
            let mut acked = Vec::new();
            for i in 0..100 {
                let key = format!("t{t}/{i:03}");
                let r = c.put(key.clone(), value.clone(), None).await.unwrap();
                acked.push((key, r.header().unwrap().revision()));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let top = acked.iter().map(|(_, r)| *r).max().unwrap();
    assert_eq!(top, 401, "one revision per put");
    // Snapshots are written in the background (paced): the log behind one is deleted soon,
    // and stays deleted across the kill.
    let journal = dir.path().join("meta").join("kv");
    let first_segment = journal.join("00000000000000000000.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_segment.exists() {
        assert!(Instant::now() < deadline, "the journal was never compacted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e.strom.kill9();
    e.strom.restart();
    wait_listening(&e.endpoint);
    let mut c = client(&e.endpoint).await;
    let all = c
        .get("t", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    assert_eq!(all.count(), 400);
    for (key, rev) in &acked {
        let got = c
            .get(key.as_str(), Some(GetOptions::new().with_keys_only()))
            .await
            .unwrap();
        assert_eq!(got.kvs()[0].mod_revision(), *rev, "{key}");
    }
    let r = c.put("after", "restart", None).await.unwrap();
    assert_eq!(
        r.header().unwrap().revision(),
        top + 1,
        "revisions never go backwards"
    );
    assert!(journal.join("machine.snapshot").exists());
    assert!(!first_segment.exists(), "the compacted log came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_unless_kept_alive_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = start(dir.path(), &[]);
    let mut c = client(&e.endpoint).await;
    let short = c.lease_grant(2, None).await.unwrap().id();
    c.put("short", "x", Some(PutOptions::new().with_lease(short)))
        .await
        .unwrap();
    let kept = c.lease_grant(3, None).await.unwrap().id();
    c.put("kept", "x", Some(PutOptions::new().with_lease(kept)))
        .await
        .unwrap();
    let mut watch = c.watch("short", None).await.unwrap();
    assert!(watch.message().await.unwrap().unwrap().created());
    let ep = e.endpoint.clone();
    let keeper = tokio::spawn(async move {
        loop {
            if let Ok(mut c) = Client::connect([ep.as_str()], None).await {
                if let Ok((mut k, mut s)) = c.lease_keep_alive(kept).await {
                    while k.keep_alive().await.is_ok() {
                        if s.message().await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // The unkept lease expires: its key is deleted, watchers see it.
    let resp = tokio::time::timeout(Duration::from_secs(8), watch.message())
        .await
        .expect("expiry")
        .unwrap()
        .unwrap();
    assert_eq!(resp.events()[0].event_type(), EventType::Delete);
    let ttl = c.lease_time_to_live(short, None).await.unwrap();
    assert_eq!(ttl.ttl(), -1);
    // The kept one outlives its TTL several times over, across a crash and restart.
    e.strom.kill9();
    e.strom.restart();
    wait_listening(&e.endpoint);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut c = client(&e.endpoint).await;
    assert_eq!(
        c.get("kept", None).await.unwrap().count(),
        1,
        "a kept-alive lease expired"
    );
    keeper.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.get("kept", None).await.unwrap().count() == 1 {
        assert!(
            Instant::now() < deadline,
            "the lease did not expire once no longer kept alive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn space_quota_raises_nospace_until_freed_and_disarmed() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), &["--etcd-quota-bytes", "1048576"]);
    let ep = e.endpoint.as_str();
    let value = "x".repeat(100 << 10);
    let mut refused = None;
    for i in 0..20 {
        let (ok, _, err) = etcdctl(ep, &["put", &format!("big{i}"), &value], "");
        if !ok {
            refused = Some((i, err));
            break;
        }
    }
    let (i, err) = refused.expect("the quota was never reached");
    assert!((9..=10).contains(&i), "refused at put {i}");
    assert!(
        err.contains("etcdserver: mvcc: database space exceeded"),
        "{err}"
    );
    assert!(ctl_ok(ep, &["alarm", "list"]).contains("NOSPACE"));
    // Reads and deletes still work; so does compaction.
    assert!(ctl_ok(ep, &["get", "big0", "--keys-only"]).contains("big0"));
    ctl_ok(ep, &["del", "big", "--prefix"]);
    let (ok, _, err) = etcdctl(ep, &["put", "small", "1"], "");
    assert!(
        !ok && err.contains("database space exceeded"),
        "the alarm stays until disarmed"
    );
    let rev = json_field(
        &ctl_ok(ep, &["endpoint", "status", "-w", "json"]),
        "/0/Status/header/revision",
    );
    ctl_ok(ep, &["compaction", &rev.to_string()]);
    ctl_ok(ep, &["alarm", "disarm"]);
    assert_eq!(ctl_ok(ep, &["alarm", "list"]), "");
    assert_eq!(ctl_ok(ep, &["put", "small", "1"]).trim(), "OK");
}

#[test]
fn member_list_names_the_advertised_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(
        dir.path(),
        &["--advertised-etcd-addr", "etcd.example.net:2379"],
    );
    let members = ctl_ok(&e.endpoint, &["member", "list"]);
    assert!(
        members.contains("http://etcd.example.net:2379"),
        "{members}"
    );
    assert!(!members.contains(&e.endpoint), "{members}");
}
