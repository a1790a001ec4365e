use std::fs;
use std::io::Write;
use std::path::Path;

use super::builder::{batch_with, files_with_ext, open, read_all, small_config, stored};
use crate::batch::BatchHeader;
use crate::error::StorageError;
use crate::log::{Log, LogConfig};

/// Appends batches and returns (base offset, stored bytes) per batch.
fn fill(log: &mut Log, count: usize) -> Vec<(u64, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let raw = batch_with((i % 3) as i32 + 1, 30 + (i * 53) % 120, i as i64);
            let info = log.append(&raw, 4, 0).unwrap();
            (info.base_offset, stored(&raw, info.base_offset, 4))
        })
        .collect()
}

fn concat(batches: &[(u64, Vec<u8>)]) -> Vec<u8> {
    batches.iter().flat_map(|(_, b)| b.clone()).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn next_after(batches: &[(u64, Vec<u8>)]) -> u64 {
    batches
        .last()
        .map(|(_, b)| BatchHeader::parse(b).unwrap().last_offset() as u64 + 1)
        .unwrap_or(0)
}

#[test]
fn torn_tail_recovers_exactly_the_whole_batches() {
    let source = tempfile::tempdir().unwrap();
    let config = small_config(1_500);
    let mut log = open(source.path(), &config);
    let batches = fill(&mut log, 30);
    let active_base = log.active().base_offset;
    drop(log);
    let logs = files_with_ext(source.path(), "log");
    assert!(logs.len() > 2);
    let active_path = logs.last().unwrap().clone();
    let active_len = fs::metadata(&active_path).unwrap().len();
    let in_active: Vec<_> = batches.iter().filter(|(b, _)| *b >= active_base).collect();
    let before_active = batches.len() - in_active.len();

    for cut in (0..active_len).step_by(11).chain([active_len - 1]) {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        let path = dir.path().join(active_path.file_name().unwrap());
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let mut end = 0u64;
        let mut whole = before_active;
        for (_, bytes) in &in_active {
            end += bytes.len() as u64;
            if end > cut {
                break;
            }
            whole += 1;
        }
        let log = open(dir.path(), &config);
        assert_eq!(
            log.next_offset(),
            next_after(&batches[..whole]),
            "cut {cut}"
        );
        assert_eq!(log.durable_offset(), log.next_offset());
        assert_eq!(read_all(&log, 0), concat(&batches[..whole]), "cut {cut}");
    }
}

#[test]
fn flipped_byte_in_the_last_batch_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(1 << 20);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 10);
    drop(log);
    let path = &files_with_ext(dir.path(), "log")[0];
    let len = fs::metadata(path).unwrap().len();
    flip_byte(path, len - 3);
    let mut log = open(dir.path(), &config);
    assert_eq!(read_all(&log, 0), concat(&batches[..9]));
    assert_eq!(
        fs::metadata(path).unwrap().len(),
        len - batches[9].1.len() as u64
    );
    // New appends take the dropped offsets.
    let info = log.append(&batch_with(1, 5, 0), 0, 0).unwrap();
    assert_eq!(info.base_offset, batches[9].0);
}

#[test]
fn corruption_below_the_checkpoint_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(600);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 20);
    log.close().unwrap();
    let first = &files_with_ext(dir.path(), "log")[0];
    // Inside the records of the second batch: framing stays intact.
    let position = batches[0].1.len() as u64 + 70;
    flip_byte(first, position);
    let log = open(dir.path(), &config);
    assert_eq!(log.next_offset(), next_after(&batches));
    let err = log.read(batches[1].0, 1 << 20, u64::MAX).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { position: p, .. } if *p == batches[0].1.len() as u64),
        "{err}"
    );
    // Reads serve the sound batches before the damage, never the damaged one.
    for max_bytes in [1, 1 << 20] {
        let ok = log.read(0, max_bytes, u64::MAX).unwrap();
        assert_eq!(&ok.bytes[..], &batches[0].1[..]);
    }
    // A broken header below the checkpoint is lost acknowledged data: refuse.
    drop(log);
    flip_byte(first, batches[0].1.len() as u64 + 16);
    fs::remove_file(first.with_extension("index")).unwrap();
    assert!(matches!(
        Log::open(dir.path(), config.clone()),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn missing_or_garbage_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(3_000);
    config.index_interval_bytes = 150;
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 80);
    let expected = concat(&batches);
    log.close().unwrap();
    let logs = files_with_ext(dir.path(), "log");
    assert!(logs.len() >= 3);
    let check = |label: &str| {
        let log = open(dir.path(), &config);
        assert_eq!(read_all(&log, 0), expected, "{label}");
        for (base, bytes) in batches.iter().step_by(5) {
            let result = log.read(*base, 1, u64::MAX).unwrap();
            assert_eq!(&result.bytes[..], &bytes[..], "{label}");
        }
        let want = batches
            .iter()
            .find(|(_, b)| BatchHeader::parse(b).unwrap().max_timestamp >= 40);
        assert_eq!(
            log.offset_for_timestamp(40, 0).unwrap().map(|r| r.0),
            want.map(|w| w.0)
        );
        log.close().unwrap();
    };
    fs::remove_file(logs[0].with_extension("index")).unwrap();
    fs::remove_file(logs[1].with_extension("timeindex")).unwrap();
    check("deleted");
    fs::write(logs[0].with_extension("index"), b"garbage!!").unwrap();
    fs::write(logs[1].with_extension("timeindex"), vec![0xff; 24]).unwrap();
    fs::write(logs[1].with_extension("index"), vec![0u8; 0]).unwrap();
    check("garbage");
    // Plausible-looking but wrong: a middle entry points into a batch while the
    // last one is right, so only the read path can notice.
    let index_path = logs[0].with_extension("index");
    let mut lying = fs::read(&index_path).unwrap();
    assert!(lying.len() >= 3 * 8, "need several entries");
    let position = u32::from_be_bytes(lying[12..16].try_into().unwrap());
    lying[12..16].copy_from_slice(&(position + 5).to_be_bytes());
    fs::write(&index_path, &lying).unwrap();
    let log = open(dir.path(), &config);
    assert_eq!(
        log.segments[0].indexes.offsets.entries()[1].position,
        position + 5
    );
    drop(log);
    check("lying");
    fs::write(logs[0].with_extension("index"), huge_index()).unwrap();
    check("huge");
}

