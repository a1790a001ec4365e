//! Black-box fault test of transactions: three real `strom` processes, a topic with RF 3, and
//! transactional producers (librdkafka) committing and aborting all the time while nodes are
//! SIGKILLed and restarted and SIGSTOPped past an election timeout, so the transaction
//! coordinators and the partition leaders move mid-transaction. Afterwards a read_committed
//! consumer reads everything, and the checker demands: every record of a committed transaction
//! is there exactly once, nothing of an aborted one is, a transaction whose outcome the client
//! could not learn is wholly there or wholly absent, no record appears twice, and a
//! transaction's records keep their order within a partition.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{create, metadata_of, TestCluster};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "txfaults";
const PARTITIONS: i32 = 3;
const PRODUCERS: usize = 2;
const RECORDS_PER_TXN: usize = 6;
/// Load between faults.
const LOAD: Duration = Duration::from_secs(3);
/// How long a node stays down or stopped: well past an election timeout.
const FAULT: Duration = Duration::from_secs(4);
/// Short, so a transaction orphaned by a fault is aborted by its coordinator soon.
const TXN_TIMEOUT_MS: &str = "10000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
    /// The client could not learn it (a commit that timed out, a producer that failed).
    Uncertain,
}

#[derive(Debug)]
struct Txn {
    name: String,
    /// (partition, value) in send order.
    records: Vec<(i32, String)>,
    outcome: Outcome,
}

fn producer(bootstrap: &str, txn_id: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", txn_id)
        .set("transaction.timeout.ms", TXN_TIMEOUT_MS)
        .set("message.timeout.ms", TXN_TIMEOUT_MS)
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

/// A producer that finished `init_transactions`, retrying (with a fresh client) while the
/// cluster is between coordinators; `None` once `stop` is set.
fn ready_producer(bootstrap: &str, txn_id: &str, stop: &AtomicBool) -> Option<FutureProducer> {
    while !stop.load(Ordering::Relaxed) {
        let p = producer(bootstrap, txn_id);
        match p.init_transactions(Duration::from_secs(15)) {
            Ok(()) => return Some(p),
            Err(e) => eprintln!("{txn_id}: init_transactions: {e}"),
        }
    }
    None
}

/// Runs transactions until `stop`: three of four commit, the fourth aborts. Any failure ends
/// the transaction as the application would (abort if the client allows it, otherwise a new
/// producer, whose init fences the old one and ends its transaction).
fn run_producer(bootstrap: String, txn_id: String, stop: Arc<AtomicBool>) -> Vec<Txn> {
    let mut history = Vec::new();
    let Some(mut p) = ready_producer(&bootstrap, &txn_id, &stop) else {
        return history;
    };
    let mut seq = 0usize;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        if let Err(e) = p.begin_transaction() {
            eprintln!("{txn_id}: begin: {e}");
            match ready_producer(&bootstrap, &txn_id, &stop) {
                Some(fresh) => p = fresh,
                None => break,
            }
            continue;
        }
        let name = format!("{txn_id}-{seq}");
        let mut records = Vec::with_capacity(RECORDS_PER_TXN);
        let mut sent_all = true;
        for i in 0..RECORDS_PER_TXN {
            let partition = ((seq + i) % PARTITIONS as usize) as i32;
            let value = format!("{name}-{i}");
            let record = FutureRecord::to(TOPIC)
                .partition(partition)
                .key(&name)
                .payload(&value);
            match p.send_result(record) {
                // Delivery is checked by the commit: it fails if any send did.
                Ok(_delivery) => records.push((partition, value)),
                Err((e, _)) => {
                    eprintln!("{name}: send: {e}");
                    sent_all = false;
                    break;
                }
            }
        }
        let commit = sent_all && !seq.is_multiple_of(4);
        let ended = if commit {
            p.commit_transaction(Duration::from_secs(20))
                .map(|()| Outcome::Committed)
        } else {
            p.abort_transaction(Duration::from_secs(20))
                .map(|()| Outcome::Aborted)
        };
        let outcome = match ended {
            Ok(o) => o,
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                match p.abort_transaction(Duration::from_secs(20)) {
                    Ok(()) => Outcome::Aborted,
                    Err(e) => {
                        eprintln!("{name}: abort after an abortable error: {e}");
                        Outcome::Uncertain
                    }
                }
            }
            Err(e) => {
                eprintln!("{name}: end: {e}");
                Outcome::Uncertain
            }
        };
        if outcome == Outcome::Uncertain {
            match ready_producer(&bootstrap, &txn_id, &stop) {
                Some(fresh) => p = fresh,
                None => {
                    history.push(Txn {
                        name,
                        records,
                        outcome,
                    });
                    break;
                }
            }
        }
        history.push(Txn {
            name,
            records,
            outcome,
        });
    }
    history
}

