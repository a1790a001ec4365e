"""Strom's Kafka security seen by two independent client stacks, confluent-kafka (librdkafka, with
OpenSSL and its own SCRAM) and kafka-python (pure Python: the ssl module and its own SCRAM):

a. confluent-kafka over SASL_SSL, as alice with SCRAM-SHA-256 and as bob with SCRAM-SHA-512,
   produces 100 records with keys and headers (acks=all, the topic auto-created by the produce)
   and a consumer group reads them all back identical;
b. kafka-python does the same over SASL_SSL with both mechanisms;
c. both clients over the SSL listener, authenticated by a client certificate (CN carol), produce
   and read back 10 records;
d. a wrong password, and a user that does not exist, fail authentication in both clients and
   never reach the data path (librdkafka: KafkaError._AUTHENTICATION on the error callback,
   nothing delivered; kafka-python 3.0.12: its producer never bootstraps, see kp_auth_fails for
   what it raises and why). The broker delays each failed login's answer, longer with every
   failure from the same address (up to 1 s), so this part takes about a minute;
e. alice, denied All on PREFIX + "secret", gets TOPIC_AUTHORIZATION_FAILED producing there from
   both clients.

Both clients verify the broker's certificate against the CA, hostname checking included: the
bootstrap is 127.0.0.1 and the broker certificate carries the IP SAN 127.0.0.1, which librdkafka
(ssl.endpoint.identification.algorithm=https, its default) and Python's ssl module (kafka-python's
ssl_check_hostname=True, its default) both match.

Usage: security_clients.py SASL_SSL_BOOTSTRAP SSL_BOOTSTRAP CA_PEM CLIENT_CERT CLIENT_KEY PREFIX
The test has created the SCRAM users alice (alice-secret) and bob (bob-secret), and ACLs letting
User:alice, User:bob and User:carol Read, Write, Create and Describe topics prefixed PREFIX and
Read any group, plus DENY User:alice All on the literal topic PREFIX + "secret"."""

import faulthandler
import logging
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import (
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
)

faulthandler.dump_traceback_later(240, exit=True)

sasl_bootstrap, ssl_bootstrap, ca, cert, key, prefix = sys.argv[1:7]
DEADLINE = 30.0
USERS = {"SCRAM-SHA-256": ("alice", "alice-secret"), "SCRAM-SHA-512": ("bob", "bob-secret")}


def records(tag, n):
    """(key, value, headers) of n records; the headers repeat a name and one is empty."""
    return [
        (
            f"{tag}-k{i}".encode(),
            f"{tag}-v{i}-".encode() * (1 + i % 7),
            [("idx", str(i).encode()), ("tag", tag.encode()), ("idx", b"again"), ("empty", b"")],
        )
        for i in range(n)
    ]


# ---- confluent-kafka (librdkafka) ----


def ck_sasl(mech, user, password):
    return {
        "bootstrap.servers": sasl_bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": ca,
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": mech,
        "sasl.username": user,
        "sasl.password": password,
    }


def ck_ssl():
    return {
        "bootstrap.servers": ssl_bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": ca,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.certificate.location": cert,
        "ssl.key.location": key,
    }


def ck_roundtrip(conf, topic, group, n):
    errors = []
    conf = {**conf, "error_cb": errors.append}
    want = records(topic, n)
    reports = []
    p = Producer({**conf, "acks": "all", "linger.ms": 5})
    for k, v, h in want:
        p.produce(topic, key=k, value=v, headers=h,
                  on_delivery=lambda err, msg: reports.append((err, msg)))
    left = p.flush(DEADLINE)
    assert left == 0, f"{topic}: {left} records undelivered after {DEADLINE}s, errors {errors}"
    assert len(reports) == n, f"{topic}: {len(reports)} delivery reports for {n} records"
    failed = [(err, msg.key()) for err, msg in reports if err is not None]
    assert not failed, f"{topic}: failed deliveries {failed[:5]}"
    offsets = sorted((msg.partition(), msg.offset()) for _, msg in reports)
    assert len(set(offsets)) == n, f"{topic}: offsets acknowledged twice {offsets}"

    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.time() + DEADLINE
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, f"{topic}: consumer error {m.error()}"
        got.append((m.key(), m.value(), m.headers()))
    c.commit(asynchronous=False)
    c.close()
    assert len(got) == n, f"{topic}: consumed {len(got)} of {n}, errors {errors}"
    # One partition (the broker's default): the order is the produce order.
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{topic}: record {i} read back as {g}, produced {w}"
    assert not errors, f"{topic}: error callback {errors}"


for mech, (user, password) in USERS.items():
    ck_roundtrip(ck_sasl(mech, user, password), f"{prefix}ck-{mech}", f"{prefix}g-ck-{mech}", 100)
ck_roundtrip(ck_ssl(), f"{prefix}ssl-ck", f"{prefix}g-ssl-ck", 10)


# ---- kafka-python ----


def kp_sasl(mech, user, password):
    return dict(bootstrap_servers=sasl_bootstrap, security_protocol="SASL_SSL", ssl_cafile=ca,
                ssl_check_hostname=True, sasl_mechanism=mech, sasl_plain_username=user,
                sasl_plain_password=password)


def kp_ssl():
    return dict(bootstrap_servers=ssl_bootstrap, security_protocol="SSL", ssl_cafile=ca,
                ssl_check_hostname=True, ssl_certfile=cert, ssl_keyfile=key)


