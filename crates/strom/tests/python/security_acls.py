"""Strom's authorizer driven entirely through Kafka's admin APIs, as confluent-kafka (librdkafka)
sees it, on a broker started with only a bootstrap super user.

Setup, as the admin user: SCRAM users are created with AlterUserScramCredentials, listed by
DescribeUserScramCredentials, and one mechanism of one user deleted again (it then no longer
authenticates); ACLs are created, listed and deleted with CreateAcls, DescribeAcls and DeleteAcls.

Then every row of a table is checked the same way: user alice (SCRAM-SHA-256) is DENIED with
the exact Kafka error, the admin creates the ACL, and the same action is ALLOWED within ACL_WAIT
seconds (ACLs replicate). Where the client can survive the denial, the very client object that
was denied is reused for the retry, showing that an ACL change applies to an OPEN connection
without reconnecting:

 1. produce to P1: TOPIC_AUTHORIZATION_FAILED -> Write on P1 -> delivered (same Producer);
 2. consume P1 in group G1: GROUP_AUTHORIZATION_FAILED -> Read on G1 -> records read (same
    Consumer); then the topic Read is revoked and that consumer's fetches fail with
    TOPIC_AUTHORIZATION_FAILED, as do a new consumer's;
 3. create_topics P2: TOPIC_AUTHORIZATION_FAILED -> Create on P2 -> created (same AdminClient,
    as in rows 4-7, 12 and 13);
 4. describe_configs, incremental_alter_configs and alter_configs of P1: TOPIC_AUTHORIZATION_FAILED
    -> DescribeConfigs / AlterConfigs -> ok;
 5. create_partitions of P1: TOPIC_AUTHORIZATION_FAILED -> Alter -> 2 partitions;
 6. delete_topics P2: TOPIC_AUTHORIZATION_FAILED -> Delete on P2 -> deleted;
 7. list_topics hides P3 (and names it TOPIC_AUTHORIZATION_FAILED when asked for by name) ->
    Describe on P3 -> listed; P1 is listed all along, its Write implying Describe;
 8. a transactional producer with transactional.id T1: init_transactions fails with
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED -> Write on T1 and on the topic -> a committed
    transaction (a new Producer: librdkafka makes that error fatal);
 9. an idempotent producer of user bob, who has no ACL at all: CLUSTER_AUTHORIZATION_FAILED
    (InitProducerId) -> IdempotentWrite on the cluster -> InitProducerId passes and only the
    topic is refused (TOPIC_AUTHORIZATION_FAILED) -> Write on the topic -> delivered (a new
    Producer after the fatal cluster error, then the same one for the topic grant);
10. DENY beats ALLOW: alice may Read every PREFIXED PREFIX topic; a DENY Read on the literal P1
    makes an open consumer of P1 fail with TOPIC_AUTHORIZATION_FAILED while another prefixed
    topic stays readable; deleting the DENY makes P1 readable again;
11. a PREFIXED Write on PREFIX + "pre-" lets alice produce to PREFIX + "pre-x" and not to
    PREFIX + "other" (same Producer for both);
12. list_consumer_groups shows alice only the groups she may Describe -> Describe on the
    admin's group -> listed;
13. describe_acls, create_acls and delete_acls as alice: CLUSTER_AUTHORIZATION_FAILED -> Describe
    and Alter on the cluster -> ok (librdkafka drops DescribeAcls' error code, so kafka-python
    checks that one);
14. quotas: producer_byte_rate=102400 for alice (AlterClientQuotas as the admin, see below): a
    burst of 2 MiB of 10 KiB records is throttled (throttle_cb reports a throttle time) and
    runs at under 3x the quota; with the quota removed the same burst runs over 5x it. Kafka
    measures a rate over at least 10 of its 11 one-second windows, so about quota x 10 s
    (1 MiB) passes before the first throttle; at 2 MiB the whole run averages about 2x the
    quota on Kafka's arithmetic, less on a stricter broker.

15. authorized operations (describe_topics, describe_cluster, describe_consumer_groups with
    include_authorized_operations): alice sees the operations her ACLs allow on a topic, the
    cluster and a group (implied Describe included), the admin every operation.
confluent-kafka 2.16 has no alter_client_quotas (nor has kafka-python's KafkaAdminClient), so
row 14 sends Kafka's AlterClientQuotas and DescribeClientQuotas requests with kafka-python's
protocol classes over its admin client's connection, logged in as the admin.

Usage: security_acls.py SASL_PLAINTEXT_BOOTSTRAP ADMIN_USER ADMIN_PASSWORD PREFIX
The broker runs with the authorizer on, SCRAM-SHA-256 and -512 offered, and only the admin user
(a super user) exists. Every topic, group and transactional id used starts with PREFIX."""

