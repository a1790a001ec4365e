//! The HTTP listener with curl: health endpoints, the cluster, topic and group views,
//! Connect-shaped JSON errors, and `--http-addr ''` turning it off.

mod common;

use common::rdk::{group_consumer, poll_records};
use common::{cli, curl, free_port, Strom};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn health_cluster_and_topic_views_with_curl() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let s = Strom::start(dir.path(), &["--http-addr", &addr]);
    let url = |path: &str| format!("http://{addr}{path}");

    assert_eq!(
        curl(&[&url("/v1/status/ready")]),
        (200, r#"{"status":"ready"}"#.to_string())
    );
    assert_eq!(
        curl(&[&url("/v1/status/live")]),
        (200, r#"{"status":"live"}"#.to_string())
    );

    // The cluster and topic views.
    let json = |path: &str| -> serde_json::Value {
        let (code, body) = curl(&[&url(path)]);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let cluster = json("/v1/cluster");
    assert_eq!(cluster["mode"], "single");
    assert_eq!(cluster["nodes"][0]["kafka"], s.addr());
    let (ok, _, err) = cli(
        &[
            "topic",
            "create",
            "orders",
            "-b",
            &s.addr(),
            "--partitions",
            "2",
        ],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        &["produce", "orders", "-b", &s.addr(), "--partition", "1"],
        "a\nb\nc\n",
    );
    assert!(ok, "{err}");
    let topics = json("/v1/topics");
    let orders = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .expect("orders listed");
    assert_eq!(orders["partitions"], 2);
    let orders = json("/v1/topics/orders");
    let p1 = &orders["partitions"][1];
    assert_eq!(p1["leader"], 0);
    assert_eq!(p1["local"]["high_watermark"], 3);
    assert_eq!(p1["local"]["log_start_offset"], 0);
    assert!(p1["local"]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(orders["partitions"][0]["local"]["high_watermark"], 0);
    let (code, body) = curl(&[&url("/v1/topics/nope")]);
    assert_eq!(code, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error_code"],
        404
    );

    // A consumer group: its member with its assignment, its committed offsets and their lag.
    let consumer = group_consumer(&s.addr(), "readers", &["orders"]);
    let read = poll_records(&consumer, 2, std::time::Duration::from_secs(30));
    assert_eq!(read, 2);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 1, Offset::Offset(2))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    let groups = json("/v1/groups");
    assert_eq!(groups[0]["group_id"], "readers", "{groups}");
    let readers = json("/v1/groups/readers");
    assert_eq!(readers["state"], "Stable", "{readers}");
    let assigned = &readers["members"][0]["assignment"];
    assert_eq!(*assigned, serde_json::json!([["orders", 0], ["orders", 1]]));
    let committed = &readers["offsets"][0];
    assert_eq!(
        (
            &committed["partition"],
            &committed["committed_offset"],
            &committed["lag"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::json!(1)
        )
    );
    assert_eq!(curl(&[&url("/v1/groups/nobody")]).0, 404);

    // Unknown paths answer Kafka Connect's error shape.
    let (code, body) = curl(&[&url("/no/such/thing")]);
    assert_eq!(code, 404);
    let err: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(err["error_code"], 404);
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    // A method the endpoint does not serve.
    assert_eq!(curl(&["-X", "POST", &url("/v1/status/ready")]).0, 405);
    // The listener still serves afterwards.
    assert_eq!(curl(&[&url("/v1/status/live")]).0, 200);
}

#[test]
fn an_empty_http_addr_turns_the_listener_off() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let s = Strom::start(dir.path(), &["--http-addr", ""]);
    // Kafka serves; nothing listens on the port we did not give it.
    assert!(std::net::TcpStream::connect(s.addr()).is_ok());
    assert_eq!(curl(&[&format!("http://{addr}/v1/status/live")]).0, 0);
}
