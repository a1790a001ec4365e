//! Positional, buffered reads of a segment file. Uses `pread` so concurrent readers
//! never disturb the append cursor, and reads ahead so scanning many small batch
//! headers does not cost a syscall each.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::StorageError;

const READ_AHEAD_BYTES: usize = 64 * 1024;

pub(crate) struct ChunkReader<'a> {
    file: &'a File,
    path: &'a Path,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> ChunkReader<'a> {
    /// `file_len` is the length the caller trusts; reads never go past it.
    pub fn new(file: &'a File, path: &'a Path, file_len: u64) -> ChunkReader<'a> {
        ChunkReader {
            file,
            path,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Bytes `[position, position + len)`. The caller guarantees the range lies
    /// within `file_len`; a shorter file (changed under us) is an I/O error.
    pub fn get(&mut self, position: u64, len: usize) -> Result<&[u8], StorageError> {
        let end = position.saturating_add(len as u64);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position < self.buf_start || end > buf_end {
            let want =
                (len.max(READ_AHEAD_BYTES) as u64).min(self.file_len.saturating_sub(position));
            let want = usize::try_from(want).unwrap_or(len).max(len);
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, position)
                .map_err(|e| StorageError::io(self.path, e))?;
            self.buf_start = position;
        }
        let from = (position - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }
}
