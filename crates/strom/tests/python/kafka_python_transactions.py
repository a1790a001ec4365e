"""kafka-python's transactional producer against Strom: commit and abort across topics, read back
by read_committed and read_uncommitted consumers; an open transaction holding read_committed
consumers and ListOffsets(READ_COMMITTED) at its first offset (the LSO), and the transaction admin
APIs (DescribeProducers, DescribeTransactions, ListTransactions) describing it;
send_offsets_to_transaction committing a group's offsets with the transaction and only with it;
a second producer with the same transactional_id fencing the first.

The coordinator writes the commit/abort markers after EndTxn returns, so what read_committed
consumers see is polled for with a deadline, then watched for a quiet second."""

import faulthandler
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic, OffsetSpec, TransactionState
from kafka.errors import KafkaError, ProducerFencedError
from kafka.protocol.consumer import IsolationLevel
from kafka.structs import OffsetAndMetadata

# A hang (commit_transaction waits without a timeout) dumps every thread and fails the test.
faulthandler.dump_traceback_later(50, exit=True)

bootstrap = sys.argv[1]
RC, RU = "read_committed", "read_uncommitted"
DEADLINE = 20.0
TXN_ID = "py-tx"

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
TOPICS = {"py-txn": 3, "py-txn-audit": 1, "py-lso": 1, "py-ctp-in": 2, "py-ctp-out": 2,
          "py-fence": 2}
admin.create_topics([NewTopic(t, n, 1) for t, n in TOPICS.items()])

# value -> (topic, partition, offset) of every acknowledged record.
sent = {}


def tps(topic):
    return [TopicPartition(topic, p) for p in range(TOPICS[topic])]


def send_all(producer, records):
    """Sends (topic, partition, value) records, flushes, requires every one acknowledged."""
    futures = [(t, p, v, producer.send(t, key=v.encode(), value=v.encode(), partition=p))
               for t, p, v in records]
    producer.flush()
    for t, p, v, f in futures:
        md = f.get(timeout=30)
        assert md.partition == p, (v, md)
        sent[v] = (t, p, md.offset)
    return [v for _, _, v in records]


def produce(producer, topic, tag, per_partition):
    return send_all(producer, [(topic, p, f"{tag}-{topic}-{p}-{i}")
                               for i in range(per_partition) for p in range(TOPICS[topic])])


