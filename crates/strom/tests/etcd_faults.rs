//! The etcd API under faults, on 3 real nodes whose Raft traffic runs through cuttable
//! proxies: clients on every node put, read and compare-and-set a few keys while the
//! journal's leader is SIGKILLed and restarted, SIGSTOPped and cut off from its peers. The
//! recorded history must be linearizable per key (an op that timed out or failed may or may
//! not have happened), and a watcher that reconnects to whichever node answers, resuming
//! after the last revision it saw, must see every acknowledged write once, in order.

mod common;
#[path = "common/linearizable.rs"]
mod linearizable;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::etcd::{leader, put_until_acked, start_node, wait_listening};
use common::proxy::Mesh;
use common::{free_ports, Strom};
use etcd_client::{Client, Compare, CompareOp, EventType, Txn, TxnOp, WatchOptions};
use linearizable::{Call, Op, Outcome, Value};

const NODES: usize = 3;
const KEYS: usize = 3;
const CLIENTS: usize = 5;
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Load between faults.
const CALM: Duration = Duration::from_secs(3);
/// How long a fault lasts.
const FAULT: Duration = Duration::from_secs(3);

struct Cluster {
    nodes: Vec<Strom>,
    etcd: Vec<String>,
    mesh: Mesh,
}

fn start(root: &std::path::Path) -> Cluster {
    let ports = free_ports(3 * NODES);
    let raft_ports = &ports[..NODES];
    let mesh = Mesh::start(raft_ports);
    let etcd: Vec<String> = (0..NODES)
        .map(|i| format!("127.0.0.1:{}", ports[2 * NODES + i]))
        .collect();
    let nodes = (0..NODES)
        .map(|i| {
            let raft = format!("127.0.0.1:{}", raft_ports[i]);
            let peers = mesh.peers_of(i, raft_ports);
            // Each node's --peers names proxies of its own, so the id cannot come from it.
            let id = ["--cluster-id", "etcd-faults"];
            start_node(root, i + 1, &raft, ports[NODES + i], &peers, &etcd[i], &id)
        })
        .collect();
    for e in &etcd {
        wait_listening(e);
    }
    Cluster { nodes, etcd, mesh }
}

/// The history of all clients, and the revisions of the writes they saw acknowledged.
#[derive(Default)]
struct Record {
    calls: BTreeMap<String, Vec<Call>>,
    acked_revisions: Vec<i64>,
}

fn nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// A tiny deterministic generator: the op mix, not its randomness, is what matters.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One op against `c`; its outcome (Unknown when it timed out or failed) and, for an
/// acknowledged write, its revision.
async fn run_op(c: &mut Client, key: &str, op: &Op) -> (Outcome, Option<i64>) {
    let result = tokio::time::timeout(OP_TIMEOUT, async {
        match op {
            Op::Get => {
                let r = c.get(key, None).await?;
                let value = r
                    .kvs()
                    .first()
                    .map(|kv| kv.value_str().unwrap().to_string());
                Ok::<_, etcd_client::Error>((Outcome::Get(value), None))
            }
            Op::Put(v) => {
                let r = c.put(key, v.as_str(), None).await?;
                Ok((Outcome::Put, r.header().map(|h| h.revision())))
            }
            Op::Delete => {
                let r = c.delete(key, None).await?;
                Ok((Outcome::Delete, r.header().map(|h| h.revision())))
            }
            Op::Cas { expect, new } => {
                let compare = match expect {
                    Some(v) => Compare::value(key, CompareOp::Equal, v.as_str()),
                    None => Compare::version(key, CompareOp::Equal, 0),
                };
                let txn =
                    Txn::new()
                        .when([compare])
                        .and_then([TxnOp::put(key, new.as_str(), None)]);
                let r = c.txn(txn).await?;
                let rev = r.succeeded().then(|| r.header().map(|h| h.revision()));
                Ok((Outcome::Cas(r.succeeded()), rev.flatten()))
            }
        }
    })
    .await;
    match result {
        Ok(Ok(done)) => done,
        _ => (Outcome::Unknown, None),
    }
}

