//! Black-box fault test: three real `strom` processes on loopback, Raft traffic through
//! fault-injecting proxies (one per ordered pair of nodes). An idempotent acks=all producer and a
//! consumer run the whole time while a leader is SIGKILLed and restarted, a leader is SIGSTOPped
//! past an election timeout, and a leader is cut off from its peers in both directions. After
//! healing, a queue checker in the spirit of Jepsen's Kafka checker must find no lost
//! acknowledged record, no duplicate, no reordering and no offset holding two different records.
//!
//! `STROM_FAULTS_KEEP=1` keeps the nodes' data directories for a post-mortem;
//! `STROM_FAULTS_CLIENT_LOG=<file>` writes librdkafka's producer debug log (eos, broker, metadata,
//! msg) there.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::free_ports;
use common::proxy::Mesh;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 3;
const NODES: usize = 3;
/// One record every `SEND_EVERY` (round-robin over the partitions): 200 records/s.
const SEND_EVERY: Duration = Duration::from_millis(5);
/// Load between faults.
const LOAD: Duration = Duration::from_secs(3);
/// A bound no healthy run comes near; only a hung client waits this long.
const TEST_LIMIT: Duration = Duration::from_secs(300);
/// How long a node stays stopped or cut off: well past an election timeout (10 × 100 ms ticks).
const FAULT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// History: what the clients saw.

/// One record as a consumer read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// Everything the producer and the consumers observed, the input of [`check`].
#[derive(Default, Debug)]
pub struct History {
    /// Values handed to the producer, in send order (values are `p{partition}-{seq}`).
    pub sent: Vec<String>,
    /// Acknowledged values: value -> (partition, offset). The offset is negative when the
    /// client acknowledged without one: librdkafka's idempotent producer acks a batch whose
    /// request failed uncertainly (timeout, lost connection) once a later batch of the same
    /// partition succeeds, which proves the earlier one is in the log; its offset is unknown.
    pub acked: BTreeMap<String, (i32, i64)>,
    /// How long each acknowledgement took from the send (informational, not checked).
    pub ack_latency: Vec<Duration>,
    /// Values whose delivery definitely failed, with the error.
    pub failed: BTreeMap<String, String>,
    /// Everything the live consumer read, in the order it read it (it may re-read offsets).
    pub live_reads: Vec<Read>,
    /// The final read of every partition from offset 0 to its high watermark.
    pub final_reads: Vec<Read>,
}

/// The checker's findings; [`Verdict::is_valid`] when every anomaly list is empty.
#[derive(Default, Debug)]
pub struct Verdict {
    pub sent: usize,
    pub acked: usize,
    /// Acknowledged without an offset (see [`History::acked`]): checked for loss only.
    pub acked_without_offset: usize,
    pub failed: usize,
    /// Sent but neither acknowledged nor failed (should not happen once the producer flushed).
    pub unresolved: usize,
    pub read: usize,
    /// Acknowledged values missing from the final read.
    pub lost: Vec<String>,
    /// Values present more than once in the final read.
    pub duplicates: Vec<String>,
    /// Values in an order that contradicts the producer's send order within their partition.
    pub reordered: Vec<String>,
    /// One offset, two different records: an acknowledged (partition, offset) holding another
    /// value, or an offset read twice by the live consumer with different values, or the live
    /// consumer and the final read disagreeing about an offset.
    pub offset_conflicts: Vec<String>,
    /// The live consumer moving forward past a record that the final read has (it may rewind,
    /// e.g. after an offset reset, but never skip).
    pub skipped: Vec<String>,
    /// Values the producer never sent, or found in another partition than the one they name.
    pub unexpected: Vec<String>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.failed == 0
            && self.unresolved == 0
            && self.lost.is_empty()
            && self.duplicates.is_empty()
            && self.reordered.is_empty()
            && self.offset_conflicts.is_empty()
            && self.skipped.is_empty()
            && self.unexpected.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} acked {} (without offset {}) failed {} unresolved {} read {} lost {} \
             duplicates {} reordered {} offset conflicts {} skipped {} unexpected {}",
            self.sent,
            self.acked,
            self.acked_without_offset,
            self.failed,
            self.unresolved,
            self.read,
            self.lost.len(),
            self.duplicates.len(),
            self.reordered.len(),
            self.offset_conflicts.len(),
            self.skipped.len(),
            self.unexpected.len()
        )
    }
}

