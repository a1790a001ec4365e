//! The etcd API on a 3-node cluster: every node serves it (a follower forwards writes, read
//! barriers and lease keep-alives to the key-value journal's leader), and killing that
//! leader loses no acknowledged write, skips no watch event and expires no kept-alive lease.

mod common;

use std::time::{Duration, Instant};

use common::etcd::{client, ctl_ok, leader, put_until_acked, start_node, wait_listening};
use common::{free_ports, Strom};
use etcd_client::{GetOptions, PutOptions, WatchOptions};

struct Node {
    strom: Strom,
    etcd: String,
    raft: String,
}

fn start_cluster(root: &std::path::Path, n: usize) -> Vec<Node> {
    start_cluster_with(root, n, &[])
}

fn start_cluster_with(root: &std::path::Path, n: usize, extra: &[&str]) -> Vec<Node> {
    let ports = free_ports(3 * n);
    let peers = (0..n)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            let raft = format!("127.0.0.1:{}", ports[i]);
            let etcd = format!("127.0.0.1:{}", ports[2 * n + i]);
            let strom = start_node(root, i + 1, &raft, ports[n + i], &peers, &etcd, extra);
            Node { strom, etcd, raft }
        })
        .collect();
    for node in &nodes {
        wait_listening(&node.etcd);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_and_a_leader_kill_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(dir.path(), 3);
    let first = put_until_acked(&nodes[0].etcd, "k/0", "v").await;
    // Writes through every node, reads through every node.
    let mut acked = vec![("k/0".to_string(), first)];
    for (i, node) in nodes.iter().enumerate() {
        let key = format!("k/{}", i + 1);
        acked.push((key.clone(), put_until_acked(&node.etcd, &key, "v").await));
    }
    for node in &nodes {
        let got = ctl_ok(&node.etcd, &["get", "k/", "--prefix", "--keys-only"]);
        assert_eq!(
            got.lines().filter(|l| !l.is_empty()).count(),
            4,
            "{}: {got}",
            node.etcd
        );
    }
    // Every member is listed with its own etcd client URL (shared through the controller
    // once each node registered).
    let mut want: Vec<String> = nodes.iter().map(|n| format!("http://{}", n.etcd)).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = ctl_ok(&nodes[1].etcd, &["member", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut urls: Vec<String> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["clientURLs"].as_array().cloned().unwrap_or_default())
            .filter_map(|u| u.as_str().map(str::to_string))
            .collect();
        urls.sort();
        if urls == want {
            break;
        }
        assert!(Instant::now() < deadline, "member list: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let leader_id = leader(&nodes[0].etcd).expect("a leader");
    let follower = (1..=3).find(|id| *id != leader_id).unwrap();
    let fep = nodes[follower - 1].etcd.clone();
    // A watcher and a kept-alive lease on a follower.
    let mut c = client(&fep).await;
    let mut watch = c
        .watch(
            "k/",
            Some(WatchOptions::new().with_prefix().with_start_revision(first)),
        )
        .await
        .unwrap();
    assert!(watch.message().await.unwrap().unwrap().created());
    let lease = c.lease_grant(3, None).await.unwrap().id();
    c.put("leased", "x", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    // Kept alive as etcd's clients do: a stream that fails (no leader for a moment) is opened
    // again.
    let keep_ep = fep.clone();
    let keep = tokio::spawn(async move {
        loop {
            if let Ok(mut c) = etcd_client::Client::connect([keep_ep.as_str()], None).await {
                if let Ok((mut keeper, mut acks)) = c.lease_keep_alive(lease).await {
                    while keeper.keep_alive().await.is_ok() {
                        match acks.message().await {
                            Ok(Some(ack)) if ack.ttl() > 0 => {}
                            _ => break,
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    nodes[leader_id - 1].strom.kill9();
    for i in 0..10 {
        let key = format!("k/after-{i}");
        acked.push((key.clone(), put_until_acked(&fep, &key, "v").await));
    }
    // The lease outlived its TTL across the failover.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut c2 = client(&fep).await;
    assert_eq!(
        c2.get("leased", None).await.unwrap().count(),
        1,
        "a kept-alive lease expired"
    );
    keep.abort();

    // The watcher saw every revision from `first` on, once, in order.
    let top = acked.iter().map(|(_, r)| *r).max().unwrap();
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < top {
        let resp = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("watch events")
            .unwrap()
            .unwrap();
        seen.extend(resp.events().iter().map(|e| e.kv().unwrap().mod_revision()));
    }
    let mut want: Vec<i64> = acked.iter().map(|(_, r)| *r).collect();
    want.sort();
    assert_eq!(seen, want, "k/ revisions, each once, in order");

    // The killed node comes back and serves every acknowledged write.
    nodes[leader_id - 1].strom.restart();
    wait_listening(&nodes[leader_id - 1].etcd);
    let deadline = Instant::now() + Duration::from_secs(30);
    let back = nodes[leader_id - 1].etcd.clone();
    loop {
        let count = match etcd_client::Client::connect([back.as_str()], None).await {
            Ok(mut c) => c
                .get(
                    "k/",
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await
                .map(|r| r.count())
                .unwrap_or(0),
            Err(_) => 0,
        };
        if count == acked.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node shows {count} of {} keys",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_quorum_answers_no_linearizable_read() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(dir.path(), 3);
    put_until_acked(&nodes[0].etcd, "k", "v1").await;
    let leader_id = leader(&nodes[0].etcd).expect("a leader");
    let ep = nodes[leader_id - 1].etcd.clone();
    let mut c = client(&ep).await;
    assert_eq!(c.get("k", None).await.unwrap().kvs()[0].value(), b"v1");
    // Both followers stop: the leader still believes it leads (until check-quorum), but
    // ReadIndex needs a quorum to confirm it, so a linearizable read must not be answered.
    let followers: Vec<&Node> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 != leader_id)
        .map(|(_, n)| n)
        .collect();
    for f in &followers {
        f.strom.pause();
    }
    let read = tokio::time::timeout(Duration::from_secs(3), c.get("k", None)).await;
    assert!(
        !matches!(read, Ok(Ok(_))),
        "a linearizable read was answered without a quorum"
    );
    // A serializable read is this node's own state, answered at once.
    let local = c
        .get("k", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(local.kvs()[0].value(), b"v1");
    for f in &followers {
        f.strom.signal(libc::SIGCONT);
    }
    put_until_acked(&ep, "k", "v2").await;
}

/// Starts one more node that joins the running cluster (`--join`), serving the etcd API.
fn join_node(root: &std::path::Path, nodes: &[Node]) -> Node {
    let peers = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}@{}", i + 1, n.raft))
        .collect::<Vec<_>>()
        .join(",");
    let ports = free_ports(3);
    let raft = format!("127.0.0.1:{}", ports[0]);
    let etcd = format!("127.0.0.1:{}", ports[2]);
    let id = nodes.len() + 1;
    let join = ["--join", "true"];
    let strom = start_node(root, id, &raft, ports[1], &peers, &etcd, &join);
    wait_listening(&etcd);
    Node { strom, etcd, raft }
}

/// The base offset of the first segment of node `id`'s key-value journal log.
fn journal_log_start(root: &std::path::Path, id: usize) -> u64 {
    std::fs::read_dir(root.join(format!("node{id}/meta/kv")))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .min()
        .expect("a segment")
}

/// Serializable reads of `key` on `endpoint` until one shows `want`.
async fn wait_local_value(endpoint: &str, key: &str, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = etcd_client::Client::connect([endpoint], None).await {
            let got = c
                .get(key, Some(GetOptions::new().with_serializable()))
                .await;
            if matches!(&got, Ok(r) if r.kvs().first().map(|kv| kv.value()) == Some(want)) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{endpoint} never showed {key}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A follower down while the others compact the journal behind their snapshots comes back
/// behind every log start: no peer has the entries it lacks, so it can only catch up by
/// installing a Raft snapshot and fetching the key-value state from a peer's snapshot file.
/// It keeps that state across a restart, and every replica hashes the same at a revision.
/// A node that joins the cluster later replicates the journal as a learner the same way and
/// serves the etcd API too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_log_start_catches_up_from_a_peer_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster_with(dir.path(), 3, &["--etcd-snapshot-entries", "8"]);
    put_until_acked(&nodes[0].etcd, "early", "e").await;
    let leader_id = leader(&nodes[0].etcd).expect("a leader");
    let lagging = (1..=3).find(|id| *id != leader_id).unwrap();
    let lep = nodes[lagging - 1].etcd.clone();
    wait_local_value(&lep, "early", b"e").await;
    nodes[lagging - 1].strom.kill9();

    // 40 MiB through the leader: the journal's 16 MiB segments roll, and compaction (of the
    // key space, then of the log behind each snapshot) leaves a short log.
    let mut c = client(&nodes[leader_id - 1].etcd).await;
    let big = "x".repeat(1 << 20);
    for i in 0..40 {
        let rev = c
            .put("big", format!("{i:02}{big}"), None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        if i % 8 == 7 {
            c.compact(
                rev,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .unwrap();
        }
    }
    let last = c
        .put("late", "l", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    for id in (1..=3).filter(|id| *id != lagging) {
        assert!(
            journal_log_start(dir.path(), id) > 0,
            "node {id}'s journal log was not compacted"
        );
    }
    assert_eq!(journal_log_start(dir.path(), lagging), 0);

    nodes[lagging - 1].strom.restart();
    wait_listening(&lep);
    wait_local_value(&lep, "late", b"l").await;
    let mut lc = client(&lep).await;
    let got = lc
        .get("big", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(&got.kvs()[0].value()[..2], b"39");
    assert!(
        journal_log_start(dir.path(), lagging) > 0,
        "the lagging node's log should restart at the leader's log start"
    );
    let want = c.hash_kv(last).await.unwrap().hash();
    assert_eq!(lc.hash_kv(last).await.unwrap().hash(), want);

    // Restarted, it recovers from the snapshot it fetched plus its own log.
    nodes[lagging - 1].strom.kill9();
    nodes[lagging - 1].strom.restart();
    wait_listening(&lep);
    wait_local_value(&lep, "late", b"l").await;
    wait_local_value(&lep, "early", b"e").await;
    let mut lc = client(&lep).await;
    assert_eq!(lc.hash_kv(last).await.unwrap().hash(), want);

    let joined = join_node(dir.path(), &nodes);
    wait_local_value(&joined.etcd, "late", b"l").await;
    let mut jc = client(&joined.etcd).await;
    assert_eq!(jc.hash_kv(last).await.unwrap().hash(), want);
    let put = put_until_acked(&joined.etcd, "from-4", "x").await;
    assert!(put > last);
    let got = jc.get("from-4", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"x");
    let out = ctl_ok(&joined.etcd, &["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let me = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["clientURLs"][0] == format!("http://{}", joined.etcd))
        .unwrap_or_else(|| panic!("the joined node is not listed: {out}"));
    assert_eq!(me["isLearner"], true, "{out}");
    assert_eq!(v["members"].as_array().unwrap().len(), 4, "{out}");
}
