//! A full disk answers KAFKA_STORAGE_ERROR, keeps what was written, and recovers once space is
//! freed. The data directory is a 4 MiB tmpfs (needs root, as CI has).

mod common;

use std::process::Command;

use bytes::Bytes;
use common::wire::Conn;
use common::Strom;
use kafka_protocol::ResponseError;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn batch(i: usize) -> Bytes {
    common::wire::record_batch(None, Bytes::from(vec![(i % 251) as u8; 64 * 1024]))
}

#[test]
fn full_disk_is_a_storage_error_until_space_is_freed() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED full_disk: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs failed");
    let _guard = Tmpfs(mnt.clone());
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1024 * 1024]).unwrap();

    let mut strom = Strom::start(&mnt.join("data"), &["--segment-bytes", "1048576"]);
    let mut conn = Conn::connect(&strom.addr());
    let mut acked = Vec::new();
    let mut full_at = None;
    for i in 0..200 {
        let (code, offset) = conn.produce("full", 0, batch(i));
        if code == 0 {
            acked.push((offset, i));
        } else {
            assert_eq!(
                code,
                ResponseError::KafkaStorageError.code(),
                "produce #{i}"
            );
            full_at = Some(i);
            break;
        }
    }
    let full_at = full_at.expect("the 4 MiB disk never filled up");
    assert!(!acked.is_empty());
    // Still full: still an error, still alive.
    assert_eq!(
        conn.produce("full", 0, batch(full_at)).0,
        ResponseError::KafkaStorageError.code()
    );
    assert!(strom.is_running());

    std::fs::remove_file(&ballast).unwrap();
    let (code, offset) = conn.produce("full", 0, batch(full_at));
    assert_eq!(code, 0, "produce after freeing space");
    assert_eq!(
        offset,
        acked.last().unwrap().0 + 1,
        "the failed appends left no trace"
    );

    // Everything acknowledged is intact after a restart.
    strom.stop();
    std::fs::write(&ballast, vec![0u8; 512 * 1024]).ok();
    std::fs::remove_file(&ballast).ok();
    strom.restart();
    let addr = strom.addr();
    let recs = common::rdk::consume_all(
        &addr,
        "full",
        1,
        acked.len() + 1,
        std::time::Duration::from_secs(20),
    );
    assert_eq!(recs.len(), acked.len() + 1);
    for ((offset, i), r) in acked.iter().zip(&recs) {
        assert_eq!(r.offset, *offset);
        assert_eq!(
            r.value.as_deref(),
            Some(&vec![(i % 251) as u8; 64 * 1024][..])
        );
    }
    strom.kill9();
}
