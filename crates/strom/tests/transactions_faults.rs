//! Transactions under faults.
//!
//! - An exactly-once consume-transform-produce pipeline (librdkafka: a read_committed group
//!   member and a transactional producer that sends the consumed offsets with its records) runs
//!   while the broker is SIGKILLed at random points and restarted on the same data directory,
//!   and the application itself dies once with a transaction open. The pipeline recovers as a real EOS application does (abort and rewind to the committed
//!   offsets, or else new clients: the new producer fences the old one and its init aborts any
//!   open transaction). The output read read_committed holds every input record exactly once,
//!   in input order per partition.
//! - Zombie fencing on the wire: a produce of a fenced producer, held back until after the
//!   producer that fenced it began its own transaction on the same partition, is refused, and
//!   so is the zombie's EndTxn; read_committed sees the new producer's records and none of the
//!   zombie's. A transactional produce to a partition outside the producer's transaction is
//!   refused and appends nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::txn::{
    committed, eventually, expect_exactly, group_member_with, new_txn_producer, produce, records,
    Isolation, Reader, Sent, QUIET, READ_DEADLINE,
};
use common::wire::{produce_request, producer_batch, Conn};
use common::{rdk, Strom};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, BrokerId, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId,
    ResponseKind, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

// ---------------------------------------------------------------------------------------------
// Exactly-once pipeline through SIGKILLs
// ---------------------------------------------------------------------------------------------

const INPUT: &str = "eos-in";
const OUTPUT: &str = "eos-out";
const GROUP: &str = "eos-pipeline";
const TXN_ID: &str = "eos-pipeline-txn";
const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 1_000;
const KILLS: usize = 3;
/// Every blocking transactional call of the pipeline (a killed broker is back within a second
/// or two; a call stuck longer is treated as failed and the clients are replaced).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The pipeline must have processed all input by then (from its start).
const PIPELINE_DEADLINE: Duration = Duration::from_secs(55);
/// Reconnect quickly to a restarted broker (librdkafka's backoff otherwise grows to 10 s).
const CLIENT_CONFIG: &[(&str, &str)] = &[
    ("reconnect.backoff.ms", "20"),
    ("reconnect.backoff.max.ms", "500"),
    ("retry.backoff.ms", "50"),
];

/// A tiny xorshift generator: the fault schedule, reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("STROM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("fault schedule seed: STROM_TEST_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// What the pipeline went through, for the report and for checking the faults happened.
#[derive(Debug, Default)]
struct Stats {
    committed_txns: usize,
    aborted_txns: usize,
    rewinds: usize,
    new_clients: usize,
    app_crashes: usize,
}

/// Where a transaction of the pipeline is: a kill is aimed at one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Its records handed to the producer (AddPartitionsToTxn and Produce in flight).
    Produce = 1,
    /// Its consumed offsets being sent (AddOffsetsToTxn, TxnOffsetCommit).
    Offsets = 2,
    /// Being committed (the last batches, EndTxn).
    Commit = 3,
}

/// What the pipeline and the fault injector share: how many input records the pipeline has
/// committed, and a rendezvous that tells the injector when a transaction enters the phase
/// it aims at.
struct Faults {
    processed: AtomicUsize,
    /// The phase (as u8) a kill waits for; 0: none.
    aim: AtomicU8,
    reached: Mutex<mpsc::Sender<()>>,
    /// The application itself dies once, in this phase of the first transaction begun after
    /// this many records were processed: it drops its clients with the transaction open.
    crash: (Phase, usize),
    crashed: AtomicBool,
}

impl Faults {
    /// The pipeline enters `phase`: if a kill waits for it, the injector is told (once), and
    /// the pipeline goes on at once; if the application is to die here, it does.
    fn enter(&self, phase: Phase) -> Result<(), StepError> {
        if self
            .aim
            .compare_exchange(phase as u8, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let _ = self.reached.lock().unwrap().send(());
        }
        let (crash_phase, crash_at) = self.crash;
        if phase == crash_phase
            && self.processed.load(Ordering::SeqCst) >= crash_at
            && !self.crashed.swap(true, Ordering::SeqCst)
        {
            return Err(StepError::AppCrash(phase));
        }
        Ok(())
    }
}

