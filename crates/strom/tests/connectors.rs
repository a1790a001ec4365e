//! The connector runtime and the MySQL/MariaDB binlog source, end to end: a real `strom`
//! node, a private MariaDB server, the `mariadb` client for SQL, curl for Kafka Connect's
//! REST API, and librdkafka read_committed consumers comparing the topics with what was
//! committed in the database.

mod common;

use std::time::Duration;

use common::connect::{call, create, status_of, url, wait_state};
use common::mariadb::MariaDb;
use common::rdk::consume_all_with;
use common::{curl, free_port, wait_until, Strom};
use serde_json::{json, Value};

fn db_dir(root: &std::path::Path) -> std::path::PathBuf {
    let p = root.join("db");
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn start_node(dir: &std::path::Path) -> (Strom, u16) {
    let http = free_port();
    let node = Strom::start(dir, &["--http-addr", &format!("127.0.0.1:{http}")]);
    (node, http)
}

/// Every record of `topic` visible to a read_committed consumer: (key, value) as JSON.
fn read_topic(addr: &str, topic: &str, want: usize, timeout: Duration) -> Vec<(Value, Value)> {
    consume_all_with(
        addr,
        topic,
        1,
        want,
        timeout,
        &[("isolation.level", "read_committed")],
    )
    .into_iter()
    .map(|r| {
        let parse = |b: Option<Vec<u8>>| {
            b.map_or(Value::Null, |b| serde_json::from_slice(&b).expect("JSON"))
        };
        (parse(r.key), parse(r.value))
    })
    .collect()
}

#[test]
fn rest_api_answers_as_kafka_connect_and_reports_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (node, http) = start_node(&dir.path().join("strom"));
    let db = MariaDb::start(&db_dir(dir.path()), &[]);

    // Nothing yet, and nothing created for it.
    assert_eq!(call("GET", http, "/connectors", None), (200, json!([])));
    let (code, plugins) = call("GET", http, "/connector-plugins", None);
    assert_eq!(code, 200);
    assert_eq!(plugins[0]["class"], "mysql");
    assert_eq!(plugins[0]["type"], "source");

    // Validation without creating anything.
    let (code, v) = call(
        "PUT",
        http,
        "/connector-plugins/mysql/config/validate",
        Some(&json!({"connector.class": "mysql", "snapshot.mode": "sometimes"})),
    );
    assert_eq!(code, 200);
    assert_eq!(
        v["error_count"], 4,
        "hostname, user, topic.prefix missing; snapshot.mode invalid: {v}"
    );
    let hostname = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["definition"]["name"] == "database.hostname")
        .unwrap();
    assert!(hostname["value"]["errors"][0]
        .as_str()
        .unwrap()
        .contains("Missing required configuration"));

    // Bad requests: Connect's error shape and codes.
    let (code, e) = call(
        "POST",
        http,
        "/connectors",
        Some(&json!({"name": "x", "config": {"connector.class": "nope"}})),
    );
    assert_eq!((code, e["error_code"].as_u64()), (400, Some(400)), "{e}");
    assert!(e["message"].as_str().unwrap().contains("nope"));
    let (code, e) = call(
        "POST",
        http,
        "/connectors",
        Some(&json!({"name": "x", "config": {"connector.class": "mysql", "topic.prefix": "p"}})),
    );
    assert_eq!(code, 400);
    assert!(
        e["message"].as_str().unwrap().contains("database.hostname"),
        "{e}"
    );
    let (code, body) = curl(&[
        "-X",
        "POST",
        &url(http, "/connectors"),
        "-H",
        "content-type: application/json",
        "--data-binary",
        "{not json",
    ]);
    assert_eq!(code, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error_code"],
        400
    );
    let (code, e) = call("GET", http, "/connectors/missing", None);
    assert_eq!((code, e["error_code"].as_u64()), (404, Some(404)));

    // A wrong password is FAILED with the server's words, not a crash.
    let mut config = db.connector_config("bad");
    config["database.password"] = json!("wrong");
    let (code, created) = call(
        "POST",
        http,
        "/connectors",
        Some(&json!({"name": "bad", "config": config})),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["name"], "bad");
    assert_eq!(created["tasks"], json!([{"connector": "bad", "task": 0}]));
    let s = wait_state(http, "bad", "FAILED", Duration::from_secs(30));
    assert!(
        s["tasks"][0]["trace"]
            .as_str()
            .unwrap()
            .contains("Access denied"),
        "{s}"
    );
    let (code, e) = call(
        "POST",
        http,
        "/connectors",
        Some(&json!({"name": "bad", "config": config})),
    );
    assert_eq!((code, e["error_code"].as_u64()), (409, Some(409)));

    // So is a server that is not there.
    let mut nohost = db.connector_config("nohost");
    nohost["database.port"] = json!(free_port().to_string());
    create(http, "nohost", &nohost);
    let s = wait_state(http, "nohost", "FAILED", Duration::from_secs(30));
    assert!(
        s["tasks"][0]["trace"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{s}"
    );
    assert_eq!(call("DELETE", http, "/connectors/nohost", None).0, 204);

    // Fixing the config through PUT .../config restarts it.
    config["database.password"] = json!(common::mariadb::PASSWORD);
    let (code, _) = call("PUT", http, "/connectors/bad/config", Some(&config));
    assert_eq!(code, 200);
    wait_state(http, "bad", "RUNNING", Duration::from_secs(30));
    let (_, cfg) = call("GET", http, "/connectors/bad/config", None);
    assert_eq!(cfg["database.password"], common::mariadb::PASSWORD);
    assert_eq!(cfg["name"], "bad");
    let (_, tasks) = call("GET", http, "/connectors/bad/tasks", None);
    assert_eq!(tasks[0]["id"], json!({"connector": "bad", "task": 0}));

    // A server not writing ROW events: FAILED, saying what to set.
    db.sql("SET GLOBAL binlog_format = 'STATEMENT'");
    assert_eq!(call("POST", http, "/connectors/bad/restart", None).0, 204);
    let s = wait_state(http, "bad", "FAILED", Duration::from_secs(30));
    assert!(
        s["tasks"][0]["trace"]
            .as_str()
            .unwrap()
            .contains("binlog_format=ROW"),
        "{s}"
    );
    db.sql("SET GLOBAL binlog_format = 'ROW'");
    assert_eq!(call("POST", http, "/connectors/bad/restart", None).0, 204);
    wait_state(http, "bad", "RUNNING", Duration::from_secs(30));

    // Pause and resume; offsets only change while stopped (KIP-875).
    assert_eq!(call("PUT", http, "/connectors/bad/pause", None).0, 202);
    wait_state(http, "bad", "PAUSED", Duration::from_secs(30));
    assert_eq!(call("PUT", http, "/connectors/bad/resume", None).0, 202);
    wait_state(http, "bad", "RUNNING", Duration::from_secs(30));
    // RUNNING means the task started; its offset is there once its snapshot commits.
    let mut offsets = Value::Null;
    wait_until("the snapshot's offset", Duration::from_secs(30), || {
        let (code, o) = call("GET", http, "/connectors/bad/offsets", None);
        assert_eq!(code, 200, "{o}");
        offsets = o;
        (
            offsets["offsets"].as_array().is_some_and(|a| !a.is_empty()),
            offsets.to_string(),
        )
    });
    assert_eq!(offsets["offsets"][0]["partition"], json!({"server": "bad"}));
    assert!(
        offsets["offsets"][0]["offset"]["file"]
            .as_str()
            .unwrap()
            .starts_with("binlog."),
        "{offsets}"
    );
    let (code, e) = call("DELETE", http, "/connectors/bad/offsets", None);
    assert_eq!(code, 400);
    assert!(e["message"].as_str().unwrap().contains("STOPPED"));
    assert_eq!(call("PUT", http, "/connectors/bad/stop", None).0, 202);
    let s = wait_state(http, "bad", "STOPPED", Duration::from_secs(30));
    assert_eq!(s["tasks"], json!([]));
    let altered = json!({"offsets": [{"partition": {"server": "bad"}, "offset": {"file": "binlog.000001", "pos": 4, "gtids": ""}}]});
    assert_eq!(
        call("PATCH", http, "/connectors/bad/offsets", Some(&altered)).0,
        200
    );
    let (_, offsets) = call("GET", http, "/connectors/bad/offsets", None);
    assert_eq!(offsets["offsets"][0]["offset"]["pos"], 4);
    assert_eq!(call("DELETE", http, "/connectors/bad/offsets", None).0, 200);
    assert_eq!(
        call("GET", http, "/connectors/bad/offsets", None).1,
        json!({"offsets": []})
    );

    // The CLI over the same API.
    let file = dir.path().join("c.json");
    std::fs::write(&file, db.connector_config("cli").to_string()).unwrap();
    let base = url(http, "");
    let (ok, out, err) = common::cli(
        &[
            "connector",
            "--url",
            &base,
            "create",
            "cli",
            "--config",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    wait_state(http, "cli", "RUNNING", Duration::from_secs(30));
    let (ok, out, _) = common::cli(&["connector", "--url", &base, "list"], "");
    assert!(
        ok && out
            .lines()
            .any(|l| l.starts_with("cli ") && l.contains("RUNNING")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("bad ") && l.contains("STOPPED")),
        "{out}"
    );
    let (ok, _, err) = common::cli(&["connector", "--url", &base, "status", "nope"], "");
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, _) = common::cli(&["connector", "--url", &base, "delete", "cli"], "");
    assert!(ok);
    let (_, list) = call("GET", http, "/connectors?expand=status&expand=info", None);
    assert_eq!(
        list.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["bad"]
    );
    assert_eq!(list["bad"]["info"]["config"]["topic.prefix"], "bad");
    assert_eq!(call("DELETE", http, "/connectors/bad", None).0, 204);
    assert_eq!(call("GET", http, "/connectors/bad", None).0, 404);
    drop(node);
}

/// The JSON of one of `orders`' rows as the snapshot and the binlog must both render it.
fn full_row(id: i64) -> Value {
    json!({
        "id": id, "note": "zoë 🦀 \"q\"", "price": "12.30", "at": 1_709_168_523_456i64,
        // Written at +05:00 (the server's zone): UTC in the event.
        "ts": "2024-02-28T20:02:03.123456Z", "data": "AP8=", "state": "paid", "tags": "a,c",
        "big": 18_446_744_073_709_551_615u64, "day": 19_782, "dur": -93_600_005_000i64, "flag": true,
    })
}

const FULL_ROW_SQL: &str = "'zoë 🦀 \"q\"', 12.30, '2024-02-29 01:02:03.456', '2024-02-29 01:02:03.123456', X'00FF', 'paid', 'a,c', 18446744073709551615, '2024-02-29', '-26:00:00.005', b'1', 'hidden'";

#[test]
fn captures_snapshot_and_changes_once_in_debezium_format_across_ddl_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, http) = start_node(&dir.path().join("strom"));
    let db = MariaDb::start(&db_dir(dir.path()), &["--default-time-zone=+05:00"]);
    db.sql(&format!(
        "CREATE DATABASE shop; CREATE DATABASE other; \
         CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(100), price DECIMAL(10,2), at DATETIME(3), ts TIMESTAMP(6) NULL, \
           data BLOB, state ENUM('new','paid'), tags SET('a','b','c'), big BIGINT UNSIGNED, day DATE, dur TIME(3), flag BIT(1), secret VARCHAR(10)); \
         CREATE TABLE shop.items (order_id INT, line INT, qty SMALLINT, PRIMARY KEY (order_id, line)); \
         CREATE TABLE other.ignored (id INT PRIMARY KEY); \
         INSERT INTO shop.orders VALUES (1, {FULL_ROW_SQL}); INSERT INTO shop.orders (id) VALUES (2); INSERT INTO shop.items VALUES (1, 1, 3);"
    ));
    let mut config = db.connector_config("db1");
    config["database.include.list"] = json!("shop");
    config["column.exclude.list"] = json!("shop\\.orders\\.secret");
    config["heartbeat.interval.ms"] = json!("300");
    create(http, "inv", &config);
    wait_state(http, "inv", "RUNNING", Duration::from_secs(30));
    // RUNNING is reported before the snapshot reads anything (as Debezium does): changes made
    // before its read view would be snapshot rows, not the change events expected below.
    let addr = node.addr();
    assert_eq!(
        read_topic(&addr, "db1.shop.orders", 2, Duration::from_secs(30)).len(),
        2
    );

    db.sql(&format!(
        "INSERT INTO shop.orders VALUES (3, {FULL_ROW_SQL})"
    ));
    db.sql("UPDATE shop.orders SET price = 99.99 WHERE id = 3");
    db.sql("BEGIN; INSERT INTO shop.orders (id) VALUES (4); INSERT INTO shop.items VALUES (4, 1, 1), (4, 2, 2); COMMIT;");
    db.sql("BEGIN; INSERT INTO shop.orders (id) VALUES (99); INSERT INTO shop.items VALUES (99, 1, 1); ROLLBACK;");
    db.sql("UPDATE shop.orders SET id = 5 WHERE id = 4");
    db.sql("DELETE FROM shop.orders WHERE id = 2");
    db.sql("INSERT INTO other.ignored VALUES (1)");
    assert_eq!(
        read_topic(&addr, "db1.shop.orders", 10, Duration::from_secs(30)).len(),
        10
    );

    // While Strom is down: a row in the old schema, a DDL, a row in the new one. The schema
    // history decodes each with its own schema.
    node.stop();
    db.sql("INSERT INTO shop.orders (id, note) VALUES (10, 'before alter')");
    db.sql("ALTER TABLE shop.orders ADD COLUMN extra INT UNSIGNED AFTER id, DROP COLUMN note");
    db.sql("INSERT INTO shop.orders (id, extra) VALUES (6, 4294967295)");
    node.restart();
    db.sql("CREATE TABLE shop.late (k VARCHAR(10) PRIMARY KEY, v INT); INSERT INTO shop.late VALUES ('x', 1);");
    // XA: published at XA COMMIT, never after XA ROLLBACK.
    db.sql("XA START 'x1'; INSERT INTO shop.orders (id) VALUES (7); XA END 'x1'; XA PREPARE 'x1';");
    db.sql("XA START 'x2'; INSERT INTO shop.orders (id) VALUES (8); XA END 'x2'; XA PREPARE 'x2';");
    db.sql("INSERT INTO shop.orders (id) VALUES (11)");
    // A SIGKILL between XA PREPARE and XA COMMIT: the prepared rows are in the connector's state.
    std::thread::sleep(Duration::from_secs(2));
    node.kill9();
    node.restart();
    db.sql("XA COMMIT 'x1'; XA ROLLBACK 'x2';");

    let orders = read_topic(&addr, "db1.shop.orders", 14, Duration::from_secs(60));
    let summary: Vec<(String, Value)> = orders
        .iter()
        .map(|(k, v)| {
            (
                v["op"].as_str().unwrap_or("tombstone").to_string(),
                k["id"].clone(),
            )
        })
        .collect();
    let expect: Vec<(&str, i64)> = vec![
        ("r", 1),
        ("r", 2),
        ("c", 3),
        ("u", 3),
        ("c", 4),
        ("d", 4),
        ("tombstone", 4),
        ("c", 5),
        ("d", 2),
        ("tombstone", 2),
        ("c", 10),
        ("c", 6),
        ("c", 11),
        ("c", 7),
    ];
    let expect: Vec<(String, Value)> = expect
        .into_iter()
        .map(|(o, i)| (o.to_string(), json!(i)))
        .collect();
    assert_eq!(
        summary, expect,
        "every committed change once, in commit order; nothing rolled back"
    );
    assert_eq!(
        read_topic(&addr, "db1.shop.orders", 15, Duration::from_secs(3)).len(),
        14,
        "nothing more"
    );

    // Values: the snapshot (binary protocol) and the binlog render the same row alike.
    let (_, r1) = &orders[0];
    assert_eq!(r1["after"], full_row(1));
    assert_eq!(r1["source"]["snapshot"], "true");
    let (_, c3) = &orders[2];
    assert_eq!(c3["after"], full_row(3));
    assert_eq!(c3["before"], Value::Null);
    let source = &c3["source"];
    assert_eq!(
        (
            source["connector"].as_str(),
            source["name"].as_str(),
            source["db"].as_str(),
            source["table"].as_str()
        ),
        (Some("mariadb"), Some("db1"), Some("shop"), Some("orders"))
    );
    assert_eq!(source["snapshot"], "false");
    assert!(
        source["gtid"].as_str().unwrap().starts_with("0-1-"),
        "{source}"
    );
    assert!(
        source["file"].as_str().unwrap().starts_with("binlog.0"),
        "{source}"
    );
    assert!(source["pos"].as_u64().unwrap() > 4);
    let (_, u3) = &orders[3];
    assert_eq!(u3["before"]["price"], "12.30");
    assert_eq!(u3["after"]["price"], "99.99");
    assert_eq!(
        orders[1].1["after"],
        json!({"id": 2, "note": null, "price": null, "at": null, "ts": null, "data": null, "state": null, "tags": null, "big": null, "day": null, "dur": null, "flag": null})
    );
    assert_eq!(orders[10].1["after"]["note"], "before alter");
    assert_eq!(orders[11].1["after"]["extra"], json!(4_294_967_295u64));
    assert!(
        orders[11].1["after"].get("note").is_none(),
        "the dropped column is gone: {}",
        orders[11].1
    );

    let items = read_topic(&addr, "db1.shop.items", 3, Duration::from_secs(30));
    let keys: Vec<Value> = items.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![
            json!({"order_id": 1, "line": 1}),
            json!({"order_id": 4, "line": 1}),
            json!({"order_id": 4, "line": 2})
        ]
    );
    // One database transaction, one Kafka transaction: the same GTID on both tables.
    assert_eq!(items[1].1["source"]["gtid"], orders[4].1["source"]["gtid"]);

    let late = read_topic(&addr, "db1.shop.late", 1, Duration::from_secs(30));
    assert_eq!(late[0].1["after"], json!({"k": "x", "v": 1}));
    let ddl = read_topic(&addr, "db1", 2, Duration::from_secs(30));
    assert_eq!(ddl.len(), 2);
    assert!(ddl[0].1["ddl"]
        .as_str()
        .unwrap()
        .starts_with("ALTER TABLE shop.orders"));
    assert_eq!(ddl[0].0, json!({"databaseName": "shop"}));
    assert_eq!(ddl[0].1["tableChanges"][0]["type"], "ALTER");
    assert_eq!(ddl[1].1["tableChanges"][0]["type"], "CREATE");
    let beats = read_topic(
        &addr,
        "__debezium-heartbeat.db1",
        1,
        Duration::from_secs(30),
    );
    assert_eq!(beats[0].0, json!({"serverName": "db1"}));
    let topics = topic_names(&addr);
    assert!(
        !topics.iter().any(|t| t.contains("other")),
        "the excluded database has no topic: {topics:?}"
    );
}