def kp_roundtrip(conf, topic, group, n):
    want = records(topic, n)
    p = KafkaProducer(**conf, acks="all", linger_ms=5)
    futures = [p.send(topic, key=k, value=v, headers=h) for k, v, h in want]
    p.flush(timeout=DEADLINE)
    offsets = [f.get(timeout=DEADLINE) for f in futures]
    assert len({(md.partition, md.offset) for md in offsets}) == n, f"{topic}: {offsets}"
    p.close()

    c = KafkaConsumer(topic, **conf, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    got = []
    deadline = time.time() + DEADLINE
    while len(got) < n and time.time() < deadline:
        for batch in c.poll(timeout_ms=200).values():
            got.extend((m.key, m.value, m.headers) for m in batch)
    c.commit()
    c.close()
    assert len(got) == n, f"{topic}: consumed {len(got)} of {n}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{topic}: record {i} read back as {g}, produced {w}"


for mech, (user, password) in USERS.items():
    kp_roundtrip(kp_sasl(mech, user, password), f"{prefix}kp-{mech}", f"{prefix}g-kp-{mech}", 100)
kp_roundtrip(kp_ssl(), f"{prefix}ssl-kp", f"{prefix}g-ssl-kp", 10)


# ---- d. failed authentication ----


def ck_auth_fails(mech, user, password):
    """A librdkafka producer with bad credentials: the error callback reports _AUTHENTICATION and
    its one record is never delivered (it times out in the queue)."""
    errors = []
    reports = []
    p = Producer({**ck_sasl(mech, user, password), "error_cb": errors.append,
                  "message.timeout.ms": 3000})
    p.produce(f"{prefix}ck-badauth", value=b"never", on_delivery=lambda err, msg: reports.append(err))
    deadline = time.time() + DEADLINE
    while time.time() < deadline and not any(
        e.code() == KafkaError._AUTHENTICATION for e in errors
    ):
        p.poll(0.2)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"{user}/{mech}: no _AUTHENTICATION error within {DEADLINE}s: {errors}"
    assert "invalid credentials" in auth[0].str(), auth[0]
    left = p.flush(DEADLINE)
    assert left == 0 and len(reports) == 1, f"{user}/{mech}: {left} left, reports {reports}"
    assert reports[0] is not None, f"{user}/{mech}: a record was delivered with bad credentials"
    return auth[0]


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def kp_auth_fails(mech, user, password):
    """kafka-python 3.0.12 with bad credentials never gets past its bootstrap. The broker answers
    the SCRAM proof with SASL_AUTHENTICATION_FAILED and closes the connection, as Kafka does;
    when kafka-python reads that answer it raises SaslAuthenticationFailedError. But its transport
    drops the bytes of a read that also saw the end of the stream (kafka/net/transport.py,
    _sock_recv then abort), and answer and close usually arrive together, so mostly it logs
    "socket disconnected", retries, and the producer's constructor raises KafkaTimeoutError
    ("Unable to bootstrap") after bootstrap_timeout_ms. Either is accepted; that the failure was
    the login is then shown by its log: the SCRAM exchange was sent and no Metadata ever was
    (with good credentials, Metadata follows the login at once)."""
    log = Recorder()
    logger = logging.getLogger("kafka.net.connection")
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        p = KafkaProducer(**kp_sasl(mech, user, password), bootstrap_timeout_ms=6000)
        p.close()
        raise AssertionError(f"{user}/{mech}: kafka-python bootstrapped with bad credentials")
    except (SaslAuthenticationFailedError, KafkaTimeoutError) as e:
        err = e
    finally:
        logger.removeHandler(log)
        logger.setLevel(logging.NOTSET)
    sent = [m for m in log.messages if "SaslAuthenticateRequest" in m]
    assert any(f"n={user}," in m for m in sent), f"{user}/{mech}: no SCRAM exchange: {log.messages}"
    assert not any("MetadataRequest" in m for m in log.messages), (
        f"{user}/{mech}: kafka-python sent Metadata with bad credentials: {log.messages}"
    )
    if isinstance(err, KafkaTimeoutError):
        assert "bootstrap" in str(err), repr(err)
    else:
        assert "invalid credentials" in str(err), repr(err)
    return err


for mech, (user, _) in USERS.items():
    for who, password in ((user, "wrong-password"), ("mallory", "mallory-secret")):
        ck_err = ck_auth_fails(mech, who, password)
        kp_err = kp_auth_fails(mech, who, password)
        print(f"{who}/{mech}: librdkafka {ck_err.str()!r}; kafka-python {kp_err!r}")


# ---- e. a denied topic ----

secret = f"{prefix}secret"
errors = []
reports = []
p = Producer({**ck_sasl("SCRAM-SHA-256", *USERS["SCRAM-SHA-256"]), "error_cb": errors.append,
              "acks": "all"})
p.produce(secret, key=b"k", value=b"classified", on_delivery=lambda err, msg: reports.append(err))
left = p.flush(DEADLINE)
assert left == 0 and len(reports) == 1, f"librdkafka to {secret}: {left} left, reports {reports}"
assert reports[0] is not None and reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (
    f"librdkafka to {secret}: delivery report {reports[0]}, errors {errors}"
)

kp = KafkaProducer(**kp_sasl("SCRAM-SHA-256", *USERS["SCRAM-SHA-256"]), acks="all",
                   max_block_ms=int(DEADLINE * 1000))
future = kp.send(secret, key=b"k", value=b"classified")
try:
    md = future.get(timeout=DEADLINE)
    raise AssertionError(f"kafka-python: alice produced to {secret}: {md}")
except TopicAuthorizationFailedError:
    pass
kp.close()

# The denial is alice's alone: bob may write the same topic.
reports = []
p = Producer({**ck_sasl("SCRAM-SHA-512", *USERS["SCRAM-SHA-512"]), "acks": "all"})
p.produce(secret, value=b"bob's", on_delivery=lambda err, msg: reports.append(err))
assert p.flush(DEADLINE) == 0 and reports == [None], f"bob to {secret}: {reports}"

print("security clients ok")
