//! The web console in real headless Chromium (tests/python/console_browser.py, through
//! chromedriver), against a node holding a topic with records, a consumer group with lag and
//! keys in the coordination KV. Screenshots of each page are kept under the build's test
//! directory (`console-screenshots`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::rdk::create_topic;
use common::{cli, curl, free_port, run_python_args, Strom};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn every_console_page_works_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let etcd = format!("127.0.0.1:{}", free_port());
    let s = Strom::start(dir.path(), &["--http-addr", &http, "--etcd-addr", &etcd]);

    // The page and its assets are served from the binary, well under 1 MiB in all.
    let (code, page) = curl(&[&format!("http://{http}/")]);
    assert_eq!(code, 200);
    assert!(page.contains("<title>Strom console</title>"), "{page}");
    let mut bundle = page.len();
    for asset in ["app.js", "style.css"] {
        let (code, body) = curl(&[&format!("http://{http}/console/{asset}")]);
        assert_eq!(code, 200, "{asset}");
        bundle += body.len();
    }
    assert!(bundle < 100 * 1024, "the console is {bundle} bytes");
    assert_eq!(curl(&[&format!("http://{http}/console/nope.js")]).0, 404);

    // A topic with ten keyed records and a header, a group 8 records behind, and KV keys.
    futures::executor::block_on(create_topic(&s.addr(), "orders", 2));
    let lines: String = (0..10).map(|i| format!("k{i}:{{\"n\":{i}}}\n")).collect();
    let (ok, _, err) = cli(
        &[
            "produce",
            "orders",
            "-b",
            &s.addr(),
            "--partition",
            "0",
            "--key-separator",
            ":",
            "--header",
            "trace=abc",
        ],
        &lines,
    );
    assert!(ok, "{err}");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", s.addr())
        .set("group.id", "readers")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(2))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    drop(consumer);
    for (k, v) in [("/app/a", "1"), ("/app/b", "2")] {
        let out = Command::new("etcdctl")
            .arg(format!("--endpoints=http://{etcd}"))
            .args(["put", k, v])
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "{out:?}");
    }
    std::thread::sleep(Duration::from_millis(200));

    let shots = format!("{}/console-screenshots", env!("CARGO_TARGET_TMPDIR"));
    let out = run_python_args(
        "console_browser.py",
        &[
            &format!("http://{http}"),
            &s.addr(),
            &format!("http://{etcd}"),
            &shots,
        ],
    );
    assert!(out.contains("console ok"), "{out}");
    for page in [
        "overview", "topics", "topic", "browse", "groups", "group", "kv",
    ] {
        assert!(
            std::path::Path::new(&format!("{shots}/{page}.png")).exists(),
            "screenshot of {page}"
        );
    }
}