/// The transformation: input value -> output value (same partition number).
fn transform(value: &str) -> String {
    format!("out:{value}")
}

/// Why a step of the pipeline failed; each is recovered from.
#[derive(Debug)]
enum StepError {
    /// The consumer delivered something else than the next input offset (a rebalance reset its
    /// position, or the broker restarted): no transaction is open.
    Rewound { partition: i32, want: i64, got: i64 },
    /// A consumer error: no transaction is open.
    Consume(KafkaError),
    /// A transactional call failed: a transaction may be open.
    Txn(&'static str, KafkaError),
    /// The application dies with its transaction open (the fault, not a failure).
    AppCrash(Phase),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Rewound {
                partition,
                want,
                got,
            } => write!(
                f,
                "the consumer delivered {INPUT}/{partition} offset {got}, the next is {want}"
            ),
            StepError::Consume(e) => write!(f, "consumer: {e}"),
            StepError::Txn(call, e) => write!(f, "{call}: {e}"),
            StepError::AppCrash(phase) => write!(f, "the application dies in {phase:?}"),
        }
    }
}

/// The application: a transactional producer and a read_committed group member, and the next
/// input offset of every partition as of the last commit the pipeline knows of.
struct App {
    producer: FutureProducer,
    consumer: BaseConsumer,
    next: BTreeMap<i32, i64>,
}

impl App {
    /// New clients: the producer's InitProducerId fences every older producer of the
    /// transactional id and aborts (or completes) whatever transaction it left; then the
    /// group's committed offsets are where the pipeline resumes.
    fn start(addr: &str, deadline: Instant) -> App {
        let mut producer_config = CLIENT_CONFIG.to_vec();
        producer_config.push(("transaction.timeout.ms", "10000"));
        let producer = loop {
            assert!(
                Instant::now() < deadline,
                "the pipeline's producer could not initialise before the deadline"
            );
            let p = new_txn_producer(addr, TXN_ID, &producer_config);
            match p.init_transactions(CALL_TIMEOUT) {
                Ok(()) => break p,
                Err(e) => eprintln!("init_transactions: {e}; a new producer"),
            }
        };
        let consumer = group_member_with(addr, GROUP, INPUT, CLIENT_CONFIG);
        let mut app = App {
            producer,
            consumer,
            next: BTreeMap::new(),
        };
        loop {
            match app.committed_offsets() {
                Ok(next) => {
                    app.next = next;
                    return app;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the group's committed offsets unreadable before the deadline: {e}"
                    );
                    eprintln!("committed offsets: {e}");
                }
            }
        }
    }

    /// The group's committed offsets (stable ones only: read_committed asks with
    /// require_stable), 0 where there is none.
    fn committed_offsets(&self) -> Result<BTreeMap<i32, i64>, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(INPUT, p);
        }
        let got = self.consumer.committed_offsets(tpl, CALL_TIMEOUT)?;
        Ok((0..PARTITIONS)
            .map(|p| {
                let o = match got.find_partition(INPUT, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => 0,
                };
                (p, o)
            })
            .collect())
    }

    /// Up to `max` input records that continue exactly where the last commit left off, in
    /// order per partition; fewer if the input pauses.
    fn poll_batch(&self, max: usize) -> Result<Vec<(i32, i64, String)>, StepError> {
        let mut batch = Vec::new();
        let mut expect = self.next.clone();
        let until = Instant::now() + Duration::from_secs(1);
        while batch.len() < max && Instant::now() < until {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let (partition, offset) = (m.partition(), m.offset());
                    let want = expect.get(&partition).copied().unwrap_or(0);
                    if offset != want {
                        return Err(StepError::Rewound {
                            partition,
                            want,
                            got: offset,
                        });
                    }
                    expect.insert(partition, offset + 1);
                    let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
                    batch.push((partition, offset, value.into_owned()));
                }
                // The broker is down or restarting: librdkafka reconnects by itself.
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
                ))) => {}
                Some(Err(e)) => return Err(StepError::Consume(e)),
                None if !batch.is_empty() => break,
                None => {}
            }
        }
        Ok(batch)
    }

    /// One transaction: the batch transformed into the output partition of the same number,
    /// the offsets after it, commit.
    fn process(&mut self, batch: &[(i32, i64, String)], faults: &Faults) -> Result<(), StepError> {
        let p = &self.producer;
        p.begin_transaction()
            .map_err(|e| StepError::Txn("begin_transaction", e))?;
        for (partition, _, value) in batch {
            let out = transform(value);
            p.send_result(
                FutureRecord::to(OUTPUT)
                    .partition(*partition)
                    .key(value)
                    .payload(&out),
            )
            .map_err(|(e, _)| StepError::Txn("send", e))?;
        }
        faults.enter(Phase::Produce)?;
        let mut after = self.next.clone();
        for (partition, offset, _) in batch {
            after.insert(*partition, offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in &after {
            offsets
                .add_partition_offset(INPUT, *partition, Offset::Offset(*offset))
                .expect("offset");
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| StepError::Txn("group_metadata", KafkaError::Canceled))?;
        faults.enter(Phase::Offsets)?;
        p.send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)
            .map_err(|e| StepError::Txn("send_offsets_to_transaction", e))?;
        faults.enter(Phase::Commit)?;
        p.commit_transaction(CALL_TIMEOUT)
            .map_err(|e| StepError::Txn("commit_transaction", e))?;
        self.next = after;
        Ok(())
    }

    /// Back to the group's committed offsets (seek); false if that did not work.
    fn rewind(&mut self) -> bool {
        let Ok(committed) = self.committed_offsets() else {
            return false;
        };
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &committed {
            tpl.add_partition_offset(INPUT, *partition, Offset::Offset(*offset))
                .expect("offset");
        }
        match self.consumer.seek_partitions(tpl, CALL_TIMEOUT) {
            Ok(result) if result.elements().iter().all(|e| e.error().is_ok()) => {
                self.next = committed;
                true
            }
            _ => false,
        }
    }
}

