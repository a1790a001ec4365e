//! Remote reads against local reads of the same segments: whatever the offset, byte limit and
//! first-batch rule, a segment read back from the store (through a cache smaller than it, in
//! 4 MiB chunks that batches straddle) gives exactly the bytes the local log gives, and a lookup
//! by time the same record.

use bytes::Bytes;
use strom_storage::records::{encode_batch, KeyValue};
use strom_storage::{FirstBatch, Log, LogConfig};

use crate::{upload_segment, Manifest, ManifestChange, Tier};

/// A log of three 12 MiB segments of batches from 1 to 40 records of 2-3 KiB each, their
/// timestamps rising by 7 ms per batch (every tenth batch goes back 20 ms, as clients may).
fn fill(dir: &std::path::Path) -> Log {
    let config = LogConfig {
        segment_bytes: 12 << 20,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config).unwrap();
    let mut ts = 1_000_000i64;
    let mut n = 0u64;
    while log.segment_count() < 4 {
        n += 1;
        let count = 1 + (n * 7919 % 40) as usize;
        let records: Vec<KeyValue> = (0..count)
            .map(|i| KeyValue {
                key: Bytes::from(format!("k{n}-{i}")),
                value: Some(Bytes::from(vec![
                    (n % 251) as u8;
                    2048 + (n as usize * 31 % 1024)
                ])),
            })
            .collect();
        ts += if n.is_multiple_of(10) { -20 } else { 7 };
        log.append(&encode_batch(&records, ts), 0, ts).unwrap();
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_reads_match_local_reads_across_chunks() {
    let root = tempfile::tempdir().unwrap();
    let log = fill(&root.path().join("log"));
    let url = format!("file://{}", root.path().join("store").display());
    // Two chunks of cache for 36 MiB of segments: reads keep evicting and fetching.
    let tier = Tier::open(&url, root.path().join("cache"), 8 << 20).unwrap();
    let dir = tier.store.partition_dir("t", uuid::Uuid::nil(), 0);
    let mut manifest = Manifest::default();
    let sealed = log.sealed_segments(0, u64::MAX).unwrap();
    assert_eq!(sealed.len(), 3);
    for view in &sealed {
        let segment = upload_segment(&tier.store, &dir, view).await.unwrap();
        assert!(manifest.apply(&ManifestChange::Append(segment)));
    }
    let end = manifest.uploaded_end;
    assert_eq!(end, sealed[2].end_offset);

    let mut offset = 0;
    while offset < end {
        let segment = manifest.find(offset).unwrap();
        for (max_bytes, first) in [
            (1, FirstBatch::Whole),
            (1, FirstBatch::WithinLimit),
            (70_000, FirstBatch::WithinLimit),
            (1 << 20, FirstBatch::Whole),
            (5 << 20, FirstBatch::Whole),
        ] {
            let remote = tier
                .read(&dir, segment, offset, max_bytes, u64::MAX, first)
                .await
                .unwrap();
            let local = log.read_with(offset, max_bytes, u64::MAX, first).unwrap();
            assert_eq!(
                remote, local.bytes,
                "offset {offset}, {max_bytes} bytes, {first:?}"
            );
        }
        offset += 397;
    }
    // An upper bound inside a segment stops before the batch that reaches it.
    let bound = manifest.segments[1].base_offset + 500;
    let segment = manifest.find(bound - 400).unwrap();
    let remote = tier
        .read(
            &dir,
            segment,
            bound - 400,
            64 << 20,
            bound,
            FirstBatch::Whole,
        )
        .await
        .unwrap();
    let local = log
        .read_with(bound - 400, 64 << 20, bound, FirstBatch::Whole)
        .unwrap();
    assert_eq!(remote, local.bytes);

    for ts in [0, 1_000_050, 1_003_333, 1_010_001, 1_020_000, i64::MAX] {
        let mut remote = None;
        for segment in &manifest.segments {
            remote = tier.find_timestamp(&dir, segment, ts, 0).await.unwrap();
            if remote.is_some() {
                break;
            }
        }
        let local = log.offset_for_timestamp(ts, 0).unwrap();
        let local = local.filter(|(o, _)| *o < end);
        assert_eq!(remote, local, "by time {ts}");
    }
    assert!(tier.cached_bytes() <= 8 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_from_inside_a_segment_reads_back_from_there() {
    let root = tempfile::tempdir().unwrap();
    let log = fill(&root.path().join("log"));
    let tier = Tier::open(
        &format!("file://{}", root.path().join("store").display()),
        root.path().join("cache"),
        1 << 30,
    )
    .unwrap();
    let dir = tier.store.partition_dir("t", uuid::Uuid::nil(), 0);
    // A new leader whose manifest ends inside its first segment uploads from the batch there.
    let middle = log.sealed_segments(0, u64::MAX).unwrap()[0].end_offset / 2;
    let view = log.sealed_segments(middle, u64::MAX).unwrap().remove(0);
    assert!(view.base_offset <= middle && view.start_position > 0);
    let segment = upload_segment(&tier.store, &dir, &view).await.unwrap();
    assert_eq!(segment.base_offset, view.base_offset);
    assert_eq!(segment.size_bytes, view.size_bytes - view.start_position);
    let remote = tier
        .read(&dir, &segment, middle, 1 << 20, u64::MAX, FirstBatch::Whole)
        .await
        .unwrap();
    let local = log
        .read_with(middle, 1 << 20, u64::MAX, FirstBatch::Whole)
        .unwrap();
    assert_eq!(remote, local.bytes);
}
