"""Three kafka-python consumers of one group, polled in turn from one thread (poll(200 ms)),
settle on one generation and read everything, round after round.

With kafka-python 3.0.12 as it is, this pattern storms against Strom and against Kafka alike:
when a member's JoinGroup+SyncGroup finishes while the application is polling another consumer,
kafka-python's `join_group_async` throws the finished result away and sends JoinGroup again. A
follower doing so is harmless (the coordinator hands it the current generation), but the leader
doing so makes any Kafka coordinator rebalance (Kafka: "force a rebalance if the leader sends
JoinGroup"), and each such rebalance again ends while another consumer is being polled: a new
generation every ~1.2 s. Strom keeps Kafka's rule (Kafka Streams' probing rebalances and
`enforceRebalance()` rely on it), so this script runs the scenario with the client's bug worked
around (below: a finished join is completed instead of dropped) and checks that Strom's
coordinator then settles every round: no rebalance without cause, every record read once, each
partition owned by one member."""

import sys
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from kafka.coordinator.base import BaseCoordinator, MemberState

_join_group_async = BaseCoordinator.join_group_async


async def join_group_async(self, timeout_ms=None):
    """kafka-python 3.0.12's join, but a join task that finished while nobody awaited it is
    completed (the member takes the generation it was given) instead of being dropped."""
    task = self._join_task
    if task is not None and task.succeeded() and self.rejoining:
        self._join_task = None
        with self._lock:
            self.rejoining = False
            self.rejoin_needed = False
            self.state = MemberState.STABLE
            self._enable_heartbeat()
        await self._on_join_complete_async(
            self._generation.generation_id, self._generation.member_id,
            self._generation.protocol, task.value)
    return await _join_group_async(self, timeout_ms)


BaseCoordinator.join_group_async = join_group_async

bootstrap = sys.argv[1]
ROUNDS, PARTITIONS, RECORDS, MEMBERS = 3, 6, 600, 3
# A round ends once everything is read and the generation has not moved for QUIET_S (a storm
# moves it every ~1.2 s); it fails at DEADLINE_S, so the script takes at most ~50 s.
QUIET_S, DEADLINE_S = 4.0, 15.0
# Generations a round may use: the first may form before every consumer joined, and the
# leader may rejoin once when it assigned before it had the topic's metadata (a real change).
MAX_GENERATION = 4

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
producer = KafkaProducer(bootstrap_servers=bootstrap)


def run_round(n):
    topic, group = "py-storm-%s" % uuid.uuid4().hex[:8], "py-storm-group-%d" % n
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    for i in range(RECORDS):
        producer.send(topic, value=b"v%d" % i, partition=i % PARTITIONS)
    producer.flush()

    consumers = []
    for i in range(MEMBERS):
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id="storm-%d" % i,
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          session_timeout_ms=10000, heartbeat_interval_ms=1000)
        c.subscribe([topic])
        consumers.append(c)

    seen, generation, moved_at = set(), -1, time.time()
    start = time.time()
    try:
        while True:
            for c in consumers:
                batch = c.poll(timeout_ms=200, max_records=500)
                for records in batch.values():
                    seen.update((r.partition, r.offset) for r in records)
                if batch:
                    c.commit()
            now = time.time()
            current = max(c.group_metadata().generation_id for c in consumers)
            if current != generation:
                generation, moved_at = current, now
            assigned = all(c.assignment() for c in consumers)
            if len(seen) == RECORDS and assigned and now - moved_at >= QUIET_S:
                break
            assert now - start < DEADLINE_S, (
                "round %d: the group did not settle in %.0f s: generation %d (moved %.1f s ago),"
                " %d of %d records read, assignments %s"
                % (n, DEADLINE_S, generation, now - moved_at, len(seen), RECORDS,
                   [sorted(tp.partition for tp in c.assignment()) for c in consumers]))
        assert generation <= MAX_GENERATION, (n, generation)
        owned = sorted(tp.partition for c in consumers for tp in c.assignment())
        assert owned == list(range(PARTITIONS)), owned
    finally:
        for c in consumers:
            c.close()
    print("round %d: generation %d, %d records in %.1f s" % (n, generation, len(seen),
                                                            time.time() - start))


for n in range(ROUNDS):
    run_round(n)
producer.close()
admin.close()
print("kafka-python one-thread consumers ok")
