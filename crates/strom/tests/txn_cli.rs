//! `strom txn list|describe` and the last stable offset in `strom group describe`, run as the
//! real binary against a real broker while a librdkafka transactional producer holds a
//! transaction open, then commits it; `txn list` on a 3-node cluster gathers the transactions
//! of every coordinator.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{cluster_cli, TestCluster};
use common::{cli, Strom};
use futures::executor::block_on;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// For every blocking transactional call (init, commit).
const TXN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the coordinator may take to complete a commit (markers are written after EndTxn).
const SETTLE: Duration = Duration::from_secs(10);

/// A transactional producer, initialised, with a transaction begun.
fn begun(bootstrap: &str, id: &str) -> FutureProducer {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "1")
        .create()
        .expect("transactional producer");
    p.init_transactions(TXN_TIMEOUT)
        .unwrap_or_else(|e| panic!("init_transactions({id}): {e}"));
    p.begin_transaction().expect("begin_transaction");
    p
}

/// Sends one record per entry of `partitions` to `topic` and waits until all are acknowledged.
fn send(p: &FutureProducer, topic: &str, partitions: &[i32]) {
    let futures: Vec<_> = partitions
        .iter()
        .map(|&partition| {
            p.send_result(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key("k")
                    .payload("v"),
            )
            .unwrap_or_else(|(e, _)| panic!("send to {topic}/{partition}: {e}"))
        })
        .collect();
    p.flush(TXN_TIMEOUT).expect("flush");
    for f in futures {
        block_on(f)
            .expect("delivery canceled")
            .unwrap_or_else(|(e, _)| panic!("not acknowledged: {e}"));
    }
}

/// The `txn list` row of `id` as (producer id, state, coordinator), if listed.
fn listed(out: &str, id: &str) -> Option<(i64, String, i32)> {
    out.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 4 && f[0] == id).then(|| {
            (
                f[1].parse().expect("producer id"),
                f[2].to_string(),
                f[3].parse().expect("coordinator"),
            )
        })
    })
}

/// The value of `Key: value` in `txn describe` output (fields are tab-separated).
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .flat_map(|l| l.split('\t'))
        .find_map(|f| f.strip_prefix(key)?.strip_prefix(": "))
}

/// `strom txn describe ID`, which must succeed.
fn describe(b: &str, id: &str) -> String {
    let (ok, out, err) = cli(&["txn", "describe", id, "-b", b], "");
    assert!(ok, "txn describe {id}: {err}");
    out
}

/// Runs `strom txn describe ID` until it reports `state` (or panics after [`SETTLE`]).
fn await_state(b: &str, id: &str, state: &str) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let out = describe(b, id);
        if field(&out, "State") == Some(state) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {state}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn txn_list_and_describe_follow_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let b = strom.addr();
    let (ok, _, err) = cli(
        &["topic", "create", "tc", "--partitions", "3", "-b", &b],
        "",
    );
    assert!(ok, "{err}");

    let p = begun(&b, "cli-txn-a");
    send(&p, "tc", &[0, 2]);

    let (ok, out, err) = cli(&["txn", "list", "-b", &b], "");
    assert!(ok, "{err}");
    assert!(out.starts_with("TRANSACTIONAL-ID"), "{out}");
    let (pid, state, _) = listed(&out, "cli-txn-a").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(state, "Ongoing", "{out}");
    assert!(pid >= 0, "{out}");
    let (ok, out, err) = cli(&["txn", "list", "--state", "ongoing", "-b", &b], "");
    assert!(ok, "{err}");
    assert!(listed(&out, "cli-txn-a").is_some(), "{out}");
    let (ok, out, err) = cli(&["txn", "list", "--state", "CompleteCommit", "-b", &b], "");
    assert!(ok, "{err}");
    assert!(listed(&out, "cli-txn-a").is_none(), "{out}");
    let pid_text = pid.to_string();
    let (ok, out, err) = cli(&["txn", "list", "--producer-id", &pid_text, "-b", &b], "");
    assert!(ok && listed(&out, "cli-txn-a").is_some(), "{out}{err}");

    let out = describe(&b, "cli-txn-a");
    assert_eq!(field(&out, "Transaction"), Some("cli-txn-a"), "{out}");
    assert_eq!(field(&out, "State"), Some("Ongoing"), "{out}");
    assert_eq!(field(&out, "ProducerId"), Some(pid_text.as_str()), "{out}");
    assert_eq!(field(&out, "ProducerEpoch"), Some("0"), "{out}");
    // librdkafka's default transaction.timeout.ms.
    assert_eq!(field(&out, "Timeout"), Some("60000 ms"), "{out}");
    assert_ne!(field(&out, "Age"), Some("-"), "{out}");
    assert!(
        field(&out, "Started").is_some_and(|s| s.ends_with('Z')),
        "{out}"
    );
    assert_eq!(field(&out, "Partitions"), Some("2"), "{out}");
    let partitions: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with("tc "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(partitions, vec![vec!["tc", "0"], vec!["tc", "2"]], "{out}");

    p.commit_transaction(TXN_TIMEOUT).expect("commit");
    let out = await_state(&b, "cli-txn-a", "CompleteCommit");
    assert_eq!(field(&out, "ProducerId"), Some(pid_text.as_str()), "{out}");
    let (ok, out, err) = cli(&["txn", "list", "--state", "CompleteCommit", "-b", &b], "");
    assert!(ok, "{err}");
    assert_eq!(
        listed(&out, "cli-txn-a").map(|(_, s, _)| s).as_deref(),
        Some("CompleteCommit"),
        "{out}"
    );
    let (ok, out, err) = cli(&["txn", "list", "--state", "Ongoing", "-b", &b], "");
    assert!(ok && listed(&out, "cli-txn-a").is_none(), "{out}{err}");

    // An id no producer ever used: a clear error, at once, and a failing exit status.
    let started = Instant::now();
    let (ok, out, err) = cli(&["txn", "describe", "nosuchid", "-b", &b], "");
    assert!(!ok, "describing an unknown id succeeded: {out}");
    assert!(
        err.contains("transactional id nosuchid not found")
            && err.contains("TRANSACTIONAL_ID_NOT_FOUND"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {started:?}"
    );

    let (ok, _, err) = cli(&["txn", "list", "--state", "Running", "-b", &b], "");
    assert!(!ok && err.contains("Ongoing"), "{err}");
}

/// The `group describe` row of `topic`/`partition` as (committed, end, lso, lag, lso lag).
fn group_row(out: &str, topic: &str, partition: i32) -> (i64, i64, i64, i64, i64) {
    let line = out
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 7 && f[0] == topic && f[1] == partition.to_string()
        })
        .unwrap_or_else(|| panic!("no row for {topic}/{partition}: {out}"));
    let n: Vec<i64> = line
        .split_whitespace()
        .skip(2)
        .take(5)
        .map(|f| f.parse().unwrap_or_else(|_| panic!("{line}")))
        .collect();
    (n[0], n[1], n[2], n[3], n[4])
}

