//! The `strom` CLI as a Kafka-protocol client, and `serve`'s handling of bad flags.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, free_port, Strom, BIN};

#[test]
fn topic_produce_consume_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let b = strom.addr();

    let (ok, _, err) = cli(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["topic", "create", "orders", "-b", &b], "");
    assert!(!ok, "creating an existing topic must fail");
    assert!(err.to_lowercase().contains("exist"), "{err}");

    let (ok, out, _) = cli(&["topic", "list", "-b", &b], "");
    assert!(ok && out.lines().any(|l| l.trim() == "orders"), "{out}");
    let (ok, out, err) = cli(&["topic", "describe", "orders", "-b", &b], "");
    assert!(ok, "{err}");
    assert!(
        out.contains("retention.ms") && out.contains("3600000"),
        "{out}"
    );
    for p in 0..3 {
        assert!(
            out.contains(&format!("Partition: {p}\tLeader: 0")),
            "partition {p} missing: {out}"
        );
    }

    let input: String = (0..50).map(|i| format!("k{}=v{i}\n", i % 5)).collect();
    let (ok, _, err) = cli(
        &["produce", "orders", "--key-separator", "=", "-b", &b],
        &input,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &[
            "consume",
            "orders",
            "--from-beginning",
            "--print-key",
            "--key-separator",
            "=",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok, "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    let mut want: Vec<&str> = input.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);

    let (ok, out, _) = cli(
        &[
            "consume",
            "orders",
            "--partition",
            "0",
            "--offset",
            "2",
            "--max-messages",
            "1",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 1);

    let (ok, _, err) = cli(&["topic", "delete", "orders", "-b", &b], "");
    assert!(ok, "{err}");
    let (_, out, _) = cli(&["topic", "list", "-b", &b], "");
    assert!(!out.lines().any(|l| l.trim() == "orders"), "{out}");
}

#[test]
fn unreachable_broker_is_one_clear_line() {
    let port = common::free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let (ok, _, err) = cli(&["topic", "list", "-b", &addr], "");
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach broker") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn serve_rejects_bad_flags_and_config() {
    let (ok, _, err) = cli(&["serve", "--no-such-flag"], "");
    assert!(!ok && err.contains("--no-such-flag"), "{err}");
    let (ok, _, err) = cli(&["serve", "--kafka-addr", "not-an-address"], "");
    assert!(!ok && err.contains("kafka-addr"), "{err}");
    let (ok, _, err) = cli(&["serve", "--default-partitions", "0"], "");
    assert!(!ok && err.contains("default-partitions"), "{err}");
    let (ok, _, err) = cli(&["serve", "--log-format", "xml"], "");
    assert!(!ok && err.contains("--log-format"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("strom.toml");
    std::fs::write(&cfg, "kafka_addr = 5\n").unwrap();
    let (ok, _, err) = cli(&["serve", "--config", cfg.to_str().unwrap()], "");
    assert!(!ok && err.contains("invalid config file"), "{err}");
    assert!(std::path::Path::new(BIN).exists());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--kafka-addr", &addr, "--etcd-addr", "", "--http-addr", ""])
        .args(["--log-format", "json", "--log-level", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM, not SIGKILL: a graceful stop logs "shutting down", so there is always a line,
    // however early the node was stopped.
    let stopped = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let _ = child.wait();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
}
