//! `strom group list|describe|reset-offsets|delete` against a real group of a librdkafka
//! consumer, and the internal offsets topic refusing client writes and deletion.

mod common;

use std::time::{Duration, Instant};

use common::{cli, Strom};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

/// `describe` rows of topic `gc` as (partition, committed, end, lag) strings. Without
/// transactions the last stable offset is the end and LSO-LAG is LAG, which is checked here.
fn rows(out: &str) -> Vec<(String, String, String, String)> {
    out.lines()
        .filter(|l| l.starts_with("gc "))
        .map(|l| {
            // TOPIC PARTITION COMMITTED-OFFSET END-OFFSET LAST-STABLE-OFFSET LAG LSO-LAG MEMBER
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!((f[4], f[6]), (f[3], f[5]), "LSO and LSO-LAG: {l}");
            (f[1].into(), f[2].into(), f[3].into(), f[5].into())
        })
        .collect()
}

#[test]
fn group_commands() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let b = strom.addr();
    let (ok, _, err) = cli(
        &["topic", "create", "gc", "--partitions", "2", "-b", &b],
        "",
    );
    assert!(ok, "{err}");
    let input: String = (0..20).map(|i| format!("k{i}=v{i}\n")).collect();
    let (ok, _, err) = cli(&["produce", "gc", "--key-separator", "=", "-b", &b], &input);
    assert!(ok, "{err}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "g1")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["gc"]).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen < 20 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m.unwrap();
            seen += 1;
        }
    }
    assert_eq!(seen, 20);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    let (ok, out, err) = cli(&["group", "list", "-b", &b], "");
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("g1\tStable")), "{out}");
    let (ok, out, err) = cli(&["group", "describe", "g1", "-b", &b], "");
    assert!(ok, "{err}");
    let r = rows(&out);
    assert_eq!(r.len(), 2, "{out}");
    for (_, committed, end, lag) in &r {
        assert_eq!((committed, lag), (end, &"0".to_string()), "{out}");
    }
    assert!(out.contains("Members: 1"), "{out}");

    let (ok, _, err) = cli(
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "gc",
            "--to-earliest",
            "--execute",
            "-b",
            &b,
        ],
        "",
    );
    assert!(
        !ok && err.contains("active members"),
        "reset with an active member: {err}"
    );

    drop(consumer);
    // The member left; the group becomes empty once the broker processed the LeaveGroup.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, out, _) = cli(&["group", "list", "-b", &b], "");
        if out.lines().any(|l| l.starts_with("g1\tEmpty")) {
            break;
        }
        assert!(Instant::now() < deadline, "group never became empty: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (ok, out, _) = cli(
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "gc",
            "--to-earliest",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok, "dry run");
    assert!(out.contains("gc"), "{out}");
    let (_, out, _) = cli(&["group", "describe", "g1", "-b", &b], "");
    assert!(
        rows(&out).iter().all(|(_, c, e, _)| c == e),
        "a dry run changed offsets: {out}"
    );

    let (ok, _, err) = cli(
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "gc",
            "--to-earliest",
            "--execute",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok, "{err}");
    let (_, out, _) = cli(&["group", "describe", "g1", "-b", &b], "");
    let r = rows(&out);
    assert!(r.iter().all(|(_, c, e, lag)| c == "0" && lag == e), "{out}");
    let (ok, _, err) = cli(
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "gc",
            "--shift-by",
            "3",
            "--execute",
            "-b",
            &b,
        ],
        "",
    );
    assert!(ok, "{err}");
    let (_, out, _) = cli(&["group", "describe", "g1", "-b", &b], "");
    assert!(
        rows(&out)
            .iter()
            .all(|(_, c, e, _)| c.parse::<i64>().unwrap() == 3.min(e.parse::<i64>().unwrap())),
        "{out}"
    );

    let (ok, _, err) = cli(&["group", "delete", "g1", "-b", &b], "");
    assert!(ok, "{err}");
    let (_, out, _) = cli(&["group", "list", "-b", &b], "");
    assert!(!out.lines().any(|l| l.starts_with("g1\t")), "{out}");

    // The offsets topic exists now (commits went there) and is the broker's alone.
    let (ok, _, err) = cli(&["produce", "__consumer_offsets", "-b", &b], "forged\n");
    assert!(!ok, "a client produced to the offsets topic");
    assert!(
        err.to_lowercase().contains("invalid") || err.contains("internal"),
        "{err}"
    );
    let (ok, _, _) = cli(&["topic", "delete", "__consumer_offsets", "-b", &b], "");
    assert!(!ok, "a client deleted the offsets topic");
}
