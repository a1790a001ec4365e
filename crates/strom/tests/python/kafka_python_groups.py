"""kafka-python's consumer group client and group admin against Strom: two members split a
topic, commit, leave; then list, describe, fetch, delete offsets and delete the group."""

import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]
TOPIC, GROUP, PARTITIONS, RECORDS = "py-groups", "py-group", 3, 300

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
producer = KafkaProducer(bootstrap_servers=bootstrap)
for i in range(RECORDS):
    producer.send(TOPIC, value=b"v%d" % i, partition=i % PARTITIONS)
producer.flush()

seen, assignments, lock = [], {}, threading.Lock()
both_assigned = threading.Barrier(2, timeout=20)


def member(name):
    c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=GROUP, client_id=name,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=6000, heartbeat_interval_ms=300)
    deadline = time.time() + 25
    while time.time() < deadline:
        batch = c.poll(timeout_ms=100)
        with lock:
            for msgs in batch.values():
                seen.extend((m.partition, m.offset) for m in msgs)
        if batch:
            c.commit()
        with lock:
            done = len(seen) >= RECORDS
        if done:
            break
    assignments[name] = sorted(tp.partition for tp in c.assignment())
    both_assigned.wait()
    c.close()


threads = [threading.Thread(target=member, args=("py-%d" % i,)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()

assert len(seen) == RECORDS and len(set(seen)) == RECORDS, (len(seen), len(set(seen)))
assert sorted(sum(assignments.values(), [])) == list(range(PARTITIONS)), assignments

groups = admin.list_groups()
assert any(g["group_id"] == GROUP and g["group_state"] == "Empty" for g in groups), groups
described = admin.describe_groups([GROUP])[GROUP]
assert described["group_state"] == "Empty" and described["protocol_type"] == "consumer", described
offsets = admin.list_group_offsets(GROUP)[GROUP]
assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 100, 1: 100, 2: 100}, offsets
admin.delete_group_offsets(GROUP, [TopicPartition(TOPIC, 0)])
offsets = admin.list_group_offsets(GROUP)[GROUP]
assert sorted(tp.partition for tp in offsets) == [1, 2], offsets
assert admin.delete_groups([GROUP]) == {GROUP: "OK"}
assert not any(g["group_id"] == GROUP for g in admin.list_groups())
print("kafka-python groups ok")