async fn client_loop(
    id: usize,
    endpoints: Vec<String>,
    since: Instant,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1));
    let mut seen: Vec<Value> = vec![None; KEYS];
    let mut n = 0;
    let mut client: Option<Client> = None;
    let mut node = id % endpoints.len();
    while !stop.load(Ordering::Acquire) {
        let Some(c) = client.as_mut() else {
            let connect = Client::connect([endpoints[node].as_str()], None);
            client = tokio::time::timeout(OP_TIMEOUT, connect)
                .await
                .ok()
                .and_then(Result::ok);
            if client.is_none() {
                node = (node + 1) % endpoints.len();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        let k = rng.below(KEYS as u64) as usize;
        let key = format!("r{k}");
        n += 1;
        let op = match rng.below(10) {
            0..=3 => Op::Get,
            4..=6 => Op::Put(format!("c{id}-{n}")),
            _ => Op::Cas {
                expect: seen[k].clone(),
                new: format!("c{id}-{n}"),
            },
        };
        let call = nanos(since);
        let (outcome, revision) = run_op(c, &key, &op).await;
        let ret = if outcome == Outcome::Unknown {
            u64::MAX
        } else {
            nanos(since)
        };
        match (&op, &outcome) {
            (Op::Get, Outcome::Get(v)) => seen[k] = v.clone(),
            (Op::Put(v), Outcome::Put) => seen[k] = Some(v.clone()),
            (Op::Cas { new, .. }, Outcome::Cas(true)) => seen[k] = Some(new.clone()),
            (_, Outcome::Unknown) => {
                // Maybe the node is gone: the next op goes through another.
                client = None;
                node = (node + 1) % endpoints.len();
            }
            _ => {}
        }
        {
            let mut r = record.lock().unwrap();
            r.acked_revisions.extend(revision);
            r.calls.entry(key).or_default().push(Call {
                client: id,
                op,
                call,
                ret,
                outcome,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Watches `r` from revision `from` on, reconnecting to the next node whenever the stream
/// fails and resuming after the last revision seen; every write revision it saw goes to
/// `seen`, in order.
async fn watch_loop(
    endpoints: Vec<String>,
    from: i64,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<i64>>>,
) {
    let mut node = 0;
    while !stop.load(Ordering::Acquire) {
        node = (node + 1) % endpoints.len();
        let last = seen.lock().unwrap().last().copied();
        let next = last.map_or(from, |r| r + 1);
        let Ok(Ok(mut c)) = tokio::time::timeout(
            OP_TIMEOUT,
            Client::connect([endpoints[node].as_str()], None),
        )
        .await
        else {
            continue;
        };
        let opts = WatchOptions::new().with_prefix().with_start_revision(next);
        let Ok(Ok(mut stream)) = tokio::time::timeout(OP_TIMEOUT, c.watch("r", Some(opts))).await
        else {
            continue;
        };
        loop {
            // A stream that stays silent for long is on a cut-off node: move on.
            let msg = tokio::time::timeout(Duration::from_secs(3), stream.message()).await;
            let Ok(Ok(Some(resp))) = msg else { break };
            assert!(!resp.canceled(), "watch canceled: {}", resp.cancel_reason());
            {
                let mut seen = seen.lock().unwrap();
                for e in resp.events() {
                    assert!(matches!(e.event_type(), EventType::Put | EventType::Delete));
                    let rev = e.kv().unwrap().mod_revision();
                    // Several keys may change in one revision only through a txn; ours touch one.
                    assert!(
                        seen.last().is_none_or(|last| rev > *last),
                        "watch went back or repeated: {rev} after {:?}",
                        seen.last()
                    );
                    seen.push(rev);
                }
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_stay_linearizable_under_kills_pauses_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path());
    let first = put_until_acked(&cluster.etcd[0], "start", "x").await;
    let since = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(Record::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client_loop(
                id,
                cluster.etcd.clone(),
                since,
                stop.clone(),
                record.clone(),
            ))
        })
        .collect();
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watched = Arc::new(Mutex::new(Vec::new()));
    let watcher = tokio::spawn(watch_loop(
        cluster.etcd.clone(),
        first + 1,
        watch_stop.clone(),
        watched.clone(),
    ));

    let etcd = cluster.etcd.clone();
    let current_leader = move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(id) = etcd.iter().find_map(|e| leader(e)) {
                return id;
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    tokio::task::block_in_place(|| {
        std::thread::sleep(CALM);
        let victim = current_leader();
        eprintln!("SIGKILL node {victim}");
        cluster.nodes[victim - 1].kill9();
        std::thread::sleep(FAULT);
        cluster.nodes[victim - 1].restart();
        std::thread::sleep(CALM);
        let victim = current_leader();
        eprintln!("SIGSTOP node {victim}");
        cluster.nodes[victim - 1].signal(libc::SIGSTOP);
        std::thread::sleep(FAULT);
        cluster.nodes[victim - 1].signal(libc::SIGCONT);
        std::thread::sleep(CALM);
        let victim = current_leader();
        eprintln!("cut node {victim} off");
        cluster.mesh.isolate(victim - 1);
        std::thread::sleep(FAULT);
        cluster.mesh.heal();
        std::thread::sleep(CALM);
    });
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.unwrap();
    }
    // The watcher catches up with a last write, then stops.
    let top = put_until_acked(&cluster.etcd[0], "r-end", "x").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !watched.lock().unwrap().contains(&top) {
        assert!(
            Instant::now() < deadline,
            "the watch did not reach revision {top}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch_stop.store(true, Ordering::Release);
    tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watcher stops")
        .unwrap();
    let watched = std::mem::take(&mut *watched.lock().unwrap());

    let record = std::mem::take(&mut *record.lock().unwrap());
    let total: usize = record.calls.values().map(Vec::len).sum();
    let unknown = record
        .calls
        .values()
        .flatten()
        .filter(|c| c.outcome == Outcome::Unknown)
        .count();
    eprintln!("{total} ops, {unknown} indeterminate");
    assert!(total > 500, "too few ops to mean anything: {total}");
    for (key, calls) in &record.calls {
        if let Err(e) = linearizable::check(calls) {
            panic!("{key}: not linearizable: {e}");
        }
    }
    // Every acknowledged write is in the watch, once; the watch has nothing else but the
    // writes whose acknowledgement was lost.
    let watched_set: std::collections::BTreeSet<i64> = watched.iter().copied().collect();
    assert_eq!(watched_set.len(), watched.len(), "a revision twice");
    for rev in &record.acked_revisions {
        assert!(
            watched_set.contains(rev),
            "acknowledged revision {rev} never watched"
        );
    }
}