/// The pipeline: runs until every input record is processed (the committed offsets reached
/// `ends`), recovering from every failure. Panics past `deadline`.
fn run_pipeline(
    addr: &str,
    ends: &BTreeMap<i32, i64>,
    faults: &Faults,
    deadline: Instant,
    mut rng: Rng,
) -> Stats {
    let mut stats = Stats::default();
    let mut app: Option<App> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not finish in {PIPELINE_DEADLINE:?}: {stats:?}, at {:?} of {ends:?}",
            app.as_ref().map(|a| &a.next)
        );
        let a = app.get_or_insert_with(|| {
            stats.new_clients += 1;
            App::start(addr, deadline)
        });
        if &a.next == ends {
            return stats;
        }
        let max = rng.range(10, 60) as usize;
        let result = a.poll_batch(max).and_then(|batch| {
            if batch.is_empty() {
                return Ok(0);
            }
            a.process(&batch, faults).map(|()| batch.len())
        });
        match result {
            Ok(0) => {}
            Ok(n) => {
                stats.committed_txns += 1;
                faults.processed.fetch_add(n, Ordering::SeqCst);
            }
            Err(e) => {
                eprintln!("pipeline step failed: {e}");
                let before = a.next.clone();
                let recovered = match e {
                    StepError::Rewound { .. } | StepError::Consume(_) => {
                        stats.rewinds += 1;
                        a.rewind()
                    }
                    // Nothing is aborted: the new producer's InitProducerId fences this one
                    // and aborts its open transaction.
                    StepError::AppCrash(_) => {
                        stats.app_crashes += 1;
                        false
                    }
                    StepError::Txn(..) => match a.producer.abort_transaction(CALL_TIMEOUT) {
                        Ok(()) => {
                            stats.aborted_txns += 1;
                            // The aborted transaction's offsets are not the group's.
                            if let Ok(now) = a.committed_offsets() {
                                assert_eq!(
                                    now, before,
                                    "after an acknowledged abort the group's committed offsets \
                                     moved past the last commit"
                                );
                            }
                            a.rewind()
                        }
                        Err(abort) => {
                            eprintln!("abort_transaction: {abort}");
                            false
                        }
                    },
                };
                if !recovered {
                    // Drop both clients (the consumer leaves the group); new ones resume from
                    // the committed offsets.
                    app = None;
                }
            }
        }
    }
}

