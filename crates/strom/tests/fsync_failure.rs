//! Fail-stop: once fdatasync fails, the broker must stop without acknowledging the write whose
//! fsync failed (after a failed fsync the kernel may have dropped the dirty pages, so nothing
//! can prove the data reached the disk). libfiu's POSIX preload makes fdatasync fail on demand.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::wire::{produce_request, record_batch, Conn};
use common::Strom;
use kafka_protocol::messages::ApiKey;

#[test]
fn fsync_error_stops_the_node_without_acknowledging() {
    assert!(
        Path::new("/usr/lib/fiu/fiu_posix_preload.so").exists(),
        "libfiu is missing: scripts/test.sh installs fiu-utils"
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fiu-ctrl");
    let fifo = fifo.to_str().unwrap();
    let mut strom = Strom::start_wrapped(
        &dir.path().join("data"),
        &[],
        &["fiu-run", "-x", "-f", fifo],
    );
    let mut conn = Conn::connect(&strom.addr());
    let (code, _) = conn.produce("fs", 0, record_batch(None, Bytes::from_static(b"before")));
    assert_eq!(code, 0, "produce before the fault");

    let pid = strom.pid().unwrap().to_string();
    let ctl = Command::new("fiu-ctrl")
        .args([
            "-f",
            fifo,
            "-c",
            "enable name=posix/io/sync/fdatasync",
            &pid,
        ])
        .status()
        .unwrap();
    assert!(ctl.success(), "fiu-ctrl failed");

    conn.send(
        ApiKey::Produce,
        9,
        &produce_request("fs", 0, record_batch(None, Bytes::from_static(b"after"))),
    );
    assert!(
        conn.read_frame().is_none(),
        "a produce was answered although its fsync failed"
    );
    let status = strom
        .wait_exit(Duration::from_secs(10))
        .expect("the broker kept running after an fsync error");
    assert!(!status.success(), "exit status {status}");

    // Without the fault, the node recovers and still has what it acknowledged.
    strom.wrapper.clear();
    strom.restart();
    let recs = common::rdk::consume_all(&strom.addr(), "fs", 1, 2, Duration::from_secs(5));
    assert_eq!(
        recs.first().and_then(|r| r.value.as_deref()),
        Some(&b"before"[..])
    );
}