import faulthandler
import sys
import time
import warnings

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaAdminClient
from kafka.admin import ACLFilter as KpAclFilter
from kafka.admin import ACLOperation as KpAclOperation
from kafka.admin import ACLPermissionType as KpAclPermissionType
from kafka.admin import ACLResourcePatternType as KpPatternType
from kafka.admin import ResourcePatternFilter as KpResourcePatternFilter
from kafka.admin import ResourceType as KpResourceType
from kafka.errors import BrokerResponseError as KafkaPythonBrokerError
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

faulthandler.dump_traceback_later(150, exit=True)
# Row 4 calls the legacy AlterConfigs on purpose.
warnings.filterwarnings("ignore", "alter_configs has been deprecated", DeprecationWarning)

bootstrap, admin_user, admin_password, prefix = sys.argv[1:5]
DEADLINE = 20.0
# How long an ACL change may take to apply (ACLs replicate).
ACL_WAIT = 5.0
ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")
STARTED = time.time()

P1, P2, P3 = f"{prefix}p1", f"{prefix}p2", f"{prefix}p3"
P4 = f"{prefix}p4"  # another prefixed topic, for row 10
TXN_TOPIC, BOB_TOPIC, QUOTA_TOPIC = f"{prefix}txn", f"{prefix}bob", f"{prefix}quota"
PRE_X, OTHER = f"{prefix}pre-x", f"{prefix}other"
G1, G10, HIDDEN = f"{prefix}g1", f"{prefix}g10", f"{prefix}hidden"
T1 = f"{prefix}t1"

TOPIC, GROUP, TXN_ID = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
# ResourceType.BROKER is Kafka's Cluster resource type (4), named "kafka-cluster".
CLUSTER, CLUSTER_NAME = ResourceType.BROKER, "kafka-cluster"
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
Op = AclOperation
E = KafkaError


def conf(user, password, mechanism="SCRAM-SHA-256", **extra):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        **extra,
    }


def kp_conf(user, password, mechanism):
    """kafka-python's settings for the same listener."""
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password)


def error_code(exc):
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


def name(code):
    return KafkaError(code).name() if code is not None else None


def fails(fut, code, what):
    """The future fails with exactly `code`."""
    try:
        r = fut.result(DEADLINE)
    except KafkaException as e:
        assert error_code(e) == code, f"{what}: failed with {e.args[0]}, expected {name(code)}"
        return
    raise AssertionError(f"{what}: allowed ({r!r}), expected {name(code)}")


def until(what, attempt, wait=ACL_WAIT):
    """Calls attempt() until it returns None (done) or `wait` seconds have passed; otherwise it
    returns what is still wrong, which the failure names."""
    deadline = time.time() + wait
    while True:
        try:
            wrong = attempt()
        except KafkaException as e:
            wrong = f"raised {e.args[0]}"
        if wrong is None:
            return
        assert time.time() < deadline, f"{what}: still not allowed after {wait}s: {wrong}"
        time.sleep(0.2)


admin = AdminClient(conf(admin_user, admin_password, "SCRAM-SHA-512"))


def acl(rt, resource, op, principal="User:alice", pattern=LITERAL, perm=ALLOW):
    return AclBinding(rt, resource, pattern, principal, "*", op, perm)


granted = set()


def grant(*bindings):
    for b, f in admin.create_acls(list(bindings)).items():
        assert f.result(DEADLINE) is None, f"create_acls {b}"
        granted.add(b)


def revoke(binding):
    """Deletes exactly this ACL with a filter naming every field of it."""
    b = binding
    f = AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                         b.operation, b.permission_type)
    deleted = admin.delete_acls([f])[f].result(DEADLINE)
    assert deleted == [b], f"delete_acls {b}: deleted {deleted}"
    granted.discard(b)


def deliver(p, topic, value):
    """Produces one record and waits for its delivery report: None when delivered, else the
    report's error."""
    reports = []
    p.produce(topic, value=value, on_delivery=lambda err, msg: reports.append(err))
    left = p.flush(DEADLINE)
    assert left == 0 and len(reports) == 1, f"{topic}: {left} undelivered, reports {reports}"
    return reports[0]


def poll_for(c, want_values=(), want_error=None, wait=DEADLINE):
    """Polls until every value in want_values was read or an error `want_error` was seen.
    Returns (values, error codes)."""
    values, errors = [], []
    deadline = time.time() + wait
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is not None:
            if m.error():
                errors.append(m.error().code())
            else:
                values.append(m.value().decode())
        if want_error is not None and want_error in errors:
            break
        if want_values and set(want_values) <= set(values):
            break
    return values, errors


