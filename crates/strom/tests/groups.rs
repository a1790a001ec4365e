//! Consumer groups end to end: librdkafka consumers share a topic's partitions, move them when
//! members come and go, and resume from committed offsets after a broker restart; raw-wire
//! members that vanish mid-rebalance do not wedge the group.

mod common;
#[path = "groups/wire_members.rs"]
mod wire_members;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{rdk, Strom};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const GROUP: &str = "billing";

/// (member, partition, offset, value) of every record any member consumed.
type Seen = Arc<Mutex<Vec<(String, i32, i64, String)>>>;

/// A consumer in its own thread, committing each record synchronously before the next, so a
/// partition that moves resumes exactly after the last record processed.
struct Member {
    name: String,
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(addr: &str, name: &str, seen: &Seen, assignor: &str) -> Member {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("group.id", GROUP)
            // The broker only relays the client-side assignor's protocol and assignments.
            .set("partition.assignment.strategy", assignor)
            .set("client.id", name)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[TOPIC]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        let (s, a, seen, me) = (
            stop.clone(),
            assigned.clone(),
            seen.clone(),
            name.to_string(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
                        seen.lock().unwrap().push((
                            me.clone(),
                            m.partition(),
                            m.offset(),
                            value.into(),
                        ));
                        if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                            eprintln!("{me}: commit failed: {e}");
                        }
                    }
                    Some(Err(e)) => eprintln!("{me}: {e}"),
                    None => {}
                }
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().unwrap() = tpl.elements().iter().map(|e| e.partition()).collect();
                }
            }
            // Dropping the consumer closes it: LeaveGroup, no waiting for a session timeout.
            drop(consumer);
        });
        Member {
            name: name.into(),
            stop,
            assigned,
            thread: Some(thread),
        }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.assigned.lock().unwrap().clone()
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("member thread");
        }
    }
}

/// Waits until every member holds `PARTITIONS / members` partitions, together all of them,
/// unchanged for a second; returns each member's partitions.
fn settled(members: &[&Member]) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stable_since: Option<(Instant, Vec<BTreeSet<i32>>)> = None;
    loop {
        let now: Vec<BTreeSet<i32>> = members.iter().map(|m| m.assigned()).collect();
        let union: BTreeSet<i32> = now.iter().flatten().copied().collect();
        let even = now
            .iter()
            .all(|a| a.len() == PARTITIONS as usize / members.len());
        if even && union.len() == PARTITIONS as usize {
            match &stable_since {
                Some((t, prev)) if *prev == now && t.elapsed() > Duration::from_secs(1) => {
                    return now
                }
                Some((_, prev)) if *prev == now => {}
                _ => stable_since = Some((Instant::now(), now.clone())),
            }
        } else {
            stable_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "assignment never settled: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn produce(addr: &str, prefix: &str, count: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let producer = rdk::producer(addr, &[]);
        let sends = (0..count).map(|i| {
            let value = format!("{prefix}-{i}");
            let producer = &producer;
            async move {
                let record = FutureRecord::<(), _>::to(TOPIC)
                    .partition(i as i32 % PARTITIONS)
                    .payload(&value);
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .expect("produce");
            }
        });
        futures::future::join_all(sends).await;
    });
}

/// Waits until `count` distinct values with `prefix` were consumed; returns how often each was.
fn wait_for(seen: &Seen, prefix: &str, count: usize) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut times: BTreeMap<String, usize> = BTreeMap::new();
        for (_, _, _, v) in seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.3.starts_with(&format!("{prefix}-")))
        {
            *times.entry(v.clone()).or_default() += 1;
        }
        if times.len() >= count {
            return times;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} {prefix} records consumed",
            times.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_once(times: &BTreeMap<String, usize>, what: &str) {
    let dups: Vec<_> = times.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        dups.is_empty(),
        "{what}: records consumed more than once: {dups:?}"
    );
}

#[test]
fn range_assignor_members_share_hand_over_and_resume() {
    share_hand_over_and_resume("range");
}

#[test]
fn roundrobin_assignor_members_share_hand_over_and_resume() {
    share_hand_over_and_resume("roundrobin");
}