/// Writes transactions `txns` of 5 rows each into `shop.events` (ids ascending), every 7th
/// followed by a rolled-back one, retrying through a database restart (`INSERT IGNORE`: a
/// retried commit that had landed adds nothing).
fn write_events(db: &MariaDb, txns: std::ops::Range<i64>) {
    for t in txns {
        let rows: Vec<String> = (0..5)
            .map(|i| format!("({}, {t}, 'v{i}')", t * 5 + i))
            .collect();
        let sql = format!(
            "BEGIN; INSERT IGNORE INTO shop.events VALUES {}; COMMIT;",
            rows.join(", ")
        );
        while db.try_sql(&sql).is_err() {
            std::thread::sleep(Duration::from_millis(200));
        }
        if t % 7 == 0 {
            let _ = db.try_sql(&format!(
                "BEGIN; INSERT INTO shop.events VALUES ({}, -1, 'rolled back'); ROLLBACK;",
                1_000_000 + t
            ));
        }
    }
}

/// The ids the topic holds (creates only), and the ids the database holds.
fn check_exactly_once(addr: &str, topic: &str, db: &MariaDb) {
    let in_db: Vec<i64> = db
        .sql("SELECT id FROM shop.events ORDER BY id")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let records = read_topic(addr, topic, in_db.len(), Duration::from_secs(120));
    let extra = read_topic(addr, topic, in_db.len() + 1, Duration::from_secs(3));
    assert_eq!(
        extra.len(),
        records.len(),
        "no record beyond the database's rows"
    );
    let ids: Vec<i64> = records
        .iter()
        .map(|(k, v)| {
            assert!(
                v["op"] == "c" || v["op"] == "r",
                "only creates (or snapshot reads): {v}"
            );
            k["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(
        ids, in_db,
        "every committed row exactly once, in commit order, nothing rolled back"
    );
}

#[test]
fn exactly_once_through_sigkill_of_strom_and_a_database_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, http) = start_node(&dir.path().join("strom"));
    let mut db = MariaDb::start(&db_dir(dir.path()), &[]);
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, txn INT, v VARCHAR(20));");
    let mut config = db.connector_config("f");
    // Small batches: a large transaction goes out in parts of one Kafka transaction.
    config["max.batch.size"] = json!("100");
    create(http, "ev", &config);
    wait_state(http, "ev", "RUNNING", Duration::from_secs(30));
    let addr = node.addr();
    std::thread::scope(|s| {
        let writer = s.spawn(|| write_events(&db, 0..150));
        let seen =
            |n: usize| read_topic(&addr, "f.shop.events", n, Duration::from_secs(60)).len() >= n;
        assert!(seen(50), "streaming began");
        node.kill9();
        std::thread::sleep(Duration::from_millis(500));
        node.restart();
        assert!(seen(300), "streaming resumed after SIGKILL");
        writer.join().unwrap();
    });
    // The database restarts mid-stream: the connector reconnects and resumes.
    db.kill9();
    db.restart();
    write_events(&db, 150..250);
    db.sql("INSERT INTO shop.events SELECT 10000 + seq, -2, 'large' FROM shop.seq_1_to_700");
    wait_state(http, "ev", "RUNNING", Duration::from_secs(60));
    check_exactly_once(&addr, "f.shop.events", &db);
}