# ---- setup: users ----

for user, password in (ALICE, BOB):
    alterations = [UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode())]
    if user == BOB[0]:
        alterations.append(UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()))
    for u, f in admin.alter_user_scram_credentials(alterations).items():
        assert f.result(DEADLINE) is None, f"upsert {u}"


def mechanisms():
    described = admin.describe_user_scram_credentials().result(DEADLINE)
    return {
        u: sorted((i.mechanism, i.iterations) for i in d.scram_credential_infos)
        for u, d in described.items()
    }


m = mechanisms()
assert m.get("alice") == [(ScramMechanism.SCRAM_SHA_256, 4096)], m
assert m.get("bob") == sorted(
    [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)]), m
assert admin_user in m, f"the admin user is not listed: {m}"
one = admin.describe_user_scram_credentials(["bob"])["bob"].result(DEADLINE)
assert one.user == "bob" and len(one.scram_credential_infos) == 2, one


def authenticates(user, password, mechanism):
    """Whether a client logs in: a metadata request answers, or the error callback reports
    _AUTHENTICATION."""
    errors = []
    p = Producer(conf(user, password, mechanism, error_cb=errors.append))
    deadline = time.time() + DEADLINE
    while time.time() < deadline:
        try:
            p.list_topics(timeout=0.5)
            return True
        except KafkaException:
            p.poll(0.1)
        if any(e.code() == E._AUTHENTICATION for e in errors):
            return False
    raise AssertionError(f"{user}/{mechanism}: neither logged in nor refused: {errors}")


assert authenticates(*BOB, "SCRAM-SHA-512"), "bob cannot log in with SCRAM-SHA-512"
deletion = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512)
assert admin.alter_user_scram_credentials([deletion])["bob"].result(DEADLINE) is None
m = mechanisms()
assert m.get("bob") == [(ScramMechanism.SCRAM_SHA_256, 4096)], f"after the deletion: {m}"
assert not authenticates(*BOB, "SCRAM-SHA-512"), "bob logs in with a deleted SCRAM-SHA-512"
assert authenticates(*BOB, "SCRAM-SHA-256"), "bob lost SCRAM-SHA-256 too"
print(f"users ok ({time.time() - STARTED:.1f}s)")

# ---- setup: topics, and a group alice may not see ----

for t, f in admin.create_topics(
    [NewTopic(t, 1, 1) for t in (P1, P3, P4, TXN_TOPIC, BOB_TOPIC, QUOTA_TOPIC, PRE_X, OTHER)]
).items():
    f.result(DEADLINE)
ap = Producer(conf(admin_user, admin_password, "SCRAM-SHA-512"))
for i in range(3):
    assert deliver(ap, P4, f"p4-{i}") is None
hidden = Consumer(conf(admin_user, admin_password, "SCRAM-SHA-512", **{"group.id": HIDDEN}))
hidden.commit(offsets=[TopicPartition(P4, 0, 1)], asynchronous=False)
hidden.close()

# The long-lived clients of alice. Reused across rows: alice_admin (rows 3-7, 12, 13), the
# producer `alice_p` (rows 1 and 11) and the consumer of row 2. A short metadata refresh makes
# librdkafka ask again about a topic it was refused; the connection stays the same.
alice_admin = AdminClient(conf(*ALICE))
alice_p = Producer(conf(*ALICE, **{"topic.metadata.refresh.interval.ms": 500,
                                   "message.timeout.ms": 10000, "linger.ms": 0}))


def alice_consumer(group, **extra):
    return Consumer(conf(*ALICE, **{"group.id": group, "auto.offset.reset": "earliest",
                                    "enable.auto.commit": False,
                                    "topic.metadata.refresh.interval.ms": 500, **extra}))


# ---- 1. produce ----

err = deliver(alice_p, P1, "denied")
assert err is not None and err.code() == E.TOPIC_AUTHORIZATION_FAILED, f"row 1: {err}"
grant(acl(TOPIC, P1, Op.WRITE))

# The same producer, on the same connection, now delivers.
until("row 1: produce to P1 with Write", lambda: deliver(alice_p, P1, "row1"))
print(f"1. produce ok ({time.time() - STARTED:.1f}s)")

# ---- 2. consume: group Read and topic Read ----

p1_read = acl(TOPIC, P1, Op.READ)
grant(p1_read)
c = alice_consumer(G1)
c.subscribe([P1])
_, errors = poll_for(c, want_error=E.GROUP_AUTHORIZATION_FAILED)
assert E.GROUP_AUTHORIZATION_FAILED in errors, (
    f"row 2 without group Read: {list(map(name, errors))}")