/// Every input record exactly once in the output, read read_committed, in input order per
/// partition, while the broker is SIGKILLed 3 times (once in each phase of a transaction: its
/// records in flight, its offsets being sent, its commit) and the application dies once in
/// the middle of a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exactly_once_pipeline_survives_broker_sigkills() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let addr = strom.addr();
    rdk::create_topic(&addr, INPUT, PARTITIONS).await;
    rdk::create_topic(&addr, OUTPUT, PARTITIONS).await;
    tokio::task::block_in_place(|| {
        // The input, produced idempotently first: per partition, the values in offset order.
        let inputs = records("in", INPUT, PARTITIONS, PER_PARTITION);
        let mut sent = Sent::new();
        produce(
            &rdk::producer(&addr, &[("enable.idempotence", "true")]),
            &inputs,
            &mut sent,
        );
        let mut by_partition: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
        for (value, (_, partition, offset)) in &sent {
            by_partition
                .entry(*partition)
                .or_default()
                .push((*offset, value.clone()));
        }
        let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, mut recs) in by_partition {
            recs.sort();
            ends.insert(partition, recs.last().map_or(0, |(o, _)| o + 1));
            expected.insert(partition, recs.iter().map(|(_, v)| transform(v)).collect());
        }
        assert_eq!(ends.len(), PARTITIONS as usize);
        let total: usize = expected.values().map(Vec::len).sum();
        assert_eq!(total, PARTITIONS as usize * PER_PARTITION);

        let mut rng = Rng::from_env_or_clock();
        let pipeline_rng = Rng(rng.next() | 1);
        let (reached_tx, reached) = mpsc::channel();
        let crash_phase = [Phase::Produce, Phase::Offsets, Phase::Commit][rng.range(0, 3) as usize];
        let crash_at = rng.range(total as u64 / 8, total as u64 * 7 / 8) as usize;
        eprintln!("the application dies in {crash_phase:?} after {crash_at} records");
        let faults = Arc::new(Faults {
            processed: AtomicUsize::new(0),
            aim: AtomicU8::new(0),
            reached: Mutex::new(reached_tx),
            crash: (crash_phase, crash_at),
            crashed: AtomicBool::new(false),
        });
        let deadline = Instant::now() + PIPELINE_DEADLINE;
        let pipeline = {
            let (addr, ends, faults) = (addr.clone(), ends.clone(), Arc::clone(&faults));
            std::thread::spawn(move || run_pipeline(&addr, &ends, &faults, deadline, pipeline_rng))
        };

        // The faults: one kill in each quarter of the input (at a random point of it), aimed
        // at a phase of a transaction (each phase once, in random order) and landing a random
        // few milliseconds after the transaction entered it; the broker stays down up to 1.5 s.
        let mut phases = vec![Phase::Produce, Phase::Offsets, Phase::Commit];
        for i in (1..phases.len()).rev() {
            phases.swap(i, rng.range(0, i as u64 + 1) as usize);
        }
        let quarter = total / (KILLS + 1);
        let mut kills = Vec::new();
        for (k, phase) in phases.into_iter().enumerate().take(KILLS) {
            let at = quarter * (k + 1) - quarter / 2 + rng.range(0, quarter as u64) as usize;
            while faults.processed.load(Ordering::SeqCst) < at && !pipeline.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "the pipeline did not reach {at} records (at {})",
                    faults.processed.load(Ordering::SeqCst)
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            faults.aim.store(phase as u8, Ordering::SeqCst);
            loop {
                match reached.recv_timeout(Duration::from_millis(100)) {
                    Ok(()) => break,
                    Err(_) if pipeline.is_finished() => break,
                    Err(_) => assert!(
                        Instant::now() < deadline,
                        "no transaction of the pipeline reached {phase:?}"
                    ),
                }
            }
            if pipeline.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.range(0, 8)));
            let processed = faults.processed.load(Ordering::SeqCst);
            strom.kill9();
            let down = Duration::from_millis(rng.range(0, 1500));
            eprintln!(
                "SIGKILL {} in {phase:?} at {processed} records processed, down {down:?}",
                k + 1
            );
            std::thread::sleep(down);
            strom.restart();
            kills.push((phase, processed));
        }
        let stats = match pipeline.join() {
            Ok(stats) => stats,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        eprintln!("pipeline: {stats:?} with kills {kills:?}");
        assert_eq!(
            stats.app_crashes, 1,
            "the application did not die ({stats:?})"
        );
        assert_eq!(
            kills.len(),
            KILLS,
            "the pipeline finished before every kill: the faults did not happen ({stats:?})"
        );

        // The group committed exactly the whole input.
        let offsets = committed(&addr, GROUP, INPUT, PARTITIONS, Isolation::Committed);
        assert_eq!(offsets.as_ref().ok(), Some(&ends), "committed offsets");

        // The output, read committed: each input once, in order, in its partition.
        let mut r = Reader::new(&addr, Isolation::Committed, &[(OUTPUT, PARTITIONS)]);
        r.poll_until(total, READ_DEADLINE);
        r.poll_for(QUIET);
        let mut read: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for g in &r.got {
            read.entry(g.partition).or_default().push(g.value.clone());
        }
        for (partition, want) in &expected {
            let got = read.get(partition).cloned().unwrap_or_default();
            if &got != want {
                let mut seen = std::collections::BTreeMap::<&str, usize>::new();
                for v in &got {
                    *seen.entry(v.as_str()).or_default() += 1;
                }
                let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
                let missing: Vec<_> = want
                    .iter()
                    .filter(|v| !seen.contains_key(v.as_str()))
                    .take(5)
                    .collect();
                let first_diff = got.iter().zip(want).position(|(g, w)| g != w);
                panic!(
                    "output partition {partition}: read {} records, expected {}; duplicates \
                     e.g. {duplicates:?}; missing e.g. {missing:?}; first difference at index \
                     {first_diff:?} ({stats:?})",
                    got.len(),
                    want.len()
                );
            }
        }
        assert_eq!(r.got.len(), total, "records in unexpected partitions");
        eprintln!("done in {:?}", started.elapsed());
    });
}

