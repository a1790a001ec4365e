//! Sealed segments as the tiering uploader sees them: immutable files it may copy elsewhere
//! while appends go on. The handle is the segment's own open file, so a segment that retention
//! or a cleaning swap removes meanwhile stays readable to the copy in progress.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::StorageError;
use crate::log::Log;

/// One sealed segment, or the part of it from a given offset.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    /// The first offset the view covers (a batch boundary).
    pub base_offset: u64,
    /// The offset after its last batch: the next segment's base.
    pub end_offset: u64,
    /// Byte position of `base_offset`'s batch in the file.
    pub start_position: u64,
    /// Bytes in the file; the view is `start_position..size_bytes`.
    pub size_bytes: u64,
    pub file: Arc<File>,
    pub path: PathBuf,
}

impl Log {
    /// The sealed segments (never the active one) that hold offsets at or above `from` and end
    /// at or below `limit`, oldest first. The first may start inside a segment: its view begins
    /// at the batch holding `from`. Empty segments are passed over.
    pub fn sealed_segments(
        &self,
        from: u64,
        limit: u64,
    ) -> Result<Vec<SealedSegment>, StorageError> {
        let sealed = &self.segments[..self.segments.len() - 1];
        let mut out = Vec::new();
        for s in sealed {
            if s.next_offset <= from || s.size_bytes == 0 {
                continue;
            }
            if s.next_offset > limit {
                break;
            }
            let (base_offset, start_position) = if from > s.base_offset {
                match s.locate(from)? {
                    Some((position, header)) => (header.base_offset as u64, position),
                    None => continue,
                }
            } else {
                (s.base_offset, 0)
            };
            out.push(SealedSegment {
                base_offset,
                end_offset: s.next_offset,
                start_position,
                size_bytes: s.size_bytes,
                file: Arc::clone(&s.file),
                path: s.path.clone(),
            });
        }
        Ok(out)
    }
}