#[test]
fn group_describe_shows_the_lso_held_back_by_an_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let b = strom.addr();
    let (ok, _, err) = cli(
        &["topic", "create", "lso", "--partitions", "1", "-b", &b],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["produce", "lso", "-b", &b], "a\nb\nc\nd\ne\n");
    assert!(ok, "{err}");
    // The group has consumed everything there is: offset 5.
    let (ok, _, err) = cli(
        &[
            "group",
            "reset-offsets",
            "g-lso",
            "--topic",
            "lso",
            "--to-latest",
            "--execute",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok, "{err}");

    let p = begun(&b, "cli-txn-lso");
    send(&p, "lso", &[0, 0, 0]);
    let (ok, out, err) = cli(&["group", "describe", "g-lso", "-b", &b], "");
    assert!(ok, "{err}");
    assert!(out.contains("LAST-STABLE-OFFSET"), "{out}");
    // Three uncommitted records: read_uncommitted consumers lag by 3, read_committed ones are
    // held at the LSO and have nothing to read.
    assert_eq!(group_row(&out, "lso", 0), (5, 8, 5, 3, 0), "{out}");

    p.commit_transaction(TXN_TIMEOUT).expect("commit");
    // The commit marker takes offset 8; then the LSO is the end again.
    let deadline = Instant::now() + SETTLE;
    loop {
        let (ok, out, err) = cli(&["group", "describe", "g-lso", "-b", &b], "");
        assert!(ok, "{err}");
        let row = group_row(&out, "lso", 0);
        if row == (5, 9, 9, 4, 4) {
            break;
        }
        assert!(Instant::now() < deadline, "LSO never caught up: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn txn_list_asks_every_broker_of_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    let one = cluster.nodes[0].addr();
    cluster.wait_for_brokers(&one, 3, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, _, err) = cli(
            &[
                "topic",
                "create",
                "tcl",
                "--partitions",
                "3",
                "--replication-factor",
                "3",
                "-b",
                &bootstrap,
            ],
            "",
        );
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "create topic: {err}");
        std::thread::sleep(Duration::from_millis(300));
    }
    cluster.wait_for_leaders(&one, "tcl", 3, 3, &[], Duration::from_secs(20));

    // `__transaction_state` comes with the first transaction, its partitions led by whichever
    // replica won their first elections, often all the same node. Leadership is handed to the
    // preferred replicas, which placement spreads over the nodes.
    drop(begun(&bootstrap, "cli-cluster-warm-up"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leaders = cluster.wait_for_leaders(
            &one,
            "__transaction_state",
            3,
            1,
            &[],
            Duration::from_secs(30),
        );
        if leaders
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaders did not spread: {leaders:?}"
        );
        cluster_cli(cluster.raft_ports[0], &["rebalance-leaders"]);
        std::thread::sleep(Duration::from_millis(500));
    }

    // Transactions until two nodes coordinate some (the ids hash over `__transaction_state`'s
    // partitions, whose leaders are now spread over the nodes).
    let mut producers = Vec::new();
    let mut coordinators = std::collections::BTreeMap::new();
    for i in 0..12 {
        let id = format!("cli-cluster-{i}");
        let p = begun(&bootstrap, &id);
        send(&p, "tcl", &[i % 3]);
        let out = describe(&one, &id);
        assert_eq!(field(&out, "State"), Some("Ongoing"), "{out}");
        let coordinator: i32 = field(&out, "Coordinator")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        coordinators.insert(id, coordinator);
        producers.push(p);
        let nodes: std::collections::BTreeSet<i32> = coordinators.values().copied().collect();
        if nodes.len() >= 2 && coordinators.len() >= 3 {
            break;
        }
    }
    let distinct: std::collections::BTreeSet<i32> = coordinators.values().copied().collect();
    assert!(
        distinct.len() >= 2,
        "one coordinator for all: {coordinators:?}"
    );

    // Asked through a single node, the list holds every coordinator's transactions.
    let (ok, out, err) = cli(&["txn", "list", "-b", &one], "");
    assert!(ok, "{err}");
    for (id, coordinator) in &coordinators {
        let (_, state, listed_by) = listed(&out, id).unwrap_or_else(|| panic!("{id}: {out}"));
        assert_eq!(
            (state.as_str(), listed_by),
            ("Ongoing", *coordinator),
            "{out}"
        );
    }
}
