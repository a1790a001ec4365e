//! An exactly-once consume-transform-produce pipeline (librdkafka: a read_committed group member
//! and a transactional producer that sends the consumed offsets with its records) runs while
//! the broker is SIGKILLed at random points and restarted on the same data directory, and the
//! application itself dies once with a transaction open. The pipeline recovers as a real EOS
//! application does (abort and rewind to the committed offsets, or else new clients: the new
//! producer fences the old one and its init aborts any open transaction). The output read
//! read_committed holds every input record exactly once, in input order per partition.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::txn::{
    committed, group_member_with, new_txn_producer, produce, records, Isolation, Reader, Sent,
    QUIET, READ_DEADLINE,
};
use common::{rdk, Strom};
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