/// The node coordinating `txn_id`: the leader of its partition of `__transaction_state`
/// (the FNV-1a hash of the id over the topic's 4 partitions, as the broker places it).
fn coordinator_of(bootstrap: &str, txn_id: &str) -> Option<i32> {
    let mut h: u32 = 0x811c_9dc5;
    for b in txn_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let partitions = metadata_of(bootstrap, "__transaction_state", Duration::from_secs(3))?;
    let p = partitions.get(h as usize % partitions.len().max(1))?;
    (p.leader > 0).then_some(p.leader)
}

/// Every partition's read_committed end (the last stable offset) and high watermark.
fn ends(bootstrap: &str) -> Option<Vec<(i64, i64)>> {
    let committed = reader(bootstrap, "read_committed");
    let uncommitted = reader(bootstrap, "read_uncommitted");
    (0..PARTITIONS)
        .map(|p| {
            let t = Duration::from_secs(3);
            let (_, lso) = committed.fetch_watermarks(TOPIC, p, t).ok()?;
            let (_, hw) = uncommitted.fetch_watermarks(TOPIC, p, t).ok()?;
            Some((lso, hw))
        })
        .collect()
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txfaults-checker")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer")
}

/// Everything read_committed below each partition's end: (partition, offset, value).
fn read_committed(bootstrap: &str, ends: &[i64]) -> Vec<(i32, i64, String)> {
    let c = reader(bootstrap, "read_committed");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |c: &BaseConsumer| {
        let pos = c.position().expect("position");
        (0..PARTITIONS).all(|p| {
            let at = pos
                .find_partition(TOPIC, p)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(0);
            at >= ends[p as usize]
        })
    };
    while Instant::now() < deadline && !done(&c) {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => eprintln!("checker read: {e}"),
            None => {}
        }
    }
    assert!(done(&c), "the read_committed reader did not reach {ends:?}");
    out
}

