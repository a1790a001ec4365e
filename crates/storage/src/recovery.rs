//! Bringing a partition directory back to a consistent log on open.
//!
//! Segments are found by name (`<20-digit base offset>.log`). A `.log` whose name
//! does not parse is logged and left alone (it is not ours to delete); leftover
//! temp files of ours and index files without a `.log` are removed.
//!
//! Segments wholly below the recovery checkpoint were fsynced and verified when
//! they were sealed: their index files are loaded (and only the tail after the
//! last index entry is re-read, header by header). Damage found there is not a
//! torn write but lost acknowledged data, so it fails `open` with `Corrupt`
//! instead of silently discarding everything after it.
//!
//! The segment holding the checkpoint and every later one may end in a torn
//! write: they are re-read from their start with full CRC checks, and at the
//! first unsound batch the file is truncated and all later segments are deleted.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::checkpoint;
use crate::error::StorageError;
use crate::fsutil::{sync_dir, TEMP_SUFFIX};
use crate::index::{self, SegmentIndexes};
use crate::scan::{self, ScanOutcome, ScanParams, Verification};
use crate::segment::{self, open_rw, parse_base_offset, Segment, LOG_SUFFIX};

pub(crate) struct Recovered {
    /// Never empty; the last one is the active segment.
    pub segments: Vec<Segment>,
    pub checkpoint: Option<u64>,
}

pub(crate) fn recover(dir: &Path, index_interval_bytes: u32) -> Result<Recovered, StorageError> {
    ensure_dir(dir)?;
    crate::clean::complete_swaps(dir, index_interval_bytes)?;
    let bases = list_segments(dir)?;
    let checkpoint = checkpoint::read(dir);
    if bases.is_empty() {
        let segment = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        return Ok(Recovered {
            segments: vec![segment],
            checkpoint,
        });
    }
    let first_verified = checkpoint
        .and_then(|cp| bases.iter().rposition(|&base| base <= cp))
        .unwrap_or(0);

    let mut segments = Vec::with_capacity(bases.len());
    for (i, &base) in bases[..first_verified].iter().enumerate() {
        segments.push(load_sealed(dir, base, bases[i + 1], index_interval_bytes)?);
    }

    let mut drop_from = None;
    for (i, &base) in bases.iter().enumerate().skip(first_verified) {
        if let Some(previous) = segments.last() {
            if previous.next_offset != base {
                warn!(
                    path = %segment::log_path(dir, base).display(),
                    expected_base_offset = previous.next_offset,
                    "segment does not continue the previous one; dropping it and later segments"
                );
                drop_from = Some(i);
                break;
            }
        }
        let (segment, truncated) = recover_segment(dir, base, index_interval_bytes)?;
        segments.push(segment);
        if truncated {
            drop_from = Some(i + 1);
            break;
        }
    }

    if let Some(from) = drop_from {
        // Newest first, so a crash midway never leaves a gap in the offsets.
        for &base in bases[from..].iter().rev() {
            drop_segment_files(&segment::log_path(dir, base))?;
        }
    }
    // The data may not have been fsynced before the crash; once synced here it
    // counts as durable.
    for segment in &segments[first_verified.min(segments.len())..] {
        segment.sync()?;
    }
    if drop_from.is_some() {
        sync_dir(dir)?;
    }
    if let Some(active) = segments.last_mut() {
        active.restore_first_append_ms()?;
    }
    Ok(Recovered {
        segments,
        checkpoint,
    })
}

fn ensure_dir(dir: &Path) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    sync_dir(dir)?;
    // The new directory entry lives in the parent.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

fn is_our_temp_file(name: &str) -> bool {
    name.strip_suffix(TEMP_SUFFIX).is_some_and(|stem| {
        stem == checkpoint::FILE_NAME
            || stem.ends_with(".index")
            || stem.ends_with(".timeindex")
            // A segment the cleaner rewrote but did not swap in (`clean`).
            || stem.ends_with(LOG_SUFFIX)
            || stem == "cleaner-checkpoint"
    })
}

/// Sorted base offsets of the segments in `dir`, after removing our leftovers.
fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut bases = BTreeSet::new();
    let mut index_files: Vec<(u64, PathBuf)> = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let path = entry.path();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_file {
            continue;
        }
        if is_our_temp_file(&name) {
            info!(path = %path.display(), "removing leftover temp file");
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        } else if let Some(stem) = name.strip_suffix(LOG_SUFFIX) {
            match parse_base_offset(stem) {
                Some(base) => {
                    bases.insert(base);
                }
                None => {
                    warn!(path = %path.display(), "ignoring .log file whose name is not a segment base offset")
                }
            }
        } else if let Some(stem) = name
            .strip_suffix(".index")
            .or_else(|| name.strip_suffix(".timeindex"))
        {
            if let Some(base) = parse_base_offset(stem) {
                index_files.push((base, path));
            }
        }
    }
    for (base, path) in index_files {
        if !bases.contains(&base) {
            info!(path = %path.display(), "removing index file without a segment");
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    Ok(bases.into_iter().collect())
}

fn drop_segment_files(log_path: &Path) -> Result<(), StorageError> {
    let bytes = fs::metadata(log_path).map(|m| m.len()).unwrap_or(0);
    warn!(path = %log_path.display(), bytes_dropped = bytes, "deleting segment after an unrecoverable point in the log");
    fs::remove_file(log_path).map_err(|e| StorageError::io(log_path, e))?;
    index::remove(log_path).map_err(|e| StorageError::io(log_path, e))
}

fn file_len(file: &fs::File, path: &Path) -> Result<u64, StorageError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| StorageError::io(path, e))
}