// ---------------------------------------------------------------------------------------------
// Zombie fencing on the wire
// ---------------------------------------------------------------------------------------------

const RETRY_DEADLINE: Duration = Duration::from_secs(20);

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// Waits until the node answers FindCoordinator(TRANSACTION) for `id` without error (the
/// transaction state topic may be being created).
fn find_coordinator(conn: &mut Conn, id: &str) {
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
    eventually(
        "FindCoordinator(TRANSACTION)",
        RETRY_DEADLINE,
        || match conn.request(ApiKey::FindCoordinator, 4, &req) {
            ResponseKind::FindCoordinator(r) => (r.coordinators[0].error_code == 0, r),
            other => panic!("{other:?}"),
        },
    );
}

/// InitProducerId for transactional id `id`, retried while the coordinator is loading or the
/// id's previous transaction is being completed (CONCURRENT_TRANSACTIONS): (producer id, epoch).
fn init_txn_producer(conn: &mut Conn, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let retriable = [
        ResponseError::ConcurrentTransactions.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::CoordinatorNotAvailable.code(),
    ];
    let deadline = Instant::now() + RETRY_DEADLINE;
    loop {
        let r = match conn.request(ApiKey::InitProducerId, 4, &req) {
            ResponseKind::InitProducerId(r) => r,
            other => panic!("{other:?}"),
        };
        if r.error_code == 0 {
            return (r.producer_id.0, r.producer_epoch);
        }
        assert!(
            retriable.contains(&r.error_code) && Instant::now() < deadline,
            "InitProducerId({id}): error {}",
            r.error_code
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// AddPartitionsToTxn (v3): the error code of every partition, in request order.
fn add_partitions(
    conn: &mut Conn,
    id: &str,
    (pid, epoch): (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name(topic))
            .with_partitions(partitions.to_vec())]);
    match conn.request(ApiKey::AddPartitionsToTxn, 3, &req) {
        ResponseKind::AddPartitionsToTxn(r) => r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// EndTxn (v3): the error code.
fn end_txn(conn: &mut Conn, id: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    match conn.request(ApiKey::EndTxn, 3, &req) {
        ResponseKind::EndTxn(r) => r.error_code,
        other => panic!("{other:?}"),
    }
}

/// A transactional Produce (acks=all) of `batch` to one partition, on behalf of `id`.
fn txn_produce_request(
    id: &str,
    topic: &str,
    partition: i32,
    batch: bytes::Bytes,
) -> ProduceRequest {
    produce_request(topic, partition, batch).with_transactional_id(Some(txn_id(id)))
}

/// Sends a Produce request (v9): (error code, base offset).
fn send_produce(conn: &mut Conn, req: &ProduceRequest) -> (i16, i64) {
    match conn.request(ApiKey::Produce, 9, req) {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// The log end (ListOffsets latest, read_uncommitted: the high watermark) of a partition.
fn log_end(conn: &mut Conn, topic: &str, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    match conn.request(ApiKey::ListOffsets, 5, &req) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "ListOffsets {topic}/{partition}");
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

/// What a read_committed Fetch from offset 0 says about a partition.
#[derive(Debug, PartialEq, Eq)]
struct CommittedView {
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset) of every aborted transaction listed.
    aborted: Vec<(i64, i64)>,
}

fn fetch_committed(conn: &mut Conn, topic: &str, partition: i32) -> CommittedView {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    match conn.request(ApiKey::Fetch, 11, &req) {
        ResponseKind::Fetch(r) => {
            assert_eq!(r.error_code, 0, "Fetch");
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "Fetch {topic}/{partition}");
            CommittedView {
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                aborted: p
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect(),
            }
        }
        other => panic!("{other:?}"),
    }
}

/// Notes each of `values`, stored from `base` on in `topic`/`partition`, in `sent`.
fn note(sent: &mut Sent, topic: &str, partition: i32, base: i64, values: &[&str]) {
    for (i, v) in values.iter().enumerate() {
        sent.insert(
            v.to_string(),
            (topic.to_string(), partition, base + i as i64),
        );
    }
}

fn is_fenced_code(code: i16) -> bool {
    code == ResponseError::InvalidProducerEpoch.code()
        || code == ResponseError::ProducerFenced.code()
}

/// Producer A (transactional id "z") writes a batch in its transaction and holds a second one;
/// producer B with the same id initialises (fencing A and aborting its transaction), adds the
/// same partition and writes. Then A's held produce is refused with a fencing error and appends
/// nothing, A's EndTxn(commit) and AddPartitionsToTxn are refused, B commits, and read_committed
/// sees B's records and none of A's (A's transaction is listed as aborted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombies_delayed_produce_and_commit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "zombie";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "z";
        let mut sent = Sent::new();
        let mut a_conn = Conn::connect(&addr);
        let mut b_conn = Conn::connect(&addr);
        let mut admin = Conn::connect(&addr);
        find_coordinator(&mut admin, id);

        // A: a transaction on partition 0 with one batch written.
        let a = init_txn_producer(&mut a_conn, id);
        assert_eq!(add_partitions(&mut a_conn, id, a, topic, &[0]), vec![0]);
        let a_first = ["a-0", "a-1", "a-2"];
        let (err, a_base) = send_produce(
            &mut a_conn,
            &txn_produce_request(id, topic, 0, producer_batch(a.0, a.1, 0, &a_first, true)),
        );
        assert_eq!(err, 0, "A's first transactional batch");
        note(&mut sent, topic, 0, a_base, &a_first);
        // A's next batch (sequence 3), delayed: sent only after B took over.
        let a_late = ["a-3", "a-4"];
        let held = txn_produce_request(id, topic, 0, producer_batch(a.0, a.1, 3, &a_late, true));

        // B: the same transactional id. Its InitProducerId fences A (epoch bump) and aborts
        // A's open transaction; it is answered CONCURRENT_TRANSACTIONS until that is done.
        let b = init_txn_producer(&mut b_conn, id);
        assert_eq!(b.0, a.0, "the transactional id keeps its producer id");
        assert!(b.1 > a.1, "B's epoch {} is not newer than A's {}", b.1, a.1);
        assert_eq!(add_partitions(&mut b_conn, id, b, topic, &[0]), vec![0]);
        let b_values = ["b-0", "b-1", "b-2"];
        let (err, b_base) = send_produce(
            &mut b_conn,
            &txn_produce_request(id, topic, 0, producer_batch(b.0, b.1, 0, &b_values, true)),
        );
        assert_eq!(err, 0, "B's transactional batch");
        assert!(
            b_base > a_base + a_first.len() as i64,
            "B's batch at {b_base}: A's abort marker must lie between A's batch and it"
        );
        note(&mut sent, topic, 0, b_base, &b_values);

        // Now A's delayed produce: fenced, nothing appended.
        let end = log_end(&mut admin, topic, 0);
        let (err, base) = send_produce(&mut a_conn, &held);
        assert!(
            is_fenced_code(err),
            "A's delayed produce (epoch {}, sequence 3) after B (epoch {}) wrote: error {err} \
             base offset {base}; expected INVALID_PRODUCER_EPOCH (47) or PRODUCER_FENCED (90)",
            a.1,
            b.1
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            end,
            "a fenced batch was appended"
        );

        // A's commit and its attempt to add a partition: fenced too.
        let err = end_txn(&mut a_conn, id, a, true);
        assert!(
            is_fenced_code(err),
            "A's EndTxn(commit) after B initialised: error {err}; expected PRODUCER_FENCED (90) \
             or INVALID_PRODUCER_EPOCH (47)"
        );
        let errs = add_partitions(&mut a_conn, id, a, topic, &[1]);
        assert!(
            errs.len() == 1 && is_fenced_code(errs[0]),
            "A's AddPartitionsToTxn after B initialised: {errs:?}"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            end,
            "A's EndTxn wrote a marker"
        );

        // B commits.
        assert_eq!(end_txn(&mut b_conn, id, b, true), 0, "B's EndTxn(commit)");

        // A read_committed fetch: once B's marker is written nothing is open (LSO = high
        // watermark, just past B's marker), and A's transaction is listed as aborted.
        let b_marker = b_base + b_values.len() as i64;
        eventually(
            "B's commit marker written (LSO = high watermark)",
            READ_DEADLINE,
            || {
                let v = fetch_committed(&mut admin, topic, 0);
                (
                    v.high_watermark == b_marker + 1 && v.last_stable_offset == b_marker + 1,
                    v,
                )
            },
        );
        let view = fetch_committed(&mut admin, topic, 0);
        assert_eq!(
            view.aborted,
            vec![(a.0, a_base)],
            "the aborted transactions of a read_committed fetch"
        );

        // librdkafka applies that: B's records and none of A's.
        expect_exactly(
            &addr,
            Isolation::Committed,
            &[(topic, 2)],
            &b_values.map(String::from),
            &sent,
            "after B's commit",
        );
        let all: Vec<String> = a_first
            .iter()
            .chain(&b_values)
            .map(|v| v.to_string())
            .collect();
        expect_exactly(
            &addr,
            Isolation::Uncommitted,
            &[(topic, 2)],
            &all,
            &sent,
            "after B's commit",
        );
    });
}

