"""Log compaction seen by real clients: kafka-python creates and alters a compacted topic,
writes many versions per key with tombstones, and is refused a record without a key;
kafka-python and confluent-kafka (librdkafka) consumers then read back, from the beginning,
the latest value of each key at the offset it was written at, the tombstones while
delete.retention.ms lasts, and no tombstone once it has passed (with no write in between).

The broker runs with a short cleaner backoff; segments roll by segment.ms, and only sealed
segments are cleaned, so each phase ends with a write after segment.ms has passed."""

import faulthandler
import sys
import time

from confluent_kafka import Consumer as CkConsumer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError

faulthandler.dump_traceback_later(110, exit=True)

bootstrap = sys.argv[1]
TOPIC = "py-compact"
SEGMENT_MS = 300
DEADLINE = 40.0

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": str(SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "3600000",
}
admin.create_topics([NewTopic(TOPIC, 1, 1, topic_configs=CONFIGS)])


def describe(name):
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
    return res["topic"][TOPIC][name]["value"]


assert describe("cleanup.policy") == "compact", describe("cleanup.policy")

producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
latest = {}  # key -> (offset, value or None)


def write(records):
    futures = [(k, v, producer.send(TOPIC, key=k.encode(), value=None if v is None else v.encode()))
               for k, v in records]
    producer.flush()
    for k, v, f in futures:
        md = f.get(timeout=30)
        latest[k] = (md.offset, v)


KEYS = [f"key-{i}" for i in range(40)]
for version in range(15):
    write([(k, f"{k}-v{version}") for k in KEYS])
    time.sleep(SEGMENT_MS / 1000 / 3)
write([(k, None) for k in KEYS[:5]])  # tombstones
time.sleep(SEGMENT_MS / 1000 * 1.5)
write([("roll-1", "1")])  # seals the segment holding everything above

# A record without a key is refused on a compacted topic (with its own producer: kafka-python's
# idempotent producer stays failed after an error).
try:
    bad = KafkaProducer(bootstrap_servers=bootstrap, retries=0)
    bad.send(TOPIC, key=None, value=b"no key").get(timeout=30)
    raise AssertionError("a record without a key was accepted")
except KafkaError as e:
    assert "InvalidRecord" in type(e).__name__, repr(e)
bad.close()


def read_kafka_python():
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1500)
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out = [(m.offset, m.key.decode(), None if m.value is None else m.value.decode())
           for m in consumer]
    consumer.close()
    return out


def read_librdkafka():
    consumer = CkConsumer({"bootstrap.servers": bootstrap, "group.id": f"ck-{time.time()}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "enable.partition.eof": True})
    consumer.subscribe([TOPIC])
    out = []
    deadline = time.time() + 20
    while time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().name() == "_PARTITION_EOF":
                break
            raise AssertionError(f"librdkafka: {m.error()}")
        out.append((m.offset(), m.key().decode(),
                    None if m.value() is None else m.value().decode()))
    consumer.close()
    return out


def expected(with_tombstones):
    view = [(off, k, v) for k, (off, v) in latest.items() if v is not None or with_tombstones]
    return sorted(view)


def wait_for(want, what):
    deadline = time.time() + DEADLINE
    got = None
    while time.time() < deadline:
        got = read_kafka_python()
        if got == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: kafka-python read {len(got)} records, wanted {len(want)}:"
                         f" first differences {[g for g in got if g not in want][:5]}"
                         f" missing {[w for w in want if w not in got][:5]}")


# Everything below the active segment is cleaned: one record per key, each at the offset it
# was written at; the tombstones stay (delete.retention.ms is an hour).
want = expected(with_tombstones=True)
wait_for(want, "compacted view")
rd = read_librdkafka()
assert rd == want, f"librdkafka read {len(rd)} records, wanted {len(want)}"

# With delete.retention.ms at 0 (AlterConfigs replaces every override) the tombstones are due:
# the cleaner drops them without any new write (as Kafka 3.1+ schedules due tombstones).
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC,
                                    configs={**CONFIGS, "delete.retention.ms": "0"})])
assert describe("delete.retention.ms") == "0"
for k in KEYS[:5]:
    del latest[k]
wait_for(expected(with_tombstones=False), "tombstones removed")
rd = read_librdkafka()
assert rd == expected(with_tombstones=False), "librdkafka after tombstones removed"
print(f"compaction ok: {len(rd)} records after {15 * len(KEYS)} writes")
