//! Small filesystem helpers shared by the log, its indexes and its checkpoint.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Suffix of files written before an atomic rename; leftovers are removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// fsync of a directory, making creations, renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let handle = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    handle.sync_all().map_err(|e| StorageError::fsync(dir, e))
}

/// Reads exactly `len` bytes at `position` into a new buffer without zero-filling it first:
/// fetches read megabytes at a time, and zeroing them cost about as much as the read itself.
pub(crate) fn read_new_at(file: &File, len: usize, position: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let at = position
            .checked_add(done as u64)
            .and_then(|p| libc::off_t::try_from(p).ok())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: the pointer is `done` bytes into an allocation of `len` bytes that only this
        // function can reach, and pread writes at most `len - done` bytes there.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                len - done,
                at,
            )
        };
        match n {
            n if n > 0 => {
                // SAFETY: pread initialised the `n` bytes after the first `done`, and n <= len - done.
                unsafe { buf.set_len(done + n as usize) }
            }
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(buf)
}