/// A transactional Produce is taken only for a partition in the producer's ongoing
/// transaction: before any AddPartitionsToTxn, to a partition never added, and late (same
/// epoch, after the transaction's commit marker) it is refused with INVALID_TXN_STATE and the
/// log does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_produce_outside_the_transaction_is_refused_and_not_appended() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "not-added";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "never-added";
        let invalid_txn_state = ResponseError::InvalidTxnState.code();
        let mut conn = Conn::connect(&addr);
        let mut admin = Conn::connect(&addr);
        find_coordinator(&mut admin, id);
        let c = init_txn_producer(&mut conn, id);

        // No transaction at all yet.
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 0, producer_batch(c.0, c.1, 0, &["x-0"], true)),
        );
        assert_eq!(
            (err, base),
            (invalid_txn_state, -1),
            "a transactional batch before AddPartitionsToTxn"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            0,
            "the refused batch was appended"
        );

        // A transaction on partition 0: partition 1 was never added.
        assert_eq!(add_partitions(&mut conn, id, c, topic, &[0]), vec![0]);
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 1, producer_batch(c.0, c.1, 0, &["y-0"], true)),
        );
        assert_eq!(
            (err, base),
            (invalid_txn_state, -1),
            "a transactional batch to a partition not in the transaction"
        );
        assert_eq!(
            log_end(&mut admin, topic, 1),
            0,
            "the refused batch was appended"
        );
        let in_txn = ["c-0", "c-1", "c-2"];
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 0, producer_batch(c.0, c.1, 0, &in_txn, true)),
        );
        assert_eq!(
            (err, base),
            (0, 0),
            "the partition in the transaction takes it"
        );

        // Commit; once the marker is written, a late batch of the same epoch cannot start a
        // transaction of its own.
        assert_eq!(end_txn(&mut conn, id, c, true), 0, "EndTxn(commit)");
        let marker = in_txn.len() as i64;
        eventually("the commit marker written", READ_DEADLINE, || {
            let v = fetch_committed(&mut admin, topic, 0);
            (
                v.high_watermark == marker + 1 && v.last_stable_offset == marker + 1,
                v,
            )
        });
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 0, producer_batch(c.0, c.1, 3, &["late"], true)),
        );
        assert_eq!(
            (err, base),
            (invalid_txn_state, -1),
            "a late transactional batch after the commit marker, without AddPartitionsToTxn"
        );
        assert_eq!(
            log_end(&mut admin, topic, 0),
            marker + 1,
            "the late batch was appended"
        );
        assert_eq!(log_end(&mut admin, topic, 1), 0);
    });
}