/// `p{partition}-{seq}` -> (partition, seq).
fn parse_value(value: &str) -> Option<(i32, u64)> {
    let (p, seq) = value.strip_prefix('p')?.split_once('-')?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

/// A queue checker in the spirit of Jepsen's Kafka checker, for a producer that names each
/// record `p{partition}-{seq}` (a per-partition sequence in send order) and writes it to that
/// partition explicitly.
///
/// * lost: an acknowledged value absent from the final read (acknowledged with or without an
///   offset);
/// * duplicates: a value present more than once in the final read;
/// * reordered: within one partition, a value read (or acknowledged at an offset) before a value
///   sent earlier to the same partition; with an idempotent producer the log keeps send order;
/// * offset conflicts: an acknowledged (partition, offset) that holds another value in the final
///   read, an offset the live consumer read twice with different values, or an offset where the
///   live consumer and the final read disagree (a committed offset never changes);
/// * skipped: the live consumer, moving forward in a partition, jumped over a record that the
///   final read has (rewinds are allowed);
/// * unexpected: a value never sent, or stored in another partition than the one it names.
///
/// Failed and unresolved sends are counted; they may or may not be in the log.
pub fn check(h: &History) -> Verdict {
    let mut v = Verdict {
        sent: h.sent.len(),
        acked: h.acked.len(),
        acked_without_offset: h.acked.values().filter(|(_, o)| *o < 0).count(),
        failed: h.failed.len(),
        read: h.final_reads.len(),
        ..Verdict::default()
    };
    let sent: HashSet<&str> = h.sent.iter().map(String::as_str).collect();
    v.unresolved = h
        .sent
        .iter()
        .filter(|s| !h.acked.contains_key(*s) && !h.failed.contains_key(*s))
        .count();

    // The final read, indexed by offset and by value.
    let mut at: HashMap<(i32, i64), &str> = HashMap::new();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for r in &h.final_reads {
        if let Some(other) = at.insert((r.partition, r.offset), &r.value) {
            v.offset_conflicts.push(format!(
                "final read: {}/{} holds {other} and {}",
                r.partition, r.offset, r.value
            ));
        }
        *count.entry(&r.value).or_default() += 1;
        match parse_value(&r.value) {
            Some((p, _)) if p == r.partition && sent.contains(r.value.as_str()) => {}
            _ => v
                .unexpected
                .push(format!("{} at {}/{}", r.value, r.partition, r.offset)),
        }
    }
    let mut dups: Vec<_> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(value, n)| format!("{value} x{n}"))
        .collect();
    dups.sort();
    v.duplicates = dups;

    // Lost, and acknowledged offsets holding something else.
    for (value, (p, o)) in &h.acked {
        if !count.contains_key(value.as_str()) {
            v.lost.push(format!("{value} (acked at {p}/{o})"));
        }
        if parse_value(value).map(|(vp, _)| vp) != Some(*p) {
            v.unexpected
                .push(format!("{value} acked in partition {p}, not its own"));
        }
        if *o < 0 {
            continue; // acknowledged without an offset: nothing more claimed
        }
        match at.get(&(*p, *o)) {
            Some(found) if found == value => {}
            found => v.offset_conflicts.push(format!(
                "{value} acked at {p}/{o}, which holds {}",
                found.unwrap_or(&"nothing")
            )),
        }
    }

    // Order: the final read of each partition, in offset order, follows send order; so do
    // acknowledged offsets.
    let mut by_partition: BTreeMap<i32, Vec<&Read>> = BTreeMap::new();
    for r in &h.final_reads {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for reads in by_partition.values_mut() {
        reads.sort_by_key(|r| r.offset);
        let mut last: Option<(u64, &Read)> = None;
        let mut seen = HashSet::new();
        for r in reads.iter() {
            let Some((_, seq)) = parse_value(&r.value) else {
                continue;
            };
            if !seen.insert(seq) {
                continue; // a duplicate, reported as such
            }
            if let Some((last_seq, prev)) = last {
                if seq < last_seq {
                    v.reordered.push(format!(
                        "{} at {}/{} after {} at {}",
                        r.value, r.partition, r.offset, prev.value, prev.offset
                    ));
                }
            }
            if last.is_none_or(|(s, _)| seq > s) {
                last = Some((seq, r));
            }
        }
    }
    let mut acked_by_partition: BTreeMap<i32, Vec<(u64, i64, &str)>> = BTreeMap::new();
    for (value, (p, o)) in h.acked.iter().filter(|(_, (_, o))| *o >= 0) {
        if let Some((_, seq)) = parse_value(value) {
            acked_by_partition
                .entry(*p)
                .or_default()
                .push((seq, *o, value));
        }
    }
    for acks in acked_by_partition.values_mut() {
        acks.sort();
        for pair in acks.windows(2) {
            if pair[1].1 <= pair[0].1 {
                v.reordered.push(format!(
                    "{} acked at offset {} but {} (sent earlier) at {}",
                    pair[1].2, pair[1].1, pair[0].2, pair[0].1
                ));
            }
        }
    }

    // The live consumer: one value per offset, the same as in the final read.
    let mut live_at: HashMap<(i32, i64), &str> = HashMap::new();
    for r in &h.live_reads {
        match live_at.insert((r.partition, r.offset), &r.value) {
            Some(before) if before != r.value => v.offset_conflicts.push(format!(
                "live consumer read {}/{} as {before}, later as {}",
                r.partition, r.offset, r.value
            )),
            _ => {}
        }
    }
    let mut live: Vec<_> = live_at.into_iter().collect();
    live.sort();
    for ((p, o), value) in live {
        match at.get(&(p, o)) {
            Some(found) if *found == value => {}
            found => v.offset_conflicts.push(format!(
                "live consumer read {p}/{o} as {value}, the final read has {}",
                found.unwrap_or(&"nothing")
            )),
        }
    }

    // The live consumer never skips: between two consecutive reads of a partition that move
    // forward, the final read has nothing.
    let mut final_offsets: BTreeMap<i32, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for r in &h.final_reads {
        final_offsets
            .entry(r.partition)
            .or_default()
            .insert(r.offset);
    }
    let mut prev: HashMap<i32, i64> = HashMap::new();
    for r in &h.live_reads {
        let before = prev.insert(r.partition, r.offset).unwrap_or(-1);
        if r.offset > before + 1 {
            if let Some(missed) = final_offsets
                .get(&r.partition)
                .and_then(|o| o.range(before + 1..r.offset).next())
            {
                v.skipped.push(format!(
                    "live consumer went from {p}/{before} to {p}/{} past {p}/{missed}",
                    r.offset,
                    p = r.partition
                ));
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// Sends `p{partition}-{seq}` round-robin over the partitions, one every [`SEND_EVERY`], until
/// `stop`; then waits for every outstanding delivery. Records every send, ack and failure.
async fn run_producer(
    producer: FutureProducer<ClientLog>,
    stop: Arc<AtomicBool>,
    h: Arc<Mutex<History>>,
) {
    let mut seq = vec![0u64; PARTITIONS as usize];
    let mut next_partition = 0i32;
    let mut tick = tokio::time::interval(SEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut deliveries = tokio::task::JoinSet::new();
    let mut reported = 0;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let p = next_partition;
        let value = format!("p{p}-{}", seq[p as usize]);
        let record = FutureRecord::to(TOPIC)
            .partition(p)
            .key(&value)
            .payload(&value);
        match producer.send_result(record) {
            Ok(delivery) => {
                seq[p as usize] += 1;
                next_partition = (p + 1) % PARTITIONS;
                h.lock().expect("history").sent.push(value.clone());
                let h = h.clone();
                let sent_at = Instant::now();
                deliveries.spawn(async move {
                    let outcome = delivery.await;
                    let mut h = h.lock().expect("history");
                    match outcome {
                        Ok(Ok(d)) => {
                            h.acked.insert(value, (d.partition, d.offset));
                            h.ack_latency.push(sent_at.elapsed());
                        }
                        Ok(Err((e, _))) => {
                            if h.failed.len() < 5 {
                                eprintln!("send {value} failed: {e}");
                            }
                            h.failed.insert(value, e.to_string());
                        }
                        Err(_) => {
                            h.failed.insert(value, "delivery canceled".into());
                        }
                    }
                });
            }
            // Not enqueued (local queue full): nothing sent, the same value is tried again.
            Err((e, _)) => {
                if reported < 5 {
                    reported += 1;
                    eprintln!("enqueue {value}: {e}");
                }
            }
        }
        while deliveries.try_join_next().is_some() {}
    }
    while deliveries.join_next().await.is_some() {}
}

/// librdkafka's log, to a file if one is given (`STROM_FAULTS_CLIENT_LOG`), else dropped.
struct ClientLog(Option<Mutex<std::fs::File>>);

impl ClientContext for ClientLog {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, message: &str) {
        if let Some(file) = &self.0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let mut file = file.lock().expect("client log");
            let _ = writeln!(file, "{:.3} {fac} {message}", now.as_secs_f64());
        }
    }
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // assign() needs a group handle; the consumer never joins or commits.
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("socket.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "200")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// The consumer's next offset per partition.
fn positions(consumer: &BaseConsumer) -> Vec<i64> {
    let mut out = vec![0; PARTITIONS as usize];
    if let Ok(tpl) = consumer.position() {
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                out[e.partition() as usize] = o;
            }
        }
    }
    out
}

/// Polls `consumer` into `reads` until `done(next offsets per partition)` or `deadline`;
/// returns the next offsets reached. Transient errors (a node down) are logged, not fatal.
fn consume_until(
    consumer: &BaseConsumer,
    reads: &mut Vec<Read>,
    deadline: Instant,
    mut done: impl FnMut(&[i64]) -> bool,
) -> Vec<i64> {
    let mut next = vec![0i64; PARTITIONS as usize];
    let mut errors = 0;
    while Instant::now() < deadline && !done(&next) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let slot = &mut next[m.partition() as usize];
                *slot = (*slot).max(m.offset() + 1);
                reads.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    value,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let at = positions(consumer)[p as usize];
                let slot = &mut next[p as usize];
                *slot = (*slot).max(at);
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("consumer: {e}");
                }
            }
            None => {}
        }
    }
    next
}