def read(isolation, partitions, want, quiet=1.0):
    """A fresh consumer reads `partitions` from the beginning until it has `want` records (or
    DEADLINE), then `quiet` seconds more."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation, fetch_max_wait_ms=100)
    c.assign(partitions)
    c.seek_to_beginning(*partitions)
    got = []
    deadline = time.time() + DEADLINE
    while len(got) < want and time.time() < deadline:
        for msgs in c.poll(timeout_ms=100).values():
            got.extend(msgs)
    end = time.time() + quiet
    while time.time() < end:
        for msgs in c.poll(timeout_ms=100).values():
            got.extend(msgs)
    c.close()
    return got


def check(got, expected, what):
    """Exactly `expected`, each once, at its acknowledged offset, in offset order."""
    values = sorted(m.value.decode() for m in got)
    if values != sorted(expected):
        missing = sorted(set(expected) - set(values))[:5]
        extra = sorted(set(values) - set(expected))[:5]
        raise AssertionError(f"{what}: read {len(values)} records, expected {len(expected)}; "
                             f"missing e.g. {missing}, unexpected e.g. {extra}")
    last = {}
    for m in got:
        v = m.value.decode()
        assert sent[v] == (m.topic, m.partition, m.offset), (what, v, sent[v], m)
        key = (m.topic, m.partition)
        assert m.offset > last.get(key, -1), (what, "out of order", m)
        last[key] = m.offset


def expect_exactly(isolation, partitions, expected, what, quiet=1.0):
    check(read(isolation, partitions, len(expected), quiet), expected, f"{what} ({isolation})")


def eventually(what, f, timeout=DEADLINE):
    deadline = time.time() + timeout
    while True:
        try:
            done, last = f()
        except KafkaError as e:
            done, last = False, repr(e)
        if done:
            return last
        if time.time() > deadline:
            raise AssertionError(f"{what} within {timeout} s (last: {last})")
        time.sleep(0.1)


# 1. Commit, abort, commit, across two topics.
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=TXN_ID, linger_ms=2,
                         max_block_ms=30000)
producer.init_transactions()
parts = tps("py-txn") + tps("py-txn-audit")


def txn_batch(tag):
    return produce(producer, "py-txn", tag, 10) + produce(producer, "py-txn-audit", tag, 5)


producer.begin_transaction()
first = txn_batch("first")
producer.commit_transaction()
for iso in (RC, RU):
    expect_exactly(iso, parts, first, "first commit")
producer.begin_transaction()
aborted = txn_batch("aborted")
producer.abort_transaction()
producer.begin_transaction()
after = txn_batch("after")
producer.commit_transaction()
expect_exactly(RC, parts, first + after, "commit, abort, commit")
expect_exactly(RU, parts, first + aborted + after, "commit, abort, commit")

# 2. An open transaction: the LSO, and the admin APIs describing it.
tp = TopicPartition("py-lso", 0)
producer.begin_transaction()
before = produce(producer, "py-lso", "before", 3)
producer.commit_transaction()
expect_exactly(RC, [tp], before, "before")

producer.begin_transaction()
opened = produce(producer, "py-lso", "open", 4)
plain_producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
plain = produce(plain_producer, "py-lso", "plain", 3)
first_open, last_plain = sent[opened[0]][2], sent[plain[-1]][2]
assert first_open > sent[before[-1]][2] and last_plain > first_open, sent

rc = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=RC)
ru = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=RU)
assert rc.end_offsets([tp])[tp] == first_open, (rc.end_offsets([tp]), first_open)
assert ru.end_offsets([tp])[tp] == last_plain + 1, (ru.end_offsets([tp]), last_plain)
listed = admin.list_partition_offsets({tp: OffsetSpec.LATEST},
                                      isolation_level=IsolationLevel.READ_COMMITTED)
assert listed[tp].offset == first_open, (listed, first_open)
listed = admin.list_partition_offsets({tp: OffsetSpec.LATEST},
                                      isolation_level=IsolationLevel.READ_UNCOMMITTED)
assert listed[tp].offset == last_plain + 1, (listed, last_plain)
expect_exactly(RC, [tp], before, "held back by the open transaction", quiet=2.0)
expect_exactly(RU, [tp], before + opened + plain, "open")

active = admin.describe_producers([tp])[tp].active_producers
in_txn = [s for s in active if s.current_transaction_start_offset != -1]
assert len(in_txn) == 1 and in_txn[0].current_transaction_start_offset == first_open, active
pid = in_txn[0].producer_id
desc = admin.describe_transactions([TXN_ID])[TXN_ID]
assert desc.state == TransactionState.ONGOING, desc
assert desc.producer_id == pid and desc.topic_partitions == {tp}, (desc, pid)
assert desc.transaction_timeout_ms == 60000 and desc.transaction_start_time_ms > 0, desc
listings = [t for per_broker in admin.list_transactions().values() for t in per_broker]
assert any(t.transactional_id == TXN_ID and t.producer_id == pid
           and t.state == TransactionState.ONGOING for t in listings), listings
ongoing = [t for per_broker in admin.list_transactions(state_filters=["Ongoing"]).values()
           for t in per_broker]
assert [t.transactional_id for t in ongoing] == [TXN_ID], ongoing

producer.commit_transaction()
expect_exactly(RC, [tp], before + opened + plain, "after the commit")
# The commit marker takes one offset; with nothing open the LSO is the high watermark.
eventually("LSO back at the high watermark", lambda: (
    (rc.end_offsets([tp])[tp], ru.end_offsets([tp])[tp]) == (last_plain + 2, last_plain + 2),
    (rc.end_offsets([tp]), ru.end_offsets([tp]))))
eventually("CompleteCommit", lambda: (
    admin.describe_transactions([TXN_ID])[TXN_ID].state == TransactionState.COMPLETE_COMMIT,
    admin.describe_transactions([TXN_ID])))
ongoing = [t for per_broker in admin.list_transactions(state_filters=["Ongoing"]).values()
           for t in per_broker]
assert ongoing == [], ongoing
active = admin.describe_producers([tp])[tp].active_producers
assert all(s.current_transaction_start_offset == -1 for s in active), active
rc.close()
ru.close()

# 3. Consume-transform-produce with send_offsets_to_transaction.
GROUP, IN, OUT = "py-ctp", "py-ctp-in", "py-ctp-out"
inputs = produce(plain_producer, IN, "in", 20)


def member():
    return KafkaConsumer(IN, bootstrap_servers=bootstrap, group_id=GROUP,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         isolation_level=RC, session_timeout_ms=6000,
                         heartbeat_interval_ms=300, fetch_max_wait_ms=100)


def committed_offsets():
    """The group's committed offsets, as the admin client and a non-member consumer see them."""
    by_admin = {t: o.offset for t, o in admin.list_group_offsets(GROUP)[GROUP].items()}
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False,
                      isolation_level=RC)
    by_consumer = {t: c.committed(t) for t in tps(IN)}
    c.close()
    by_consumer = {t: o for t, o in by_consumer.items() if o is not None}
    return by_admin, by_consumer