/// A partition added to a transaction and then restarted (its leader's permission is memory
/// only) still takes the transaction's batches: the leader asks the coordinator, which has the
/// partition in the ongoing transaction (KIP-890's verification). A partition the coordinator
/// does not have is still refused after the same restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_verifies_a_transactional_batch_with_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let topic = "verified";
    rdk::create_topic(&addr, topic, 2).await;
    tokio::task::block_in_place(|| {
        let id = "verify-after-restart";
        let mut conn = Conn::connect(&addr);
        find_coordinator(&mut conn, id);
        let c = init_txn_producer(&mut conn, id);
        assert_eq!(add_partitions(&mut conn, id, c, topic, &[0]), vec![0]);
        drop(conn);
        strom.kill9();
        strom.restart();
        let mut conn = Conn::connect(&addr);
        find_coordinator(&mut conn, id);
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(
                id,
                topic,
                0,
                producer_batch(c.0, c.1, 0, &["v-0", "v-1"], true),
            ),
        );
        assert_eq!(
            (err, base),
            (0, 0),
            "the restarted leader verified the partition with the coordinator"
        );
        let (err, base) = send_produce(
            &mut conn,
            &txn_produce_request(id, topic, 1, producer_batch(c.0, c.1, 0, &["w-0"], true)),
        );
        assert_eq!(
            (err, base),
            (ResponseError::InvalidTxnState.code(), -1),
            "a partition the coordinator does not have in the transaction"
        );
        assert_eq!(
            log_end(&mut conn, topic, 1),
            0,
            "the refused batch was appended"
        );
        assert_eq!(end_txn(&mut conn, id, c, true), 0, "EndTxn(commit)");
        eventually("the commit marker written", READ_DEADLINE, || {
            let v = fetch_committed(&mut conn, topic, 0);
            (v.high_watermark == 3 && v.last_stable_offset == 3, v)
        });
    });
}
