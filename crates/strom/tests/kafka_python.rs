//! kafka-python, an independent pure-Python implementation of the Kafka protocol, works against
//! Strom: admin operations, every compression, keys and headers round-trip.
//! The interpreter with kafka-python installed comes from `STROM_PYTHON`, else the venv that
//! `scripts/test.sh` creates (`$HOME/.cache/strom/venv`).

mod common;

use std::process::Command;

use common::Strom;

fn python() -> String {
    std::env::var("STROM_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/strom/venv/bin/python")
    })
}

#[test]
fn kafka_python_admin_produce_consume() {
    let py = python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_clients.py"
    );
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &[]);
    let out = Command::new(&py)
        .arg(script)
        .arg(strom.addr())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {py} ({e}): run scripts/test.sh, which creates the venv")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kafka-python failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("kafka-python ok: 2000 records"), "{stdout}");
}