fn huge_index() -> Vec<u8> {
    (0..100_000u32)
        .flat_map(|i| [i.to_be_bytes(), i.to_be_bytes()].concat())
        .collect()
}

#[test]
fn garbage_checkpoint_means_full_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(700);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 25);
    log.close().unwrap();
    let checkpoint = dir.path().join("recovery-checkpoint");
    for garbage in [&b""[..], b"nonsense", &[0u8; 17], &[0xffu8; 4096]] {
        fs::write(&checkpoint, garbage).unwrap();
        let log = open(dir.path(), &config);
        assert_eq!(read_all(&log, 0), concat(&batches));
        drop(log);
    }
    // With no usable checkpoint, damage in an old segment is treated as a torn
    // write: the log is cut there and later segments are dropped.
    fs::write(&checkpoint, b"nonsense").unwrap();
    let logs = files_with_ext(dir.path(), "log");
    flip_byte(&logs[1], 40);
    let log = open(dir.path(), &config);
    assert_eq!(log.segment_count(), 2);
    let kept: Vec<_> = batches
        .iter()
        .filter(|(b, _)| *b < log.next_offset())
        .cloned()
        .collect();
    assert_eq!(read_all(&log, 0), concat(&kept));
    assert_eq!(log.next_offset(), log.segments[1].base_offset);
    assert_eq!(files_with_ext(dir.path(), "log").len(), 2);
}

#[test]
fn strange_directory_contents_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(500);
    let mut log = open(dir.path(), &config);
    let batches = fill(&mut log, 12);
    drop(log);
    let logs = files_with_ext(dir.path(), "log");
    let last = logs.last().unwrap();
    // A huge declared length in a trailing batch, leftover temp files, an orphan
    // index, a foreign .log name and a zero-length segment after the end.
    let mut file = fs::OpenOptions::new().append(true).open(last).unwrap();
    let mut fake = batch_with(1, 10, 0);
    fake[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    file.write_all(&fake).unwrap();
    drop(file);
    fs::write(dir.path().join("00000000000000000003.index.tmp"), b"x").unwrap();
    fs::write(dir.path().join("recovery-checkpoint.tmp"), b"x").unwrap();
    fs::write(dir.path().join("00000000000099999999.timeindex"), b"x").unwrap();
    fs::write(dir.path().join("notasegment.log"), b"hello").unwrap();
    fs::write(dir.path().join("00000000000500000000.log"), b"").unwrap();
    let log = open(dir.path(), &config);
    assert_eq!(read_all(&log, 0), concat(&batches));
    assert!(!dir.path().join("recovery-checkpoint.tmp").exists());
    assert!(!dir.path().join("00000000000000000003.index.tmp").exists());
    assert!(!dir.path().join("00000000000099999999.timeindex").exists());
    assert!(!dir.path().join("00000000000500000000.log").exists());
    assert!(dir.path().join("notasegment.log").exists());
    drop(log);

    // Only garbage: a segment of random bytes and a zero-length one.
    let other = tempfile::tempdir().unwrap();
    let noise: Vec<u8> = (0..5_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(other.path().join("00000000000000000000.log"), noise).unwrap();
    fs::write(other.path().join("00000000000000000100.log"), b"").unwrap();
    let mut log = open(other.path(), &config);
    assert_eq!((log.log_start_offset(), log.next_offset()), (0, 0));
    assert_eq!(log.segment_count(), 1);
    log.append(&batch_with(1, 10, 0), 0, 0).unwrap();
}

#[test]
fn open_creates_missing_directories() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("topic-0").join("nested");
    let mut log = Log::open(&dir, LogConfig::default()).unwrap();
    log.append(&batch_with(1, 10, 0), 0, 0).unwrap();
    log.close().unwrap();
    assert_eq!(
        Log::open(&dir, LogConfig::default()).unwrap().next_offset(),
        1
    );
}
