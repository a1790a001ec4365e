//! HTTP produce and consume (Confluent REST Proxy v2, and v3's record produce) with curl,
//! checked against a real Kafka client both ways: records produced over HTTP are read with
//! librdkafka, records produced with librdkafka are read over HTTP, and offsets committed over
//! HTTP are the group's.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::rdk::{consume_all, producer};
use common::{cli, curl, free_port, Strom};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

const JSON: &str = "Content-Type: application/vnd.kafka.json.v2+json";
const BINARY: &str = "Content-Type: application/vnd.kafka.binary.v2+json";
const V2: &str = "Content-Type: application/vnd.kafka.v2+json";

struct Http(String);

impl Http {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.0)
    }

    /// A request with a JSON body: (status, parsed body or Null).
    fn send(&self, method: &str, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let url = self.url(path);
        let (code, text) = curl(&["-X", method, "-H", content_type, "--data", &body, &url]);
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str, accept: &str) -> (u16, Value) {
        let (code, text) = curl(&["-H", &format!("Accept: {accept}"), &self.url(path)]);
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET records until `want` arrived (or 30 s).
    fn records(&self, base: &str, accept: &str, want: usize) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < want && Instant::now() < deadline {
            let (code, body) = self.get(&format!("{base}/records?timeout=500"), accept);
            assert_eq!(code, 200, "{body}");
            got.extend(body.as_array().cloned().unwrap_or_default());
        }
        got
    }
}

