"""kafka-python (a pure-Python, independent implementation of the Kafka protocol) against Strom:
admin (create, list, describe configs, describe producers, add partitions, delete), producing with
every compression, acks=all, keys and headers, and consuming everything back byte-identical and in
order."""

import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

bootstrap = sys.argv[1]
TOPIC = "py-roundtrip"
PARTITIONS = 3
PER_CODEC = 400
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def payload(codec_index, i):
    return bytes((i * 31 + j * 7 + codec_index) % 256 for j in range(1 + (i * 13) % 900))


admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1, topic_configs={"retention.ms": "3600000"})])
try:
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    raise AssertionError("creating an existing topic succeeded")
except TopicAlreadyExistsError:
    pass
assert TOPIC in admin.list_topics(), admin.list_topics()
configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
text = repr(configs)
assert "retention.ms" in text and "3600000" in text, text

acked = {}
for c, codec in enumerate(CODECS):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        # kafka-python 3, like Java 3.x, is idempotent by default: InitProducerId and sequence
        # numbers are exercised here too.
    )
    futures = []
    for i in range(PER_CODEC):
        fut = producer.send(
            TOPIC,
            key=f"{codec}-{i}".encode(),
            value=payload(c, i),
            headers=[("idx", str(i).encode()), ("codec", codec.encode())],
            partition=i % PARTITIONS,
        )
        futures.append((c, i, fut))
    producer.flush()
    for c_, i, fut in futures:
        md = fut.get(timeout=30)
        key = (md.partition, md.offset)
        assert key not in acked, f"offset acknowledged twice: {key}"
        acked[key] = (c_, i)
    producer.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         consumer_timeout_ms=10000)
tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
consumer.assign(tps)
consumer.seek_to_beginning(*tps)
seen = 0
last = {}
for msg in consumer:
    c, i = acked[(msg.partition, msg.offset)]
    codec = CODECS[c]
    assert msg.key == f"{codec}-{i}".encode(), (msg.partition, msg.offset, msg.key)
    assert msg.value == payload(c, i), (msg.partition, msg.offset)
    assert msg.headers == [("idx", str(i).encode()), ("codec", codec.encode())], msg.headers
    assert msg.offset > last.get(msg.partition, -1), "offsets out of order"
    last[msg.partition] = msg.offset
    seen += 1
    if seen == len(acked):
        break
consumer.close()
assert seen == len(CODECS) * PER_CODEC, f"consumed {seen} of {len(CODECS) * PER_CODEC}"

# DescribeProducers: each idempotent producer above (one per codec) on every partition, with
# the epoch and the last sequence number the partition holds for it (sequences count from 0 per
# partition; producer i sent record i to partition i % PARTITIONS).
states = admin.describe_producers([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
for p in range(PARTITIONS):
    active = states[TopicPartition(TOPIC, p)].active_producers
    assert len(active) == len(CODECS), (p, active)
    assert len({s.producer_id for s in active}) == len(CODECS), active
    sent = len(range(p, PER_CODEC, PARTITIONS))
    for s in active:
        assert s.producer_epoch == 0 and s.last_sequence == sent - 1, (p, s)
        assert s.current_transaction_start_offset == -1 and s.last_timestamp > 0, (p, s)

admin.create_partitions({TOPIC: NewPartitions(PARTITIONS + 2)})
meta = KafkaConsumer(bootstrap_servers=bootstrap)
assert meta.partitions_for_topic(TOPIC) == set(range(PARTITIONS + 2)), meta.partitions_for_topic(TOPIC)
meta.close()
admin.delete_topics([TOPIC])
assert TOPIC not in admin.list_topics()
admin.close()
print(f"kafka-python ok: {seen} records")
