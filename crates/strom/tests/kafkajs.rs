//! kafkajs, a pure-JavaScript implementation of the Kafka protocol (neither librdkafka nor
//! Python), against Strom: admin, idempotent produce, a two-member consumer group that commits,
//! offsets and group read back. The script is `tests/js/kafkajs_clients.js`; kafkajs itself comes
//! from `STROM_NODE_MODULES`, else the directory `scripts/test.sh` installs it into
//! (`$HOME/.cache/strom/node/node_modules`).

mod common;

use std::process::Command;

use common::Strom;

#[test]
fn kafkajs_produces_consumes_in_a_group_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]);
    let modules = std::env::var("STROM_NODE_MODULES").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/strom/node/node_modules")
    });
    let script = format!("{}/tests/js/kafkajs_clients.js", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(&script)
        .arg(strom.addr())
        .env("NODE_PATH", &modules)
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): run scripts/test.sh, which installs it")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("kafkajs ok: 600 records"),
        "kafkajs failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
