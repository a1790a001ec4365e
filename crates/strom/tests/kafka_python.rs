//! The Python clients work against Strom: kafka-python, an independent pure-Python
//! implementation of the Kafka protocol (admin operations, every compression, keys and headers
//! round-trip; transactions), and confluent-kafka, librdkafka's Python binding (transactions).
//! The interpreter with both installed comes from `STROM_PYTHON`, else the venv that
//! `scripts/test.sh` creates (`$HOME/.cache/strom/venv`).

mod common;

use common::Strom;

#[test]
fn kafka_python_admin_produce_consume() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let stdout = common::run_python("kafka_python_clients.py", &strom.addr());
    assert!(stdout.contains("kafka-python ok: 2000 records"), "{stdout}");
}

/// kafka-python's transactional producer (commit, abort, send_offsets_to_transaction, fencing),
/// read_committed consumers and end offsets (the LSO), and the transaction admin APIs.
#[test]
fn kafka_python_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let stdout = common::run_python("kafka_python_transactions.py", &strom.addr());
    assert!(stdout.contains("kafka-python transactions ok"), "{stdout}");
}

/// confluent-kafka (librdkafka under Python): commit, abort, read_committed against
/// read_uncommitted, send_offsets_to_transaction, fencing.
#[test]
fn confluent_kafka_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let stdout = common::run_python("confluent_kafka_transactions.py", &strom.addr());
    assert!(
        stdout.contains("confluent-kafka transactions ok"),
        "{stdout}"
    );
}

/// Compaction through real clients: a compacted topic created and altered with kafka-python,
/// many versions per key and tombstones, a keyless record refused, and the latest-per-key view
/// (then without tombstones, once delete.retention.ms passed) read back by kafka-python and
/// librdkafka at the original offsets.
#[test]
fn compaction_seen_by_kafka_python_and_librdkafka() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--log-cleaner-backoff-ms", "200"]);
    let stdout = common::run_python("compaction_clients.py", &strom.addr());
    assert!(stdout.contains("compaction ok"), "{stdout}");
}