def step(consumer, tag, n):
    """Reads n input records, writes each transformed to the same output partition in a new
    transaction, and sends the consumer's positions to it; leaves the transaction open."""
    got = []
    deadline = time.time() + DEADLINE
    while len(got) < n:
        assert time.time() < deadline, f"{tag}: read {len(got)} of {n}"
        for msgs in consumer.poll(timeout_ms=100, max_records=n - len(got)).values():
            got.extend(msgs)
    offsets = {}
    for m in got:
        t = TopicPartition(m.topic, m.partition)
        offsets[t] = max(offsets.get(t, 0), m.offset + 1)
    for t, o in offsets.items():
        assert consumer.position(t) == o, (tag, t, consumer.position(t), o)
    producer.begin_transaction()
    outs = send_all(producer, [(OUT, m.partition, f"{tag}:{m.value.decode()}") for m in got])
    producer.send_offsets_to_transaction(
        {t: OffsetAndMetadata(o, "", -1) for t, o in offsets.items()},
        consumer.group_metadata())
    return got, outs, offsets


worker = member()
read1, out1, offsets1 = step(worker, "committed", 15)
producer.commit_transaction()
eventually("offsets committed with the transaction",
           lambda: (committed_offsets() == (offsets1, offsets1), committed_offsets()))
expect_exactly(RC, tps(OUT), out1, "first step's output")

_, out2, offsets2 = step(worker, "aborted", 15)
assert offsets2 != offsets1, (offsets1, offsets2)
producer.abort_transaction()
# The producer's next transaction starts only once the aborted one is complete (markers written,
# the group's pending offsets among them): once its records are read, the abort is applied.
producer.begin_transaction()
fence = produce(producer, OUT, "fence", 1)
producer.commit_transaction()
expect_exactly(RC, tps(OUT), out1 + fence, "the aborted step's output is not read")
expect_exactly(RU, tps(OUT), out1 + out2 + fence, "every output")
assert committed_offsets() == (offsets1, offsets1), ("aborted offsets committed",
                                                     committed_offsets(), offsets1)

# A new member resumes from the committed offsets: exactly the inputs the committed step did not
# process, the aborted step's included.
worker.close()
done = {m.value.decode() for m in read1}
rest = [v for v in inputs if v not in done]
resumed = member()
got = []
deadline = time.time() + DEADLINE
while len(got) < len(rest) and time.time() < deadline:
    for msgs in resumed.poll(timeout_ms=100).values():
        got.extend(msgs)
end = time.time() + 1.0
while time.time() < end:
    for msgs in resumed.poll(timeout_ms=100).values():
        got.extend(msgs)
if len(got) != len(rest):
    # This once read nothing in CI (not reproduced): say where the member stood.
    print("resumed member: assignment", resumed.assignment(),
          "positions", {t: resumed.position(t) for t in resumed.assignment()},
          "group", admin.describe_consumer_groups([GROUP]),
          "committed", committed_offsets(), flush=True)
resumed.close()
check(got, rest, "resumed from the committed offsets")

# 4. A second producer with the same transactional_id fences the first.
zombie = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="py-fence", linger_ms=2,
                       max_block_ms=30000)
zombie.init_transactions()
zombie.begin_transaction()
zombie_records = produce(zombie, "py-fence", "zombie", 5)
successor = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="py-fence", linger_ms=2,
                          max_block_ms=30000)
successor.init_transactions()
try:
    zombie.commit_transaction()
    raise AssertionError("a fenced producer committed")
except ProducerFencedError:
    pass
successor.begin_transaction()
successor_records = produce(successor, "py-fence", "successor", 5)
successor.commit_transaction()
expect_exactly(RC, tps("py-fence"), successor_records, "after fencing")
expect_exactly(RU, tps("py-fence"), zombie_records + successor_records, "after fencing")

zombie.close(timeout=2)
successor.close()
producer.close()
plain_producer.close()
admin.close()
print("kafka-python transactions ok")
