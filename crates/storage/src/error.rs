//! Error types of the storage engine.
//!
//! `BatchError` describes a malformed client batch (the caller maps it to Kafka's
//! CORRUPT_MESSAGE / INVALID_RECORD); `StorageError` describes everything the log
//! itself can fail at.

use std::path::PathBuf;

/// Why a RecordBatch v2 was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header (61 bytes), or than the 12-byte length prefix
    /// when splitting.
    #[error("record batch shorter than its header")]
    TooShort,
    /// `batchLength` disagrees with the bytes actually present, or is absurd.
    #[error("record batch length field says {declared} bytes but {actual} are present")]
    BadLength { declared: i64, actual: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    BadMagic(i8),
    #[error("record batch CRC mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    /// `recordsCount` is below 1.
    #[error("record batch must contain at least one record")]
    BadRecordCount,
    /// `lastOffsetDelta` is not `recordsCount - 1` (clients never send compacted batches).
    #[error("lastOffsetDelta {last_offset_delta} does not match recordsCount {records_count}")]
    BadOffsetDelta {
        last_offset_delta: i32,
        records_count: i32,
    },
    /// The records section cannot be decompressed (only looked at when recompressing).
    #[error("record batch records: {0}")]
    Records(#[from] crate::codec::CodecError),
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// fsync/fdatasync failed. The page cache may have dropped the dirty data, so
    /// the state on disk is unknown: the log is now `Failed` and the node must stop.
    #[error("fsync failed on {path}: {source}")]
    Fsync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("offset {offset} is outside the log range [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("offset {0} is not a record batch boundary")]
    NotBatchBoundary(u64),
    /// A previous fatal error (fsync failure, failed rollback) put the log in a state
    /// where it refuses every further write.
    #[error("log has failed and refuses writes")]
    Failed,
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
    /// Assigning offsets to the batch would exceed i64::MAX.
    #[error("offset overflow: cannot assign offsets past {next_offset}")]
    OffsetOverflow { next_offset: u64 },
}

impl StorageError {
    /// True when the underlying cause is a full disk or an exhausted quota, which is
    /// transient: the append was rolled back and a later append may succeed.
    pub fn is_no_space(&self) -> bool {
        match self {
            StorageError::Io { source, .. } | StorageError::Fsync { source, .. } => matches!(
                source.raw_os_error(),
                Some(code) if code == libc::ENOSPC || code == libc::EDQUOT
            ),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn fsync(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Fsync {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> StorageError {
        StorageError::Corrupt {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }
}
