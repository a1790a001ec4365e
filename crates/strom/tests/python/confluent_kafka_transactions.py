"""confluent-kafka (Python on librdkafka) transactions against Strom: commit and abort read back by
read_committed and read_uncommitted consumers, a consume-transform-produce step whose offsets
commit with the transaction (send_offsets_to_transaction), and a second producer with the same
transactional.id fencing the first.

Markers are written after commit_transaction returns, so reads poll with a deadline and then
watch a quiet second for anything extra."""

import faulthandler
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

faulthandler.dump_traceback_later(50, exit=True)

bootstrap = sys.argv[1]
DEADLINE = 20.0

admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics(
    [NewTopic("ck-txn", 2, 1), NewTopic("ck-in", 1, 1), NewTopic("ck-out", 1, 1)]
).values():
    f.result(timeout=10)


def producer(txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 0})
    p.init_transactions(20)
    return p


def read(topic, partitions, isolation, want):
    """Values read from offset 0 of every partition: until `want` arrived or the deadline, then
    one quiet second more."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ck-reader",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.time() + DEADLINE
    quiet_until = None
    while True:
        now = time.time()
        if len(got) >= want and quiet_until is None:
            quiet_until = now + 1.0
        if now > deadline or (quiet_until is not None and now > quiet_until):
            break
        m = c.poll(0.1)
        if m is None or m.error():
            continue
        got.append(m.value().decode())
    c.close()
    return got


# Commit, abort, commit.
p = producer("ck-1")
first = [f"c1-{i}" for i in range(10)]
aborted = [f"a-{i}" for i in range(10)]
second = [f"c2-{i}" for i in range(10)]
for values, commit in ((first, True), (aborted, False), (second, True)):
    p.begin_transaction()
    for i, v in enumerate(values):
        p.produce("ck-txn", value=v, partition=i % 2)
    if commit:
        p.commit_transaction(20)
    else:
        p.flush(20)
        p.abort_transaction(20)
rc = read("ck-txn", 2, "read_committed", 20)
assert sorted(rc) == sorted(first + second), rc
ru = read("ck-txn", 2, "read_uncommitted", 30)
assert sorted(ru) == sorted(first + aborted + second), ru

# Consume-transform-produce: 12 inputs, offsets committed with the output transaction; a second
# step is aborted and must leave the committed offset where it was.
plain = Producer({"bootstrap.servers": bootstrap})
for i in range(24):
    plain.produce("ck-in", value=f"in-{i}", partition=0)
plain.flush(10)
member = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": "ck-app",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }
)
member.assign([TopicPartition("ck-in", 0, 0)])


def step(commit):
    inputs = []
    deadline = time.time() + DEADLINE
    while len(inputs) < 12 and time.time() < deadline:
        m = member.poll(0.2)
        if m is not None and not m.error():
            inputs.append(m.value().decode())
    assert len(inputs) == 12, inputs
    p.begin_transaction()
    for v in inputs:
        p.produce("ck-out", value=v.upper(), partition=0)
    p.send_offsets_to_transaction(
        member.position(member.assignment()), member.consumer_group_metadata(), 20
    )
    if commit:
        p.commit_transaction(20)
    else:
        p.abort_transaction(20)
    return inputs


def committed():
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-app", "isolation.level": "read_committed"})
    tp = c.committed([TopicPartition("ck-in", 0)], timeout=10)[0]
    c.close()
    return tp.offset


done = step(True)
assert done == [f"in-{i}" for i in range(12)], done
deadline = time.time() + DEADLINE
while committed() != 12 and time.time() < deadline:
    time.sleep(0.2)
assert committed() == 12, committed()
step(False)
# The abort ended once the next transaction can begin; the offsets stayed at 12.
p.begin_transaction()
p.abort_transaction(20)
assert committed() == 12, committed()
out = read("ck-out", 1, "read_committed", 12)
assert out == [f"IN-{i}" for i in range(12)], out
member.close()

# Fencing: a second producer with the same id makes the first one's commit fail for good.
p.begin_transaction()
p.produce("ck-txn", value="zombie", partition=0)
p.flush(10)
successor = producer("ck-1")
try:
    p.commit_transaction(20)
    raise AssertionError("a fenced producer committed")
except KafkaException as e:
    err = e.args[0]
    assert err.fatal(), err
successor.begin_transaction()
successor.produce("ck-txn", value="successor", partition=1)
successor.commit_transaction(20)
rc = read("ck-txn", 2, "read_committed", 21)
assert "zombie" not in rc and "successor" in rc, rc

print("confluent-kafka transactions ok")
