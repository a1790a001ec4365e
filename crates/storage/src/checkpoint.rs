//! The partition's `recovery-checkpoint` file: the offset below which every
//! segment was fsynced and verified, so `Log::open` may trust those segments'
//! index files instead of re-reading and re-checksumming their data.
//!
//! Layout (17 bytes, big-endian):
//!
//! ```text
//! 0   magic    [u8; 4]  b"SRCP"
//! 4   version  u8       1
//! 5   offset   u64      recovery point
//! 13  crc      u32      CRC-32C of bytes [0..13]
//! ```
//!
//! Anything else (wrong size, magic, version or CRC) is ignored with a warning,
//! which makes `open` verify every segment.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::StorageError;
use crate::fsutil::temp_path;

pub(crate) const FILE_NAME: &str = "recovery-checkpoint";
const MAGIC: &[u8; 4] = b"SRCP";
const VERSION: u8 = 1;
const LEN: usize = 17;

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

fn encode(offset: u64) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[0..4].copy_from_slice(MAGIC);
    out[4] = VERSION;
    out[5..13].copy_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out[..13]);
    out[13..17].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != LEN || &bytes[0..4] != MAGIC || bytes[4] != VERSION {
        return None;
    }
    let stored = u32::from_be_bytes([bytes[13], bytes[14], bytes[15], bytes[16]]);
    if crc32c::crc32c(&bytes[..13]) != stored {
        return None;
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[5..13]);
    Some(u64::from_be_bytes(raw))
}

/// The stored recovery point, or `None` when absent or unusable.
pub(crate) fn read(dir: &Path) -> Option<u64> {
    let path = path(dir);
    let len = match fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(_) => return None,
    };
    let decoded = if len == LEN as u64 {
        fs::read(&path).ok().and_then(|bytes| decode(&bytes))
    } else {
        None
    };
    if decoded.is_none() {
        warn!(path = %path.display(), file_bytes = len, "ignoring unreadable recovery checkpoint; verifying all segments");
    }
    decoded
}

/// Writes the checkpoint durably except for the final directory fsync, which the
/// caller performs (possibly shared with other directory changes).
pub(crate) fn write(dir: &Path, offset: u64) -> Result<(), StorageError> {
    let final_path = path(dir);
    let tmp = temp_path(&final_path);
    let mut file = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    file.write_all(&encode(offset))
        .map_err(|e| StorageError::io(&tmp, e))?;
    file.sync_data().map_err(|e| StorageError::fsync(&tmp, e))?;
    fs::rename(&tmp, &final_path).map_err(|e| StorageError::io(&final_path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_damage() {
        let bytes = encode(12345);
        assert_eq!(decode(&bytes), Some(12345));
        for i in 0..LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x40;
            assert_eq!(decode(&damaged), None, "byte {i}");
        }
        assert_eq!(decode(&bytes[..16]), None);
    }
}