fn topic_names(addr: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

/// A 3-node cluster: the connector runs on one node; that node is SIGKILLed mid-stream, the
/// controller fences it, another node takes the connector over from its stored offsets.
#[test]
fn connector_moves_to_another_node_when_its_node_dies() {
    let dir = tempfile::tempdir().unwrap();
    let http: Vec<u16> = common::free_ports(3);
    let mut cluster =
        common::cluster::TestCluster::start_each(&dir.path().join("cluster"), 3, |i| {
            vec!["--http-addr".into(), format!("127.0.0.1:{}", http[i])]
        });
    cluster.wait_for_brokers(&cluster.bootstrap(), 3, Duration::from_secs(60));
    let db = MariaDb::start(&db_dir(dir.path()), &[]);
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.events (id BIGINT PRIMARY KEY, txn INT, v VARCHAR(20));");
    write_events(&db, 0..20);
    create(http[0], "moving", &db.connector_config("m"));
    let status = wait_state(http[1], "moving", "RUNNING", Duration::from_secs(60));
    let worker = status["connector"]["worker_id"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = http
        .iter()
        .position(|p| worker.ends_with(&format!(":{p}")))
        .expect("the worker is a node's HTTP address");
    let survivor = (victim + 1) % 3;
    let bootstrap = cluster.nodes[survivor].addr();
    assert_eq!(
        read_topic(&bootstrap, "m.shop.events", 100, Duration::from_secs(60)).len(),
        100,
        "snapshot"
    );
    std::thread::scope(|s| {
        let writer = s.spawn(|| write_events(&db, 20..120));
        assert!(
            read_topic(&bootstrap, "m.shop.events", 200, Duration::from_secs(60)).len() >= 200,
            "streaming"
        );
        cluster.nodes[victim].kill9();
        writer.join().unwrap();
    });
    let mut moved = Value::Null;
    wait_until(
        "the connector to run on another node",
        Duration::from_secs(90),
        || {
            moved = status_of(http[survivor], "moving");
            (
                moved["tasks"][0]["state"] == "RUNNING"
                    && moved["tasks"][0]["worker_id"] != worker.as_str(),
                moved.to_string(),
            )
        },
    );
    check_exactly_once(&bootstrap, "m.shop.events", &db);
}