assert E.TOPIC_AUTHORIZATION_FAILED not in errors, f"row 2: {list(map(name, errors))}"
grant(acl(GROUP, G1, Op.READ))
# Same consumer: its coordinator lookups now succeed and it joins and reads.
values, errors = poll_for(c, want_values=["row1"], wait=ACL_WAIT + DEADLINE)
assert "row1" in values, f"row 2 with group Read: read {values}, errors {list(map(name, errors))}"
c.commit(asynchronous=False)
# Revoking the topic Read: the open consumer's next fetch is refused (Write still lets alice
# Describe P1, so the metadata still shows it).
revoke(p1_read)
_, errors = poll_for(c, want_error=E.TOPIC_AUTHORIZATION_FAILED, wait=ACL_WAIT + DEADLINE)
assert E.TOPIC_AUTHORIZATION_FAILED in errors, (
    f"row 2 after revoking topic Read: errors {list(map(name, errors))}")
c.close()
c = alice_consumer(G1)
c.assign([TopicPartition(P1, 0, OFFSET_BEGINNING)])
values, errors = poll_for(c, want_error=E.TOPIC_AUTHORIZATION_FAILED)
assert E.TOPIC_AUTHORIZATION_FAILED in errors and not values, (
    f"row 2, new consumer without topic Read: read {values}, errors {list(map(name, errors))}")
c.close()
print(f"2. consume ok ({time.time() - STARTED:.1f}s)")

# ---- 3. create topics ----

fails(alice_admin.create_topics([NewTopic(P2, 1, 1)])[P2], E.TOPIC_AUTHORIZATION_FAILED, "row 3")
grant(acl(TOPIC, P2, Op.CREATE))
until("row 3: create_topics P2 with Create",
      lambda: alice_admin.create_topics([NewTopic(P2, 1, 1)])[P2].result(DEADLINE))
assert P2 in admin.list_topics(timeout=DEADLINE).topics, "row 3: P2 not created"
print(f"3. create topic ok ({time.time() - STARTED:.1f}s)")

# ---- 4. configs ----

p1_res = ConfigResource(ResourceType.TOPIC, P1)


def retention():
    return alice_admin.describe_configs([p1_res])[p1_res].result(DEADLINE)["retention.ms"].value


fails(alice_admin.describe_configs([p1_res])[p1_res], E.TOPIC_AUTHORIZATION_FAILED,
      "row 4 describe_configs")