/// An open segment file being recovered.
struct SegmentFile<'a> {
    file: &'a fs::File,
    path: &'a Path,
    len: u64,
    base: u64,
}

impl SegmentFile<'_> {
    fn scan(
        &self,
        start: (u64, u32),
        verification: Verification,
        index_interval_bytes: u32,
        indexes: &mut SegmentIndexes,
    ) -> Result<ScanOutcome, StorageError> {
        scan::scan(
            &ScanParams {
                file: self.file,
                path: self.path,
                file_len: self.len,
                segment_base: self.base,
                start_position: start.0,
                start_offset: self.base + u64::from(start.1),
                verification,
                index_interval_bytes,
            },
            indexes,
        )
    }
}

/// A sealed segment below the checkpoint. `expected_end` is the next segment's
/// base offset, which this one must end exactly at.
fn load_sealed(
    dir: &Path,
    base: u64,
    expected_end: u64,
    index_interval_bytes: u32,
) -> Result<Segment, StorageError> {
    let path = segment::log_path(dir, base);
    let file = open_rw(&path, false)?;
    let len = file_len(&file, &path)?;
    let target = SegmentFile {
        file: &file,
        path: &path,
        len,
        base,
    };
    let sound = |outcome: &ScanOutcome| {
        outcome.stop.is_none() && outcome.end_position == len && outcome.next_offset == expected_end
    };
    if let Some(mut indexes) = index::load(&path, len) {
        let start = indexes.rewind(base, None);
        let outcome = target.scan(
            start,
            Verification::HeaderOnly,
            index_interval_bytes,
            &mut indexes,
        )?;
        if sound(&outcome) {
            return Ok(Segment::from_parts(
                base,
                path,
                file,
                len,
                expected_end,
                indexes,
            ));
        }
        warn!(path = %path.display(), "index files disagree with the log; rebuilding them");
    } else {
        info!(path = %path.display(), "index files missing or invalid; rebuilding them");
    }
    let mut indexes = SegmentIndexes::default();
    let outcome = target.scan(
        (0, 0),
        Verification::HeaderOnly,
        index_interval_bytes,
        &mut indexes,
    )?;
    if let Some(stop) = &outcome.stop {
        return Err(StorageError::corrupt(
            &path,
            stop.position,
            stop.reason.clone(),
        ));
    }
    if !sound(&outcome) {
        return Err(StorageError::corrupt(
            &path,
            outcome.end_position,
            format!(
                "segment ends at offset {} but the next segment starts at {expected_end}",
                outcome.next_offset
            ),
        ));
    }
    indexes.seal(base);
    index::store(&path, &indexes);
    Ok(Segment::from_parts(
        base,
        path,
        file,
        len,
        expected_end,
        indexes,
    ))
}

/// A segment at or above the checkpoint: verified from its start, truncated at
/// the first unsound batch. Returns whether anything was cut off.
fn recover_segment(
    dir: &Path,
    base: u64,
    index_interval_bytes: u32,
) -> Result<(Segment, bool), StorageError> {
    let path = segment::log_path(dir, base);
    let file = open_rw(&path, false)?;
    let len = file_len(&file, &path)?;
    let mut indexes = SegmentIndexes::default();
    let target = SegmentFile {
        file: &file,
        path: &path,
        len,
        base,
    };
    let outcome = target.scan(
        (0, 0),
        Verification::Crc,
        index_interval_bytes,
        &mut indexes,
    )?;
    let truncated = match &outcome.stop {
        None => false,
        Some(stop) => {
            warn!(
                path = %path.display(),
                position = stop.position,
                bytes_dropped = len - stop.position,
                reason = %stop.reason,
                "truncating segment at the first unsound batch"
            );
            // Stale index files would describe the cut-off bytes.
            index::remove(&path).map_err(|e| StorageError::io(&path, e))?;
            file.set_len(outcome.end_position)
                .map_err(|e| StorageError::io(&path, e))?;
            file.sync_data()
                .map_err(|e| StorageError::fsync(&path, e))?;
            true
        }
    };
    Ok((
        Segment::from_parts(
            base,
            path,
            file,
            outcome.end_position,
            outcome.next_offset,
            indexes,
        ),
        truncated,
    ))
}