fn create_topic(s: &Strom, name: &str, partitions: i32) {
    futures::executor::block_on(common::rdk::create_topic(&s.addr(), name, partitions));
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn produce_and_consume_over_http_interoperate_with_kafka_clients() {
    let dir = tempfile::tempdir().unwrap();
    let http = Http(format!("127.0.0.1:{}", free_port()));
    let s = Strom::start(
        dir.path(),
        &[
            "--http-addr",
            &http.0,
            "--consumer-instance-timeout-ms",
            "2000",
        ],
    );
    create_topic(&s, "web", 2);
    create_topic(&s, "bin", 2);

    let (code, topics) = http.get("/topics", "application/vnd.kafka.v2+json");
    assert_eq!(code, 200);
    assert_eq!(
        topics,
        json!(["bin", "web"]),
        "internal topics are not listed"
    );
    let (code, web) = http.get("/topics/web", "application/vnd.kafka.v2+json");
    assert_eq!(code, 200, "{web}");
    assert_eq!(web["partitions"].as_array().map(Vec::len), Some(2));
    assert_eq!(web["configs"]["cleanup.policy"], "delete", "{web}");

    // JSON records over HTTP; the two with one key land in one partition, in order.
    let (code, produced) = http.send(
        "POST",
        "/topics/web",
        JSON,
        &json!({"records": [
            {"key": "k1", "value": {"n": 1}},
            {"value": [1, 2]},
            {"key": "k1", "value": "three"},
        ]}),
    );
    assert_eq!(code, 200, "{produced}");
    let offsets = produced["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 3);
    assert!(
        offsets.iter().all(|o| o["error_code"].is_null()),
        "{produced}"
    );
    assert_eq!(offsets[0]["partition"], offsets[2]["partition"]);
    assert!(offsets[2]["offset"].as_i64().unwrap() > offsets[0]["offset"].as_i64().unwrap());
    // Binary records to a chosen partition.
    let raw: &[u8] = b"\x00\xffraw bytes";
    let (code, produced) = http.send(
        "POST",
        "/topics/bin/partitions/1",
        BINARY,
        &json!({"records": [{"key": b64(b"bk"), "value": b64(raw)}]}),
    );
    assert_eq!(code, 200, "{produced}");
    assert_eq!(produced["offsets"][0]["partition"], 1);

    // A Kafka client reads them as bytes.
    let recs = consume_all(&s.addr(), "web", 2, 3, Duration::from_secs(30));
    let mut values: Vec<Vec<u8>> = recs.iter().filter_map(|r| r.value.clone()).collect();
    values.sort();
    assert_eq!(
        values,
        vec![
            b"\"three\"".to_vec(),
            b"[1,2]".to_vec(),
            b"{\"n\":1}".to_vec()
        ]
    );
    let recs = consume_all(&s.addr(), "bin", 2, 1, Duration::from_secs(30));
    assert_eq!(
        (
            recs[0].partition,
            recs[0].key.as_deref(),
            recs[0].value.as_deref()
        ),
        (1, Some(&b"bk"[..]), Some(raw))
    );

    // v3: one record with typed key and value, and a header passed through untouched.
    let traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (code, v3) = http.send(
        "POST",
        "/v3/clusters/any/topics/web/records",
        "Content-Type: application/json",
        &json!({
            "partition_id": 0,
            "headers": [{"name": "traceparent", "value": b64(traceparent)}],
            "key": {"type": "JSON", "data": "v3"},
            "value": {"type": "JSON", "data": {"via": "v3"}},
        }),
    );
    assert_eq!(code, 200, "{v3}");
    assert_eq!(
        (&v3["error_code"], &v3["partition_id"]),
        (&json!(200), &json!(0))
    );
    let recs = consume_all(&s.addr(), "web", 2, 4, Duration::from_secs(30));
    let v3_rec = recs
        .iter()
        .find(|r| r.key.as_deref() == Some(b"\"v3\""))
        .expect("the v3 record");
    assert_eq!(v3_rec.value.as_deref(), Some(&b"{\"via\":\"v3\"}"[..]));
    assert_eq!(
        v3_rec.headers,
        vec![("traceparent".to_string(), Some(traceparent.to_vec()))]
    );

    // Records from a Kafka producer, read over HTTP by a JSON consumer instance.
    let p = producer(&s.addr(), &[]);
    futures::executor::block_on(async {
        for v in [r#"{"from":"kafka"}"#, "42"] {
            p.send(
                FutureRecord::<(), str>::to("web").partition(1).payload(v),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        }
    });
    let (code, created) = http.send(
        "POST",
        "/consumers/readers",
        V2,
        &json!({"name": "c1", "format": "json", "auto.offset.reset": "earliest",
                "auto.commit.enable": "false"}),
    );
    assert_eq!(code, 200, "{created}");
    assert_eq!(created["instance_id"], "c1");
    let base = "/consumers/readers/instances/c1";
    assert_eq!(
        created["base_uri"],
        format!("http://{}{base}", http.0),
        "{created}"
    );
    let (code, _) = http.send(
        "POST",
        &format!("{base}/subscription"),
        V2,
        &json!({"topics": ["web"]}),
    );
    assert_eq!(code, 204);
    let (_, sub) = http.get(
        &format!("{base}/subscription"),
        "application/vnd.kafka.v2+json",
    );
    assert_eq!(sub, json!({"topics": ["web"]}));
    let got = http.records(base, "application/vnd.kafka.json.v2+json", 6);
    assert_eq!(got.len(), 6, "{got:?}");
    let values: BTreeSet<String> = got.iter().map(|r| r["value"].to_string()).collect();
    let want: BTreeSet<String> = [
        r#"{"n":1}"#,
        "[1,2]",
        r#""three""#,
        r#"{"via":"v3"}"#,
        r#"{"from":"kafka"}"#,
        "42",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(values, want);
    assert!(got.iter().all(|r| r["topic"] == "web"));

    // Commit the last record read of partition 1 by its offset: the group resumes after it.
    let last_p1 = got
        .iter()
        .filter(|r| r["partition"] == 1)
        .map(|r| r["offset"].as_i64().unwrap())
        .max()
        .unwrap();
    let (code, body) = http.send(
        "POST",
        &format!("{base}/offsets"),
        V2,
        &json!({"offsets": [{"topic": "web", "partition": 1, "offset": last_p1}]}),
    );
    assert_eq!(code, 204, "{body}");
    let (code, committed) = http.send(
        "GET",
        &format!("{base}/offsets"),
        V2,
        &json!({"partitions": [{"topic": "web", "partition": 1}]}),
    );
    assert_eq!(code, 200, "{committed}");
    assert_eq!(committed["offsets"][0]["offset"], last_p1 + 1);
    // ... and a Kafka client of the group sees the same.
    let kafka: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", s.addr())
        .set("group.id", "readers")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("web", 1);
    let seen = kafka
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        seen.find_partition("web", 1).unwrap().offset(),
        Offset::Offset(last_p1 + 1)
    );

    // A binary consumer with a manual assignment, sought to the beginning.
    let (code, _) = http.send(
        "POST",
        "/consumers/raw",
        V2,
        &json!({"name": "b1", "auto.offset.reset": "earliest"}),
    );
    assert_eq!(code, 200);
    let bbase = "/consumers/raw/instances/b1";
    let assignment = json!({"partitions": [{"topic": "bin", "partition": 1}]});
    assert_eq!(
        http.send("POST", &format!("{bbase}/assignments"), V2, &assignment)
            .0,
        204
    );
    let (_, assigned) = http.get(
        &format!("{bbase}/assignments"),
        "application/vnd.kafka.v2+json",
    );
    assert_eq!(assigned, assignment);
    let got = http.records(bbase, "application/vnd.kafka.binary.v2+json", 1);
    assert_eq!(
        (&got[0]["key"], &got[0]["value"], &got[0]["offset"]),
        (&json!(b64(b"bk")), &json!(b64(raw)), &json!(0))
    );
    assert_eq!(
        http.send(
            "POST",
            &format!("{bbase}/positions/beginning"),
            V2,
            &json!({"partitions": [{"topic": "bin", "partition": 1}]})
        )
        .0,
        204
    );
    let again = http.records(bbase, "application/vnd.kafka.binary.v2+json", 1);
    assert_eq!(
        again[0]["offset"], 0,
        "read again after seeking to the beginning"
    );

    // Errors, in the proxy's JSON.
    let error = |(code, body): (u16, Value)| (code, body["error_code"].as_u64().unwrap_or(0));
    assert_eq!(
        error(http.send(
            "POST",
            "/topics/nope",
            JSON,
            &json!({"records": [{"value": 1}]})
        )),
        (404, 40401)
    );
    assert_eq!(
        error(http.send(
            "POST",
            "/topics/web/partitions/9",
            JSON,
            &json!({"records": [{"value": 1}]})
        )),
        (404, 40402)
    );
    assert_eq!(
        error(http.send(
            "POST",
            "/topics/web",
            "Content-Type: text/plain",
            &json!({"records": []})
        )),
        (415, 415)
    );
    assert_eq!(
        error(http.send(
            "POST",
            "/topics/web",
            BINARY,
            &json!({"records": [{"value": "not base64!"}]})
        )),
        (422, 422)
    );
    let (code, text) = curl(&[
        "-X",
        "POST",
        "-H",
        JSON,
        "--data",
        "{nope",
        &http.url("/topics/web"),
    ]);
    assert_eq!(code, 400, "{text}");
    assert_eq!(
        error(http.get(
            &format!("{base}/records"),
            "application/vnd.kafka.binary.v2+json"
        )),
        (406, 40601)
    );
    assert_eq!(
        error(http.send("POST", "/consumers/readers", V2, &json!({"name": "c1"}))),
        (409, 40902)
    );
    assert_eq!(
        error(http.get("/consumers/readers/instances/ghost/records", "*/*")),
        (404, 40403)
    );

    // Deleting an instance closes it; an idle one is closed after the instance timeout.
    assert_eq!(curl(&["-X", "DELETE", &http.url(base)]).0, 204);
    assert_eq!(
        error(http.get(&format!("{base}/records"), "*/*")),
        (404, 40403)
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        error(http.get(&format!("{bbase}/records"), "*/*")),
        (404, 40403)
    );
}

/// Two consumer instances of one group split a topic's partitions between them, as two Kafka
/// consumers would.
#[test]
fn consumer_instances_of_a_group_share_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let http = Http(format!("127.0.0.1:{}", free_port()));
    let s = Strom::start(dir.path(), &["--http-addr", &http.0]);
    create_topic(&s, "shared", 2);
    let mut bases = Vec::new();
    for name in ["a", "b"] {
        let (code, body) = http.send(
            "POST",
            "/consumers/sharers",
            V2,
            &json!({"name": name, "format": "binary", "auto.offset.reset": "earliest"}),
        );
        assert_eq!(code, 200, "{body}");
        let base = format!("/consumers/sharers/instances/{name}");
        let (code, _) = http.send(
            "POST",
            &format!("{base}/subscription"),
            V2,
            &json!({"topics": ["shared"]}),
        );
        assert_eq!(code, 204);
        bases.push(base);
    }
    // Polling drives each instance's rebalances until each holds one partition.
    let deadline = Instant::now() + Duration::from_secs(60);
    let assigned = loop {
        let mut each = Vec::new();
        for base in &bases {
            let (code, _) = http.get(&format!("{base}/records?timeout=200"), "*/*");
            assert_eq!(code, 200);
            let (_, a) = http.get(
                &format!("{base}/assignments"),
                "application/vnd.kafka.v2+json",
            );
            let parts: BTreeSet<i64> = a["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["partition"].as_i64().unwrap())
                .collect();
            each.push(parts);
        }
        if each.iter().all(|p| p.len() == 1) {
            break each;
        }
        assert!(
            Instant::now() < deadline,
            "no split of partitions: {each:?}"
        );
    };
    let all: BTreeSet<i64> = assigned.iter().flatten().copied().collect();
    assert_eq!(all, BTreeSet::from([0, 1]), "{assigned:?}");
    let (ok, out, err) = cli(&["group", "describe", "sharers", "-b", &s.addr()], "");
    assert!(ok, "{err}");
    assert!(out.contains("Stable") || out.contains("STABLE"), "{out}");
}