grant(acl(TOPIC, P1, Op.DESCRIBE_CONFIGS))
until("row 4: describe_configs with DescribeConfigs", lambda: None if retention() else "empty")
incremental = ConfigResource(ResourceType.TOPIC, P1, incremental_configs=[ConfigEntry(
    "retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
legacy = ConfigResource(ResourceType.TOPIC, P1, set_config={"retention.ms": "7200000"})
fails(alice_admin.incremental_alter_configs([incremental])[incremental],
      E.TOPIC_AUTHORIZATION_FAILED, "row 4 incremental_alter_configs")
fails(alice_admin.alter_configs([legacy])[legacy], E.TOPIC_AUTHORIZATION_FAILED,
      "row 4 alter_configs")
assert retention() != "3600000", "row 4: a refused alteration changed the config"
grant(acl(TOPIC, P1, Op.ALTER_CONFIGS))
until("row 4: incremental_alter_configs with AlterConfigs",
      lambda: alice_admin.incremental_alter_configs([incremental])[incremental].result(DEADLINE))
assert retention() == "3600000", f"row 4: retention.ms is {retention()}"
alice_admin.alter_configs([legacy])[legacy].result(DEADLINE)
assert retention() == "7200000", f"row 4: retention.ms is {retention()} after alter_configs"
print(f"4. configs ok ({time.time() - STARTED:.1f}s)")

# ---- 5. create partitions ----

fails(alice_admin.create_partitions([NewPartitions(P1, 2)])[P1],
      E.TOPIC_AUTHORIZATION_FAILED, "row 5")
grant(acl(TOPIC, P1, Op.ALTER))
until("row 5: create_partitions with Alter",
      lambda: alice_admin.create_partitions([NewPartitions(P1, 2)])[P1].result(DEADLINE))
n = len(admin.list_topics(P1, timeout=DEADLINE).topics[P1].partitions)
assert n == 2, f"row 5: P1 has {n} partitions"
print(f"5. create partitions ok ({time.time() - STARTED:.1f}s)")

# ---- 6. delete topics ----

fails(alice_admin.delete_topics([P2])[P2], E.TOPIC_AUTHORIZATION_FAILED, "row 6")
assert P2 in admin.list_topics(timeout=DEADLINE).topics, "row 6: a refused deletion deleted P2"
grant(acl(TOPIC, P2, Op.DELETE))
until("row 6: delete_topics with Delete",
      lambda: alice_admin.delete_topics([P2])[P2].result(DEADLINE))
until("row 6: P2 gone",
      lambda: None if P2 not in admin.list_topics(timeout=DEADLINE).topics else "still listed")
print(f"6. delete topic ok ({time.time() - STARTED:.1f}s)")

# ---- 7. metadata visibility ----

listed = set(alice_admin.list_topics(timeout=DEADLINE).topics)
assert P1 in listed, f"row 7: P1 (Write implies Describe) not listed: {sorted(listed)}"
invisible = {P3, P4, TXN_TOPIC, BOB_TOPIC, QUOTA_TOPIC, PRE_X, OTHER}
assert not listed & invisible, f"row 7: alice sees {sorted(listed & invisible)}"
by_name = alice_admin.list_topics(P3, timeout=DEADLINE).topics[P3]
assert by_name.error is not None and by_name.error.code() == E.TOPIC_AUTHORIZATION_FAILED, (
    f"row 7: metadata of P3 by name: {by_name.error}")
grant(acl(TOPIC, P3, Op.DESCRIBE))


def p3_listed():
    listed = set(alice_admin.list_topics(timeout=DEADLINE).topics)
    return None if P3 in listed and not listed & (invisible - {P3}) else sorted(listed)


until("row 7: P3 listed with Describe", p3_listed)
print(f"7. metadata ok ({time.time() - STARTED:.1f}s)")

# ---- 8. transactions ----

txn_conf = conf(*ALICE, **{"transactional.id": T1, "linger.ms": 0})
tp = Producer(txn_conf)
try:
    tp.init_transactions(DEADLINE)
    raise AssertionError("row 8: init_transactions allowed without a TransactionalId ACL")
except KafkaException as e:
    assert error_code(e) == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, f"row 8: {e.args[0]}"
    assert e.args[0].fatal(), f"row 8: librdkafka no longer makes {e.args[0]} fatal"
grant(acl(TXN_ID, T1, Op.WRITE), acl(TOPIC, TXN_TOPIC, Op.WRITE))


def transaction():
    # A new Producer per attempt: librdkafka makes the authorization error fatal for the
    # transactional producer that got it.
    p = Producer(txn_conf)
    p.init_transactions(DEADLINE)
    p.begin_transaction()
    reports = []
    p.produce(TXN_TOPIC, value="in a transaction", on_delivery=lambda e, m: reports.append(e))
    p.commit_transaction(DEADLINE)
    return None if reports == [None] else f"delivery reports {reports}"


until("row 8: a transaction with Write on T1", transaction)
print(f"8. transactions ok ({time.time() - STARTED:.1f}s)")

# ---- 9. idempotent producer: IdempotentWrite on the cluster ----


def bob_producer():
    errors = []
    p = Producer(conf(*BOB, **{"enable.idempotence": True, "error_cb": errors.append,
                               "topic.metadata.refresh.interval.ms": 500,
                               "message.timeout.ms": 10000, "linger.ms": 0}))
    return p, errors


def fatal_error(p, errors, wait):
    """The producer's fatal error within `wait` seconds, if any (confluent-kafka raises it from
    poll, or hands it to the error callback)."""
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            p.poll(0.1)
        except KafkaException as e:
            return e.args[0]
        fatal = [e for e in errors if e.fatal()]
        if fatal:
            return fatal[0]
    return None


bp, bob_errors = bob_producer()
bp.produce(BOB_TOPIC, value="denied")
fatal = fatal_error(bp, bob_errors, DEADLINE)
assert fatal is not None and fatal.code() == E.CLUSTER_AUTHORIZATION_FAILED, (
    f"row 9: idempotent producer without IdempotentWrite: fatal {fatal}, errors {bob_errors}")
grant(acl(CLUSTER, CLUSTER_NAME, Op.IDEMPOTENT_WRITE, principal="User:bob"))


def init_producer_id():
    # A new Producer per attempt (the cluster error was fatal). With IdempotentWrite its
    # InitProducerId (sent as soon as it connects) passes and only the topic, which bob may
    # not Write, is refused.
    global bp, bob_errors
    bp, bob_errors = bob_producer()
    fatal = fatal_error(bp, bob_errors, 1.0)
    if fatal is not None:
        return f"fatal {fatal}"
    err = deliver(bp, BOB_TOPIC, "denied")
    if err is None or err.code() != E.TOPIC_AUTHORIZATION_FAILED:
        return f"delivery report {err}, expected TOPIC_AUTHORIZATION_FAILED"
    fatal = fatal_error(bp, bob_errors, 0.5)
    return None if fatal is None else f"fatal {fatal}"


until("row 9: InitProducerId with IdempotentWrite", init_producer_id)
grant(acl(TOPIC, BOB_TOPIC, Op.WRITE, principal="User:bob"))
# The same idempotent producer now delivers.
until("row 9: idempotent produce with Write", lambda: deliver(bp, BOB_TOPIC, "row9"))
assert not bob_errors, f"row 9: error callback {bob_errors}"
print(f"9. idempotent producer ok ({time.time() - STARTED:.1f}s)")

# ---- 10. DENY overrides ALLOW ----

grant(acl(TOPIC, prefix, Op.READ, pattern=PREFIXED), acl(GROUP, G10, Op.READ))
c10 = alice_consumer(G10)
c10.assign([TopicPartition(P1, p, OFFSET_BEGINNING) for p in range(2)])
values, errors = poll_for(c10, want_values=["row1"], wait=ACL_WAIT + DEADLINE)
assert "row1" in values, f"row 10: prefixed Read: read {values}, errors {list(map(name, errors))}"
deny = acl(TOPIC, P1, Op.READ, perm=DENY)
grant(deny)
# The same consumer, already past the end of P1 and fetching, is refused.
_, errors = poll_for(c10, want_error=E.TOPIC_AUTHORIZATION_FAILED, wait=ACL_WAIT + DEADLINE)
assert E.TOPIC_AUTHORIZATION_FAILED in errors, f"row 10 DENY: {list(map(name, errors))}"
c = alice_consumer(G10)
c.assign([TopicPartition(P4, 0, OFFSET_BEGINNING)])
want = [f"p4-{i}" for i in range(3)]
values, errors = poll_for(c, want_values=want)
assert sorted(values) == want, f"row 10: P4 under the DENY on P1: {values}, {errors}"
c.commit(asynchronous=False)  # G10 now exists, for row 12
c.close()
c = alice_consumer(G10)
c.assign([TopicPartition(P1, p, OFFSET_BEGINNING) for p in range(2)])
values, errors = poll_for(c, want_error=E.TOPIC_AUTHORIZATION_FAILED)
assert E.TOPIC_AUTHORIZATION_FAILED in errors and not values, (
    f"row 10: a new consumer of P1 under the DENY read {values}, errors {errors}")
c.close()
revoke(deny)
# Without the DENY the prefixed ALLOW applies again: the first consumer reads P1 once more.
c10.assign([TopicPartition(P1, p, OFFSET_BEGINNING) for p in range(2)])
values, errors = poll_for(c10, want_values=["row1"], wait=ACL_WAIT + DEADLINE)
assert "row1" in values, f"row 10 after deleting the DENY: {values}, {list(map(name, errors))}"
c10.close()
print(f"10. deny ok ({time.time() - STARTED:.1f}s)")

# ---- 11. PREFIXED Write ----

err = deliver(alice_p, PRE_X, "denied")
assert err is not None and err.code() == E.TOPIC_AUTHORIZATION_FAILED, f"row 11: {err}"
grant(acl(TOPIC, f"{prefix}pre-", Op.WRITE, pattern=PREFIXED))
until("row 11: produce to PRE_X with a PREFIXED Write", lambda: deliver(alice_p, PRE_X, "row11"))
err = deliver(alice_p, OTHER, "denied")
assert err is not None and err.code() == E.TOPIC_AUTHORIZATION_FAILED, f"row 11 OTHER: {err}"
print(f"11. prefixed ok ({time.time() - STARTED:.1f}s)")

# ---- 12. group listing ----


def groups(client):
    r = client.list_consumer_groups().result(DEADLINE)
    assert not r.errors, r.errors
    return {g.group_id for g in r.valid}


everything = groups(admin)
assert {G1, G10, HIDDEN} <= everything, f"row 12: the admin lists {sorted(everything)}"
seen = groups(alice_admin)
assert G1 in seen and G10 in seen and HIDDEN not in seen, f"row 12: alice lists {sorted(seen)}"
grant(acl(GROUP, HIDDEN, Op.DESCRIBE))
until("row 12: HIDDEN listed with Describe",
      lambda: None if HIDDEN in groups(alice_admin) else sorted(groups(alice_admin)))
print(f"12. group listing ok ({time.time() - STARTED:.1f}s)")

# ---- 13. ACL administration ----

any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                              Op.ANY, AclPermissionType.ANY)
own = acl(TOPIC, OTHER, Op.DESCRIBE)
# librdkafka drops DescribeAcls' top-level error code (rd_kafka_DescribeAclsResponse_parse
# returns NO_ERROR whatever the broker said, on real Kafka too): through confluent-kafka a
# refusal is an empty listing. kafka-python reads the code, so it checks the exact error.
assert alice_admin.describe_acls(any_filter).result(DEADLINE) == [], "row 13: alice lists ACLs"
kp_alice = KafkaAdminClient(**kp_conf(*ALICE, "SCRAM-SHA-256"))
try:
    kp_alice.describe_acls(KpAclFilter(
        principal=None, host="*", operation=KpAclOperation.ANY,
        permission_type=KpAclPermissionType.ANY,
        resource_pattern=KpResourcePatternFilter(KpResourceType.ANY, None, KpPatternType.ANY)))
    raise AssertionError("row 13: kafka-python describe_acls allowed for alice")
except KafkaPythonBrokerError as e:
    assert e.errno == E.CLUSTER_AUTHORIZATION_FAILED, f"row 13 describe_acls: {e!r}"
kp_alice.close()
fails(alice_admin.create_acls([own])[own], E.CLUSTER_AUTHORIZATION_FAILED, "row 13 create")
fails(alice_admin.delete_acls([any_filter])[any_filter], E.CLUSTER_AUTHORIZATION_FAILED,
      "row 13 delete")
grant(acl(CLUSTER, CLUSTER_NAME, Op.DESCRIBE), acl(CLUSTER, CLUSTER_NAME, Op.ALTER))


def alice_describes():
    listed = set(alice_admin.describe_acls(any_filter).result(DEADLINE))
    return None if granted <= listed else f"missing {granted - listed}"


until("row 13: describe_acls with cluster Describe", alice_describes)
until("row 13: create_acls with cluster Alter",
      lambda: alice_admin.create_acls([own])[own].result(DEADLINE))
mine = AclBindingFilter(TOPIC, OTHER, LITERAL, "User:alice", "*", Op.DESCRIBE, ALLOW)
deleted = alice_admin.delete_acls([mine])[mine].result(DEADLINE)
assert deleted == [own], f"row 13: alice deleted {deleted}"
print(f"13. acl administration ok ({time.time() - STARTED:.1f}s)")

# Everything granted is listed exactly, for alice and for bob, and a MATCH filter on P1 finds
# its literal ACLs and the prefixed ones covering it.
for principal in ("User:alice", "User:bob"):
    f = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                         Op.ANY, AclPermissionType.ANY)
    listed = set(admin.describe_acls(f).result(DEADLINE))
    want = {b for b in granted if b.principal == principal}
    assert listed == want, (
        f"describe_acls {principal}: extra {listed - want}, missing {want - listed}")
match = AclBindingFilter(TOPIC, P1, ResourcePatternType.MATCH, None, None, Op.ANY,
                         AclPermissionType.ANY)
listed = set(admin.describe_acls(match).result(DEADLINE))
want = {b for b in granted if b.restype == TOPIC and (
    (b.resource_pattern_type == LITERAL and b.name == P1)
    or (b.resource_pattern_type == PREFIXED and P1.startswith(b.name)))}
assert listed == want, f"describe_acls MATCH {P1}: extra {listed - want}, missing {want - listed}"

# ---- 14. quotas ----

QUOTA = 102400
BURST, RECORD = 2 << 20, 10 * 1024
kp_admin = KafkaAdminClient(**kp_conf(admin_user, admin_password, "SCRAM-SHA-512"))


def kp_send(request):
    """Sends one request on kafka-python's admin connection and returns the response (the
    admin client's own methods do the same; it has none for client quotas)."""
    return kp_admin._manager.run(kp_admin._manager.send, request)


def alter_quota(value):
    """Sets (or with None removes) alice's producer_byte_rate."""
    Entry = AlterClientQuotasRequest.EntryData
    op = Entry.OpData(key="producer_byte_rate", value=float(value or 0), remove=value is None)
    r = kp_send(AlterClientQuotasRequest(entries=[Entry(
        entity=[Entry.EntityData(entity_type="user", entity_name="alice")], ops=[op])],
        validate_only=False))
    assert [e.error_code for e in r.entries] == [0], f"AlterClientQuotas: {r}"


def described_quota():
    Component = DescribeClientQuotasRequest.ComponentData
    r = kp_send(DescribeClientQuotasRequest(
        components=[Component(entity_type="user", match_type=0, match="alice")], strict=False))
    assert r.error_code == 0, f"DescribeClientQuotas: {r}"
    return {v.key: v.value for e in r.entries for v in e.values}


def burst():
    """BURST bytes of 10 KiB records as fast as alice can: one record per batch, so that the
    throttle can act between requests. Returns (bytes per second, throttle events in ms)."""
    throttles = []
    p = Producer(conf(*ALICE, **{
        "acks": "all", "linger.ms": 1, "batch.size": 16384,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time * 1000),
    }))
    p.list_topics(QUOTA_TOPIC, timeout=DEADLINE)  # connected before the clock starts
    reports = []
    value = b"q" * RECORD
    start = time.time()
    for _ in range(BURST // RECORD):
        while True:
            try:
                p.produce(QUOTA_TOPIC, value=value, on_delivery=lambda e, m: reports.append(e))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    elapsed = time.time() - start
    assert left == 0 and reports and all(e is None for e in reports), (
        f"row 14: {left} undelivered, errors {[e for e in reports if e][:3]}")
    p.poll(0.5)  # throttle events still queued
    return len(reports) * RECORD / elapsed, [t for t in throttles if t > 0]


grant(acl(TOPIC, QUOTA_TOPIC, Op.WRITE))
alter_quota(QUOTA)
q = described_quota()
assert q == {"producer_byte_rate": float(QUOTA)}, f"row 14: described quotas {q}"
limited, throttles = burst()
print(f"14. with producer_byte_rate={QUOTA}: {limited:.0f} B/s, "
      f"{len(throttles)} throttle events, max {max(throttles, default=0):.0f} ms")
assert throttles, "row 14: the quota never throttled alice"
assert limited < 3 * QUOTA, f"row 14: {limited:.0f} B/s under a {QUOTA} B/s quota"
alter_quota(None)
q = described_quota()
assert q == {}, f"row 14: described quotas after removal {q}"
free, throttles = burst()
print(f"14. without the quota: {free:.0f} B/s ({free / limited:.1f}x), "
      f"{len(throttles)} throttle events")
assert free > 5 * QUOTA, f"row 14: only {free:.0f} B/s without the quota"
assert not throttles, f"row 14: throttled without a quota: {throttles[:5]}"
kp_admin.close()

# ---- 15. authorized operations ----

OPS = f"{prefix}ops"
for f in admin.create_topics([NewTopic(OPS, 1)]).values():
    f.result(DEADLINE)
grant(acl(TOPIC, OPS, Op.WRITE))


def topic_ops(client):
    d = client.describe_topics(TopicCollection([OPS]), include_authorized_operations=True)
    return set(d[OPS].result(DEADLINE).authorized_operations or [])


# Read from row 10's PREFIXED ACL, Write granted just now, Describe implied by both.
alice_topic = {Op.READ, Op.WRITE, Op.DESCRIBE}
until("row 15: alice's operations on OPS",
      lambda: None if topic_ops(alice_admin) == alice_topic else sorted(map(str, topic_ops(alice_admin))))
every_topic_op = {Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE,
                  Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS}
assert topic_ops(admin) == every_topic_op, f"row 15: the admin's {topic_ops(admin)}"
cluster = alice_admin.describe_cluster(include_authorized_operations=True).result(DEADLINE)
assert set(cluster.authorized_operations) == {Op.DESCRIBE, Op.ALTER}, (
    f"row 15: alice's cluster operations {cluster.authorized_operations}")
g1 = alice_admin.describe_consumer_groups([G1], include_authorized_operations=True)[G1]
assert set(g1.result(DEADLINE).authorized_operations) == {Op.READ, Op.DESCRIBE}, (
    f"row 15: alice's operations on G1 {g1.result(DEADLINE).authorized_operations}")
print(f"15. authorized operations ok ({time.time() - STARTED:.1f}s)")

# ---- cleanup: a broad delete_acls filter per principal removes exactly what was granted, and
# the users go (the broker is back to its starting state, so the script can run again) ----

for principal in ("User:alice", "User:bob"):
    f = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                         Op.ANY, AclPermissionType.ANY)
    deleted = set(admin.delete_acls([f])[f].result(DEADLINE))
    want = {b for b in granted if b.principal == principal}
    assert deleted == want, (
        f"delete_acls {principal}: extra {deleted - want}, missing {want - deleted}")
    assert admin.describe_acls(f).result(DEADLINE) == [], f"{principal}: ACLs left"
for u, f in admin.alter_user_scram_credentials([
    UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256),
    UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256),
]).items():
    assert f.result(DEADLINE) is None, f"delete {u}"
m = mechanisms()
assert "alice" not in m and "bob" not in m, f"users left: {m}"

print(f"all rows in {time.time() - STARTED:.1f}s")
print("security acls ok")