/// Every partition's high watermark, asked of its leader.
fn high_watermarks(bootstrap: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("client");
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Reads every partition from offset 0 to `hw` with a fresh consumer.
fn final_read(bootstrap: &str, hw: &[i64]) -> Vec<Read> {
    let c = consumer(bootstrap, "faults-final");
    let mut reads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = consume_until(&c, &mut reads, deadline, |next| {
        next.iter().zip(hw).all(|(n, h)| n >= h)
    });
    assert!(
        next.iter().zip(hw).all(|(n, h)| n >= h),
        "final read stopped at {next:?}, high watermarks {hw:?}"
    );
    reads
}

async fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let t = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(NODES as i32));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    // The controller may still be electing right after start: retry until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = admin.create_topics([&t], &opts).await;
        match res.as_ref().map(|r| r[0].clone()) {
            Ok(Ok(_)) => return,
            other if Instant::now() > deadline => panic!("create {TOPIC}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario.

struct Scenario {
    cluster: TestCluster,
    mesh: Mesh,
    history: Arc<Mutex<History>>,
    started: Instant,
}

impl Scenario {
    fn log(&self, what: &str) {
        let acked = self.history.lock().expect("history").acked.len();
        eprintln!(
            "[{:6.2}s] {what} (acked so far: {acked})",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Waits until every node reports a leader and all three replicas in sync for every
    /// partition, and all nodes agree on the leaders.
    fn wait_healthy(&self, timeout: Duration) -> Vec<i32> {
        let all: Vec<i32> = (1..=NODES as i32).collect();
        let leaders = self
            .cluster
            .wait_converged(&all, TOPIC, NODES, &[], timeout);
        self.log(&format!("healthy, leaders {leaders:?}"));
        leaders
    }

    /// Waits until the nodes other than `victim` agree on leaders for every partition, none of
    /// them `victim`.
    fn wait_failover(&self, victim: i32, timeout: Duration) {
        let others: Vec<i32> = (1..=NODES as i32).filter(|id| *id != victim).collect();
        let leaders = self
            .cluster
            .wait_converged(&others, TOPIC, NODES - 1, &[victim], timeout);
        self.log(&format!(
            "failed over from node {victim}, leaders {leaders:?}"
        ));
    }

    fn kill_and_restart_a_leader(&mut self) {
        let leaders = self.wait_healthy(Duration::from_secs(30));
        let victim = leaders[0];
        self.log(&format!("SIGKILL node {victim} (leader of partition 0)"));
        self.cluster.node(victim).kill9();
        self.wait_failover(victim, Duration::from_secs(20));
        std::thread::sleep(LOAD);
        self.log(&format!("restart node {victim}"));
        self.cluster.node(victim).restart();
        self.wait_healthy(Duration::from_secs(30));
    }

    fn pause_a_leader(&mut self) {
        let leaders = self.wait_healthy(Duration::from_secs(30));
        let victim = leaders[1 % leaders.len()];
        self.log(&format!("SIGSTOP node {victim} (leader of partition 1)"));
        self.cluster.node(victim).signal(libc::SIGSTOP);
        let stopped = Instant::now();
        self.wait_failover(victim, FAULT + Duration::from_secs(15));
        std::thread::sleep(FAULT.saturating_sub(stopped.elapsed()));
        self.log(&format!("SIGCONT node {victim}"));
        self.cluster.node(victim).signal(libc::SIGCONT);
        self.wait_healthy(Duration::from_secs(30));
    }

    fn cut_off_a_leader(&mut self) {
        let leaders = self.wait_healthy(Duration::from_secs(30));
        let victim = leaders[2 % leaders.len()];
        self.log(&format!(
            "cut node {victim} (leader of partition 2) off, {} proxied connections live",
            self.mesh.live_connections()
        ));
        self.mesh.isolate(victim as usize - 1);
        let cut = Instant::now();
        self.wait_failover(victim, FAULT + Duration::from_secs(15));
        std::thread::sleep(FAULT.saturating_sub(cut.elapsed()));
        let view = common::cluster::metadata_of(
            &self.cluster.nodes[victim as usize - 1].addr(),
            TOPIC,
            Duration::from_secs(2),
        );
        self.log(&format!(
            "node {victim}, cut off, answers Metadata with {:?}",
            view.map(|v| v
                .iter()
                .map(|p| (p.leader, p.isr.clone()))
                .collect::<Vec<_>>())
        ));
        self.log(&format!("heal node {victim}"));
        self.mesh.heal();
        self.wait_healthy(Duration::from_secs(30));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kills_pauses_and_partitions() {
    // Kept when the check fails, or always with STROM_FAULTS_KEEP (then also when it panics).
    let dir = tempfile::Builder::new()
        .prefix("strom-faults-")
        .tempdir()
        .expect("tempdir");
    let root = dir.path().to_path_buf();
    let dir = if std::env::var_os("STROM_FAULTS_KEEP").is_some() {
        eprintln!("data directories under {}", dir.keep().display());
        None
    } else {
        Some(dir)
    };
    let ports = free_ports(2 * NODES);
    let (raft_ports, kafka_ports) = (&ports[..NODES], &ports[NODES..]);
    let mesh = Mesh::start(raft_ports);
    let peers: Vec<String> = (0..NODES).map(|i| mesh.peers_of(i, raft_ports)).collect();
    let cluster = TestCluster::start_with(
        &root,
        raft_ports,
        kafka_ports,
        &peers,
        &["--cluster-id", "fault-test"],
    );
    let bootstrap = cluster.bootstrap();
    let started = Instant::now();
    create_topic(&bootstrap).await;
    let mut s = Scenario {
        cluster,
        mesh,
        history: Arc::new(Mutex::new(History::default())),
        started,
    };
    tokio::task::block_in_place(|| s.wait_healthy(Duration::from_secs(30)));

    // The clients run for the whole test.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "5000")
        .set("socket.timeout.ms", "10000");
    let client_log = std::env::var_os("STROM_FAULTS_CLIENT_LOG").map(|path| {
        config
            .set("debug", "eos,broker,metadata,msg")
            .set_log_level(RDKafkaLogLevel::Debug);
        Mutex::new(std::fs::File::create(path).expect("client log file"))
    });
    let producer: FutureProducer<ClientLog> = config
        .create_with_context(ClientLog(client_log))
        .expect("producer");
    let stop_producer = Arc::new(AtomicBool::new(false));
    let producing = tokio::spawn(run_producer(
        producer,
        stop_producer.clone(),
        s.history.clone(),
    ));
    // Set once the producer stopped: the logs' ends, and how long the consumer may take to
    // get there.
    let stop_consumer = Arc::new(Mutex::new(None::<(Vec<i64>, Instant)>));
    let live_consumer = {
        let (bootstrap, stop) = (bootstrap.clone(), stop_consumer.clone());
        std::thread::spawn(move || {
            let c = consumer(&bootstrap, "faults-live");
            let mut reads = Vec::new();
            let next = consume_until(&c, &mut reads, Instant::now() + TEST_LIMIT, |next| {
                stop.lock()
                    .expect("stop")
                    .as_ref()
                    .is_some_and(|(hw, until)| {
                        next.iter().zip(hw).all(|(n, h)| n >= h) || Instant::now() > *until
                    })
            });
            (reads, next)
        })
    };

    tokio::task::block_in_place(|| {
        std::thread::sleep(LOAD);
        s.kill_and_restart_a_leader();
        std::thread::sleep(LOAD);
        s.pause_a_leader();
        std::thread::sleep(LOAD);
        s.cut_off_a_leader();
        std::thread::sleep(LOAD);
        s.mesh.heal();
        s.wait_healthy(Duration::from_secs(30));
    });

    s.log("stop the producer");
    stop_producer.store(true, Ordering::Release);
    tokio::time::timeout(Duration::from_secs(90), producing)
        .await
        .expect("producer flushed within 90 s")
        .expect("producer task");
    s.log("producer flushed");

    let (live_reads, final_reads) = tokio::task::block_in_place(|| {
        let hw = high_watermarks(&bootstrap);
        s.log(&format!("high watermarks {hw:?}"));
        *stop_consumer.lock().expect("stop") =
            Some((hw.clone(), Instant::now() + Duration::from_secs(30)));
        let (live_reads, live_next) = live_consumer.join().expect("live consumer");
        assert!(
            live_next.iter().zip(&hw).all(|(n, h)| n >= h),
            "the live consumer stopped at {live_next:?}, high watermarks {hw:?}"
        );
        (live_reads, final_read(&bootstrap, &hw))
    });

    let verdict = {
        let mut h = s.history.lock().expect("history");
        h.live_reads = live_reads;
        h.final_reads = final_reads;
        let mut lat = h.ack_latency.clone();
        lat.sort();
        let pct = |q: f64| {
            lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        eprintln!(
            "ack latency: p50 {:?} p99 {:?} max {:?}; live consumer read {} records",
            pct(0.5),
            pct(0.99),
            lat.last().copied().unwrap_or_default(),
            h.live_reads.len()
        );
        check(&h)
    };
    s.log("checked");
    eprintln!("summary: {verdict}");
    for (name, list) in [
        ("lost", &verdict.lost),
        ("duplicates", &verdict.duplicates),
        ("reordered", &verdict.reordered),
        ("offset conflicts", &verdict.offset_conflicts),
        ("skipped", &verdict.skipped),
        ("unexpected", &verdict.unexpected),
    ] {
        if !list.is_empty() {
            eprintln!("{name} ({}): {:?}", list.len(), &list[..list.len().min(20)]);
        }
    }
    if let Some(dir) = dir.filter(|_| !verdict.is_valid()) {
        eprintln!("data directories kept under {}", dir.keep().display());
    }
    assert!(verdict.is_valid(), "anomalies: {verdict}");
    assert!(
        verdict.acked > 1000,
        "too few acknowledged records to mean anything: {verdict}"
    );
}

/// The checker itself: a clean history passes, and each kind of anomaly is found.
#[test]
fn the_checker_finds_each_anomaly() {
    let read = |partition, offset, value: &str| Read {
        partition,
        offset,
        value: value.to_string(),
    };
    let clean = || History {
        sent: ["p0-0", "p0-1", "p0-2", "p1-0"].map(String::from).to_vec(),
        acked: BTreeMap::from([
            ("p0-0".to_string(), (0, 0)),
            ("p0-1".to_string(), (0, -1001)),
            ("p0-2".to_string(), (0, 3)),
            ("p1-0".to_string(), (1, 0)),
        ]),
        live_reads: vec![read(0, 0, "p0-0"), read(0, 1, "p0-1"), read(0, 0, "p0-0")],
        final_reads: vec![
            read(0, 0, "p0-0"),
            read(0, 1, "p0-1"),
            read(0, 3, "p0-2"),
            read(1, 0, "p1-0"),
        ],
        ..History::default()
    };
    let v = check(&clean());
    assert!(v.is_valid(), "{v}");
    assert_eq!((v.acked, v.acked_without_offset, v.read), (4, 1, 4));

    let mut h = clean();
    h.final_reads.retain(|r| r.value != "p0-1");
    let v = check(&h);
    assert_eq!(v.lost.len(), 1, "{v}");
    assert_eq!(v.skipped.len(), 0, "p0-1 is not in the final read: {v}");

    let mut h = clean();
    h.final_reads.push(read(1, 1, "p1-0"));
    assert_eq!(check(&h).duplicates.len(), 1);

    let mut h = clean();
    h.final_reads[1].value = "p0-2".into();
    h.final_reads[2].value = "p0-1".into();
    let v = check(&h);
    assert!(
        !v.reordered.is_empty() && !v.offset_conflicts.is_empty(),
        "{v}"
    );

    let mut h = clean();
    h.live_reads.push(read(0, 1, "p0-2"));
    assert_eq!(
        check(&h).offset_conflicts.len(),
        2,
        "read twice, and unlike the final read"
    );

    let mut h = clean();
    h.live_reads = vec![read(0, 0, "p0-0"), read(0, 3, "p0-2")];
    assert_eq!(check(&h).skipped.len(), 1);

    let mut h = clean();
    h.final_reads.push(read(1, 1, "p0-9"));
    assert_eq!(check(&h).unexpected.len(), 1);

    let mut h = clean();
    h.sent.push("p1-1".into());
    assert_eq!(check(&h).unresolved, 1);
}