#[test]
fn cooperative_sticky_members_share_hand_over_and_resume() {
    share_hand_over_and_resume("cooperative-sticky");
}

fn share_hand_over_and_resume(assignor: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "100"]);
    let addr = strom.addr();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(rdk::create_topic(&addr, TOPIC, PARTITIONS));
    let seen: Seen = Arc::default();

    // Three members: two partitions each, every record exactly once.
    let m: Vec<Member> = ["m0", "m1", "m2"]
        .iter()
        .map(|n| Member::start(&addr, n, &seen, assignor))
        .collect();
    let first = settled(&m.iter().collect::<Vec<_>>());
    eprintln!("assignment: {first:?}");
    produce(&addr, "p1", 600);
    assert_once(&wait_for(&seen, "p1", 600), "three members");
    let owners: BTreeMap<i32, BTreeSet<String>> =
        seen.lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut acc, r| {
                acc.entry(r.1).or_default().insert(r.0.clone());
                acc
            });
    assert!(
        owners.values().all(|o| o.len() == 1),
        "a partition was consumed by two members: {owners:?}"
    );

    // One member leaves, another joins: its partitions move, nothing is lost or repeated.
    let mut m = m.into_iter();
    let leaver = m.next().unwrap();
    let left_with = leaver.assigned();
    leaver.close();
    let mut m: Vec<Member> = m.collect();
    m.push(Member::start(&addr, "m3", &seen, assignor));
    let second = settled(&m.iter().collect::<Vec<_>>());
    eprintln!("after leave and join: {second:?} (m0 had {left_with:?})");
    assert_eq!(second[2].len(), 2, "the new member got partitions");
    produce(&addr, "p2", 600);
    assert_once(&wait_for(&seen, "p2", 600), "after the handover");
    assert_once(
        &wait_for(&seen, "p1", 600),
        "nothing re-consumed after the handover",
    );
    let names: BTreeSet<String> = m.iter().map(|x| x.name.clone()).collect();
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.3.starts_with("p2-"))
        .all(|r| names.contains(&r.0)));
    for member in m {
        member.close();
    }

    // Crash and restart: commits were fsynced before they were acknowledged, so a new member
    // resumes at the committed offsets and sees only new records.
    strom.kill9();
    strom.restart();
    produce(&addr, "p3", 60);
    let fresh: Seen = Arc::default();
    let member = Member::start(&addr, "m4", &fresh, assignor);
    assert_once(&wait_for(&fresh, "p3", 60), "after restart");
    std::thread::sleep(Duration::from_millis(500));
    let old: Vec<_> = fresh
        .lock()
        .unwrap()
        .iter()
        .filter(|r| !r.3.starts_with("p3-"))
        .cloned()
        .collect();
    assert!(
        old.is_empty(),
        "records consumed again after restart: {} e.g. {:?}",
        old.len(),
        old.first()
    );
    member.close();
}

#[test]
fn a_member_vanishing_mid_rebalance_does_not_wedge_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "100"]);
    wire_members::follower_vanishes_before_rejoining(&strom.addr());
    wire_members::leader_vanishes_before_assigning(&strom.addr());
}

/// kafka-python, an independent implementation of the group protocol and group admin APIs.
/// The interpreter comes from `STROM_PYTHON`, else the venv `scripts/test.sh` creates.
#[test]
fn kafka_python_group_members_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "300"]);
    let stdout = common::run_python("kafka_python_groups.py", &strom.addr());
    assert!(stdout.contains("kafka-python groups ok"), "{stdout}");
}

/// Issue 21's storm scenario, three rounds: three kafka-python consumers of one group polled in
/// turn from one thread. The storm was kafka-python 3.0.12 dropping a finished join and making
/// the leader rejoin (a Kafka coordinator rebalances then, and so does Strom); with that bug
/// worked around in the script, the group must settle at once every round. A 300 ms initial
/// delay is the setting under which the unpatched client stormed in every run.
#[test]
fn kafka_python_consumers_polled_in_turn_settle() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "300"]);
    let stdout = common::run_python("kafka_python_group_storm.py", &strom.addr());
    assert!(
        stdout.contains("kafka-python one-thread consumers ok"),
        "{stdout}"
    );
}