/// The checker: the anomalies found, empty when the history is valid.
fn check(history: &[Txn], read: &[(i32, i64, String)]) -> Vec<String> {
    let mut anomalies = Vec::new();
    let mut seen: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for (p, o, v) in read {
        seen.entry(v.as_str()).or_default().push((*p, *o));
    }
    let mut known = 0;
    for txn in history {
        known += txn.records.len();
        let present: Vec<bool> = txn
            .records
            .iter()
            .map(|(_, v)| seen.contains_key(v.as_str()))
            .collect();
        let count = present.iter().filter(|x| **x).count();
        match txn.outcome {
            Outcome::Committed if count != txn.records.len() => anomalies.push(format!(
                "lost: committed {} has {count} of {} records",
                txn.name,
                txn.records.len()
            )),
            Outcome::Aborted if count > 0 => anomalies.push(format!(
                "aborted {} visible: {count} of its records read committed",
                txn.name
            )),
            Outcome::Uncertain if count != 0 && count != txn.records.len() => {
                anomalies.push(format!(
                    "torn: {} has {count} of {} records",
                    txn.name,
                    txn.records.len()
                ))
            }
            _ => {}
        }
        // Order within the transaction, per partition.
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, value) in &txn.records {
            let Some(at) = seen.get(value.as_str()) else {
                continue;
            };
            if at.iter().any(|(p, _)| p != partition) {
                anomalies.push(format!("{value} read from another partition: {at:?}"));
            }
            let offset = at[0].1;
            if let Some(prev) = last.insert(*partition, offset) {
                if offset <= prev {
                    anomalies.push(format!("{value} at {offset} after {prev}: reordered"));
                }
            }
        }
    }
    for (v, at) in &seen {
        if at.len() > 1 {
            anomalies.push(format!("duplicate: {v} at {at:?}"));
        }
    }
    let sent: std::collections::HashSet<&str> = history
        .iter()
        .flat_map(|t| t.records.iter().map(|(_, v)| v.as_str()))
        .collect();
    for v in seen.keys() {
        if !sent.contains(v) {
            anomalies.push(format!("{v} read but never sent"));
        }
    }
    eprintln!(
        "checker: {} transactions ({} committed, {} aborted, {} uncertain), {known} records sent, {} read committed",
        history.len(),
        history.iter().filter(|t| t.outcome == Outcome::Committed).count(),
        history.iter().filter(|t| t.outcome == Outcome::Aborted).count(),
        history.iter().filter(|t| t.outcome == Outcome::Uncertain).count(),
        read.len()
    );
    anomalies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_stay_atomic_while_coordinators_and_leaders_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(dir.path(), 3, &[]);
    let bootstrap = cluster.bootstrap();
    cluster.wait_for_brokers(&bootstrap, 3, Duration::from_secs(30));
    create(&bootstrap, TOPIC, PARTITIONS, 3).await;
    cluster.wait_for_leaders(&bootstrap, TOPIC, 3, 3, &[], Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let histories = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let (bootstrap, stop, histories) =
                (bootstrap.clone(), Arc::clone(&stop), Arc::clone(&histories));
            std::thread::spawn(move || {
                let h = run_producer(bootstrap, format!("txf-{i}"), stop);
                histories.lock().unwrap().extend(h);
            })
        })
        .collect();
    tokio::task::block_in_place(|| {
        // The coordinators of the producers' ids first, then whichever node comes next.
        std::thread::sleep(LOAD);
        let victim = coordinator_of(&bootstrap, "txf-0").unwrap_or(1);
        eprintln!("fault: SIGKILL node {victim}, txf-0's coordinator");
        cluster.node(victim).kill9();
        std::thread::sleep(FAULT);
        cluster.node(victim).restart();
        std::thread::sleep(LOAD);
        let victim = coordinator_of(&bootstrap, "txf-1").unwrap_or(2);
        eprintln!("fault: SIGSTOP node {victim}, txf-1's coordinator");
        cluster.node(victim).pause();
        std::thread::sleep(FAULT);
        cluster.node(victim).signal(libc::SIGCONT);
        std::thread::sleep(LOAD);
        let victim = victim % 3 + 1;
        eprintln!("fault: SIGKILL node {victim}");
        cluster.node(victim).kill9();
        std::thread::sleep(FAULT);
        cluster.node(victim).restart();
        std::thread::sleep(LOAD);
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("producer thread");
        }
        cluster.wait_converged(&[1, 2, 3], TOPIC, 3, &[], Duration::from_secs(60));
        // Transactions the faults orphaned end by their coordinators' timeout.
        let deadline = Instant::now() + Duration::from_secs(60);
        let stable = loop {
            let e = ends(&bootstrap);
            if let Some(e) = e.as_ref().filter(|e| e.iter().all(|(lso, hw)| lso == hw)) {
                break e.iter().map(|(lso, _)| *lso).collect::<Vec<_>>();
            }
            assert!(
                Instant::now() < deadline,
                "transactions still open a minute after the load: {e:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let read = read_committed(&bootstrap, &stable);
        let history = histories.lock().unwrap();
        assert!(
            history
                .iter()
                .filter(|t| t.outcome == Outcome::Committed)
                .count()
                >= 10,
            "too few transactions committed to mean anything: {}",
            history.len()
        );
        let anomalies = check(&history, &read);
        assert!(anomalies.is_empty(), "anomalies: {anomalies:#?}");
    });
}
