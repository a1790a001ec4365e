"""W9, binlog capture: rows from MariaDB to a read_committed consumer (driven by bench-binlog.sh).

bulk: 1,000,000 rows of 200 bytes in transactions of 1,000 rows, (a) loaded while the connector
      streams: rows/s from the first commit to the last row visible; (b) loaded while the
      connector is paused, then resumed: the connector's own catch-up rate.
lag:  10,000 row changes/s (100-row transactions every 10 ms) for 30 s: per row, the time from
      its INSERT (NOW(6) on the server) to its event being read by the consumer; p50/p99/max.
"""
import json
import sys
import threading
import time
import urllib.request

import pymysql
from confluent_kafka import Consumer, TopicPartition

kafka, http, db_port = sys.argv[2], sys.argv[3], int(sys.argv[4])
mode = sys.argv[1]


def rest(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(http + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


def wait_running(name):
    for _ in range(600):
        s = rest("GET", f"/connectors/{name}/status")
        if s["tasks"] and s["tasks"][0]["state"] == "RUNNING":
            return
        time.sleep(0.1)
    raise SystemExit(f"connector {name} not running: {s}")


def db():
    return pymysql.connect(host="127.0.0.1", port=db_port, user="root", password="", autocommit=True)


def consumer(topic):
    c = Consumer({"bootstrap.servers": kafka, "group.id": "bench", "isolation.level": "read_committed",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    c.assign([TopicPartition(topic, 0, 0)])
    return c


def count_until(topic, n, done):
    c = consumer(topic)
    seen = 0
    while seen < n:
        for m in c.consume(10000, 1.0):
            if m.error() is None and m.value() is not None:
                seen += 1
    done.append(time.time())
    c.close()


def connector(name, table):
    rest("POST", "/connectors", {"name": name, "config": {
        "connector.class": "mysql", "database.hostname": "127.0.0.1", "database.port": str(db_port),
        "database.user": "root", "database.password": "", "database.server.id": "6001",
        "topic.prefix": name, "table.include.list": table, "snapshot.mode": "no_data"}})
    wait_running(name)


def load(cur, first, rows, per_txn):
    for a in range(first, first + rows, per_txn):
        cur.execute(f"INSERT INTO bench.rows SELECT seq, REPEAT('x', 184) FROM bench.seq_{a}_to_{a + per_txn - 1}")


if mode == "bulk":
    n = 1_000_000
    conn = db()
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS bench")
    cur.execute("CREATE TABLE bench.rows (id BIGINT PRIMARY KEY, payload VARCHAR(200)) CHARACTER SET latin1")
    connector("bulk", "bench\\.rows")
    topic = "bulk.bench.rows"
    done = []
    reader = threading.Thread(target=count_until, args=(topic, n, done), daemon=True)
    reader.start()
    t0 = time.time()
    load(cur, 1, n, 1000)
    t1 = time.time()
    reader.join()
    print(f"bulk (a) streaming: {n} rows loaded in {t1 - t0:.1f} s ({n / (t1 - t0):,.0f} rows/s committed); "
          f"last visible {done[0] - t1:.2f} s after the last commit: {n / (done[0] - t0):,.0f} rows/s end to end")
    rest("PUT", "/connectors/bulk/pause")
    time.sleep(2)
    t0 = time.time()
    load(cur, n + 1, n, 1000)
    t1 = time.time()
    done = []
    reader = threading.Thread(target=count_until, args=(topic, 2 * n, done), daemon=True)
    t2 = time.time()
    rest("PUT", "/connectors/bulk/resume")
    reader.start()
    reader.join()
    print(f"bulk (b) backlog: {n} rows loaded while paused in {t1 - t0:.1f} s; caught up in {done[0] - t2:.1f} s: "
          f"{n / (done[0] - t2):,.0f} rows/s")
elif mode == "lag":
    rate, seconds, per_txn = 10_000, 30, 100
    conn = db()
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS bench")
    cur.execute("CREATE TABLE bench.lag (id BIGINT PRIMARY KEY, created DATETIME(6), payload VARCHAR(200)) CHARACTER SET latin1")
    connector("lag", "bench\\.lag")
    total = rate * seconds
    lags = []

    warm = threading.Event()

    def read():
        c = consumer("lag.bench.lag")
        while len(lags) < total:
            # One record per poll: a batch call would hold early records until it fills.
            m = c.poll(1.0)
            if m is not None and m.error() is None and m.value() is not None:
                now = time.time() * 1e6
                after = json.loads(m.value())["after"]
                if after["id"] == 0:
                    warm.set()
                    continue
                lags.append((now - after["created"]) / 1000.0)
        c.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # A first row creates the topic and lets the consumer find it before the clock starts.
    cur.execute("INSERT INTO bench.lag VALUES (0, NOW(6), 'warm-up')")
    if not warm.wait(60):
        raise SystemExit("the warm-up row never arrived")
    start = time.time()
    interval = per_txn / rate
    for i in range(total // per_txn):
        due = start + i * interval
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        a = i * per_txn + 1
        cur.execute(f"INSERT INTO bench.lag SELECT seq, NOW(6), REPEAT('x', 176) FROM bench.seq_{a}_to_{a + per_txn - 1}")
    behind = time.time() - start - seconds
    reader.join()
    lags.sort()
    pct = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
    print(f"lag at {rate:,} rows/s for {seconds} s ({len(lags)} rows; writer {behind:+.2f} s off schedule): "
          f"p50 {pct(0.5):.1f} ms  p99 {pct(0.99):.1f} ms  max {lags[-1]:.1f} ms")
